"""Shared fixtures: a small synthetic speech corpus made with the real corpus builder, and CLI helpers."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
USER_DIR = os.path.join(ROOT, "fairseq_kd")
SENTENCES = os.path.join(ROOT, "examples", "kd", "data", "web_sentences.txt")
# fast voices only (flite kal16 and espeak-ng synthesise >1000x real time)
TEST_VOICES = "flite:kal16,espeak:en-us+m3"


def run(cmd, cwd=ROOT, check=True, timeout=600):
    """Run a CLI (first element resolved in the venv's bin/), return the CompletedProcess with merged output."""
    exe = os.path.join(BIN, cmd[0])
    proc = subprocess.run([exe if os.path.exists(exe) else cmd[0], *cmd[1:]], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


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
