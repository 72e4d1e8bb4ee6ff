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
               "--sidecars", kd_sidecars, "--variants", "xs_ctc,xs_interctc_interaedkd", "--updates", "5",
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
