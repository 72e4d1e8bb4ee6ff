#!/usr/bin/env bash
# One prepared GPU check (docs/gpu_check.md): what a GPU machine must show, in one command of a few minutes.
#
#   bash scripts/gpu_check.sh                                      # on one GPU: about 5-8 minutes
#   bash scripts/gpu_check.sh --device cpu --from-smoke exp/smoke  # CI's short path (so the script cannot rot)
#
# 1. The smoke recipe on the device, once per precision (cuda: fp16 and bf16; cpu: bf16, fp32 being CI's smoke run): stages 1-5
#    once (or taken from --from-smoke DIR, a finished `run.sh --preset smoke`), then stages 6-8 (the two
#    trainings, greedy and beam + LM decoding, the results table) for each precision: the WERs and wall times.
# 2. --updates updates (cuda 200, cpu 4) of a LibriSpeech-size config (--config, default
#    100h_interctc_interaedkd: 12-block Conformer, fp16 on a GPU) on the smoke audio and sidecars
#    (scripts/benchmark_training.py): seconds per update, audio seconds per second, peak RSS and, on a GPU, the
#    peak GPU memory. On a GPU a batch holds the whole smoke training set (60 utterances, ~160 s); on the CPU
#    one utterance per update (dataset.max_tokens=48000, update_freq 1: the config's 4 batches of ~160 s take a
#    minute per update on 2 cores).
# 3. Greedy CTC against beam search + LM (beams 10 and 50) on the smoke test split, encoder and greedy search on
#    the device (scripts/benchmark_decoding.py), with the first precision's interCTC-interAED-KD model.
#
# Everything goes under --out (default exp/gpu_check); the summary, with the machine, is OUT/gpu_check.md.
# Options: --device cuda|cpu, --out DIR, --from-smoke DIR, --updates N, --config NAME, --precisions "fp16 bf16",
# --smoke-updates N (stage 6's updates per system; default the smoke preset's 30, cpu 3).
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
out=exp/gpu_check
from_smoke=""
updates=""
config=100h_interctc_interaedkd
precisions=""
smoke_updates=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --from-smoke) from_smoke=$(realpath "$2"); shift 2 ;;
    --updates) updates=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --precisions) precisions=$2; shift 2 ;;
    --smoke-updates) smoke_updates=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)"; exit 1 ;;
  esac
done
case "$device" in
  cuda) precisions=${precisions:-"fp16 bf16"}; updates=${updates:-200}; warmup=20; beams="10 50"
        threads=$(nproc) ;;
  cpu) precisions=${precisions:-"bf16"}; updates=${updates:-4}; warmup=2; beams="10"
       smoke_updates=${smoke_updates:-3}; threads=$(nproc) ;;
  *) echo "gpu_check.sh: --device cuda or cpu"; exit 1 ;;
esac
[ "$updates" -gt "$warmup" ] || { echo "gpu_check.sh: --updates must exceed the $warmup warm-up updates"; exit 1; }

bash scripts/setup_env.sh --for smoke
# shellcheck disable=SC1091
source .venv/bin/activate
if [ "$device" = cuda ]; then
  python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || {
    echo "gpu_check.sh: torch $(python -c 'import torch; print(torch.__version__)') sees no GPU: run it on a GPU" \
         "machine whose torch is a CUDA build, or use --device cpu"; exit 1; }
  machine="$(python -c "import torch; print(torch.cuda.get_device_name(0))"), torch $(python -c 'import torch; print(torch.__version__, torch.version.cuda)')"
else
  machine="$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, torch $(python -c 'import torch; print(torch.__version__)')"
fi
mkdir -p "$out"
out=$(realpath "$out")
summary=$out/gpu_check.md
timings=$out/timings.tsv
: > "$timings"
stamp() { echo "[gpu_check $(date +%H:%M:%S)] $*"; }
timed() {  # timed NAME COMMAND...: run it, log its wall seconds in timings.tsv
  local name=$1 start; shift; start=$(date +%s)
  "$@"
  printf '%s\t%s\n' "$name" "$(( $(date +%s) - start ))" >> "$timings"
}

