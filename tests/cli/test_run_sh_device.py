"""run.sh --preset librispeech on a machine where torch sees no GPU (CUDA_VISIBLE_DEVICES empty, whatever the
machine): it stops before stage 1 with the reason and the fix, unless --device cpu is given; then stage 4 is planned
as --nj shards of one CPU thread. Run up to stage 0 (set-up and checks only) on a folder laid out like LibriSpeech."""
import os
import subprocess

import pytest

from conftest import ROOT
from tiny_bert import save_tiny_bert

pytestmark = pytest.mark.cli

RUN_SH = os.path.join(ROOT, "examples", "kd", "run.sh")


@pytest.fixture(scope="module")
def librispeech_options(tmp_path_factory):
    base = tmp_path_factory.mktemp("librispeech_layout")
    for subset in ("train-clean-100", "dev-clean", "test-clean"):
        (base / "LibriSpeech" / subset).mkdir(parents=True)
    (base / "lm.txt").write_text("A CAT SAT\n")
    teacher = save_tiny_bert(str(base / "bert"), ["a cat sat on the mat", "the dog ran"])
    return ["--librispeech-dir", str(base / "LibriSpeech"), "--teacher-dir", teacher, "--lm-text", str(base / "lm.txt")]


def run_without_gpu(*args):
    return subprocess.run(["bash", RUN_SH, "--preset", "librispeech", "--stop-stage", "0", "--nj", "2", *args],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})


def test_without_a_gpu_the_preset_stops_unless_device_cpu_is_given(librispeech_options, tmp_path):
    proc = run_without_gpu(*librispeech_options, "--exp", str(tmp_path / "exp"))
    assert proc.returncode == 1, proc.stdout
    assert "run.sh --preset librispeech: --device cuda (the default of --preset librispeech), but torch" in proc.stdout
    assert "or pass --device cpu to train on the CPU on purpose" in proc.stdout
    assert "stage 1" not in proc.stdout

    proc = run_without_gpu(*librispeech_options, "--exp", str(tmp_path / "exp"), "--device", "cpu")
    assert proc.returncode == 0, proc.stdout
    assert "device cpu; stage 4: 2 sidecar shards" in proc.stdout


def test_precision_is_checked_against_the_device_before_stage_1(librispeech_options, tmp_path):
    proc = run_without_gpu(*librispeech_options, "--exp", str(tmp_path / "exp"), "--device", "cpu",
                           "--precision", "fp16")
    assert proc.returncode == 1 and "--precision fp16 needs --device cuda (on a CPU: fp32 or bf16)" in proc.stdout
    assert "stage 1" not in proc.stdout
    proc = run_without_gpu(*librispeech_options, "--exp", str(tmp_path / "exp"), "--device", "cpu",
                           "--precision", "bf16")
    assert proc.returncode == 0 and "device cpu, precision bf16; stage 4" in proc.stdout, proc.stdout


def test_decode_splits_must_name_subsets_of_the_preset(librispeech_options, tmp_path):
    proc = run_without_gpu(*librispeech_options, "--exp", str(tmp_path / "exp"), "--device", "cpu",
                           "--decode-splits", "dev_clean test_bogus")
    assert proc.returncode == 1
    assert "--decode-splits: test_bogus is not a subset of preset librispeech (dev_clean" in proc.stdout
