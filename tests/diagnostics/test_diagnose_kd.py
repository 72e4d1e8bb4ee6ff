"""scripts/diagnose_kd.py: the measures on a toy task whose audio determines the tokens (the decoder must learn
to listen), the objective's two halves against the criterion, and the CLI on a real fairseq-hydra-train
checkpoint."""
import json
import math
import os
import sys

import pytest
import torch

from conftest import ROOT, run
from fairseq_kd.diagnostics.kd_diagnostics import (
    DecoderListening,
    GradientAgreement,
    encoder_blocks,
    objective_terms,
    token_frame_correlations,
)
from tiny_models import CLS, PAD, SEP, TEACHER_VOCAB, kd_criterion, kd_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCRIPT = os.path.join(ROOT, "scripts", "diagnose_kd.py")
FRAMES_PER_TOKEN = 12  # input frames; 3 after the 4x subsampling
FIRST_WORDPIECE = 5  # ids below are specials
TOY_WORDPIECES = 8  # the toy utterances use teacher ids FIRST_WORDPIECE .. FIRST_WORDPIECE + 7
WEIGHTS = dict(aed_kd_weight=0.5, interctc_weight=0.3, kd_kl_weight=0.9)


def toy_batch(task, generator, embeddings, batch=6):
    """Utterances of 2-4 teacher ids drawn independently and uniformly from 8; input frames ``12 j .. 12 j + 11``
    carry the embedding of token ``j`` plus noise, so only the audio tells which token comes next. The teacher
    puts 0.8 on the reference and 0.1 on each of two other ids; CTC targets are one letter per token."""
    lengths = torch.randint(2, 5, (batch,), generator=generator)
    frames = int(lengths.max()) * FRAMES_PER_TOKEN + 8
    source = 0.3 * torch.randn(batch, frames, 20, generator=generator)
    padding_mask = torch.arange(frames)[None] >= (lengths * FRAMES_PER_TOKEN + 8)[:, None]
    L, k = int(lengths.max()) + 1, 3
    teacher = {"prev_output_tokens": torch.full((batch, L), PAD), "target": torch.full((batch, L), PAD),
               "topk_ids": torch.full((batch, L, k), PAD), "topk_probs": torch.zeros(batch, L, k)}
    letters = torch.full((batch, L - 1), task.target_dictionary.pad())
    for b, n in enumerate(lengths.tolist()):
        tokens = torch.randint(FIRST_WORDPIECE, FIRST_WORDPIECE + TOY_WORDPIECES, (n,), generator=generator)
        for j, t in enumerate(tokens.tolist()):
            source[b, FRAMES_PER_TOKEN * j: FRAMES_PER_TOKEN * (j + 1)] += embeddings[t]
        teacher["prev_output_tokens"][b, : n + 1] = torch.cat([torch.tensor([CLS]), tokens])
        teacher["target"][b, : n + 1] = torch.cat([tokens, torch.tensor([SEP])])
        others = [FIRST_WORDPIECE + (tokens - FIRST_WORDPIECE + shift) % TOY_WORDPIECES for shift in (1, 2)]
        teacher["topk_ids"][b, :n] = torch.stack([tokens, *others], dim=-1)
        teacher["topk_probs"][b, :n] = torch.tensor([0.8, 0.1, 0.1])
        teacher["topk_ids"][b, n, 0], teacher["topk_probs"][b, n, 0] = SEP, 1.0
        letters[b, :n] = 4 + tokens % 26
    source = source.masked_fill(padding_mask[..., None], 0.0)
    teacher["padding_mask"] = teacher["target"].eq(PAD)
    teacher["ntokens"] = int((~teacher["padding_mask"]).sum())
    return {"id": torch.arange(batch), "net_input": {"source": source, "padding_mask": padding_mask},
            "target": letters, "target_lengths": lengths, "ntokens": int(lengths.sum()), "teacher": teacher}


@pytest.fixture
def toy(task):
    """A tiny model and criterion, token embeddings of the toy audio, and a seeded batch generator."""
    model = kd_model(task, inter_ctc_layers=[1])
    criterion = kd_criterion(task, **WEIGHTS)
    embeddings = 2.0 * torch.randn(TEACHER_VOCAB, 20, generator=torch.Generator().manual_seed(11))
    generator = torch.Generator().manual_seed(12)
    return model, criterion, lambda: toy_batch(task, generator, embeddings)


