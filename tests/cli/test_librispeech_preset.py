"""`run.sh --preset librispeech` end to end on a tiny folder laid out like LibriSpeech.

The fixture rearranges the synthetic ``corpus`` (TTS audio) into LibriSpeech's layout: SUBSET/SPEAKER/CHAPTER/
SPEAKER-CHAPTER-NNNN.flac with one SPEAKER-CHAPTER.trans.txt per chapter (upper-case transcripts), for
train-clean-100, dev-clean, dev-other, test-clean and test-other; an LM text like librispeech-lm-norm.txt (one
normalised upper-case sentence per line, with the dev/test sentences in it, which the recipe must exclude);
and a tiny BERT masked LM as the teacher directory.

What it guards that the smoke recipe (scripts/run_tests.sh after pytest: all eight stages of ``--preset smoke``
on TTS audio, the teacher fine-tuned, sidecars in 2 shards merged, LM, two trainings, greedy and beam + LM
decoding, the table) does not: LibriSpeech's layout read by stage 2 (several dev/test subsets, flac), a given
teacher directory with a trained head used as it is (3), sidecars of both dev subsets (4), the given LM text
filtered of every dev/test sentence (5), validation on two dev subsets (6), LM weights tuned on each dev subset
for its test subset (7) and the table's columns (8). One thread and one sidecar shard, since the smoke recipe
covers the merge of shards.
"""
import json
import os
import subprocess

import pytest
import soundfile as sf

from conftest import ROOT, SENTENCES
from fairseq_kd.data.manifest import read_manifest
from fairseq_kd.data.text import normalize_transcript
from tiny_bert import corpus_teacher

pytestmark = pytest.mark.cli

RUN_SH = os.path.join(ROOT, "examples", "kd", "run.sh")
# corpus split -> [(LibriSpeech subset, number of its utterances)], speakers and chapters as in LibriSpeech
SUBSETS = {"train": [("train-clean-100", 40)], "valid": [("dev-clean", 3), ("dev-other", 3)],
           "test": [("test-clean", 7), ("test-other", 6)]}


def write_librispeech_subset(root, subset, utterances, first_speaker):
    """Two speakers x two chapters; ``utterances`` = [(audio path, transcript)], written as 16 kHz flac."""
    for i, (audio_path, transcript) in enumerate(utterances):
        speaker, chapter = first_speaker + i % 2, 1000 + (i // 2) % 2
        chapter_dir = os.path.join(root, subset, str(speaker), str(chapter))
        os.makedirs(chapter_dir, exist_ok=True)
        utt_id = f"{speaker}-{chapter}-{i:04d}"
        samples, rate = sf.read(audio_path, dtype="int16")
        sf.write(os.path.join(chapter_dir, utt_id + ".flac"), samples, rate, format="FLAC")
        with open(os.path.join(chapter_dir, f"{speaker}-{chapter}.trans.txt"), "a", encoding="utf-8") as f:
            f.write(f"{utt_id} {transcript}\n")


@pytest.fixture(scope="module")
def librispeech(corpus, tmp_path_factory):
    """(LibriSpeech root, teacher directory, LM text file)."""
    base = tmp_path_factory.mktemp("librispeech_fixture")
    root = str(base / "LibriSpeech")
    heldout = []
    for split, subsets in SUBSETS.items():
        audio_root, entries = read_manifest(os.path.join(corpus, f"{split}.tsv"))
        with open(os.path.join(corpus, f"{split}.wrd"), encoding="utf-8") as f:
            transcripts = f.read().splitlines()
        utterances = [(os.path.join(audio_root, path), t) for (path, _, _), t in zip(entries, transcripts)]
        start = 0
        for number, (subset, count) in enumerate(subsets):
            write_librispeech_subset(root, subset, utterances[start:start + count], 100 * (len(heldout) + number + 1))
            start += count
        if split != "train":
            heldout += transcripts
    with open(SENTENCES, encoding="utf-8") as f:
        lm_lines = [normalize_transcript(line) for line in f.read().splitlines()[:3000]]
    lm_text = str(base / "librispeech-lm-norm.txt")
    with open(lm_text, "w", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in [*filter(None, lm_lines), *heldout]))
    return root, corpus_teacher(corpus, str(base / "bert")), lm_text


