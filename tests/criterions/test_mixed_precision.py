"""Reduced precision (the GPU configs use fp16; bf16 is the other choice): every loss term is computed in float32
from low-precision logits, and stays close to the float32 model's value. Checked on CPU with bfloat16, both as
autocast and with the whole model cast (fairseq's --fp16 / --bf16 cast the model)."""
import pytest
import torch

from tiny_models import kd_criterion, kd_model, kd_sample


def losses(model, criterion, sample):
    model.eval()  # no dropout: the same function in every precision
    loss, _, log = criterion(model, sample)
    return loss, log


@pytest.mark.parametrize("mode", ["autocast", "cast"])
def test_losses_are_float32_and_close_to_float32_under_bfloat16(task, mode):
    model = kd_model(task, inter_ctc_layers=[2])
    criterion = kd_criterion(task, aed_kd_weight=0.3, interctc_weight=0.3, kd_kl_weight=0.5)
    sample = kd_sample(task)
    reference, reference_log = losses(model, criterion, sample)
    if mode == "autocast":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, log = losses(model, criterion, sample)
    else:
        model = model.to(torch.bfloat16)
        sample["net_input"]["source"] = sample["net_input"]["source"].to(torch.bfloat16)
        loss, log = losses(model, criterion, sample)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    for key in ("ctc_loss", "interctc_loss_l2", "aed_kl_loss_l2", "aed_ce_loss_l4"):
        assert abs(log[key] - reference_log[key]) <= 0.03 * abs(reference_log[key]), (key, log[key], reference_log[key])
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g.float()).all() for g in grads)
