"""run.sh --plan: what the training and decoding stages have done and what remains (scripts/recipe_plan.py), in
the recipe's work order; stage 7 run before every training has finished."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.cli

LOG = """[2026-12-02 03:58:59,863][valid][INFO] - epoch 001 | valid on 'valid' subset | loss 4.1 | wer 80.5 | raw_wer 80 | num_updates 500
[2026-12-02 03:59:00,215][train][INFO] - epoch 001 | loss 5.014 | ups 2 | num_updates 500 | lr 0.002 | train_wall 4 | wall 250
[2026-12-02 04:00:00,000][valid][INFO] - epoch 002 | valid on 'valid' subset | loss 4.0 | wer 70.25 | raw_wer 70 | num_updates 1000 | best_wer 70.25
[2026-12-02 04:00:01,000][valid][INFO] - epoch 003 | valid on 'valid' subset | loss 3.9 | wer 60.0 | raw_wer 60 | num_updates 1500 | best_wer 60
[2026-12-02 04:00:02,000][train_inner][INFO] - epoch 003:  10 / 200 loss=3.9, ups=0.05, num_updates=1500, lr=0.002, wall=900
[2026-12-02 04:00:03,000][train_inner][INFO] - epoch 004:  25 / 200 loss=3.8, ups=2.5, num_updates=1525, lr=0.002, wall=915
"""


def test_plan_reports_progress_speed_best_wer_and_time_left(tmp_path):
    exp = tmp_path / "exp"
    (exp / "xs_ctc").mkdir(parents=True)
    (exp / "xs_ctc" / "seed1.train.log").write_text(LOG)
    proc = subprocess.run(["bash", os.path.join(ROOT, "examples", "kd", "run.sh"), "--preset", "evidence", "--plan",
                           "--exp", str(exp), "--seeds", "1 2", "--parallel", "2"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| xs_")]
    assert len(rows) == 12  # 6 systems x 2 seeds
    # s/update: 1 / median(ups 2, 0.05, 2.5) = 0.50; the interval paused for minutes (ups 0.05) does not count
    assert rows[0] == "| xs_ctc | 1 | running or interrupted | 1525 / 7500 | 0.50 | 60.00 @ 1500 | yes |"
    assert rows[1].startswith("| xs_interctc | 1 | to do | 0 / 7500 |")
    # work order: every seed of the 4 priority systems, then every seed of the other 2
    order = [tuple(row.split(" | ")[:2]) for row in rows]
    priority = ["| xs_ctc", "| xs_interctc", "| xs_interctc_interaedkd", "| xs_interctc_interaedkd_masked"]
    others = ["| xs_interaedkd", "| xs_interctc_interaedkd_beta0"]
    assert order == [(s, seed) for group in (priority, others) for seed in "12" for s in group]
    left = 5975 + 11 * 7500
    assert f"{left} updates left: ~{left * 0.5 / 2 / 3600:.1f} h at 0.50 s/update with 2 training(s)" in proc.stdout


def test_plan_marks_decoded_runs(tmp_path):
    exp = tmp_path / "exp"
    (exp / "xs_ctc").mkdir(parents=True)
    (exp / "xs_ctc" / "seed1.train.log").write_text(LOG.replace("wall=915", "wall=915\ndone training"))
    (exp / "xs_ctc" / "seed1.decode.done").touch()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "recipe_plan.py"), "--exp", str(exp),
                           "--runs", "xs_ctc:1 xs_ctc:2", "--max-update", "7500"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout
    assert "| xs_ctc | 1 | trained, decoded | 1525 / 7500 |" in proc.stdout
    assert "| xs_ctc | 2 | to do | 0 / 7500 |" in proc.stdout
    assert "7500 updates left" in proc.stdout


def test_decode_stage_before_the_trainings_finish_names_what_it_leaves(tmp_path):
    """Stage 7 while stage 6 still runs (or after an interrupted one): trained runs are decoded, the others are
    named and left for a later rerun, and nothing fails."""
    exp = tmp_path / "exp"
    proc = subprocess.run(["bash", os.path.join(ROOT, "examples", "kd", "run.sh"), "--preset", "smoke",
                           "--stage", "7", "--stop-stage", "7", "--exp", str(exp), "--seeds", "1 2"],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    for system in ("xs_ctc", "xs_interctc_interaedkd"):
        for seed in (1, 2):
            assert f"{system} seed {seed}: not trained yet" in proc.stdout, proc.stdout
    assert "stage 7 (decode) finished" in proc.stdout


def test_runs_decoded_in_previous_results_are_not_redone(tmp_path):
    """--previous-results: a session on a new machine (exp/ gone) neither trains nor decodes again what the
    committed results already hold, and --plan counts it as done."""
    previous = tmp_path / "previous"
    (previous / "per_utterance" / "xs_ctc" / "seed1" / "greedy").mkdir(parents=True)
    exp = tmp_path / "exp"
    run_sh = ["bash", os.path.join(ROOT, "examples", "kd", "run.sh"), "--preset", "smoke", "--exp", str(exp),
              "--previous-results", str(previous)]
    plan = subprocess.run(run_sh + ["--plan"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)
    assert plan.returncode == 0, plan.stdout
    assert f"| xs_ctc | 1 | decoded in {previous} |" in plan.stdout
    assert "| xs_interctc_interaedkd | 1 | to do | 0 / 30 |" in plan.stdout and "30 updates left" in plan.stdout
    decode = subprocess.run(run_sh + ["--stage", "7", "--stop-stage", "7"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, timeout=300)
    assert decode.returncode == 0, decode.stdout
    assert f"xs_ctc seed 1: decoded in {previous}, not trained or decoded again" in decode.stdout
    assert "xs_interctc_interaedkd seed 1: not trained yet" in decode.stdout


def test_dose_confirmation_trains_its_three_systems_seed_by_seed(tmp_path):
    """--preset dose_confirm (docs/results/dose/PLAN.md, amendment 3): S2's best distillation setting, its beta = 0
    twin and InterCTC, on fresh seeds 4-6, in exp/evidence's layout; seed 4 of every system first, so that an
    interrupted confirmation leaves whole seeds."""
    proc = subprocess.run(["bash", os.path.join(ROOT, "examples", "kd", "run.sh"), "--preset", "dose_confirm",
                           "--plan", "--exp", str(tmp_path / "exp")],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    rows = [tuple(line.split(" | ")[:3]) for line in proc.stdout.splitlines() if line.startswith("| xs_")]
    systems = ["| xs_interctc_interaedkd_alpha05", "| xs_interctc_interaedkd_alpha05_beta0", "| xs_interctc"]
    assert rows == [(system, seed, "to do") for seed in "456" for system in systems]
    assert "67500 updates left" in proc.stdout
