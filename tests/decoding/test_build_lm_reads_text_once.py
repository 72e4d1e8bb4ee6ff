"""scripts/build_lm.py reads its LM text once (issue 28's scale rehearsal): librispeech-lm-norm.txt is 4.4 GB, and
build_lm.json's ``text_sha256`` used to be a second full pass over it after the filter's. The hash is now fed by
the filter's own pass (fairseq_kd.io_utils.open_text_hashed)."""
import hashlib
import sys

import pytest
from fairseq.data import Dictionary

from fairseq_kd.decoding import ngram_lm
from fairseq_kd.errors import ToolError
from fairseq_kd.io_utils import open_text_hashed

_opened = []  # (path, mode) of every open() while a test records (sys.addaudithook cannot be removed)
_recording = []


def _audit(event, args):
    if _recording and event == "open" and isinstance(args[0], str):
        _opened.append((args[0], args[1]))


sys.addaudithook(_audit)


def test_open_text_hashed_reads_like_open_and_hashes_every_byte(tmp_path):
    path = tmp_path / "text.txt"
    data = ("ONE LINE\r\nANOTHER ÉTÉ LINE\n" * 50_000 + "LAST WITHOUT NEWLINE").encode("utf-8")
    path.write_bytes(data)
    digest = hashlib.sha256()
    with open_text_hashed(str(path), digest) as f:
        lines = list(f)
    with open(path, encoding="utf-8") as f:
        assert lines == list(f)  # universal newlines, as open() in text mode
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_build_lm_opens_the_lm_text_once_and_records_its_hash(tmp_path):
    try:
        ngram_lm.kenlm_tool("lmplz")
    except ToolError:
        pytest.skip("KenLM tools not built (scripts/setup_env.sh)")
    text = tmp_path / "lm_text.txt"
    lines = ["THE CAT SAT ON THE MAT", "THE CAT SAT", "A CAT SAT ON A MAT", "THE HAT IS RED", "THE DOG IS RED",
             "THE CAT SAT ON A RED HAT", "AND THE CAT SAT ON A RED HAT TODAY"] * 20
    text.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "test.wrd").write_text("THE CAT SAT ON A RED HAT\n")
    units = Dictionary()
    for symbol in "|ABCDEGHIMNORSTY":
        units.add_symbol(symbol)
    units.save(str(tmp_path / "dict.ltr.txt"))
    _opened.clear()
    _recording.append(True)
    try:
        built = ngram_lm.build_lm(str(text), str(tmp_path / "dict.ltr.txt"), str(tmp_path / "lm"),
                                  [str(tmp_path / "test.wrd")], order=3, memory="32M", discount_fallback=True)
    finally:
        _recording.clear()
    assert len([path for path, _ in _opened if path == str(text)]) == 1, _opened  # was 2: the filter, sha256
    assert built.info["text_sha256"] == hashlib.sha256(text.read_bytes()).hexdigest()
    assert built.info["excluded_lines"] == 40  # the sentence, and the line that contains it
    assert "RED HAT" not in (tmp_path / "lm" / "lm_text.txt").read_text().replace("RED HAT IS", "")
