"""Teacher MLM fine-tuning: text exclusion, masking, accuracy, resume, atomic output the extractor accepts."""
import json
import os
import random
import stat
import sys

import pytest
import torch

from conftest import ROOT, SENTENCES, run
from fairseq_kd.data.text import normalize_transcript
from fairseq_kd.errors import DataError
from fairseq_kd.io_utils import current_umask, sha256_file
from fairseq_kd.teacher import finetune as ft
from fairseq_kd.teacher.masked_lm import MaskedLmTeacher
from tiny_bert import save_tiny_bert

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCRIPT = os.path.join(ROOT, "scripts", "finetune_teacher.py")
WORDS = ("ALPHA BRAVO CHARLIE DELTA ECHO FOXTROT GOLF HOTEL INDIA JULIET KILO LIMA MIKE NOVEMBER OSCAR PAPA QUEBEC "
         "ROMEO SIERRA TANGO UNIFORM VICTOR WHISKEY XRAY YANKEE ZULU").split()


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """600 raw sentences (punctuation, mixed case) and a .wrd file of 3 of them + one inside a longer line."""
    with open(SENTENCES, encoding="utf-8") as f:
        raw = [line.rstrip("\n") for line in f][:600]
    root = tmp_path_factory.mktemp("text")
    text_path = root / "text.txt"
    long_line = normalize_transcript(raw[20])
    inner = " ".join(long_line.split()[1:5])  # 4 words inside line 21
    raw.append(f"{inner.lower().capitalize()}.")  # and the inner sentence itself, as a line of its own
    text_path.write_text("\n".join(raw) + "\n")
    excluded = [normalize_transcript(raw[i]) for i in (3, 100, 400)] + [inner]
    wrd = root / "test.wrd"
    wrd.write_text("\n".join(excluded) + "\n")
    return str(text_path), str(wrd), excluded


@pytest.fixture(scope="module")
def encoder_only(text, tmp_path_factory):
    """A tiny BertModel without MLM head (like all-MiniLM-L6-v2) whose vocabulary covers the text."""
    with open(text[0], encoding="utf-8") as f:
        lines = [normalize_transcript(line) for line in f]
    return save_tiny_bert(tmp_path_factory.mktemp("encoder"), [line for line in lines if line],
                          with_mlm_head=False, vocab_size=400)


@pytest.fixture(scope="module")
def topics(tmp_path_factory):
    """A text a tiny BERT learns in a few seconds: each line mixes the two words of one of 13 topics, so a masked
    word is guessed from the rest of its line (up to ~60 % right) but not without context (~1/26); and a tiny
    encoder-only BERT (no MLM head, like all-MiniLM-L6-v2) with its vocabulary."""
    rng = random.Random(0)
    lines = []
    for _ in range(1000):
        topic = WORDS[2 * rng.randrange(13):][:2]
        lines.append(" ".join(rng.choice(topic) for _ in range(rng.randint(6, 10))))
    root = tmp_path_factory.mktemp("topics")
    (root / "text.txt").write_text("\n".join(lines) + "\n")
    (root / "test.wrd").write_text(lines[7] + "\n")
    base = save_tiny_bert(root / "encoder", lines, with_mlm_head=False, vocab_size=250)
    return str(root / "text.txt"), str(root / "test.wrd"), base


def config(text, base, out, **overrides):
    settings = dict(text=text[0], out=str(out), base=base, exclude=[text[1]], steps=24, batch_size=8,
                    max_length=32, lr=2e-3, save_every=8, heldout_fraction=0.2, eval_batch_tokens=256)
    settings.update(overrides)
    return ft.FinetuneConfig(**settings)


