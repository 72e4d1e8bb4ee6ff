"""scripts/synthetic_speakers.py: the voice of each utterance of a synthetic split from make_synthetic_corpus.py's
naming rule, checked against the test split's references, and against the manifests of a corpus built for real."""
import importlib
import os
import sys

import pytest

from conftest import ROOT, SENTENCES, run
from fairseq_kd.comparison import manifest_speakers, read_speakers_table, utterance_table


@pytest.fixture(scope="module")
def synthetic_speakers():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))  # the script imports make_synthetic_corpus beside it
    try:
        yield importlib.import_module("synthetic_speakers")
    finally:
        sys.path.remove(os.path.join(ROOT, "scripts"))


def write_table(path, split, voices, synthetic_speakers, sentences=6):
    """A per-utterance table of ``split`` whose utterance ids follow make_synthetic_corpus.py's order."""
    order = synthetic_speakers.sentence_order(split, voices, sentences)
    path.write_text(utterance_table({"id": utt_id, "words": 2, "sub": 0, "del": 0, "ins": 0,
                                     "reference": f"SENTENCE {i}", "hypothesis": f"SENTENCE {i}"}
                                    for utt_id, i in enumerate(order)))
    return path


def test_the_speakers_follow_the_naming_rule_and_a_wrong_voice_order_is_caught(synthetic_speakers, tmp_path,
                                                                                 monkeypatch):
    test_voices, unseen_voices = ["flite:slt", "espeak:en-us+m3", "flite:awb"], ["espeak:en-us+f2", "flite:rms"]
    test = write_table(tmp_path / "test.tsv", "test", test_voices, synthetic_speakers)
    unseen = write_table(tmp_path / "test_unseen.tsv", "test_unseen", unseen_voices, synthetic_speakers)
    # sentences 0, 2, 4 by espeak:en-us+f2 (sorted first), 1, 3, 5 by flite:rms
    assert synthetic_speakers.split_speakers("test_unseen", unseen_voices, 6) == {
        0: "espeak_en-us_f2", 1: "espeak_en-us_f2", 2: "espeak_en-us_f2", 3: "flite_rms", 4: "flite_rms",
        5: "flite_rms"}
    out = tmp_path / "speakers" / "test_unseen.tsv"
    args = ["synthetic_speakers.py", "--split", "test_unseen", "--voices", ",".join(unseen_voices), "--table",
            str(unseen), "--test-table", str(test), "--test-voices", ",".join(test_voices), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", args)
    synthetic_speakers.main()
    assert read_speakers_table(str(out))[3] == "flite_rms"
    monkeypatch.setattr(sys, "argv", [*args[:4], ",".join(reversed(unseen_voices)), *args[5:]])
    with pytest.raises(SystemExit, match=r"test_unseen.tsv: utterance 0 reads 'SENTENCE 0', but sentence 1 .* is "
                                         r"'SENTENCE 1': not make_synthetic_corpus.py's order"):
        synthetic_speakers.main()


@pytest.mark.cli
def test_the_rule_gives_the_speakers_of_a_corpus_built_for_real(synthetic_speakers, tmp_path):
    voices, unseen = "espeak:en-us+m3,flite:kal16,espeak:en-gb+f3", "espeak:en-us+f2,flite:slt"
    run([sys.executable, os.path.join(ROOT, "scripts", "make_synthetic_corpus.py"), "--text", SENTENCES,
         "--out", str(tmp_path), "--num-train", "2", "--num-valid", "1", "--num-test", "7", "--voices", voices,
         "--unseen-voices", unseen, "--max-words", "8", "--jobs", "1"])
    for split, split_voices in (("test", voices), ("test_unseen", unseen)):
        assert synthetic_speakers.split_speakers(split, split_voices.split(","), 7) == \
            manifest_speakers(str(tmp_path / f"{split}.tsv"))