def listening(model, criterion, batches):
    measure = DecoderListening(model.eval(), criterion)
    for sample in batches:
        measure.add(model, sample)
    return measure


def test_after_training_the_true_audio_beats_another_utterance(toy):
    """The key check: where only the audio determines the tokens, about a hundred updates make the decoder's KL
    with the true encoder states lower than with a shuffled batch's or with zeros, and its attention monotonic."""
    model, criterion, next_batch = toy
    held_out = [next_batch() for _ in range(4)]
    before = listening(model, criterion, held_out).kl_ce()["taps"]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(120):
        model.train()
        sample = next_batch()
        loss, sample_size, _ = criterion(model, sample)
        optimizer.zero_grad()
        (loss / sample_size).backward()
        optimizer.step()
    measure = listening(model, criterion, held_out)
    after, attention = measure.kl_ce(), measure.attention()["taps"]
    assert after["kd_tokens"] == sum(s["teacher"]["ntokens"] for s in held_out) and after["utterances"] == 24
    for tap in ("l2", "l4"):
        m = after["taps"][tap]
        assert m["kl_true_bits"] < before[tap]["kl_true_bits"] - 0.5
        assert m["kl_shuffled_bits"] >= m["kl_true_bits"] + 0.5 and m["kl_zeroed_bits"] >= m["kl_true_bits"] + 0.5
        assert m["audio_worth_kl_bits"] == pytest.approx(m["kl_shuffled_bits"] - m["kl_true_bits"])
        assert 0 < m["audio_worth_kl_share"] < 1 and m["ce_shuffled_bits"] > m["ce_true_bits"]
        assert set(attention[tap]) == {"decoder_layer1", "decoder_layer2"}
        assert all(-1 <= layer["mean_correlation"] <= 1 and layer["utterances"] > 0
                   for layer in attention[tap].values())
    assert max(layer["mean_correlation"] for tap in attention.values() for layer in tap.values()) > 0.3


def test_a_batch_of_one_utterance_is_skipped(toy):
    model, criterion, next_batch = toy
    sample = next_batch()
    one = {**sample, "net_input": {k: v[:1] for k, v in sample["net_input"].items()},
           "teacher": {**{k: v[:1] for k, v in sample["teacher"].items() if k != "ntokens"}, "ntokens": 1}}
    measure = listening(model, criterion, [one])
    assert measure.kl_ce()["skipped_single_utterance_batches"] == 1 and measure.kd_tokens == 0


def test_objective_terms_compose_the_criterion_loss_and_gradients_split_it(toy):
    """(1 - alpha) L_ctc_all + alpha L_aed is the criterion's loss; per block, the two gradient halves add up to
    the loss' gradient: ||g_aed + g_ctc||^2 = ||g_aed||^2 + ||g_ctc||^2 + 2 cos ||g_aed|| ||g_ctc||."""
    model, criterion, next_batch = toy
    model.eval()
    sample = next_batch()
    alpha = WEIGHTS["aed_kd_weight"]
    net_output = model(**sample["net_input"], aed_prev_output_tokens=sample["teacher"]["prev_output_tokens"])
    ctc_all, aed = objective_terms(model, criterion, sample, net_output)
    loss, sample_size, _ = criterion(model, sample)
    assert ((1 - alpha) * ctc_all + alpha * aed).item() == pytest.approx(loss.item(), rel=1e-5)

    gradients = GradientAgreement(model, alpha)
    gradients.add(model, criterion, sample)
    summary = gradients.summary()
    assert summary["batches"] == 1 and list(summary["blocks"]) == ["l1", "l2", "l3", "l4"]
    for l, block in enumerate(encoder_blocks(model), start=1):
        parameters = list(block.parameters())
        total = torch.cat([g.reshape(-1) for g in torch.autograd.grad(criterion(model, sample)[0] / sample_size,
                                                                       parameters)])
        m = summary["blocks"][f"l{l}"]
        a, c = m["aed_grad_norm"], m["ctc_grad_norm"]
        assert m["grad_norm_ratio"] == pytest.approx(a / c) and -1 <= m["grad_cosine"] <= 1
        assert total.norm().item() ** 2 == pytest.approx(a ** 2 + c ** 2 + 2 * m["grad_cosine"] * a * c, rel=1e-4)


