"""Teacher inputs beyond one short sentence: neighbouring utterances as context, windows over long transcripts."""
import os
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from fairseq_kd.data.teacher_sidecar import TeacherSidecar, read_teacher_meta
from fairseq_kd.errors import DataError
from fairseq_kd.tasks.audio_kd import AudioKdConfig, AudioKdTask
from fairseq_kd.teacher.extract import context_neighbours, extract_split, prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import MaskedLmTeacher
from tiny_bert import corpus_teacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = 5
VOICE_GROUPS = r"(?P<group>.+)-(?P<index>\d+)"  # make_synthetic_corpus.py names: {split}-{voice}-{index}


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory):
    return MaskedLmTeacher(corpus_teacher(corpus, tmp_path_factory.mktemp("teacher")))


def reference_topk(teacher, frame, column):
    """The full BertForMaskedLM on one masked copy: ``frame`` without specials, ``column`` masked (0-based)."""
    ids = teacher.special_ids
    masked = [ids["cls"], *frame, ids["sep"]]
    masked[column + 1] = ids["mask"]
    with torch.no_grad():
        logits = teacher.model(input_ids=torch.tensor([masked])).logits[0, column + 1]
    probs, top = torch.softmax(logits, -1).topk(K)
    return top.numpy(), probs.numpy()


def librispeech_copy(corpus, data):
    """train.tsv/.wrd of the corpus under LibriSpeech names (SPEAKER-CHAPTER-NNNN), listed out of order:
    chapter 11-2 holds lines 0..9 (index 9 - line), 11-3 lines 10..38, and 12-7 line 39 alone."""
    data.mkdir()
    with open(os.path.join(corpus, "train.tsv")) as f:
        root, *entries = f.read().split("\n")[:-1]
    names = [f"11-2-{9 - i:04d}" for i in range(10)] + [f"11-3-{i:04d}" for i in range(29)] + ["12-7-0000"]
    lines = [f"{root}"] + [f"{name}.flac\t{entry.split(chr(9))[1]}" for name, entry in zip(names, entries)]
    (data / "train.tsv").write_text("\n".join(lines) + "\n")
    shutil.copy(os.path.join(corpus, "train.wrd"), data / "train.wrd")
    return str(data)


def keys_of(data):
    with open(os.path.join(data, "train.tsv")) as f:
        return [line.split("\t")[0] + "\tX" for line in f.read().split("\n")[1:-1]]


def test_neighbours_come_from_the_same_chapter_in_index_order(corpus, tmp_path):
    data = librispeech_copy(corpus, tmp_path / "data")
    neighbours = context_neighbours(keys_of(data), f"{data}/train.tsv", 2, r"(?P<group>\d+-\d+)-(?P<index>\d+)")
    assert neighbours[5] == ([7, 6], [4, 3])  # 11-2-0004: indices 2, 3 before, 5, 6 after (lines 9 - index)
    assert neighbours[9] == ([], [8, 7])  # 11-2-0000 opens its chapter
    assert neighbours[10] == ([], [11, 12]) and neighbours[38] == ([36, 37], [])
    assert neighbours[39] == ([], [])  # alone in its chapter


def test_context_is_refused_where_file_names_give_no_order(corpus, teacher, tmp_path):
    meta = teacher_meta(teacher, K, 1.0, context_utterances=1)
    with pytest.raises(DataError, match=r"train\.tsv:2: utterance 'train-.*-\d+' does not match the context "
                                        r"grouping rule .* give --context-group-regex"):
        extract_split(teacher, meta, corpus, "train", str(tmp_path), progress=False)
    with pytest.raises(ValueError, match="needs the named groups"):
        teacher_meta(teacher, K, 1.0, context_utterances=1, context_group_regex=r"(\d+)-(\d+)")


