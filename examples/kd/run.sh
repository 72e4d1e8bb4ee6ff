#!/usr/bin/env bash
# Reproduce the paper's comparison (arXiv 2401.11700, Table: greedy CTC WER of CTC / InterCTC / final-layer
# AED-KD / interAED-KD / interCTC-interAED-KD against CTC + n-gram LM shallow-fusion beam search, with
# runtimes) on a speech corpus built offline, stage by stage like an ESPnet/icefall run.sh.
#
#   bash examples/kd/run.sh --preset smoke            # every stage in small (~5 min; run by scripts/run_tests.sh)
#   bash examples/kd/run.sh --preset demo             # 26 min on 2 CPU cores: 2 systems, small corpus
#   bash examples/kd/run.sh --preset cpu              # all 5 systems, ~2 h on 2 cores (RESULTS.md)
#   bash examples/kd/run.sh --preset cpu --stage 6 --stop-stage 6 --seeds "2 3"   # more seeds, one stage
#   bash examples/kd/run.sh --preset cpu --max-update 1500                        # shorter training
#
# Before stage 1 the recipe runs scripts/setup_env.sh, which installs what is missing (apt packages, .venv,
# KenLM tools) and stops with one message listing anything it could not install.
#
# Stages (each leaves a .done marker in $exp/stages; rerunning skips finished stages, and fairseq resumes an
# interrupted training from checkpoint_last.pt):
#   1 text      World English Bible sentences (public domain) for the LM and the teacher
#   2 speech    TTS corpus: train / valid / test with seen voices, test_unseen with voices never trained on
#   3 teacher   MLM fine-tuning of the MiniLM teacher on the text minus every valid/test sentence
#   4 sidecars  teacher top-k probabilities of the train and valid transcripts
#   5 lm        word 4-gram + lexicon on the same text; an independent check that no valid/test sentence
#               is in the teacher's or the LM's training text
#   6 train     every system with fairseq-hydra-train --config-dir examples/kd, same data/updates/seeds
#   7 decode    greedy fairseq-generate of every system; LM weight / word score tuned on valid; beam + LM
#   8 results   results.md / results.csv / wer_vs_time.png (scripts/collect_results.py)
#
# --preset librispeech prints the commands for LibriSpeech-100h (GPU configs 100h_*, a local
# bert-base-uncased MLM directory as teacher); it is not run here.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

stage=1
stop_stage=8
preset=demo
seeds="1"
variants=""
max_update_override=""
teacher_options=""
nj=$(nproc)
exp=""

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --max-update) max_update_override=$2; shift 2 ;;
    --nj) nj=$2; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)"; exit 1 ;;
  esac
done

case "$preset" in
  smoke)  # every stage on a few dozen utterances: checks the tools and the wiring, not the method
    asr_text=examples/kd/data/web_sentences.txt
    num_train=60; num_valid=12; num_test=12; speed="1.0"; max_words=10
    teacher_steps=3; teacher_options="--heldout-fraction 0.01"; max_update=30; beams="10"
    lm_weights="0 1"; word_scores="0"
    default_variants="xs_ctc xs_interctc_interaedkd" ;;
  demo)
    asr_text=examples/kd/data/web_sentences.txt   # the embedded 8000 sentences
    num_train=1500; num_valid=150; num_test=150; speed="1.0"; max_words=14
    teacher_steps=80; max_update=1200; beams="50"
    lm_weights="0 0.5 1 2"; word_scores="-1 0 1"
    default_variants="xs_ctc xs_interctc_interaedkd" ;;
  cpu)
    asr_text=""                                    # the whole extracted text (stage 1)
    num_train=3000; num_valid=300; num_test=300; speed="0.9,1.0,1.1"; max_words=16
    teacher_steps=400; max_update=2500; beams="10 50 100"
    lm_weights="0 0.5 1 1.5 2 3"; word_scores="-1 0 1 2"
    default_variants="xs_ctc xs_interctc xs_aedkd xs_interaedkd xs_interctc_interaedkd" ;;
  librispeech)
    cat <<'TXT'
LibriSpeech-100h (GPU), same stages with real data:
  python scripts/prepare_manifest.py --audio-dir $LS/train-clean-100 --split train --out data/ls100 --write-dict
  for s in dev-clean dev-other test-clean test-other; do
    python scripts/prepare_manifest.py --audio-dir $LS/$s --split ${s/-/_} --out data/ls100; done
  python scripts/finetune_teacher.py --base /path/to/bert-base-uncased --text librispeech-lm-norm.txt \
      --exclude data/ls100/{dev,test}_*.wrd --out exp/ls100/teacher
  python scripts/extract_teacher_sidecar.py --teacher exp/ls100/teacher --data data/ls100 \
      --splits train dev_clean dev_other --out data/ls100/teacher --device cuda
  python scripts/build_lm.py --text librispeech-lm-norm.txt --dict data/ls100/dict.ltr.txt \
      --exclude data/ls100/{dev,test}_*.wrd --order 4 --out-dir exp/ls100/lm
  for v in 100h_ctc 100h_interctc 100h_aedkd 100h_interaedkd 100h_interctc_interaedkd; do
    fairseq-hydra-train --config-dir examples/kd --config-name $v task.data=$PWD/data/ls100 \
      task.kd_sidecar_dir=$PWD/data/ls100/teacher common.user_dir=$PWD/fairseq_kd checkpoint.save_dir=$PWD/exp/ls100/$v
  done
then stages 7-8 of this script with --exp exp/ls100 (decoding as below, subsets test_clean test_other).
TXT
    exit 0 ;;
  *) echo "unknown preset $preset (smoke, demo, cpu, librispeech)"; exit 1 ;;
