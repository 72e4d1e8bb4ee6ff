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


@pytest.mark.parametrize("shape", [(7, 3, 5), (1,), (4, 1000)])
def test_the_four_lanes_of_a_random_word_are_independent_uniform_draws(shape):
    """keep_mask reads four 15-bit draws per int64 word: each lane keeps 1 - p of its elements, neighbours
    (lanes of one word) are uncorrelated, and any element count works."""
    torch.manual_seed(0)
    dropout = FastDropout(0.5)
    assert dropout.keep_mask(torch.Size(shape)).shape == torch.Size(shape)
    masks = torch.stack([dropout.keep_mask(torch.Size([4000])) for _ in range(50)]).float()  # 50 x 1000 words x 4
    lanes = masks.view(50, 1000, 4)
    n = lanes[..., 0].numel()
    for lane in range(4):
        assert abs(lanes[..., lane].mean().item() - 0.5) < 4 * (0.25 / n) ** 0.5
    for a, b in ((0, 1), (1, 2), (2, 3), (0, 3)):
        both = (lanes[..., a] * lanes[..., b]).mean().item()
        assert abs(both - 0.25) < 4 * (0.25 * 0.75 / n) ** 0.5
