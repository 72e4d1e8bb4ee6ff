"""Dropout with cheaper masks on CPU, swapped into the modules of a model after it is built.

torch's CPU dropout draws its Bernoulli mask with ``bernoulli_`` on floats, which took 11-13 % of an xs
training step here (``scripts/benchmark_training.py``, op ``aten::bernoulli_``). :class:`FastDropout` draws
15-bit uniform integers instead, four per 64-bit random word (``random_`` on int64, viewed as int16 and masked
to 15 bits: half the time of one ``random_`` draw per int16 element, itself several times cheaper than
``bernoulli_``) and keeps an element when its integer is at least ``round(p * 2^15)``: the same inverted
dropout, ``y = x * m / (1 - p')`` with ``m ~ Bernoulli(1 - p')``, where ``p' = round(p * 2^15) / 2^15`` differs
from ``p`` by less than ``2^-16``. On GPUs it calls torch's fused dropout.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.modules import FairseqDropout

RESOLUTION = 1 << 15  # masks compare uniform integers in 0 .. 2^15 - 1 with round(p * 2^15)


class FastDropout(nn.Module):
    apply_during_inference = False  # what fairseq's modules ask of the FairseqDropout this replaces

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability {p} must be in [0, 1)")
        self.p = p
        self.threshold = round(p * RESOLUTION)
        self.scale = RESOLUTION / (RESOLUTION - self.threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        return x * self.keep_mask(x.shape).to(x.dtype).mul_(self.scale)

    def keep_mask(self, shape: torch.Size) -> torch.Tensor:
        """Bool mask of ``shape``, each element True with probability ``1 - threshold / 2^15``, independently.

        ``int64.random_()`` fills 63 uniform bits per word: its four int16 lanes, masked to their low 15 bits,
        are four independent uniform draws from 0 .. 2^15 - 1."""
        numel = shape.numel()
        words = torch.empty((numel + 3) // 4, dtype=torch.int64).random_()
        draws = words.view(torch.int16)[:numel].view(shape).bitwise_and_(RESOLUTION - 1)
        return draws >= self.threshold

    def extra_repr(self) -> str:
        return f"p={self.p}"


def use_fast_dropout(model: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` and ``FairseqDropout`` (not applied at inference) inside ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Dropout) or (isinstance(child, FairseqDropout)
                                                  and not child.apply_during_inference):
                setattr(parent, name, FastDropout(child.p))
    return model
