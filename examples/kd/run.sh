#!/usr/bin/env bash
# Reproduce the paper's comparison (arXiv 2401.11700, Table: greedy CTC WER of CTC / InterCTC / final-layer
# AED-KD / interAED-KD / interCTC-interAED-KD against CTC + n-gram LM shallow-fusion beam search, with
# runtimes) stage by stage like an ESPnet/icefall run.sh, on a speech corpus built offline or on LibriSpeech.
#
#   bash examples/kd/run.sh --preset smoke            # every stage in small (~5 min; run by scripts/run_tests.sh)
#   bash examples/kd/run.sh --preset demo             # 19 min on 2 CPU cores: 2 systems, small corpus
#   bash examples/kd/run.sh --preset cpu              # all 5 systems, ~3 h on 2 cores (docs/results/cpu/report.md)
#   bash examples/kd/run.sh --preset cpu --stage 6 --stop-stage 6 --seeds "2 3"   # more seeds, one stage
#   bash examples/kd/run.sh --preset cpu --max-update 1500                        # shorter training
#   bash examples/kd/run.sh --preset evidence --parallel 2   # 6 systems x 3 seeds, 7500 updates, CIs (days)
#   bash examples/kd/run.sh --preset evidence --plan         # what is done, what remains, time left
#   bash examples/kd/run.sh --preset evidence --stage 7      # decode what has trained so far, then the tables
#   bash examples/kd/run.sh --preset dose --stage 6          # dose-response screening on the evidence corpus
#                                                            # (docs/results/dose/PLAN.md)
#   bash examples/kd/run.sh --preset dose_confirm --stage 6  # its confirmation: 3 systems x seeds 4-6, all splits
#   bash examples/kd/run.sh --preset librispeech --librispeech-dir /data/LibriSpeech \
#       --teacher-dir /models/bert-base-uncased --lm-text /data/librispeech-lm-norm.txt --exp exp/ls100
#
# Options: --stage N --stop-stage N, --exp DIR (default exp/<preset>), --seeds "1 2", --variants "CONFIG ..."
# (config names of examples/kd), --max-update N, --nj N (parallel jobs / CPU threads), --device cpu|cuda
# (default: cuda for librispeech, which stops when torch sees no GPU unless --device cpu is given; the other presets:
# cuda when torch sees a GPU; cuda trains with common.cpu=false whatever the config says), --precision fp32|fp16|bf16
# (stage 6 on any device: float32, fairseq's fp16 (GPU only), or bfloat16 autocast (model.autocast_bf16); default:
# the config's), --beams "10 50", --parallel N (systems trained, and then decoded, at
# once, nj / N threads each; default 2 on CPU presets, 1 for librispeech; the decoding times in the results then
# include that sharing: --stage 7 --parallel 1 times each decoding alone),
# --plan (print what is trained, what is decoded and what remains, with a time estimate, and stop),
# --teacher-steps N (MLM fine-tuning steps of the teacher instead of the preset's),
# --previous-results DIR (an earlier stage 8 output kept elsewhere, e.g. docs/results/evidence: its systems and
# seeds are neither trained nor decoded again, and stage 8 includes their decodings; for a session on a new
# machine whose exp/ is gone), --sidecars DIR (teacher sidecars extracted before for the same corpus, e.g.
# docs/results/evidence/teacher_sidecars: stage 4 checks and copies them, and no teacher is fine-tuned in stage 3),
# --decode-splits "valid" (stage 7 decodes only these subsets, greedily, and beam + LM only the test subsets among
# them; the systems' .decode.done markers then wait for a full decoding; stage 8 tabulates the first of them).
# LibriSpeech preset: --librispeech-dir DIR (with train-clean-100, dev-clean, dev-other, test-clean,
# test-other: the dev/test subsets found are used), --train-subsets "train-clean-100 train-clean-360",
# --teacher-dir DIR (a local transformers BertForMaskedLM directory with its tokenizer; MLM fine-tuning on
# --lm-text runs only when its MLM head is missing or --teacher-steps N asks), --lm-text FILE (one normalised
# upper-case sentence per line, e.g. librispeech-lm-norm.txt), --config-prefix 100h_|xs_ (default 100h_),
# --lm-prune "0 0 1 1" (lmplz pruning thresholds per order, for a large --lm-text).
#
# Before stage 1 the recipe runs scripts/setup_env.sh --for PRESET, which installs what that preset needs (apt packages, .venv,
# KenLM tools) and stops with one message listing anything it could not install.
#
# Stages 1-5 leave a .done marker in $exp/stages and a rerun skips them. Stages 6-8 always run: each system
# and seed leaves its own markers ($exp/<system>/seed<N>.train.done, .decode.done), so a rerun (with more
# --seeds or --variants too) trains and decodes only what is missing, fairseq resumes an interrupted training
# from checkpoint_last.pt, and stage 7 decodes the trainings finished so far (the others are named and left);
# with stages 6 and 7 selected together, each run is decoded by the worker that trained it as soon as it is trained.
# Work order: every seed of the first systems of the preset (evidence: the 4 priority systems, CTC, InterCTC,
# interCTC-interAED-KD, masked), then every seed of the rest; within a group seed 1 of each, then seed 2, ...
#   1 text      World English Bible sentences (public domain) for the LM and the teacher (LibriSpeech: --lm-text)
#   2 speech    TTS corpus: train / valid / test with seen voices, test_unseen with voices never trained on;
#               evidence: also test_noisy_<SNR>db, valid_noisy_<SNR>db (pink noise) and test_ood (fortunes)
#               (LibriSpeech: manifests and letter labels of the train subsets and every dev/test subset)
#   3 teacher   MLM fine-tuning of the MiniLM teacher on WEB text (sentences up to 60 words) minus every
#               valid/test sentence
#   4 sidecars  teacher top-k probabilities of the train and valid transcripts (shards merged: one per GPU with
#               --device cuda, --nj of one thread each on the CPU; an explicit --nj sets their number)
#   5 lm        word 4-gram + lexicon on the same text; an independent check that no valid/test sentence
#               is in the teacher's or the LM's training text
#   6 train     every system with fairseq-hydra-train --config-dir examples/kd, same data/updates/seeds
#               (CTC and InterCTC read no sidecars: --stage 6 --variants "xs_ctc xs_interctc" can run beside 3-4)
#   7 decode    greedy fairseq-generate of every system on valid and test subsets; LM weight / word score
#               tuned on a valid subset (LibriSpeech: dev-clean for test-clean, dev-other for test-other);
#               beam + LM on the test subsets
#   8 results   decoding times of greedy and beam + LM side by side (scripts/benchmark_decoding.py, one seed per
#               system), results.md / results.csv / wer_vs_time.png (scripts/collect_results.py)
{ # the whole script is one block, read before it runs: editing this file while a recipe runs cannot change it
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

stage=1
stop_stage=8
preset=demo
seeds=""
parallel=""
plan=false
test_noise_snrs=""
valid_noise_snrs=""
noisy_valid_splits=""   # valid_noisy_<SNR>db: decoded greedily, never used for validation or tuning
num_ood=0
variants=""
max_update_override=""
teacher_options=""
questions=""         # NAME:SYSTEM:BASELINE pairs whose paired differences stage 8 reports first
train_overrides=""   # extra hydra overrides of the preset for every training (stage 6)
priority_systems=0   # the first N systems get all their seeds before the rest start (0: all systems together)
table_seeds_only=false  # stage 8's tables hold the --seeds runs only (otherwise every seed decoded in $exp)
nj=$(nproc)
nj_explicit=false
exp=""
device=""
precision=""
beams_override=""
librispeech_dir=""
train_subsets="train-clean-100"
teacher_dir=""
teacher_steps_override=""
lm_text=""
config_prefix=""
lm_prune=""
previous_results=""
sidecars=""
decode_splits=""     # --decode-splits "valid": stage 7 decodes only these subsets (a screening reads valid alone)

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2; shift 2 ;;
    --stop-stage) stop_stage=$2; shift 2 ;;
    --preset) preset=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --parallel) parallel=$2; shift 2 ;;
    --plan) plan=true; shift ;;
    --variants) variants=$2; shift 2 ;;
    --max-update) max_update_override=$2; shift 2 ;;
    --nj) nj=$2; nj_explicit=true; shift 2 ;;
    --exp) exp=$2; shift 2 ;;
    --device) device=$2; shift 2 ;;
    --precision) precision=$2; shift 2 ;;
    --beams) beams_override=$2; shift 2 ;;
    --librispeech-dir) librispeech_dir=$2; shift 2 ;;
    --train-subsets) train_subsets=$2; shift 2 ;;
    --teacher-dir) teacher_dir=$2; shift 2 ;;
    --teacher-steps) teacher_steps_override=$2; shift 2 ;;
    --lm-text) lm_text=$2; shift 2 ;;
    --config-prefix) config_prefix=$2; shift 2 ;;
    --lm-prune) lm_prune=$2; shift 2 ;;
    --previous-results) previous_results=$(realpath "$2"); shift 2 ;;
    --sidecars) sidecars=$(realpath "$2"); shift 2 ;;
    --decode-splits) decode_splits=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
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
    teacher_steps=80; teacher_options=""; max_update=1200; beams="50"
    lm_weights="0 0.5 1 2"; word_scores="-1 0 1"
    default_variants="xs_ctc xs_interctc_interaedkd" ;;
  cpu)
    asr_text=""                                    # the whole extracted text (stage 1)
    num_train=3000; num_valid=300; num_test=300; speed="0.9,1.0,1.1"; max_words=16
    teacher_steps=2000; teacher_options="--eval-every 250"; max_update=2500; beams="10 50 100"
    lm_weights="0 0.5 1 1.5 2 3"; word_scores="-1 0 1 2"
    default_variants="xs_ctc xs_interctc xs_aedkd xs_interaedkd xs_interctc_interaedkd"
    questions="Q1:xs_interaedkd:xs_ctc Q2:xs_interctc_interaedkd:xs_interctc" ;;
  evidence|dose|dose_confirm)  # does distillation improve greedy CTC, with confidence intervals: 6 systems x 3
    # seeds, multi-session (dose, dose_confirm: the same corpus, teacher and LM, below)
    asr_text=""
    num_train=6000; num_valid=300; num_test=500; speed="0.9,1.0,1.1"; max_words=16
    test_noise_snrs="20,10,5"; num_ood=400  # harder test conditions: pink noise at 20 / 10 / 5 dB, fortunes (another source)
    valid_noise_snrs="30,20,15"            # valid with pink noise: 20 dB was chosen there (PLAN.md amendment)
    teacher_steps=2000; teacher_options="--eval-every 250"; max_update=7500; beams="50"
    lm_weights="0 0.5 1 1.5 2 3"; word_scores="-1 0 1 2"
    default_seeds="1 2 3"
    # in priority order: with too little compute, seeds go to the first ones first
    default_variants="xs_ctc xs_interctc xs_interctc_interaedkd xs_interctc_interaedkd_masked xs_interaedkd xs_interctc_interaedkd_beta0"
    priority_systems=4
    # float32 on every CPU (not bfloat16 autocast where AVX512-BF16 exists): seeds trained on different machines
    # share the arithmetic, and seed 1 was trained in float32 on an AVX2 machine (bf16 saves only 11 % here)
    train_overrides="model.autocast_bf16=false"
    # docs/results/evidence/PLAN.md: interAED-KD vs CTC, + InterCTC, teacher vs reference (beta = 0), masking
    questions="Q1:xs_interaedkd:xs_ctc Q2:xs_interctc_interaedkd:xs_interctc
      Q2b:xs_interctc_interaedkd:xs_interctc_interaedkd_beta0 Q2c:xs_interctc_interaedkd_masked:xs_interctc_interaedkd"
    if [ "$preset" = dose ]; then  # docs/results/dose/PLAN.md: screening of alpha x (teacher, reference), seed 1,
      # on the evidence corpus (exp/evidence: its stages 1-5 are reused), results in exp/evidence/results_dose
      default_seeds="1"; priority_systems=0; results_name=results_dose
      default_variants="xs_interctc_interaedkd_alpha05 xs_interctc_interaedkd_alpha05_beta0
        xs_interctc_interaedkd_alpha07 xs_interctc_interaedkd_alpha07_beta0
        xs_interctc_interaedkd_alpha09 xs_interctc_interaedkd_alpha09_beta0"
      questions="S05:xs_interctc_interaedkd_alpha05:xs_interctc_interaedkd_alpha05_beta0
        S07:xs_interctc_interaedkd_alpha07:xs_interctc_interaedkd_alpha07_beta0
        S09:xs_interctc_interaedkd_alpha09:xs_interctc_interaedkd_alpha09_beta0
        D05:xs_interctc_interaedkd_alpha05:xs_interctc D07:xs_interctc_interaedkd_alpha07:xs_interctc
        D09:xs_interctc_interaedkd_alpha09:xs_interctc
        T3:xs_interctc_interaedkd_alpha05_t3:xs_interctc_interaedkd_alpha05
        B03:xs_interctc_interaedkd_alpha05_beta03:xs_interctc_interaedkd_alpha05"
    fi
    if [ "$preset" = dose_confirm ]; then  # docs/results/dose/PLAN.md, confirmation: S2's best distillation setting,
      # its beta = 0 twin and InterCTC, 3 fresh seeds, every split; results in exp/evidence/results_confirm
      best=xs_interctc_interaedkd_alpha05  # S2 outcome (PLAN.md): valid 26.28 vs T = 3 27.93, beta = 0.3 26.90
      default_seeds="4 5 6"; priority_systems=0; results_name=results_confirm
      table_seeds_only=true  # the table: seeds 4-6, not the screening's seed 1 of the same systems in exp/evidence
      default_variants="$best xs_interctc_interaedkd_alpha05_beta0 xs_interctc"
      questions="C1:$best:xs_interctc C2:$best:xs_interctc_interaedkd_alpha05_beta0"
    fi ;;
  librispeech)  # real data: nothing is synthesised, every input comes from the options (checked below)
    config_prefix=${config_prefix:-100h_}
    teacher_steps=${teacher_steps_override:-0}; max_update=""; beams="50 100"
    lm_weights="0 0.5 1 1.5 2 3"; word_scores="-1 0 1 2"
    default_variants="${config_prefix}ctc ${config_prefix}interctc ${config_prefix}aedkd ${config_prefix}interaedkd ${config_prefix}interctc_interaedkd"
    p=$config_prefix  # the evidence plan's questions (with --variants adding the masked and beta = 0 systems)
    questions="Q1:${p}interaedkd:${p}ctc Q2:${p}interctc_interaedkd:${p}interctc
      Q2b:${p}interctc_interaedkd:${p}interctc_interaedkd_beta0 Q2c:${p}interctc_interaedkd_masked:${p}interctc_interaedkd" ;;
  *) echo "unknown preset $preset (smoke, demo, cpu, evidence, dose, dose_confirm, librispeech)"; exit 1 ;;
