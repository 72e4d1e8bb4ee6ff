#!/bin/bash
# issue 12 must-show: former code (a68fbad, its recipe: one training at a time, 2 threads) vs current code
# (its recipe: two 1-thread trainings side by side), same batches and seed; interleaved repeats
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel); cd "$ROOT"  # run from anywhere in the repository
D=$PWD/exp/cpu/data/corpus
OUT=exp/bench/runs.txt  # raw rows (copied into avx2_runs.txt)
mkdir -p exp/bench
common="--data $D --sidecars $D/teacher --updates 100 --warmup 10 --threads 2"
for rep in 1 2 3; do
  for v in xs_ctc xs_interctc_interaedkd; do
    echo "### rep $rep $v former (a68fbad), 1 training, 2 threads" >> $OUT
    (cd /tmp/old_a68fbad && PYTHONPATH=/tmp/old_a68fbad $ROOT/.venv/bin/python scripts/benchmark_training.py $common --variants $v dataset.num_workers=1 2>/dev/null | grep "^| $v") >> $OUT
    echo "### rep $rep $v current, 2 trainings side by side, 1 thread each" >> $OUT
    .venv/bin/python scripts/benchmark_training.py $common --num-workers 1 --side-by-side 2 --variants $v 2>/dev/null | grep "^| $v" >> $OUT
    echo "### rep $rep $v current, 1 training, 2 threads" >> $OUT
    .venv/bin/python scripts/benchmark_training.py $common --num-workers 1 --variants $v 2>/dev/null | grep "^| $v" >> $OUT
  done
  echo "### rep $rep xs_ctc current, 2 trainings side by side, 1 thread each, dataset.num_workers=0" >> $OUT
  .venv/bin/python scripts/benchmark_training.py $common --num-workers 0 --side-by-side 2 --variants xs_ctc 2>/dev/null | grep "^| xs_ctc" >> $OUT
done
echo finished >> $OUT