def test_context_changes_the_sentence_positions_only_and_equals_the_full_model(corpus, teacher, tmp_path):
    data = librispeech_copy(corpus, tmp_path / "data")
    plain_meta, context_meta = teacher_meta(teacher, K, 1.0), teacher_meta(teacher, K, 1.0, context_utterances=1)
    assert context_meta["context"] == {"utterances": 1, "group_regex": r"(?P<group>\d+-\d+)-(?P<index>\d+)"}
    plain, with_context = str(tmp_path / "plain"), str(tmp_path / "context")
    for out, meta in ((plain, plain_meta), (with_context, context_meta)):
        prepare_sidecar_dir(out, meta)
        header = extract_split(teacher, meta, data, "train", out, batch_tokens=300, chunk_size=16, progress=False)
        assert header["teacher"]["context"] == meta["context"] == read_teacher_meta(out)["context"]
    a, b = TeacherSidecar(plain, "train"), TeacherSidecar(with_context, "train")
    assert a.header["num_positions"] == b.header["num_positions"]
    changed = 0
    for i in range(len(a)):
        (tokens_a, ids_a, probs_a), (tokens_b, ids_b, probs_b) = a[i], b[i]
        assert tokens_a.tolist() == tokens_b.tolist()  # the targets: the sentence's WordPieces only
        relative = np.abs(probs_a.astype(np.float32) / probs_b.astype(np.float32) - 1).max()
        if i == 39:  # no neighbour: the same numbers (up to one float16 step, 2^-10)
            assert ids_a.tolist() == ids_b.tolist() and relative <= 2 ** -10
        else:
            changed += ids_a.tolist() != ids_b.tolist() or relative > 2 ** -9
    assert changed >= 35
    sequences = teacher.tokenize(open(os.path.join(data, "train.wrd")).read().split("\n")[:40])
    left, sentence, right = sequences[6], sequences[5], sequences[4]  # line 5 = 11-2-0004, between lines 6 and 4
    for u in (0, len(sentence) - 1):
        ids, probs = reference_topk(teacher, left + sentence + right, len(left) + u)
        assert b[5][1][u].tolist() == ids.tolist()
        np.testing.assert_allclose(b[5][2][u].astype(np.float32), probs, rtol=2e-3, atol=1e-4)


def test_context_is_cut_to_the_wordpieces_nearest_the_sentence(teacher):
    budget = teacher.max_length - 2  # 62
    left, sentence, right = list(range(100, 200)), [7, 8, 9, 10], list(range(200, 210))
    rows, columns = teacher.masked_copies(sentence, left, right)
    assert rows.shape == (4, 64) and columns.tolist() == [49, 50, 51, 52]  # 62 - 4 - 10 = 48 left WordPieces
    assert rows[0, 1:].tolist() == left[-48:] + [teacher.special_ids["mask"], 8, 9, 10] + right + [
        teacher.special_ids["sep"]]
    rows, columns = teacher.masked_copies(sentence, left, left)  # both sides long: 29 each
    assert columns[0] == 30 and rows.shape[1] == budget + 2


def test_long_transcripts_are_read_in_windows_centred_on_each_position(corpus, teacher, tmp_path):
    sentence = teacher.tokenize([" ".join(["AND THE EGYPTIANS WENT OUT"] * 15)])[0]
    n, budget = len(sentence), teacher.max_length - 2
    assert n > budget
    rows, columns = teacher.masked_copies(sentence)
    assert rows.shape == (n, budget + 2)
    ((ids, probs),) = teacher.masked_topk([sentence], K, batch_tokens=500)
    for u in (0, 40, n - 1):
        start = min(max(u - budget // 2, 0), n - budget)
        assert columns[u] == u - start + 1
        expected_ids, expected_probs = reference_topk(teacher, sentence[start:start + budget], u - start)
        assert ids[u].tolist() == expected_ids.tolist()
        np.testing.assert_allclose(probs[u], expected_probs, rtol=1e-4, atol=1e-6)

    data = tmp_path / "data"
    shutil.copytree(corpus, data, ignore=shutil.ignore_patterns("audio"))
    lines = (data / "train.wrd").read_text().split("\n")
    lines[1] = " ".join(["AND THE EGYPTIANS WENT OUT"] * 15)
    (data / "train.wrd").write_text("\n".join(lines))
    meta = teacher_meta(teacher, K, 1.0, long_transcripts="window")
    header = extract_split(teacher, meta, str(data), "train", str(tmp_path / "out"), progress=False)
    assert header["teacher"]["long_transcripts"] == "window"
    tokens, ids, _ = TeacherSidecar(str(tmp_path / "out"), "train")[1]
    assert tokens.tolist() == sentence and ids.shape == (n, K)


def test_the_task_trains_on_context_sidecars(corpus, teacher, tmp_path):
    """Nothing downstream depends on the context setting: the task loads such sidecars and batches them."""
    out = str(tmp_path)
    meta = teacher_meta(teacher, K, 1.0, context_utterances=2, context_group_regex=VOICE_GROUPS)
    prepare_sidecar_dir(out, meta)
    extract_split(teacher, meta, corpus, "valid", out, progress=False)
    task = AudioKdTask.setup_task(OmegaConf.structured(AudioKdConfig(data=corpus, tpu=False, seed=1,
                                                                     kd_sidecar_dir=out)))
    task.load_dataset("valid")
    dataset = task.datasets["valid"]
    batch = dataset.collater([dataset[i] for i in range(len(dataset))])
    assert batch["teacher"]["topk_ids"].shape[0] == len(dataset) == 6
    assert task.teacher_header["context"]["utterances"] == 2