esac
variants=${variants:-$default_variants}
seeds=${seeds:-${default_seeds:-1}}
max_update=${max_update_override:-$max_update}
teacher_steps=${teacher_steps_override:-$teacher_steps}
# trainings at once: on CPU, two 1-thread trainings side by side train 1.35x more updates per second than one
# 2-thread training after the other (docs/throughput.md); one at a time on GPUs (LibriSpeech)
parallel=${parallel:-$([ "$preset" != librispeech ] && [ "$nj" -ge 2 ] && echo 2 || echo 1)}
beams=${beams_override:-$beams}
exp=$(realpath -m "${exp:-exp/$([[ $preset == dose* ]] && echo evidence || echo "$preset")}")
results=$exp/${results_name:-results}
data=$exp/data
corpus=$data/corpus
stages=$exp/stages

# splits: the synthetic corpus has valid / test / test_unseen; LibriSpeech the dev/test subsets found
if [ "$preset" = librispeech ]; then
  problems=()
  [ -n "$librispeech_dir" ] && [ -d "$librispeech_dir" ] \
    || problems+=("--librispeech-dir '$librispeech_dir': not a folder (the LibriSpeech root with train-clean-100/, dev-clean/, ...)")
  valid_splits=""; test_splits=""
  for subset in dev-clean dev-other; do [ -d "$librispeech_dir/$subset" ] && valid_splits+="${subset/-/_} "; done
  for subset in test-clean test-other; do [ -d "$librispeech_dir/$subset" ] && test_splits+="${subset/-/_} "; done
  if [ -d "$librispeech_dir" ]; then
    for subset in $train_subsets; do
      [ -d "$librispeech_dir/$subset" ] || problems+=("--train-subsets: $librispeech_dir/$subset not found")
    done
    [ -n "$valid_splits" ] || problems+=("$librispeech_dir: neither dev-clean/ nor dev-other/ (needed for validation and LM-weight tuning)")
    [ -n "$test_splits" ] || problems+=("$librispeech_dir: neither test-clean/ nor test-other/")
  fi
  [ -n "$teacher_dir" ] && [ -f "$teacher_dir/config.json" ] \
    || problems+=("--teacher-dir '$teacher_dir': no config.json (a local transformers BertForMaskedLM directory with its tokenizer, e.g. bert-base-uncased)")
  [ -n "$lm_text" ] && [ -f "$lm_text" ] \
    || problems+=("--lm-text '$lm_text': no such file (one normalised upper-case sentence per line, e.g. librispeech-lm-norm.txt)")
  if [ ${#problems[@]} -gt 0 ]; then
    printf 'run.sh --preset librispeech cannot start:\n'; printf '  - %s\n' "${problems[@]}"; exit 1
  fi
  librispeech_dir=$(realpath "$librispeech_dir"); teacher_dir=$(realpath "$teacher_dir"); lm_text=$(realpath "$lm_text")
  tune_pairs=""  # test subset:the dev subset its LM weights are tuned on
  for t in $test_splits; do
    d=${t/test/dev}; [[ " $valid_splits " == *" $d "* ]] || d=${valid_splits%% *}
    tune_pairs+="$t:$d "
  done
  lm_text_file=$lm_text
else
  valid_splits="valid"; test_splits="test test_unseen"
  for snr in ${valid_noise_snrs//,/ }; do noisy_valid_splits+=" valid_noisy_${snr}db"; done
  for snr in ${test_noise_snrs//,/ }; do test_splits+=" test_noisy_${snr}db"; done
  [ "$num_ood" -eq 0 ] || test_splits+=" test_ood"
  tune_pairs=$(for t in $test_splits; do printf '%s:valid ' $t; done)
  lm_text_file=$data/text/web.txt
fi
main_subset=${test_splits%% *}
for subset in $decode_splits; do
  [[ " $valid_splits $noisy_valid_splits $test_splits " == *" $subset "* ]] \
    || { echo "--decode-splits: $subset is not a subset of preset $preset ($valid_splits $noisy_valid_splits $test_splits)"; exit 1; }
done
[ -z "$decode_splits" ] || [[ " $decode_splits " == *" $main_subset "* ]] || main_subset=${decode_splits%% *}
decoded_here() { [ -z "$decode_splits" ] || [[ " $decode_splits " == *" $1 "* ]]; }  # stage 7 decodes subset $1
valid_list=$(echo $valid_splits | tr ' ' ',')
mkdir -p "$stages"

log() { echo "[run.sh $(date '+%H:%M:%S')] $*"; }
work_order() {  # "SYSTEM SEED" per line: every seed of the first $priority_systems systems, then of the others
  local groups=() all=($variants) seed v
  if [ "$priority_systems" -gt 0 ] && [ "$priority_systems" -lt ${#all[@]} ]; then
    groups=("${all[*]:0:$priority_systems}" "${all[*]:$priority_systems}")
  else
    groups=("${all[*]}")
  fi
  for group in "${groups[@]}"; do
    for seed in $seeds; do for v in $group; do echo "$v $seed"; done; done
  done
}
if $plan; then  # what stages 6-7 have done and what remains, then stop
  for s in "$stages"/*.done; do [ -e "$s" ] && log "done: $(basename "$s" .done)"; done
  .venv/bin/python scripts/recipe_plan.py --exp "$exp" --runs "$(work_order | tr ' ' ':' | tr '\n' ' ')" \
    --max-update "${max_update:-0}" --parallel $parallel ${previous_results:+--previous "$previous_results"}
  exit 0
fi
run_stage() {  # run_stage N NAME: true when stage N is selected and, for stages 1-5, not done yet
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] || return 1
  if [ "$1" -le 5 ] && [ -f "$stages/$1.$2.done" ]; then log "stage $1 ($2): done before, skipped"; return 1; fi
  log "stage $1 ($2)"; date +%s > "$stages/$1.$2.start"
}
finish_stage() {  # the .done marker, and one line per finished invocation in wall_times.tsv (stage, start, end)
  local start end; start=$(cat "$stages/$1.$2.start"); end=$(date +%s)
  touch "$stages/$1.$2.done"; printf '%s\t%s\t%s\n' "$1.$2" "$start" "$end" >> "$stages/wall_times.tsv"
  log "stage $1 ($2) finished in $(( end - start )) s"
}

bash scripts/setup_env.sh --for "$preset"
. .venv/bin/activate
export OMP_NUM_THREADS=$nj
# the device (librispeech: cuda unless --device cpu; stops if torch sees no GPU) and stage 4's shards and GPUs
device_plan=$(python scripts/recipe_device.py --preset $preset ${device:+--device "$device"} --nj $nj \
  $($nj_explicit && echo --nj-explicit || true))
read -r device sidecar_shards sidecar_gpus <<< "$device_plan"
case "$precision" in  # stage 6, after the preset's train_overrides: the option wins
  "") precision_overrides="" ;;
  fp32) precision_overrides="common.fp16=false model.autocast_bf16=false" ;;
  fp16) [ "$device" = cuda ] || { echo "--precision fp16 needs --device cuda (on a CPU: fp32 or bf16)"; exit 1; }
        precision_overrides="common.fp16=true model.autocast_bf16=false" ;;
  bf16) precision_overrides="common.fp16=false model.autocast_bf16=true" ;;
  *) echo "--precision $precision: fp32, fp16 or bf16"; exit 1 ;;
esac
log "device $device${precision:+, precision $precision}; stage 4: $sidecar_shards sidecar shards$([ "$device" = cuda ] && echo " on GPUs $sidecar_gpus" || true)"
heldout=$(for s in $valid_splits $test_splits; do printf '%s ' "$corpus/$s.wrd"; done)

if run_stage 1 text; then
  if [ "$preset" = librispeech ]; then
    log "LM and teacher text: $lm_text (used as it is)"
  else
    python scripts/extract_text.py --source web --out "$data/text/web.txt"
    [ "$num_ood" -eq 0 ] || python scripts/extract_text.py --source fortunes --out "$data/text/ood.txt" --max-words $max_words
  fi
  finish_stage 1 text
fi

if run_stage 2 speech; then
  if [ "$preset" = librispeech ]; then
    python scripts/prepare_manifest.py --audio-dir $(for s in $train_subsets; do printf '%s ' "$librispeech_dir/$s"; done) \
      --split train --out "$corpus" --write-dict
    python scripts/prepare_manifest.py --out "$corpus" \
      $(for s in $valid_splits $test_splits; do printf -- '--split %s --audio-dir %s ' $s "$librispeech_dir/${s/_/-}"; done)
  else
    python scripts/make_synthetic_corpus.py --text "${asr_text:-$data/text/web.txt}" --out "$corpus" \
      --num-train $num_train --num-valid $num_valid --num-test $num_test --max-words $max_words \
      --unseen-voices espeak:en-us+f2,festival:cmu_us_slt_arctic_hts --speed-perturb $speed --jobs $nj \
      ${test_noise_snrs:+--test-noise-snrs $test_noise_snrs} ${valid_noise_snrs:+--valid-noise-snrs $valid_noise_snrs} \
      $([ "$num_ood" -eq 0 ] || echo "--ood-text $data/text/ood.txt --num-ood $num_ood")
  fi
  finish_stage 2 speech
fi

# the teacher: a given MLM directory with a trained head is used as it is; otherwise (or with --teacher-steps)
# it is fine-tuned into $exp/teacher
teacher=$exp/teacher
if [ "$preset" = librispeech ] && [ "$teacher_steps" -eq 0 ]; then
  missing=$(python -c "import sys; from fairseq_kd.teacher.masked_lm import missing_weights; print(' '.join(missing_weights(sys.argv[1])))" "$teacher_dir")
  if [ -z "$missing" ]; then teacher=$teacher_dir; else teacher_steps=2000; teacher_options=""; fi
fi
if run_stage 3 teacher; then
  if [ -n "$sidecars" ]; then
    log "teacher sidecars given (--sidecars $sidecars): no teacher needed"
  elif [ "$teacher" != "$exp/teacher" ]; then
    log "teacher $teacher has a trained MLM head: used as it is (--teacher-steps N fine-tunes it on --lm-text)"
  elif [ "$preset" = librispeech ]; then
    log "teacher $teacher_dir: fine-tuning $teacher_steps MLM steps on $lm_text"
    python scripts/finetune_teacher.py --base "$teacher_dir" --text "$lm_text" --max-lines 2000000 --exclude $heldout --out "$teacher" \
      --steps $teacher_steps --threads $nj $teacher_options
  else
    # the teacher reads every WEB sentence of up to 60 words (~0.75 M words), not only the short ones spoken
    [ -f "$data/text/teacher.txt" ] || python scripts/extract_text.py --source web --out "$data/text/teacher.txt" \
      --max-words 60 --max-name-ratio 1.0
    python scripts/finetune_teacher.py --text "$data/text/teacher.txt" --exclude $heldout --out "$teacher" \
      --steps $teacher_steps --threads $nj $teacher_options
  fi
  finish_stage 3 teacher
fi

if run_stage 4 sidecars; then
  splits="train $valid_splits"
  if [ -n "$sidecars" ]; then
    python scripts/copy_teacher_sidecar.py --from "$sidecars" --data "$corpus" --splits $splits --out "$corpus/teacher"
  elif [ "$sidecar_shards" -le 1 ]; then
    python scripts/extract_teacher_sidecar.py --teacher "$teacher" --data "$corpus" --splits $splits \
      --out "$corpus/teacher" --topk 10 --device $device --threads 1
  else  # shards of one GPU (shard s on GPU s mod GPUs) or one CPU thread each, merged into what one process writes
    gpus=(${sidecar_gpus//,/ })
    pids=()
    for ((shard = 0; shard < sidecar_shards; shard++)); do
      CUDA_VISIBLE_DEVICES=$([ "$device" = cuda ] && echo "${gpus[shard % ${#gpus[@]}]}" || true) OMP_NUM_THREADS=1 \
        python scripts/extract_teacher_sidecar.py --teacher "$teacher" --data "$corpus" --splits $splits \
        --out "$corpus/teacher" --topk 10 --device $device --threads 1 --shard-id $shard --num-shards $sidecar_shards \
        > "$exp/sidecars.shard$shard.log" 2>&1 &
      pids+=($!)
    done
    for ((shard = 0; shard < sidecar_shards; shard++)); do
      wait ${pids[$shard]} || { tail -20 "$exp/sidecars.shard$shard.log"; exit 1; }
    done
    python scripts/merge_teacher_sidecar.py --data "$corpus" --splits $splits --out "$corpus/teacher"
  fi
  finish_stage 4 sidecars
fi

if run_stage 5 lm; then
  python scripts/build_lm.py --text "$lm_text_file" --dict "$corpus/dict.ltr.txt" --exclude $heldout \
    --order 4 --out-dir "$exp/lm" --discount-fallback ${lm_prune:+--prune $lm_prune}
  # build_lm.py has checked its LM text with the independent check (another algorithm than its filter); the
  # teacher's text, when a teacher was fine-tuned here, gets the same check
  teacher_texts=$([ -f "$exp/teacher/train_text.txt" ] && echo "$exp/teacher/train_text.txt $exp/teacher/heldout_text.txt" || true)
  [ -z "$teacher_texts" ] || python scripts/check_excluded.py --excluded $heldout --texts $teacher_texts
  finish_stage 5 lm
fi

decoded_before() {  # decoded_before SYSTEM SEED: its decodings are in --previous-results and not trained here
  [ -n "$previous_results" ] && [ -d "$previous_results/per_utterance/$1/seed$2" ] \
    && [ ! -f "$exp/$1/seed$2.train.done" ] && log "$1 seed $2: decoded in $previous_results, not trained or decoded again"
}

for_each_system() {  # for_each_system FUNC: FUNC SYSTEM SEED in work order, --parallel at once, nj / parallel
  # threads each; the first failure stops the recipe
  local running=0 seed v
  while read -r v seed; do
    if [ $running -ge $parallel ]; then wait -n || exit 1; running=$((running - 1)); fi
    OMP_NUM_THREADS=$(( nj / parallel > 0 ? nj / parallel : 1 )) "$1" $v $seed &
    running=$((running + 1))
  done < <(work_order)
  while [ $running -gt 0 ]; do wait -n || exit 1; running=$((running - 1)); done
}

device_overrides=$([ "$device" = cpu ] && echo "common.cpu=true common.fp16=false" || echo "common.cpu=false")
train_one() {  # train_one SYSTEM SEED: one training; a finished one (marker) is skipped, an interrupted one resumes
  # (its log continues: appended)
  local v=$1 seed=$2
  [ -f "$exp/$v/seed$seed.train.done" ] && { log "$v seed $seed: trained before, skipped"; return 0; }
  decoded_before $v $seed && return 0
  log "training $v seed $seed"
  mkdir -p "$exp/$v"
  # only systems with an attention decoder read the teacher: CTC and InterCTC can train before stage 4
  local sidecar_dir=null
  python -c "import sys; from omegaconf import OmegaConf; sys.exit(not OmegaConf.load(sys.argv[1]).model.get('aed_layers'))" \
    examples/kd/$v.yaml && sidecar_dir="$corpus/teacher"
  fairseq-hydra-train --config-dir examples/kd \
    --config-name $v task.data="$corpus" task.kd_sidecar_dir="$sidecar_dir" common.user_dir="$ROOT/fairseq_kd" \
    common.seed=$seed checkpoint.save_dir="$exp/$v/seed$seed" "dataset.valid_subset='$valid_list'" \
    $device_overrides ${max_update:+optimization.max_update=$max_update} $train_overrides $precision_overrides \
    >> "$exp/$v/seed$seed.train.log" 2>&1 || { tail -30 "$exp/$v/seed$seed.train.log"; return 1; }
  touch "$exp/$v/seed$seed.train.done"
  log "$v seed $seed: $(grep -E "valid on '" "$exp/$v/seed$seed.train.log" | tail -1 | grep -oE '\| wer [0-9.]+' || true)"
}

generate() {  # generate CHECKPOINT SUBSET OUT_DIR [extra fairseq-generate options]; a finished one is kept
  local ckpt=$1 subset=$2 out=$3; shift 3
  [ -f "$out/decoding_summary.json" ] && return 0  # written last (atomically) by a finished decoding
  mkdir -p "$out"
  fairseq-generate "$corpus" --user-dir fairseq_kd --task audio_kd --path "$ckpt" --gen-subset $subset \
    --results-path "$out" --decoding-summary "$out/decoding_summary.json" --scoring wer --post-process letter \
    --max-tokens 1600000 --distributed-world-size 1 \
    $([ "$device" = cpu ] && echo --cpu) "$@" > "$out/generate.log" 2>&1 || { tail -20 "$out/generate.log"; exit 1; }
  log "${out#"$exp"/}: $(tail -1 "$out/generate-$subset.txt")"
}

decode_one() {  # decode_one SYSTEM SEED: greedy on every split (valid with noise too); LM weights tuned on
  # dev, then beam + LM on the test splits; decodings finished before are kept, so splits added later
  # (e.g. a new noise level) are decoded for the systems decoded before
  local v=$1 seed=$2 dir=$exp/$1/seed$2 subset pair dev beam lm_weight word_score
  decoded_before $v $seed && return 0
  [ -f "$dir.train.done" ] || { log "$v seed $seed: not trained yet ($dir.train.done missing), not decoded"; return 0; }
  for subset in $valid_splits $noisy_valid_splits $test_splits; do
    if decoded_here $subset; then generate "$dir/checkpoint_best.pt" $subset "$dir/decode/greedy/$subset"; fi
  done
  for pair in $tune_pairs; do
    subset=${pair%%:*}; dev=${pair#*:}
    decoded_here $subset || continue
    [ -f "$dir/lm_tuned_$dev.json" ] || python scripts/tune_lm_weights.py --path "$dir/checkpoint_best.pt" \
      --data "$corpus" --subset $dev --kenlm-model "$exp/lm/lm.bin" --lexicon "$exp/lm/lexicon.txt" \
      --beam 50 --lm-weights $lm_weights --word-scores $word_scores --jobs "${OMP_NUM_THREADS:-1}" \
      --out "$dir/lm_tuned_$dev.json"
    read -r lm_weight word_score < <(python -c "import json, sys; t = json.load(open(sys.argv[1])); print(t['lm_weight'], t['word_score'])" "$dir/lm_tuned_$dev.json")
    for beam in $beams; do
      generate "$dir/checkpoint_best.pt" $subset "$dir/decode/beam${beam}_lm/$subset" --ctc-decoder beam_lm \
        --kenlm-model "$exp/lm/lm.bin" --lexicon "$exp/lm/lexicon.txt" --beam $beam \
        --lm-weight $lm_weight --word-score $word_score
    done
  done
  if [ -z "$decode_splits" ]; then touch "$dir.decode.done"; fi
}

train_then_decode() {  # train_then_decode SYSTEM SEED (stages 6 and 7 selected together): a run is decoded by the
  # worker that trained it, as soon as it is trained, so that a long stage 6 leaves decoded runs behind it (and its
  # wall time holds their decoding); stage 7 then finds them decoded
  train_one "$@" && decode_one "$@"
}

if run_stage 6 train; then
  if [ "$stop_stage" -ge 7 ]; then for_each_system train_then_decode; else for_each_system train_one; fi
  finish_stage 6 train
fi

if run_stage 7 decode; then
  for_each_system decode_one
  finish_stage 7 decode
fi

if run_stage 8 results; then
  # decoding times compared side by side: the recipe's decodings ran beside its other jobs, so per system one
  # benchmark of greedy and every beam + LM on the same emissions of the main subset (its first seed decoded with
  # an LM; fastest of 3, alone: stage 8 runs one thing at a time); a benchmark made before is kept
  main_dev=""
  for pair in $tune_pairs; do [ "${pair%%:*}" != "$main_subset" ] || main_dev=${pair#*:}; done
  for v in $variants; do
    [ -z "$main_dev" ] || [ -f "$results/timing/$v.json" ] && continue
    for seed in $seeds; do
      dir=$exp/$v/seed$seed
      [ -f "$dir/checkpoint_best.pt" ] && [ -f "$dir/lm_tuned_$main_dev.json" ] || continue
      log "timing $v seed $seed on $main_subset: greedy and beam $beams + LM side by side"
      mkdir -p "$results/timing"
      python scripts/benchmark_decoding.py --path "$dir/checkpoint_best.pt" --data "$corpus" --subset $main_subset \
        --kenlm-model "$exp/lm/lm.bin" --lexicon "$exp/lm/lexicon.txt" --tuned "$dir/lm_tuned_$main_dev.json" \
        --beams $beams --repeats 3 --threads $nj --device $device --json "$results/timing/$v.json" \
        > "$results/timing/$v.log" 2>&1 || { tail -20 "$results/timing/$v.log"; exit 1; }
      break
    done
  done
  lexicon_option=() && [ -f "$exp/lm/lexicon.txt" ] && lexicon_option=(--lexicon "$exp/lm/lexicon.txt")
  python scripts/collect_results.py --exp "$exp" --data "$corpus" --out "$results" \
    --systems "$(echo $variants | tr ' ' ',')" --stages "$stages" --main-subset $main_subset \
    --per-utterance-dir "$results/per_utterance" "${lexicon_option[@]}" --questions "$(echo $questions)" \
    --timing "$results/timing" ${previous_results:+--previous "$previous_results"} \
    $($table_seeds_only && echo "--seeds ${seeds// /,}" || true)
  if [ "$preset" = dose ]; then  # valid WER against alpha, beta = 0 and 1 (docs/results/dose/PLAN.md; --variants:
    # one family, InterCTC included)
    python scripts/plot_dose_response.py --results "$results" --subset valid \
      --systems "$(echo $variants | tr ' ' ',')"
  fi
  finish_stage 8 results
  log "table: $results/results.md$([ -f "$results/wer_vs_time.png" ] && echo ", plot: $results/wer_vs_time.png")"
fi
exit 0
}
