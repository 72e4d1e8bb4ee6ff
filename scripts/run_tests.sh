#!/usr/bin/env bash
# The README's test command (and CI's): install everything if needed (idempotent), run the test suite, then
# run the whole recipe in small (examples/kd/run.sh --preset smoke, about 2 minutes: text, TTS corpus, teacher,
# sidecars, LM, two trainings, greedy and beam + LM decoding, results table), so that a set-up step the main
# command needs but the unit tests do not can never go missing unnoticed, and the GPU check's CPU path on its
# data (scripts/gpu_check.sh --device cpu, about 1.5 minutes).
#
#   bash scripts/run_tests.sh               set-up + ruff + pytest + smoke recipe (what CI runs)
#   bash scripts/run_tests.sh -k greedy     set-up + ruff + pytest with these arguments only (no smoke recipe)
#   bash scripts/run_tests.sh -m "not cli"  the unit tests only
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --for tests
.venv/bin/ruff check .  # the linter (ruff.toml: pycodestyle, pyflakes, import order, 120 columns)
# both cores: two xdist workers, each test file on one worker (its module fixtures built once), the shared
# artefacts (corpus, sidecars, trained models) built once for both (tests/conftest.py)
.venv/bin/python -m pytest -q -n 2 --dist loadfile "$@"
if [ $# -eq 0 ]; then
  rm -rf exp/smoke  # the smoke recipe always starts from nothing: its stage markers must not skip work
  start=$(date +%s)
  bash examples/kd/run.sh --preset smoke --exp exp/smoke
  rows=$(grep -cE '^\| xs_(ctc|interctc_interaedkd) \| (greedy|beam10_lm) \|' exp/smoke/results/results.md || true)
  [ "$rows" -eq 4 ] || { echo "smoke recipe: expected 4 result rows (2 systems x greedy, beam10_lm), got $rows"; exit 1; }
  echo "smoke recipe finished in $(( $(date +%s) - start )) s: exp/smoke/results/results.md"
  # the GPU check's CPU path on the smoke run's data (a GPU machine runs it with --device cuda: docs/gpu_check.md)
  start=$(date +%s)
  bash scripts/gpu_check.sh --device cpu --from-smoke exp/smoke --out exp/gpu_check_cpu > exp/gpu_check_cpu.log 2>&1 \
    || { tail -40 exp/gpu_check_cpu.log; echo "scripts/gpu_check.sh --device cpu failed (exp/gpu_check_cpu.log)"; exit 1; }
  echo "gpu_check.sh --device cpu finished in $(( $(date +%s) - start )) s: exp/gpu_check_cpu/gpu_check.md"
fi
