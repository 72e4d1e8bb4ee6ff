"""--drop-unspeakable: which teacher ids are dropped, the renormalised top-k against the full model, the dropped
mass, and the header that keeps such sidecars apart from the others."""
import json
import os
import shutil
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, load_split, read_lines, run
from fairseq_kd.data.teacher_sidecar import TeacherSidecar, sidecar_path
from fairseq_kd.errors import DataError
from fairseq_kd.teacher.extract import prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import MaskedLmTeacher
from tiny_bert import save_tiny_bert

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCRIPT = os.path.join(ROOT, "scripts", "extract_teacher_sidecar.py")
K = 5
# raw text with what normalised transcripts never contain, so that the vocabulary has such WordPieces
NOISY_TEXT = ["In 1984, the cafe cost 12.50 dollars!", "Call 555-0199 (ext. 7): 3rd & 4th #1 @home", "\u03bb \u6f22",
              "don't stop"]


def corpus_transcripts(corpus):
    return [line for split in ("train", "valid", "test") for line in read_lines(os.path.join(corpus, f"{split}.wrd"))]


@pytest.fixture(scope="module")
def teacher_dir(corpus, tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("noisy_teacher"), corpus_transcripts(corpus) + NOISY_TEXT)


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    return MaskedLmTeacher(teacher_dir)


@pytest.fixture(scope="module")
def extracted(corpus, teacher_dir, tmp_path_factory):
    """Sidecar of the valid split extracted with --drop-unspeakable by the CLI; returns (directory, CLI output)."""
    out = str(tmp_path_factory.mktemp("speakable"))
    proc = run([sys.executable, SCRIPT, "--teacher", teacher_dir, "--data", corpus, "--splits", "valid", "--out", out,
                "--topk", str(K), "--drop-unspeakable"])
    return out, proc.stdout


def test_dropped_ids_are_the_specials_but_unk_and_the_pieces_outside_the_transcript_alphabet(teacher, corpus):
    dropped = set(teacher.unspeakable_ids())
    special = teacher.special_ids
    assert {special[name] for name in ("cls", "sep", "pad", "mask")} <= dropped and special["unk"] not in dropped
    vocabulary = teacher.tokenizer.get_vocab()
    for piece in ("1", "5", ",", ".", "!", "(", "&", "#", "@", "\u03bb", "\u6f22"):
        assert vocabulary[piece] in dropped, piece
    assert vocabulary["'"] not in dropped and vocabulary["the"] not in dropped
    references = {t for sequence in teacher.tokenize(corpus_transcripts(corpus)) for t in sequence}
    assert not references & dropped  # nothing a transcript tokenises into is ever dropped
    assert len(dropped) < teacher.vocab_size - len(references)


def test_the_top_k_is_that_of_the_renormalised_distribution_without_the_dropped_ids(teacher):
    """Against one full BertForMaskedLM pass per masked copy: p'_u = p_u / (1 - D_u) off the dropped ids, with
    D_u = p_u(dropped); top-k over every speakable id sums to 1 and holds no dropped id."""
    dropped = teacher.unspeakable_ids()
    speakable = teacher.vocab_size - len(dropped)
    sequences = teacher.tokenize(["THE LORD SAID", "AND HE WENT OUT OF THE CITY"])
    temperature = 2.0
    full = teacher.masked_topk(sequences, speakable, temperature, batch_tokens=40, excluded_ids=dropped,
                               return_excluded_mass=True)
    top = teacher.masked_topk(sequences, K, temperature, batch_tokens=40, excluded_ids=dropped,
                              return_excluded_mass=True)
    ids = teacher.special_ids
    for sequence, (all_ids, all_probs, mass), (top_ids, top_probs, top_mass) in zip(sequences, full, top):
        np.testing.assert_allclose(all_probs.sum(1), 1.0, rtol=1e-5)
        assert not set(all_ids.ravel().tolist()) & set(dropped)
        np.testing.assert_array_equal(mass, top_mass)
        for u in range(len(sequence)):
            masked = [ids["cls"], *sequence, ids["sep"]]
            masked[u + 1] = ids["mask"]
            with torch.no_grad():
                p = torch.softmax(teacher.model(input_ids=torch.tensor([masked])).logits[0, u + 1] / temperature, -1)
            excluded_mass = p[dropped].sum()
            assert mass[u] == pytest.approx(excluded_mass.item(), rel=1e-4, abs=1e-7)
            expected_probs, expected_ids = (p.index_fill(0, torch.tensor(dropped), 0) / (1 - excluded_mass)).topk(K)
            assert top_ids[u].tolist() == expected_ids.tolist()
            np.testing.assert_allclose(top_probs[u], expected_probs.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.cli
def test_the_cli_records_the_setting_and_the_dropped_mass(extracted, corpus, teacher):
    out, stdout = extracted
    dropped = teacher.unspeakable_ids()
    with open(os.path.join(out, "teacher.json")) as f:
        meta = json.load(f)
    assert meta["drop_unspeakable"]["num_dropped_ids"] == len(dropped) and "--drop-unspeakable" in stdout
    sidecar = TeacherSidecar(out, "valid")
    assert sidecar.header["teacher"] == meta
    sequences = teacher.tokenize(read_lines(os.path.join(corpus, "valid.wrd")))
    masses = [mass for _, _, mass in teacher.masked_topk(sequences, K, excluded_ids=dropped, return_excluded_mass=True)]
    expected = float(np.concatenate(masses).astype(np.float64).mean())
    assert sidecar.header["stats"]["unspeakable_mass_mean"] == pytest.approx(expected, rel=1e-5) and expected > 0
    assert f"mean probability of the dropped unspeakable tokens {expected:.4f}" in stdout
    for i in range(len(sidecar)):
        assert not set(sidecar[i][1].ravel().tolist()) & set(dropped)
    _, dataset = load_split(corpus, "valid", kd_sidecar_dir=out)  # the task's batches: rows renormalised to 1
    for i in range(len(dataset)):
        probs = dataset[i]["teacher"]["topk_probs"]
        assert torch.allclose(probs.sum(-1), torch.ones(len(probs)))


@pytest.mark.cli
def test_sidecars_of_other_hygiene_settings_are_told_apart(extracted, corpus, teacher, tmp_path):
    out, _ = extracted
    with pytest.raises(DataError, match=r"teacher\.json: this directory holds sidecars of another teacher or settings "
                                        r"\(drop_unspeakable differ\)"):
        prepare_sidecar_dir(out, teacher_meta(teacher, K, 1.0))
    mixed = shutil.copytree(out, tmp_path / "mixed")
    header_path = sidecar_path(str(mixed), "valid", "json")
    with open(header_path) as f:
        header = json.load(f)
    header["teacher"] = teacher_meta(teacher, K, 1.0)
    with open(header_path, "w") as f:
        json.dump(header, f)
    with pytest.raises(DataError, match=r"valid\.kd\.json: extracted by another teacher or settings .*"
                                        r"\(drop_unspeakable differ\)"):
        load_split(corpus, "valid", kd_sidecar_dir=str(mixed))


def test_a_top_k_larger_than_the_speakable_ids_is_refused(teacher):
    speakable = teacher.vocab_size - len(teacher.unspeakable_ids())
    assert teacher_meta(teacher, speakable, 1.0, drop_unspeakable=True)["topk"] == speakable
    with pytest.raises(ValueError, match=rf"--topk {speakable + 1} with --drop-unspeakable: only {speakable} "):
        teacher_meta(teacher, speakable + 1, 1.0, drop_unspeakable=True)