esac
variants=${variants:-$default_variants}
max_update=${max_update_override:-$max_update}
exp=$(realpath -m "${exp:-exp/$preset}")
data=$exp/data
corpus=$data/corpus
stages=$exp/stages
mkdir -p "$stages"

log() { echo "[run.sh $(date '+%H:%M:%S')] $*"; }
run_stage() {  # run_stage N NAME: true when stage N is selected and not done yet
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] || return 1
  if [ -f "$stages/$1.$2.done" ]; then log "stage $1 ($2): done before, skipped"; return 1; fi
  log "stage $1 ($2)"; date +%s > "$stages/$1.$2.start"
}
finish_stage() { touch "$stages/$1.$2.done"; log "stage $1 ($2) finished in $(( $(date +%s) - $(cat "$stages/$1.$2.start") )) s"; }

bash scripts/setup_env.sh
. .venv/bin/activate
export OMP_NUM_THREADS=$nj
heldout="$corpus/valid.wrd $corpus/test.wrd $corpus/test_unseen.wrd"

if run_stage 1 text; then
  python scripts/extract_text.py --source web --out "$data/text/web.txt"
  finish_stage 1 text
fi

if run_stage 2 speech; then
  python scripts/make_synthetic_corpus.py --text "${asr_text:-$data/text/web.txt}" --out "$corpus" \
    --num-train $num_train --num-valid $num_valid --num-test $num_test --max-words $max_words \
    --unseen-voices espeak:en-us+f2,festival:cmu_us_slt_arctic_hts --speed-perturb $speed --jobs $nj
  finish_stage 2 speech
fi

if run_stage 3 teacher; then
  python scripts/finetune_teacher.py --text "$data/text/web.txt" --exclude $heldout --out "$exp/teacher" \
    --steps $teacher_steps --threads $nj $teacher_options
  finish_stage 3 teacher
fi

if run_stage 4 sidecars; then
  python scripts/extract_teacher_sidecar.py --teacher "$exp/teacher" --data "$corpus" --splits train valid \
    --out "$corpus/teacher" --topk 10 --threads $nj
  finish_stage 4 sidecars
fi

if run_stage 5 lm; then
  python scripts/build_lm.py --text "$data/text/web.txt" --dict "$corpus/dict.ltr.txt" --exclude $heldout \
    --order 4 --out-dir "$exp/lm"
  python scripts/check_excluded.py --excluded $heldout --texts "$exp/lm/lm_text.txt" "$exp/teacher/train_text.txt" \
    "$exp/teacher/heldout_text.txt"
  finish_stage 5 lm
fi

if run_stage 6 train; then
  for seed in $seeds; do
    for v in $variants; do
      log "training $v seed $seed"
      mkdir -p "$exp/$v"
      fairseq-hydra-train --config-dir examples/kd --config-name $v task.data="$corpus" \
        task.kd_sidecar_dir="$corpus/teacher" common.user_dir="$ROOT/fairseq_kd" common.seed=$seed \
        checkpoint.save_dir="$exp/$v/seed$seed" optimization.max_update=$max_update \
        > "$exp/$v/seed$seed.train.log" 2>&1 || { tail -30 "$exp/$v/seed$seed.train.log"; exit 1; }
      grep -E "valid on 'valid'" "$exp/$v/seed$seed.train.log" | tail -1
    done
  done
  finish_stage 6 train
fi

generate() {  # generate CHECKPOINT SUBSET OUT_DIR [extra fairseq-generate options]
  local ckpt=$1 subset=$2 out=$3; shift 3
  mkdir -p "$out"
  fairseq-generate "$corpus" --user-dir fairseq_kd --task audio_kd --path "$ckpt" --gen-subset $subset \
    --results-path "$out" --scoring wer --post-process letter --max-tokens 1600000 --cpu "$@" \
    > "$out/generate.log" 2>&1 || { tail -20 "$out/generate.log"; exit 1; }
  tail -1 "$out/generate-$subset.txt"
}

if run_stage 7 decode; then
  for seed in $seeds; do
    for v in $variants; do
      dir=$exp/$v/seed$seed
      for subset in valid test test_unseen; do
        generate "$dir/checkpoint_best.pt" $subset "$dir/decode/greedy/$subset"
      done
      python scripts/tune_lm_weights.py --path "$dir/checkpoint_best.pt" --data "$corpus" --subset valid \
        --kenlm-model "$exp/lm/lm.bin" --lexicon "$exp/lm/lexicon.txt" --beam 50 \
        --lm-weights $lm_weights --word-scores $word_scores --out "$dir/lm_tuned.json"
      read -r lm_weight word_score < <(python -c "import json, sys; t = json.load(open(sys.argv[1])); print(t['lm_weight'], t['word_score'])" "$dir/lm_tuned.json")
      for beam in $beams; do
        for subset in test test_unseen; do
          generate "$dir/checkpoint_best.pt" $subset "$dir/decode/beam${beam}_lm/$subset" --ctc-decoder beam_lm \
            --kenlm-model "$exp/lm/lm.bin" --lexicon "$exp/lm/lexicon.txt" --beam $beam \
            --lm-weight $lm_weight --word-score $word_score
        done
      done
    done
  done
  finish_stage 7 decode
fi

if run_stage 8 results; then
  python scripts/collect_results.py --exp "$exp" --data "$corpus" --out "$exp/results" \
    --systems "$(echo $variants | tr ' ' ',')" --stages "$stages"
  finish_stage 8 results
  log "table: $exp/results/results.md, plot: $exp/results/wer_vs_time.png"
fi
