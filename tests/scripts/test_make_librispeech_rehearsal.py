"""scripts/make_librispeech_rehearsal.py: a LibriSpeech-shaped folder at a fraction of LibriSpeech's counts (issue
28's scale rehearsal), with the LM text and teacher directory that run.sh --preset librispeech takes."""
import importlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import soundfile as sf

from conftest import ROOT

SCRIPT = os.path.join(ROOT, "scripts", "make_librispeech_rehearsal.py")


@pytest.fixture(scope="module")
def rehearsal():
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        yield importlib.import_module("make_librispeech_rehearsal")
    finally:
        sys.path.remove(os.path.join(ROOT, "scripts"))


def test_the_plan_scales_librispeech_counts_with_disjoint_speakers_and_chapter_numbering(rehearsal):
    sentences = [(f"sentence {i}.", f"SENTENCE {i}") for i in range(500)]
    plan = rehearsal.plan_subsets(sentences, 0.01, ["flite:slt", "espeak:en-us+m3"], 15.0)
    assert {subset: len(items) for subset, items in plan.items()} == {
        "train-clean-100": 285, "dev-clean": 27, "dev-other": 29, "test-clean": 26, "test-other": 29}
    transcripts = [item[5] for items in plan.values() for item in items]
    assert len(set(transcripts)) == len(transcripts) == 396  # every utterance another sentence
    speakers = {subset: {item[0] for item in items} for subset, items in plan.items()}
    assert len(speakers["train-clean-100"]) == 3  # 251 x 0.01
    assert sum(map(len, speakers.values())) == len(set().union(*speakers.values()))  # disjoint between subsets
    for subset, items in plan.items():
        per_chapter = {}
        for speaker, chapter, utt_id, voice, _, _, snr in items:
            assert re.fullmatch(rf"{speaker}-{chapter}-\d{{4}}", utt_id)
            per_chapter.setdefault(chapter, []).append(int(utt_id.rsplit("-", 1)[1]))
            assert (snr == 15.0) == subset.endswith("-other")
        assert all(numbers == list(range(len(numbers))) for numbers in per_chapter.values())


@pytest.mark.skipif(not (shutil.which("flite") and shutil.which("sox")), reason="flite and sox needed")
def test_the_folder_is_laid_out_like_librispeech_with_the_dev_test_sentences_in_the_lm_text(tmp_path):
    out = tmp_path / "rehearsal"
    subprocess.run([sys.executable, SCRIPT, "--fraction", "0.0005", "--out", str(out), "--voices", "flite:slt",
                    "--lm-lines", "3000", "--teacher-vocab", "300"], check=True, cwd=ROOT, capture_output=True)
    info = json.loads((out / "rehearsal.json").read_text())
    assert info["utterances"] == {"train-clean-100": 14, "dev-clean": 1, "dev-other": 1, "test-clean": 1,
                                  "test-other": 1}
    heldout = []
    for subset, count in info["utterances"].items():
        trans = sorted((out / "LibriSpeech" / subset).glob("*/*/*.trans.txt"))
        lines = [line for path in trans for line in path.read_text().splitlines()]
        assert len(lines) == count
        for path in trans:
            speaker, chapter = path.parent.parent.name, path.parent.name
            assert path.name == f"{speaker}-{chapter}.trans.txt"
            for line in path.read_text().splitlines():
                utt_id, transcript = line.split(" ", 1)
                assert utt_id.startswith(f"{speaker}-{chapter}-") and transcript == transcript.upper()
                audio, rate = sf.read(path.parent / f"{utt_id}.flac")
                assert rate == 16000 and audio.ndim == 1 and len(audio) > 1600
                if subset != "train-clean-100":
                    heldout.append(transcript)
    lm_lines = (out / "librispeech-lm-norm.txt").read_text().splitlines()
    assert len(lm_lines) == 3000 and len(set(lm_lines)) > 2900  # not one sentence repeated
    for sentence in heldout:  # planted, as LibriSpeech's dev/test sentences are in librispeech-lm-norm.txt
        assert any(sentence in line for line in lm_lines)
    assert (out / "bert" / "config.json").is_file() and (out / "bert" / "vocab.txt").is_file()
