"""scripts/benchmark_training.py end to end on the test corpus: the real trainer's throughput in audio seconds,
and the in-process FLOP count and per-part profile, whose parts add up to the profiled wall time."""
import json
import os
import sys

import pytest

from cli_runs import TINY_KD_MODEL
from conftest import ROOT, run

pytestmark = pytest.mark.cli


def test_benchmark_reports_audio_throughput_flops_and_a_complete_profile(corpus, kd_sidecars, tmp_path):
    out = tmp_path / "bench.json"
    log = run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_training.py"), "--data", corpus,
               "--sidecars", kd_sidecars, "--variants", "xs_ctc,xs_interctc_interaedkd", "--updates", "3",
               "--warmup", "1", "--threads", "1", "--profile-steps", "2", "--flop-batches", "1", "--json", str(out),
               "model.encoder_layers=6", *TINY_KD_MODEL]).stdout
    assert "| xs_interctc_interaedkd |" in log and "GFLOP / audio-s" in log
    results = json.loads(out.read_text())["results"]
    for variant, r in results.items():
        assert r["audio_seconds_per_second"] > 0 and r["utterances_per_second"] > 0 and r["gflop_per_audio_second"] > 0
        profile = r["profile"]
        assert profile["steps"] == 2 and profile["audio_seconds"] > 0
        assert abs(sum(profile["parts"].values()) - profile["wall_seconds"]) < 0.02 * profile["wall_seconds"]
        assert profile["parts"].get("conformer blocks forward", 0) > 0 and profile["parts"].get("data", 0) > 0
    kd_parts = results["xs_interctc_interaedkd"]["profile"]["parts"]
    assert kd_parts.get("attention decoder forward", 0) > 0 and kd_parts.get("attention decoder backward", 0) > 0
    assert "attention decoder forward" not in results["xs_ctc"]["profile"]["parts"]


def test_side_by_side_trainings_sum_their_throughput(corpus, tmp_path):
    """--side-by-side 2 measures what run.sh --parallel 2 does: two 1-thread trainings at once, summed."""
    out = tmp_path / "bench.json"
    run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_training.py"), "--data", corpus,
         "--variants", "xs_ctc", "--updates", "3", "--warmup", "1", "--threads", "2", "--side-by-side", "2",
         "--json", str(out), "model.encoder_layers=6", *TINY_KD_MODEL])
    r = json.loads(out.read_text())["results"]["xs_ctc"]
    runs = r["side_by_side"]
    assert len(runs) == 2 and all(run_["audio_seconds_per_second"] > 0 for run_ in runs)
    assert r["audio_seconds_per_second"] == pytest.approx(sum(run_["audio_seconds_per_second"] for run_ in runs))
    assert r["seconds_per_update"] == pytest.approx(sum(run_["seconds_per_update"] for run_ in runs) / 2)


def test_side_by_side_needs_a_thread_per_training(corpus, tmp_path):
    proc = run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_training.py"), "--data", corpus,
                "--variants", "xs_ctc", "--threads", "1", "--side-by-side", "2"], check=False)
    assert proc.returncode != 0 and "--side-by-side 2" in proc.stdout