def run_recipe(*args, timeout=900):
    return subprocess.run(["bash", RUN_SH, "--preset", "librispeech", *args], cwd=ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)


def test_librispeech_preset_runs_every_stage_to_the_results_table(librispeech, tmp_path):
    root, teacher, lm_text = librispeech
    exp = tmp_path / "exp"
    proc = run_recipe("--librispeech-dir", root, "--teacher-dir", teacher, "--lm-text", lm_text, "--exp", str(exp),
                      "--config-prefix", "xs_", "--max-update", "10", "--device", "cpu", "--nj", "1",
                      "--variants", "xs_interctc_interaedkd", "--beams", "10")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert "has a trained MLM head: used as it is" in proc.stdout
    corpus = exp / "data" / "corpus"
    for split, count in [("train", 40), ("dev_clean", 3), ("dev_other", 3), ("test_clean", 7), ("test_other", 6)]:
        audio_root, entries = read_manifest(str(corpus / f"{split}.tsv"))
        assert len(entries) == count and all(path.endswith(".flac") for path, _, _ in entries)
        assert len((corpus / f"{split}.wrd").read_text().splitlines()) == count
    assert audio_root == os.path.join(root, "test-other")
    for split in ("train", "dev_clean", "dev_other"):  # sidecars of training and validation
        assert (corpus / "teacher" / f"{split}.kd.json").is_file()
    system = exp / "xs_interctc_interaedkd" / "seed1"
    assert "dev_clean" in (exp / "xs_interctc_interaedkd" / "seed1.train.log").read_text()
    for dev in ("dev_clean", "dev_other"):  # LM weights tuned on the matching dev subset
        assert (system / f"lm_tuned_{dev}.json").is_file()
    table = (exp / "results" / "results.md").read_text().splitlines()
    assert table[0].startswith("| system | decoding | seeds | WER test_clean")
    for subset in ("dev_clean", "dev_other", "test_other"):
        assert f"WER {subset}" in table[0]
    rows = [line for line in table if line.startswith("| xs_interctc_interaedkd |")]
    assert [row.split(" | ")[1] for row in rows] == ["greedy", "beam10_lm"]
    # stage 8's side-by-side benchmark on test_clean (LM weights of dev_clean): the x greedy column and the plot
    timing = json.loads((exp / "results" / "timing" / "xs_interctc_interaedkd.json").read_text())
    assert timing["subset"] == "test_clean" and [row["beam"] for row in timing["rows"]] == [1, 10]
    assert rows[0].split(" | ")[-3] == "1.00" and (exp / "results" / "wer_vs_time.png").is_file()
    lm_sentences = set((exp / "lm" / "lm_text.txt").read_text().splitlines())
    assert not lm_sentences & set((corpus / "test_clean.wrd").read_text().splitlines())  # excluded from the LM


def test_missing_inputs_are_all_named_in_one_message(tmp_path):
    proc = run_recipe("--librispeech-dir", str(tmp_path / "nowhere"), "--exp", str(tmp_path / "exp"), timeout=60)
    assert proc.returncode == 1 and "cannot start" in proc.stdout
    for option in ("--librispeech-dir", "--teacher-dir", "--lm-text"):
        assert option in proc.stdout, proc.stdout
    (tmp_path / "LibriSpeech" / "dev-other").mkdir(parents=True)  # no train, dev-clean or test subset
    proc = run_recipe("--librispeech-dir", str(tmp_path / "LibriSpeech"), "--exp", str(tmp_path / "exp"), timeout=60)
    assert proc.returncode == 1
    for problem in ("train-clean-100 not found", "neither test-clean/ nor test-other/", "--teacher-dir"):
        assert problem in proc.stdout, proc.stdout
    assert "dev-clean/ nor" not in proc.stdout
    assert not (tmp_path / "exp").exists()
