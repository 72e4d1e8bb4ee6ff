"""Teacher sidecars: the masked top-k math, extraction (CLI, resume, refusals) and the batches the task builds."""
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
from fairseq_kd.teacher.extract import extract_split, prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import MaskedLmTeacher
from tiny_bert import corpus_teacher, save_tiny_bert

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCRIPT = os.path.join(ROOT, "scripts", "extract_teacher_sidecar.py")
K = 5


@pytest.fixture(scope="module")
def teacher_dir(corpus, tmp_path_factory):
    return corpus_teacher(corpus, tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    return MaskedLmTeacher(teacher_dir)


@pytest.fixture(scope="module")
def extracted(corpus, teacher_dir, tmp_path_factory):
    """Sidecars of train and valid made by the CLI; returns (sidecar dir, CLI output)."""
    out = str(tmp_path_factory.mktemp("sidecars"))
    proc = run([sys.executable, SCRIPT, "--teacher", teacher_dir, "--data", corpus, "--splits", "train", "valid",
                "--out", out, "--topk", str(K), "--batch-tokens", "300", "--chunk-size", "16"])
    return out, proc.stdout


def test_masked_topk_equals_the_full_model_one_masked_copy_at_a_time(teacher):
    """Batching (several lengths, padding, several forward passes) and running the MLM head at the masked
    position only give what BertForMaskedLM gives on each masked copy alone."""
    sequences = teacher.tokenize(["THE LORD SAID", "AND HE WENT OUT OF THE CITY TO THE MOUNT", "YES"])
    temperature = 2.0
    got = teacher.masked_topk(sequences, topk=K, temperature=temperature, batch_tokens=40)
    ids = teacher.special_ids
    for sequence, (top_ids, top_probs) in zip(sequences, got):
        assert top_ids.shape == top_probs.shape == (len(sequence), K)
        for u in range(len(sequence)):
            masked = [ids["cls"], *sequence, ids["sep"]]
            masked[u + 1] = ids["mask"]
            with torch.no_grad():
                logits = teacher.model(input_ids=torch.tensor([masked])).logits[0, u + 1]
            probs, expected_ids = torch.softmax(logits / temperature, -1).topk(K)
            assert top_ids[u].tolist() == expected_ids.tolist()
            np.testing.assert_allclose(top_probs[u], probs.numpy(), rtol=1e-4, atol=1e-6)
            assert np.all(np.diff(top_probs[u]) <= 0)  # descending


@pytest.mark.cli
def test_cli_writes_the_documented_layout(extracted, corpus, teacher):
    out, stdout = extracted
    assert "train: 40 utterances" in stdout and "valid: 6 utterances" in stdout
    with open(os.path.join(out, "teacher.json")) as f:
        meta = json.load(f)
    assert meta["topk"] == K and meta["vocab_size"] == teacher.vocab_size
    assert meta["special_ids"] == teacher.special_ids
    sidecar = TeacherSidecar(out, "train")
    transcripts = read_lines(os.path.join(corpus, "train.wrd"))
    assert len(sidecar) == len(transcripts) == 40
    for i, transcript in enumerate(transcripts):
        tokens, ids, probs = sidecar[i]
        assert tokens.tolist() == teacher.tokenize([transcript])[0]
        assert ids.shape == probs.shape == (len(tokens), K) and probs.dtype == np.float16
        assert np.all(probs.astype(np.float32).sum(1) <= 1.001)
    stats = sidecar.header["stats"]
    assert 0 <= stats["top1_accuracy"] <= stats["reference_in_topk"] <= 1
    assert not os.path.exists(sidecar_path(out, "train", "parts"))  # work files removed


@pytest.mark.cli
def test_batches_carry_teacher_targets_of_the_right_utterance(extracted, corpus, teacher):
    """With fairseq skipping short utterances (skipped_indices), every batch row still gets the teacher
    targets of its own manifest line; layouts as documented in fairseq_kd/data/teacher_sidecar.py."""
    out, _ = extracted
    sizes = [int(line.split("\t")[1]) for line in read_lines(os.path.join(corpus, "train.tsv"))[1:]]
    min_size = int(np.percentile(sizes, 30))
    kept_lines = [i for i, size in enumerate(sizes) if size >= min_size]
    task, dataset = load_split(corpus, "train", kd_sidecar_dir=out, min_sample_size=min_size)
    assert 0 < len(dataset) == len(kept_lines) < len(sizes)
    transcripts = read_lines(os.path.join(corpus, "train.wrd"))
    ids = teacher.special_ids
    itr = task.get_batch_iterator(dataset, max_tokens=200000, num_workers=1, seed=1).next_epoch_itr(shuffle=True)
    seen = []
    for batch in itr:
        t = batch["teacher"]
        B, L = t["target"].shape
        assert t["prev_output_tokens"].shape == t["padding_mask"].shape == (B, L)
        assert t["topk_ids"].shape == t["topk_probs"].shape == (B, L, K)
        assert t["ntokens"] == int((~t["padding_mask"]).sum())
        for b, utt in enumerate(batch["id"].tolist()):
            reference = teacher.tokenize([transcripts[kept_lines[utt]]])[0]
            n = len(reference)
            assert t["target"][b, : n + 1].tolist() == reference + [ids["sep"]]
            assert t["prev_output_tokens"][b, : n + 1].tolist() == [ids["cls"]] + reference
            assert t["padding_mask"][b].tolist() == [False] * (n + 1) + [True] * (L - n - 1)
            assert torch.allclose(t["topk_probs"][b, : n + 1].sum(-1), torch.ones(n + 1))
            assert t["topk_ids"][b, n].tolist() == [ids["sep"]] + [ids["pad"]] * (K - 1)  # one-hot [SEP]
            assert t["topk_probs"][b, n].tolist() == [1.0] + [0.0] * (K - 1)
            assert not t["topk_probs"][b, n + 1:].any() and (t["target"][b, n + 1:] == ids["pad"]).all()
            seen.append(utt)
    assert sorted(seen) == list(range(len(kept_lines)))
    assert task.teacher_header["vocab_size"] == teacher.vocab_size


@pytest.mark.cli
def test_kd_topk_keeps_the_most_probable_and_renormalises(extracted, corpus):
    out, _ = extracted
    _, dataset = load_split(corpus, "valid", kd_sidecar_dir=out, kd_topk=2)
    stored_ids, stored_probs = TeacherSidecar(out, "valid")[0][1:]
    item = dataset[0]["teacher"]
    n = len(stored_ids)
    assert item["topk_ids"][:n].tolist() == stored_ids[:, :2].tolist()
    expected = stored_probs[:, :2].astype(np.float32)
    np.testing.assert_allclose(item["topk_probs"][:n].numpy(), expected / expected.sum(1, keepdims=True), rtol=1e-6)
    with pytest.raises(DataError, match=r"kd_topk=6: .*valid\.kd\.json stores 5 ids per position"):
        load_split(corpus, "valid", kd_sidecar_dir=out, kd_topk=6)


@pytest.mark.cli
def test_missing_sidecars(extracted, corpus):
    out, _ = extracted
    _, test = load_split(corpus, "test", kd_sidecar_dir=out)  # decoding needs no teacher
    assert "teacher" not in test.collater([test[0], test[1]])
    empty = os.path.join(out, "none")
    with pytest.raises(DataError, match=r"train\.kd\.json: no teacher sidecar for split 'train'"):
        load_split(corpus, "train", kd_sidecar_dir=empty)


def copy_with_transcript(corpus, data, line_no, transcript):
    """A private copy of the data files (the audio stays shared) with line ``line_no`` of train.wrd replaced."""
    data.mkdir()
    for name in os.listdir(corpus):
        if os.path.isfile(os.path.join(corpus, name)):
            shutil.copy(os.path.join(corpus, name), data / name)
    lines = (data / "train.wrd").read_text().split("\n")
    lines[line_no - 1] = transcript
    (data / "train.wrd").write_text("\n".join(lines))
    return data


@pytest.mark.cli
def test_a_changed_transcript_names_the_line_until_re_extracted(extracted, corpus, teacher, tmp_path):
    out = shutil.copytree(extracted[0], tmp_path / "sidecars")
    data = copy_with_transcript(corpus, tmp_path / "data", 3, "A DIFFERENT SENTENCE")
    with pytest.raises(DataError, match=r"train\.tsv/\.wrd line 3 is .*A DIFFERENT SENTENCE.* but .*train\.kd\.keys"
                                        r"\.txt:3 was extracted for .*re-extract"):
        load_split(data, "train", kd_sidecar_dir=str(out))
    extract_split(teacher, teacher_meta(teacher, K, 1.0), str(data), "train", str(out), progress=False)
    _, dataset = load_split(data, "train", kd_sidecar_dir=str(out))
    assert dataset[2]["teacher"]["target"][:-1].tolist() == teacher.tokenize(["A DIFFERENT SENTENCE"])[0]


def test_a_transcript_longer_than_the_teacher_reads_names_the_line(corpus, teacher, tmp_path):
    data = copy_with_transcript(corpus, tmp_path / "data", 2, " ".join(["THE"] * 70))  # 64 positions at most
    with pytest.raises(DataError, match=r"train\.wrd:2: 70 WordPieces, the teacher reads at most 62"):
        extract_split(teacher, teacher_meta(teacher, K, 1.0), str(data), "train", str(tmp_path / "out"),
                      progress=False)


@pytest.mark.cli
def test_interrupted_extraction_resumes_from_the_finished_chunks(corpus, teacher, extracted, tmp_path, monkeypatch):
    meta = teacher_meta(teacher, K, 1.0)
    out = str(tmp_path)
    prepare_sidecar_dir(out, meta)
    calls = []
    compute = teacher.masked_topk

    def interrupted_after_one_chunk(*args, **kwargs):
        calls.append(len(args[0]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return compute(*args, **kwargs)

    monkeypatch.setattr(teacher, "masked_topk", interrupted_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        extract_split(teacher, meta, corpus, "train", out, batch_tokens=300, chunk_size=16, progress=False)
    assert sorted(os.listdir(sidecar_path(out, "train", "parts"))) == ["000000.npz", "params.json"]
    assert not os.path.exists(sidecar_path(out, "train", "json"))

    calls.clear()
    monkeypatch.setattr(teacher, "masked_topk", lambda *a, **kw: calls.append(len(a[0])) or compute(*a, **kw))
    extract_split(teacher, meta, corpus, "train", out, batch_tokens=300, chunk_size=16, progress=False)
    assert calls == [16, 8]  # chunks 2 and 3 of 40 utterances; chunk 1 was kept
    resumed, clean = TeacherSidecar(out, "train"), TeacherSidecar(extracted[0], "train")
    for i in range(len(clean)):
        for a, b in zip(resumed[i], clean[i]):
            np.testing.assert_array_equal(a, b)

    calls.clear()
    extract_split(teacher, meta, corpus, "train", out, batch_tokens=300, chunk_size=16, progress=False)
    assert calls == []  # up to date: nothing recomputed


@pytest.mark.cli
def test_a_directory_holds_one_teacher_and_its_settings(teacher, extracted):
    out, _ = extracted
    with pytest.raises(DataError, match=r"teacher\.json: this directory holds sidecars of another teacher or "
                                        r"settings \(topk differ\)"):
        prepare_sidecar_dir(out, teacher_meta(teacher, K + 1, 1.0))


def test_a_teacher_without_trained_mlm_head_is_refused(corpus, tmp_path):
    encoder_only = save_tiny_bert(tmp_path / "encoder", read_lines(os.path.join(corpus, "train.wrd")),
                                  with_mlm_head=False)
    with pytest.raises(DataError, match=r"cls\.predictions.* are missing and would be random"):
        MaskedLmTeacher(encoder_only)


def test_a_bfloat16_teacher_gives_nearly_the_float32_probabilities(teacher_dir, teacher):
    """--dtype (meant for GPUs) runs the teacher in lower precision; the softmax stays float32."""
    half = MaskedLmTeacher(teacher_dir, dtype="bfloat16")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    assert teacher_meta(half, K, 1.0)["dtype"] == "bfloat16" and teacher_meta(teacher, K, 1.0)["dtype"] == "float32"
    sequences = teacher.tokenize(["AND HE WENT OUT OF THE CITY", "THE LORD SAID"])
    for (ids, probs), (half_ids, half_probs) in zip(teacher.masked_topk(sequences, K), half.masked_topk(sequences, K)):
        assert half_probs.dtype == np.float32
        np.testing.assert_allclose(half_probs.sum(1), probs.sum(1), rtol=0.05)
        assert np.abs(half_probs[:, 0] - probs[:, 0]).max() < 0.02
