"""scripts/benchmark_training.py end to end on the test corpus: the real trainer's throughput in audio seconds,
and the in-process FLOP count and per-part profile, whose parts add up to the profiled wall time."""
import argparse
import importlib.util
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


class FinishedTraining:  # what training_figures reads of a training process: its output and return code
    returncode = 0

    def __init__(self, stdout):
        self.stdout = stdout

    def communicate(self):
        return self.stdout, None


def test_peak_gpu_memory_is_the_total_minus_the_smallest_gb_free_of_fairseqs_log():
    """On a GPU fairseq logs gb_free (total - max_memory_allocated since the last logged update) on every
    train_inner line, and the card's total in its CUDA banner; on a CPU neither, and no GPU column."""
    spec = importlib.util.spec_from_file_location("benchmark_training",
                                                  os.path.join(ROOT, "scripts", "benchmark_training.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    banner = ("[2026-12-06 10:00:00,000][fairseq.utils][INFO] - rank   0: capabilities =  9.0  ; "
              "total memory = 79.189 GB ; name = NVIDIA H100 80GB HBM3                    \n")
    lines = "".join(f"[2026-12-06 10:00:{n:02d},000][train_inner][INFO] - epoch 001:  {n} / 9 loss=1.2, apb=30, "
                    f"bsz=4, num_updates={n}, lr=0.001, gb_free={free}, train_wall=1, wall={n}\n"
                    for n, free in zip(range(1, 6), (78.0, 71.3, 70.9, 71.0, 71.2)))
    tail = "num. shared model params: 1,234 (num. trained: 1,234)\nMAXRSS_KB 2048\n"
    args = argparse.Namespace(warmup=1)
    on_gpu = module.training_figures("v", FinishedTraining(banner + lines + tail), args)
    assert on_gpu["gpu"] == "NVIDIA H100 80GB HBM3"
    assert on_gpu["peak_gpu_gib"] == pytest.approx(79.189 - 70.9)
    assert on_gpu["seconds_per_update"] == 1.0 and on_gpu["audio_seconds_per_second"] == 30.0
    on_cpu = module.training_figures("v", FinishedTraining(lines.replace("gb_free", "other") + tail), args)
    assert "peak_gpu_gib" not in on_cpu and on_cpu["peak_rss_mib"] == 2.0
