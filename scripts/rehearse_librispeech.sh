#!/usr/bin/env bash
# Rehearse `run.sh --preset librispeech` at a fraction of LibriSpeech: every stage on its own (--stage N
# --stop-stage N) under /usr/bin/time -v, with a PATH that lacks the TTS voices, diatheke and fortune (as on a
# cluster node), writing DIR/stages.tsv: stage, wall seconds, CPU seconds (user + system, of every process: less
# sensitive than wall time to other jobs on the machine), peak RSS (MB, the largest single process of the stage),
# exit status. The folder comes from scripts/make_librispeech_rehearsal.py (run first, with the full PATH,
# since it needs the voices). docs/librispeech_scale.md has the figures.
#
#   [STAGES="1 2 5"] bash scripts/rehearse_librispeech.sh DIR [run.sh options, e.g. --variants "xs_ctc xs_interctc_interaedkd"]
#   e.g. python scripts/make_librispeech_rehearsal.py --fraction 0.01 --out exp/rehearsal_100 &&
#        bash scripts/rehearse_librispeech.sh exp/rehearsal_100
set -euo pipefail
dir=$(realpath "$1"); shift
cd "$(dirname "$0")/.."
# a bin folder of links to everything on PATH but the tools the librispeech preset must not need
bin=$dir/path_without_tts
rm -rf "$bin"; mkdir -p "$bin"
IFS=: read -r -a path_dirs <<< "$PATH"
for d in "${path_dirs[@]}"; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    name=$(basename "$f")
    case "$name" in flite|flite_*|festival|espeak-ng|espeak|diatheke|fortune) continue ;; esac
    [ -x "$f" ] && [ ! -e "$bin/$name" ] && ln -s "$f" "$bin/$name"
  done
done
export PATH=$bin
for tool in flite festival espeak-ng diatheke fortune; do
  ! command -v $tool > /dev/null || { echo "$tool still on PATH"; exit 1; }
done
[ -n "${STAGES:-}" ] && [ -f "$dir/stages.tsv" ] || printf 'stage\twall_s\tcpu_s\tpeak_rss_mb\tstatus\n' > "$dir/stages.tsv"  # STAGES: appended
for stage in ${STAGES:-1 2 3 4 5 6 7 8}; do  # STAGES="1 2 5": some stages only (in order)
  status=0
  /usr/bin/time -v -o "$dir/stage$stage.time" bash examples/kd/run.sh --preset librispeech \
    --librispeech-dir "$dir/LibriSpeech" --teacher-dir "$dir/bert" --lm-text "$dir/librispeech-lm-norm.txt" \
    --config-prefix xs_ --max-update 50 --device cpu --nj 1 --exp "$dir/exp" --stage $stage --stop-stage $stage \
    "$@" > "$dir/stage$stage.log" 2>&1 || status=$?
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$dir/stage$stage.time")
  cpu=$(awk -F': ' '/(User|System) time \(seconds\)/ {s += $2} END {printf "%.1f", s}' "$dir/stage$stage.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$dir/stage$stage.time")
  printf '%s\t%s\t%s\t%s\t%s\n' $stage "$wall" "$cpu" "$rss" $status | tee -a "$dir/stages.tsv"
  [ $status -eq 0 ] || { tail -30 "$dir/stage$stage.log"; exit $status; }
done
tail -n +1 "$dir/exp/stages/wall_times.tsv"