def test_excluded_sentences_are_removed_as_lines_and_inside_lines(text, encoder_only, tmp_path):
    train, heldout, counts = ft.prepare_text(config(text, encoder_only, tmp_path / "out"))
    _, _, excluded = text
    assert counts["excluded_sentences"] == 4
    assert counts["excluded_lines"] == 5  # 3 equal lines, the 4-word line and the line containing it
    for line in train + heldout:
        assert line not in excluded and f" {excluded[3]} " not in f" {line} "
    assert counts["train_lines"] + counts["heldout_lines"] + 5 + counts["rejected_by_normaliser"] \
        == counts["input_lines"] == 601
    assert not set(train) & set(heldout)
    assert all(line == normalize_transcript(line) for line in train)


def test_the_independent_check_fails_the_run_when_the_filter_misses_a_sentence(text, encoder_only, tmp_path,
                                                                              monkeypatch):
    from fairseq_kd.data.exclusion import ExcludedSentences

    monkeypatch.setattr(ExcludedSentences, "find", lambda self, line: None)
    with pytest.raises(DataError, match=r"4 excluded sentences are still in the teacher's text, e\.g\. .*test\.wrd:"):
        ft.prepare_text(config(text, encoder_only, tmp_path / "out"))


def test_pack_keeps_sentences_whole_and_in_order():
    assert ft.pack([[1, 2], [3, 4, 5], [6], [7, 8, 9, 10, 11, 12]], 5) == [[1, 2, 3, 4, 5], [6], [7, 8, 9, 10, 11]]


def test_chosen_positions_are_content_positions_at_the_mask_rate():
    generator = torch.Generator().manual_seed(0)
    lengths = [1, 7, 20]
    positions = ft.choose_positions(lengths, 0.15, generator)
    assert positions.shape == (3, 22)
    assert positions.sum(1).tolist() == [1, 2, 3]  # ceil(0.15 n), at least one
    for row, n in enumerate(lengths):
        chosen = positions[row].nonzero().flatten()
        assert chosen.min() >= 1 and chosen.max() <= n  # never [CLS], [SEP] or padding
    input_ids = torch.arange(22).repeat(3, 1) + 10
    corrupted = ft.bert_corruption(input_ids, positions, mask_id=4, vocab_size=50, generator=generator)
    assert torch.equal(corrupted[~positions], input_ids[~positions])


@pytest.mark.cli
def test_finetuning_trains_the_head_and_writes_a_teacher_the_extractor_accepts(topics, tmp_path):
    text, excluded, base = topics
    out = tmp_path / "teacher"
    proc = run([sys.executable, SCRIPT, "--base", base, "--text", text, "--out", str(out), "--exclude", excluded,
                "--steps", "150", "--batch-size", "16", "--max-length", "12", "--lr", "1e-2",
                "--heldout-fraction", "0.2", "--threads", "1"])
    with open(out / ft.FACTS_FILE) as f:
        facts = json.load(f)
    assert "held-out masked-token accuracy" in proc.stdout
    assert any(name.startswith("cls.predictions") for name in facts["initialised_weights"])
    # the base has no MLM head by design: one line says so, not transformers' alarms
    assert "an encoder without MLM head" in proc.stdout and "seem corrupted" not in proc.stdout
    assert "LOAD REPORT" not in proc.stdout
    before, after = facts["heldout_before"], facts["heldout_after"]
    assert after["masked_positions"] == before["masked_positions"] > 100
    assert before["accuracy"] < 0.1 and after["accuracy"] > 0.15  # a context-free guess gets about 1/26
    assert facts["counts"]["excluded_lines"] >= 1 and facts["exclude"][0][1] == sha256_file(excluded)
    assert facts["counts"]["train_examples"] == facts["counts"]["train_lines"]  # max length 12: one line each
    train_lines = (out / ft.TRAIN_TEXT_FILE).read_text().split("\n")[:-1]
    heldout_lines = (out / ft.HELDOUT_TEXT_FILE).read_text().split("\n")[:-1]
    assert (len(train_lines), len(heldout_lines)) == (facts["counts"]["train_lines"], facts["counts"]["heldout_lines"])
    assert open(excluded).read().strip() not in train_lines + heldout_lines
    teacher = MaskedLmTeacher(str(out))  # refuses untrained heads: this one is complete
    assert teacher.vocab_size == len(teacher.tokenizer)
    umask = current_umask()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o777 & ~umask
    assert {stat.S_IMODE(os.stat(out / name).st_mode) for name in os.listdir(out)} == {0o666 & ~umask}
    assert not os.path.exists(str(out) + ".work") and os.listdir(tmp_path) == ["teacher"]
    with pytest.raises(DataError, match="exists; choose another --out"):
        ft.finetune(config((text, excluded), base, out))