# 1. the smoke recipe once per precision, stages 1-5 shared
base=$out/smoke_data
if [ -n "$from_smoke" ]; then
  for marker in 1.text 2.speech 3.teacher 4.sidecars 5.lm; do
    [ -f "$from_smoke/stages/$marker.done" ] || { echo "gpu_check.sh: --from-smoke $from_smoke: stage $marker is not done there"; exit 1; }
  done
  base=$from_smoke
  stamp "stages 1-5 from $from_smoke"
else
  stamp "smoke recipe stages 1-5 on $device"
  timed "smoke stages 1-5" bash examples/kd/run.sh --preset smoke --device "$device" --exp "$base" --stop-stage 5
fi
for p in $precisions; do
  run=$out/smoke_$p
  rm -rf "$run"
  mkdir -p "$run/stages"
  cp -r "$base/data" "$base/lm" "$run/"
  cp "$base"/stages/[1-5].*.done "$run/stages/"
  stamp "smoke recipe stages 6-8, $device, $p"
  timed "smoke stages 6-8 $p" bash examples/kd/run.sh --preset smoke --device "$device" --precision "$p" \
    --exp "$run" --stage 6 ${smoke_updates:+--max-update $smoke_updates}
done

# 2. a LibriSpeech-size config on the smoke audio
stamp "$updates updates of $config on $device"
corpus=$base/data/corpus
device_overrides=$([ "$device" = cpu ] && echo "common.cpu=true common.fp16=false dataset.max_tokens=48000 optimization.update_freq=[1]" \
  || echo "common.cpu=false")
timed "training benchmark $config" python scripts/benchmark_training.py --data "$corpus" --sidecars "$corpus/teacher" \
  --variants "$config" --updates "$updates" --warmup $warmup --threads "$threads" --json "$out/training.json" \
  $device_overrides > "$out/training.md"

# 3. greedy vs beam + LM on the device
first=$(echo "$precisions" | awk '{print $1}')
model=$out/smoke_$first/xs_interctc_interaedkd/seed1
stamp "greedy vs beam + LM decoding on $device"
# shellcheck disable=SC2086
timed "decoding benchmark" python scripts/benchmark_decoding.py --path "$model/checkpoint_best.pt" --data "$corpus" \
  --subset test --kenlm-model "$base/lm/lm.bin" --lexicon "$base/lm/lexicon.txt" --tuned "$model/lm_tuned_valid.json" \
  --beams $beams --device "$device" --threads "$threads" --repeats 2 --json "$out/decoding.json" > "$out/decoding.md"

{
  echo "# GPU check: $(date -u +%Y-%m-%d), $machine"
  echo
  echo "Command: \`bash scripts/gpu_check.sh --device $device${from_smoke:+ --from-smoke $from_smoke}\` (scripts/gpu_check.sh)."
  echo
  echo "## Wall time per step (s)"
  echo
  echo "| step | seconds |"
  echo "|---|---:|"
  awk -F'\t' '{printf "| %s | %s |\n", $1, $2}' "$timings"
  for p in $precisions; do
    echo
    echo "## Smoke recipe, $device, $p (WER ~100 %: the wiring, not the method)"
    echo
    grep -E '^\|( system| xs_|---)' "$out/smoke_$p/results/results.md" | head -6
  done
  echo
  echo "## $config, $updates updates on the smoke audio"
  echo
  grep -E '^(Training|\|)' "$out/training.md"
  echo
  echo "## Decoding, smoke test split, $device"
  echo
  cat "$out/decoding.md"
} > "$summary.tmp"
mv "$summary.tmp" "$summary"
cat "$summary"
stamp "done: $summary"
