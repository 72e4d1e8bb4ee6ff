"""scripts/benchmark_teacher.py runs end to end on a tiny teacher and prints its table."""
import os
import re
import sys

import pytest

from conftest import ROOT, run
from tiny_bert import corpus_teacher

pytestmark = pytest.mark.cli


def test_benchmark_prints_speeds_agreement_and_bytes(corpus, tmp_path):
    teacher = corpus_teacher(corpus, tmp_path / "teacher")
    proc = run([sys.executable, os.path.join(ROOT, "scripts", "benchmark_teacher.py"), "--teacher", teacher,
                "--text", os.path.join(corpus, "train.wrd"), "--num-sentences", "12", "--reference-sentences", "3",
                "--topk", "5", "--threads", "1"])
    out = proc.stdout
    for method in ("batched (masked_topk)", "extraction (extract_split)", "reference (1 pass per token)"):
        assert re.search(re.escape(method) + r" +\d+ +\d+ +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+x", out), out
    assert re.search(r"reference \(1 pass per token\) +3 ", out)
    assert "same top-1 at 100.0 % of positions" in out
    bytes_per_wordpiece = float(re.search(r"sidecar on disk: ([\d.]+) bytes per WordPiece in the arrays", out)[1])
    assert bytes_per_wordpiece >= 4 + 5 * 6  # token + 5 ids + 5 probabilities, plus offsets and .npy headers
