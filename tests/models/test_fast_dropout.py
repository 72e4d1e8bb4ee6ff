"""FastDropout: the distribution of inverted dropout, its gradient, inference, and its place in the model."""
import pytest
import torch
import torch.nn as nn
from fairseq.modules import FairseqDropout

from fairseq_kd.models.dropout import RESOLUTION, FastDropout
from tiny_models import kd_model


@pytest.mark.parametrize("p", [0.1, 0.3])
def test_keeps_the_expected_share_scaled_and_its_gradient_uses_the_same_mask(p):
    torch.manual_seed(0)
    dropout = FastDropout(p).train()
    x = (torch.rand(200, 500) + 0.5).requires_grad_()
    y = dropout(x)
    kept = y.ne(0)
    share, n = kept.float().mean().item(), kept.numel()
    p_effective = round(p * RESOLUTION) / RESOLUTION
    assert abs(p_effective - p) < 2 ** -16
    assert abs(share - (1 - p_effective)) < 4 * (p_effective * (1 - p_effective) / n) ** 0.5
    assert torch.allclose(y[kept], x[kept] / (1 - p_effective))
    y.sum().backward()
    assert torch.equal(x.grad.ne(0), kept)
    assert torch.allclose(x.grad[kept], torch.full_like(x[kept], 1 / (1 - p_effective)))


def test_identity_in_eval_mode_and_at_zero():
    x = torch.randn(10, 10)
    assert FastDropout(0.5).eval()(x) is x and FastDropout(0.0).train()(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)


def test_model_dropouts_are_all_fast(task):
    model = kd_model(task)
    kinds = {type(m) for m in model.modules()}
    assert FastDropout in kinds and nn.Dropout not in kinds and FairseqDropout not in kinds
