#!/usr/bin/env bash
# The README's test command (and CI's): install everything if needed (idempotent), then run the suite.
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -k greedy`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q "$@"
