"""scripts/check_excluded.py, the recipe's proof that no dev/test sentence is in a training text: exit 0 on a clean
text, exit 1 naming each planted sentence (whole line or inside one), where it came from and the text line."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.cli


def test_planted_sentences_are_named_with_their_line_and_a_clean_text_passes(tmp_path):
    (tmp_path / "test.wrd").write_text("The cat sat on the mat.\nHi!\nA dog ran far away\n")
    (tmp_path / "clean.txt").write_text("A DOG RAN\nHI THERE\nTHE CAT SAT ON A MAT\n")
    (tmp_path / "planted.txt").write_text("A DOG RAN\nSO THE CAT SAT ON THE MAT AGAIN\nhi\nOK\n")
    script = os.path.join(ROOT, "scripts", "check_excluded.py")
    proc = subprocess.run([sys.executable, script, "--excluded", str(tmp_path / "test.wrd"), "--texts",
                           str(tmp_path / "clean.txt"), str(tmp_path / "planted.txt")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    assert f"{tmp_path / 'clean.txt'}: 3 lines, 0 of 3 dev/test sentences found" in proc.stdout
    assert f"{tmp_path / 'planted.txt'}: 4 lines, 2 of 3 dev/test sentences found" in proc.stdout
    assert f"'HI' (from {tmp_path / 'test.wrd'}:2) in {tmp_path / 'planted.txt'}:3" in proc.stdout
    assert f"'THE CAT SAT ON THE MAT' (from {tmp_path / 'test.wrd'}:1) in {tmp_path / 'planted.txt'}:2" in proc.stdout

    proc = subprocess.run([sys.executable, script, "--excluded", str(tmp_path / "test.wrd"), "--texts",
                           str(tmp_path / "clean.txt")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout
