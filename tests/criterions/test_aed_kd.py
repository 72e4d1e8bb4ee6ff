"""interAED-KD: the KL/CE terms against a hand computation, the shared decoder, the objective's weights."""
import pytest
import torch
import torch.nn.functional as F

from fairseq_kd.criterions.ctc_kd import CtcKdCriterion, CtcKdCriterionConfig
from tiny_models import TEACHER_VOCAB, kd_criterion, kd_model, kd_sample, teacher_batch


def test_kl_and_ce_equal_a_hand_computation():
    teacher = teacher_batch()
    torch.manual_seed(5)
    logits = torch.randn(*teacher["target"].shape, TEACHER_VOCAB)
    kl, ce = CtcKdCriterion.aed_losses(logits, teacher)
    q = F.log_softmax(logits, -1)
    ref_kl = ref_ce = 0.0
    for b, n in enumerate((5, 2)):
        for j in range(n + 1):  # n tokens + the end-of-sentence position; padding excluded
            ref_ce -= q[b, j, teacher["target"][b, j]].item()
            for m in range(3):
                p = teacher["topk_probs"][b, j, m].item()
                if p > 0:
                    ref_kl += p * (torch.log(torch.tensor(p)).item() - q[b, j, teacher["topk_ids"][b, j, m]].item())
    assert kl.item() == pytest.approx(ref_kl, rel=1e-5)
    assert ce.item() == pytest.approx(ref_ce, rel=1e-5)
    # at the end-of-sentence row the teacher is one-hot on [SEP]: KL there equals CE
    only_eos = {**teacher, "padding_mask": torch.ones_like(teacher["padding_mask"])}
    only_eos["padding_mask"][0, 5] = False
    kl_eos, ce_eos = CtcKdCriterion.aed_losses(logits, only_eos)
    assert kl_eos.item() == pytest.approx(ce_eos.item(), rel=1e-6)


def test_decoder_outputs_one_logit_tensor_per_tap(task):
    model = kd_model(task).eval()
    sample = kd_sample(task)
    out = model(**sample["net_input"], aed_prev_output_tokens=sample["teacher"]["prev_output_tokens"])
    assert [l for l, _ in out["aed_logits"]] == [2, 4]
    for _, logits in out["aed_logits"]:
        assert logits.shape == (2, 6, TEACHER_VOCAB)  # B x L x V
    assert "aed_logits" not in model(**sample["net_input"])  # inference path: no decoder


def test_objective_mixes_ctc_and_mean_aed_terms(task):
    model = kd_model(task, inter_ctc_layers=[1]).eval()
    sample = kd_sample(task)
    alpha, w, beta = 0.4, 0.3, 0.7
    loss, _, log = kd_criterion(task, aed_kd_weight=alpha, interctc_weight=w, kd_kl_weight=beta)(model, sample)
    ctc_all = (1 - w) * log["ctc_loss"] + w * log["interctc_loss_l1"]
    aed = [(1 - beta) * log[f"aed_ce_loss_l{l}"] + beta * log[f"aed_kl_loss_l{l}"] for l in (2, 4)]
    assert loss.item() == pytest.approx((1 - alpha) * ctc_all + alpha * sum(aed) / 2, rel=1e-5)
    assert log["kd_ntokens"] == sample["teacher"]["ntokens"] == (5 + 1) + (2 + 1)


def test_alpha_zero_is_exactly_ctc_plus_interctc(task):
    sample = kd_sample(task)
    kd = kd_model(task, inter_ctc_layers=[1]).eval()
    plain = kd_model(task, inter_ctc_layers=[1], aed_layers=[]).eval()
    plain.load_state_dict(kd.inference_state_dict())
    loss_kd, _, log_kd = kd_criterion(task, aed_kd_weight=0.0, interctc_weight=0.3)(kd, sample)
    plain_criterion = CtcKdCriterion(CtcKdCriterionConfig(interctc_weight=0.3, sentence_avg=False), task)
    loss_plain, _, _ = plain_criterion(plain, sample)
    assert torch.equal(loss_kd, loss_plain)
    assert not any(key.startswith("aed_") for key in log_kd)


def test_shared_decoder_gets_the_gradient_of_every_tap(task):
    """Same tensors at every tap: the gradient with taps [2, 4] is the mean of the single-tap gradients."""
    sample = kd_sample(task)
    crit = kd_criterion(task, aed_kd_weight=1.0)
    grads = {}
    for taps in ([2], [4], [2, 4]):
        model = kd_model(task, aed_layers=taps).train()
        for m in model.modules():  # deterministic forward (no dropout) so the runs are comparable
            m.eval() if isinstance(m, torch.nn.Dropout) else None
        loss, _, _ = crit(model, sample)
        loss.backward()
        grads[tuple(taps)] = {n: p.grad.clone() for n, p in model.aed_decoder.named_parameters()}
        assert all(g.abs().sum() > 0 for g in grads[tuple(taps)].values() if g.numel() > 1)
    for name, g in grads[(2, 4)].items():
        torch.testing.assert_close(g, (grads[(2,)][name] + grads[(4,)][name]) / 2, rtol=1e-4, atol=1e-6)
    assert len(list(model.aed_decoder.parameters())) == len(grads[(2, 4)])  # one decoder, not one per tap


@pytest.mark.parametrize("taps", [[0], [5], [2, 2]])
def test_a_tap_that_does_not_exist_fails_at_build(task, taps):
    with pytest.raises(ValueError, match="aed_layers"):
        kd_model(task, aed_layers=taps)


@pytest.mark.parametrize("name", ["aed_kd_weight", "kd_kl_weight", "interctc_weight"])
def test_weights_outside_unit_interval_fail(task, name):
    with pytest.raises(ValueError, match=name):
        kd_criterion(task, **{name: -0.1})


def test_kd_weight_without_sidecars_fails_at_start(task):
    with pytest.raises(ValueError, match="kd_sidecar_dir"):
        CtcKdCriterion(CtcKdCriterionConfig(aed_kd_weight=0.5, sentence_avg=False), task)


def test_temperature_equals_the_renormalised_top_k_of_the_tempered_softmax():
    """kd_temperature on stored top-k = the top-k of softmax(z / T) renormalised; padding rows stay 0 and finite
    (their NaN would reach the gradient through 0 * NaN)."""
    torch.manual_seed(3)
    z = torch.randn(2, 4, 50) * 4
    k, temperature = 10, 3.0
    stored, ids = torch.softmax(z, -1).topk(k, -1)  # what the sidecar holds (tau = 1)
    stored = stored / stored.sum(-1, keepdim=True)  # what the collater gives the criterion
    stored[1, 3] = 0.0  # a padded position
    expected, expected_ids = torch.softmax(z / temperature, -1).topk(k, -1)
    assert torch.equal(ids, expected_ids)
    expected = expected / expected.sum(-1, keepdim=True)
    tempered = CtcKdCriterion.tempered(stored, temperature)
    torch.testing.assert_close(tempered[:1], expected[:1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(tempered[1, :3], expected[1, :3], rtol=1e-5, atol=1e-7)
    assert torch.equal(tempered[1, 3], torch.zeros(k))
    assert CtcKdCriterion.tempered(stored, 1.0) is stored


def test_temperature_softens_the_kl_target_and_keeps_gradients_finite(task):
    model = kd_model(task).eval()
    sample = kd_sample(task)
    logs = {}
    for temperature in (1.0, 3.0):
        model.zero_grad()
        loss, _, log = kd_criterion(task, aed_kd_weight=0.5, kd_temperature=temperature)(model, sample)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        logs[temperature] = log
    assert logs[3.0]["aed_kl_loss_l2"] != pytest.approx(logs[1.0]["aed_kl_loss_l2"])
    assert logs[3.0]["aed_ce_loss_l2"] == pytest.approx(logs[1.0]["aed_ce_loss_l2"])  # the reference is untouched
    with pytest.raises(ValueError, match="kd_temperature=0"):
        kd_criterion(task, aed_kd_weight=0.5, kd_temperature=0.0)
