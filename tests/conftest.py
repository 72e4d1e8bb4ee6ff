"""Shared fixtures and helpers of every test folder (tests/ is on sys.path, pytest.ini ``pythonpath``): a small
synthetic speech corpus made with the real corpus builder, its teacher sidecars, the tiny letter task of the unit
tests, one torch thread for in-process teacher work, and running a CLI.

Tests of a real CLI or script run in a subprocess (training, decoding, extraction, the recipe), or that need a
model or sidecars made by one, are marked ``cli``; ``pytest -m "not cli"`` runs the unit tests only."""
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from fairseq_kd.tasks.audio_kd import AudioKdConfig, AudioKdTask
from tiny_models import letter_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
USER_DIR = os.path.join(ROOT, "fairseq_kd")
SENTENCES = os.path.join(ROOT, "examples", "kd", "data", "web_sentences.txt")
# fast voices only (flite kal16 and espeak-ng synthesise >1000x real time)
TEST_VOICES = "flite:kal16,espeak:en-us+m3"


# Python source that makes the optional LM libraries (flashlight-text, kenlm) unimportable in its process (used
# as a program's preamble and as a sitecustomize module by the tests of the install without the extra ``lm``)
HIDE_LM_LIBRARIES = """
import importlib.abc, sys

class HideLmLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("flashlight", "kenlm"):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return None

sys.meta_path.insert(0, HideLmLibraries())
print("LM libraries hidden", file=sys.stderr)
"""


def run(cmd, cwd=ROOT, check=True, timeout=600):
    """Run a CLI (first element resolved in the venv's bin/), return the CompletedProcess with merged output."""
    exe = os.path.join(BIN, cmd[0])
    proc = subprocess.run([exe if os.path.exists(exe) else cmd[0], *cmd[1:]], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def load_split(data, split, **cfg):
    """``(task, dataset)``: an ``audio_kd`` task on ``data`` with ``cfg``, ``split`` loaded."""
    task = AudioKdTask.setup_task(OmegaConf.structured(AudioKdConfig(data=str(data), tpu=False, seed=1, **cfg)))
    task.load_dataset(split)
    return task, task.datasets[split]


def make_corpus(out_dir, num_train, num_valid, num_test, extra=()):
    run([sys.executable, os.path.join(ROOT, "scripts", "make_synthetic_corpus.py"), "--text", SENTENCES,
         "--out", str(out_dir), "--num-train", str(num_train), "--num-valid", str(num_valid),
         "--num-test", str(num_test), "--voices", TEST_VOICES, "--max-words", "10", *extra])
    return str(out_dir)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """40 training, 6 validation and 13 test utterances (13: not a multiple of fairseq's batch multiple 8)."""
    return make_corpus(tmp_path_factory.mktemp("corpus"), 40, 6, 13)


@pytest.fixture(scope="session")
def kd_sidecars(corpus, tmp_path_factory):
    """Top-10 sidecars of the corpus' train and valid splits from a tiny BERT teacher (the real extractor)."""
    from tiny_bert import corpus_teacher

    teacher = corpus_teacher(corpus, tmp_path_factory.mktemp("teacher"))
    out = str(tmp_path_factory.mktemp("sidecars"))
    run([sys.executable, os.path.join(ROOT, "scripts", "extract_teacher_sidecar.py"), "--teacher", teacher,
         "--data", corpus, "--splits", "train", "valid", "--out", out, "--topk", "10"])
    return out


@pytest.fixture
def task(tmp_path):
    """The letter ``audio_kd`` task the tiny models of tiny_models.py run on (no audio)."""
    return letter_task(tmp_path)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine threads wait for each other (a module doing
    in-process teacher work sets ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