def test_an_interrupted_run_resumes_to_the_same_model(topics, tmp_path, monkeypatch):
    text, encoder_only = topics[:2], topics[2]
    reference = ft.finetune(config(text, encoder_only, tmp_path / "reference"), progress=False)
    corruption, calls = ft.bert_corruption, []

    def interrupted_at_step_13(*args, **kwargs):
        calls.append(1)
        if len(calls) == 13:
            raise KeyboardInterrupt
        return corruption(*args, **kwargs)

    monkeypatch.setattr(ft, "bert_corruption", interrupted_at_step_13)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        ft.finetune(config(text, encoder_only, out), progress=False)
    assert not out.exists() and torch.load(out.with_suffix(".work") / ft.CHECKPOINT_FILE)["step"] == 8
    calls.clear()
    monkeypatch.setattr(ft, "bert_corruption", lambda *a, **kw: calls.append(1) or corruption(*a, **kw))
    resumed = ft.finetune(config(text, encoder_only, out), progress=False)
    assert len(calls) == 16  # steps 9..24
    assert resumed["heldout_before"] == reference["heldout_before"]
    assert resumed["heldout_after"] == reference["heldout_after"]
    expected = MaskedLmTeacher(str(tmp_path / "reference")).model.state_dict()
    for name, tensor in MaskedLmTeacher(str(out)).model.state_dict().items():
        assert torch.equal(tensor, expected[name]), name


def test_a_work_directory_of_other_settings_is_not_resumed(topics, tmp_path):
    text, encoder_only = topics[:2], topics[2]
    out = tmp_path / "teacher"
    work = out.with_suffix(".work")
    work.mkdir()
    (work / ft.PARAMS_FILE).write_text(json.dumps({"steps": 1}))
    (work / ft.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    facts = ft.finetune(config(text, encoder_only, out, steps=2), progress=False)
    assert facts["config"]["steps"] == 2 and not work.exists()


def test_bf16_training_learns_and_records_a_learning_curve(topics, tmp_path):
    """--bf16 (autocast; weights and loss stay float32) learns like float32; --eval-every adds the held-out
    accuracy every that many steps to the facts, from step 0 to the last."""
    text, excluded, base = topics
    facts = ft.finetune(config((text, excluded), base, tmp_path / "teacher", steps=150, batch_size=16, max_length=12,
                               lr=1e-2, bf16=True, eval_every=50), progress=False)
    assert [step for step, _ in facts["curve"]] == [0, 50, 100, 150]
    assert facts["curve"][0][1] == facts["heldout_before"]["accuracy"]
    assert facts["curve"][-1][1] == facts["heldout_after"]["accuracy"] > 0.15
    model = ft.load_base(str(tmp_path / "teacher"))[0]
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_max_lines_reads_only_the_head_of_a_large_text(topics, tmp_path):
    text, excluded, base = topics
    train, heldout, counts = ft.prepare_text(config((text, excluded), base, tmp_path / "t", max_lines=200))
    assert counts["input_lines"] == 200 and len(train) + len(heldout) + counts["excluded_lines"] <= 200


def test_missing_weights_tells_a_teacher_that_needs_fine_tuning(topics, tmp_path):
    """run.sh --preset librispeech fine-tunes a --teacher-dir only when its MLM head is missing."""
    from fairseq_kd.teacher.masked_lm import missing_weights

    assert any(name.startswith("cls.predictions") for name in missing_weights(topics[2]))
    assert missing_weights(save_tiny_bert(tmp_path / "mlm", ["alpha bravo charlie"] * 5, vocab_size=60)) == []
