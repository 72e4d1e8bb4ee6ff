#!/bin/bash
# issue 12 must-show 3: greedy decoding of the cpu preset's test set, former (144-channel front end) vs current
# (32 channels) xs_ctc, 2 seeds each (1500 updates, exp/pilot); encoder time = fastest of 3; beam 100 + LM ratio
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel); cd "$ROOT"  # run from anywhere in the repository
D=$PWD/exp/cpu/data/corpus
LM=exp/cpu/lm
OUT=exp/bench/decoding
mkdir -p $OUT
for rep in 1; do
  for seed in 1 2; do
    for arm in former144 letters; do
      .venv/bin/python scripts/benchmark_decoding.py --path exp/pilot/$arm/seed$seed/checkpoint_best.pt --data $D \
        --subset test --kenlm-model $LM/lm.bin --lexicon $LM/lexicon.txt --tuned exp/pilot/letters/seed1/lm_tuned_valid.json \
        --beams 10 50 100 --threads 2 --repeats 3 --json $OUT/${arm}_seed$seed.json > $OUT/${arm}_seed$seed.txt 2>&1
    done
  done
done
echo finished > $OUT/DONE