def test_token_frame_correlation():
    attention = torch.zeros(3, 4, 10)
    attention[0, torch.arange(4), torch.tensor([1, 3, 5, 7])] = 1  # in order
    attention[1, torch.arange(4), torch.tensor([7, 5, 3, 1])] = 1  # reversed
    attention[2, :, 4] = 1  # always the same frame: no order
    padding = torch.zeros(3, 4, dtype=torch.bool)
    assert token_frame_correlations(attention, padding) == pytest.approx([1.0, -1.0, 0.0])
    padding[0, 2:] = True
    attention[0, 2:] = attention[1, 2:]  # padded positions do not count
    assert token_frame_correlations(attention, padding)[0] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def checkpoints(kd_run, tmp_path_factory):
    """A real xs interCTC-interAED-KD training checkpoint (the shared ``kd_run``) and its decoder-less export."""
    checkpoint = os.path.join(kd_run[0], "checkpoint_last.pt")
    exported = str(tmp_path_factory.mktemp("export") / "model_ctc.pt")
    run([sys.executable, os.path.join(ROOT, "scripts", "export_ctc_model.py"), checkpoint, exported])
    return checkpoint, exported


def finite_numbers(tree):
    if isinstance(tree, dict):
        return all(finite_numbers(value) for value in tree.values())
    return not isinstance(tree, float) or math.isfinite(tree)


@pytest.mark.cli
def test_cli_writes_every_measure(checkpoints, corpus, kd_sidecars, tmp_path):
    out = tmp_path / "diagnostics.json"
    proc = run([sys.executable, SCRIPT, "--path", checkpoints[0], "--data", corpus, "--sidecars", kd_sidecars,
                "--subset", "valid", "--out", str(out), "--max-tokens", "200000", "--grad-batches", "2",
                "--threads", "1"])
    report = json.loads(out.read_text())
    assert "| l3 |" in proc.stdout and "| l6 |" in proc.stdout and "| train |" in proc.stdout
    assert report["weights"] == {"aed_kd_weight": 0.3, "interctc_weight": 0.3, "kd_kl_weight": 1.0,
                                 "aed_kd_weight_for_gradients": 0.3}
    decoder = report["decoder_kl_ce"]
    assert decoder["utterances"] + decoder["skipped_single_utterance_batches"] <= 6 and decoder["utterances"] >= 2
    for tap in ("l3", "l6"):
        assert {"kl_true_bits", "kl_shuffled_bits", "kl_zeroed_bits", "ce_true_bits", "ce_shuffled_bits",
                "ce_zeroed_bits", "audio_worth_kl_bits", "audio_worth_kl_share"} <= set(decoder["taps"][tap])
        assert set(report["cross_attention_monotonicity"]["taps"][tap]) == {"decoder_layer1"}
    gradients = report["encoder_grad_aed_vs_ctc"]
    assert gradients["batches"] == 2 and list(gradients["blocks"]) == [f"l{l}" for l in range(1, 7)]
    assert all(block["grad_cosine"] is not None for block in gradients["blocks"].values())
    assert set(report["teacher_statistics"]) == {"train", "valid"}
    for stats in report["teacher_statistics"].values():
        assert 0 <= stats["top1_accuracy"] <= stats["reference_in_topk"] <= 1 and 0 < stats["topk_mass_mean"] <= 1
        assert 0 < stats["topk_entropy_bits"] <= math.log2(10)
    assert finite_numbers(report)


@pytest.mark.cli
def test_cli_refuses_a_checkpoint_without_decoder(checkpoints, corpus, kd_sidecars, tmp_path):
    proc = run([sys.executable, SCRIPT, "--path", checkpoints[1], "--data", corpus, "--sidecars", kd_sidecars,
                "--out", str(tmp_path / "diagnostics.json")], check=False)
    assert proc.returncode != 0 and not (tmp_path / "diagnostics.json").exists()
    assert f"{checkpoints[1]}: model ctc_kd" in proc.stdout and "has no attention decoder" in proc.stdout
    assert "xs_interctc_interaedkd" in proc.stdout and "Traceback" not in proc.stdout
