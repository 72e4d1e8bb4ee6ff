"""Model ``ctc_kd``: a Conformer CTC recogniser trained from scratch on filterbanks, with InterCTC taps.

Architectures (``--arch`` / ``model._name``)::

    ctc_kd_conformer_xs     6 blocks, d=144, 4 heads, FFN 576, kernel 15   (3.6 M parameters with letters; CPU-sized)
    ctc_kd_conformer_100h  12 blocks, d=256, 4 heads, FFN 1024, kernel 31  (21 M; ESPnet LibriSpeech-100h encoder)

Size fields left unset (``None``) take the architecture's value; fields set in a YAML file or on the command
line win. ``model._name: ctc_kd`` means ``ctc_kd_conformer_xs``.

Outputs of :meth:`CtcKdModel.forward` (tensors only; the criterion turns them into losses)::

    encoder_out        T x B x V  final-layer CTC logits
    padding_mask       B x T      True on padded frames (after 4x subsampling)
    encoder_states     [T x B x C] output of every block; encoder_states[l - 1] is block l (1-based)
    inter_ctc_logits   [(l, T x B x V)] for each l in inter_ctc_layers, through the same CTC projection
"""
import logging
from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.dataclass import FairseqDataclass
from fairseq.models import ARCH_CONFIG_REGISTRY, BaseFairseqModel, register_model, register_model_architecture
from omegaconf import II

from .conformer import ConformerEncoder

logger = logging.getLogger(__name__)

DEFAULT_ARCH = "ctc_kd_conformer_xs"


@dataclass
class CtcKdConfig(FairseqDataclass):
    encoder_layers: Optional[int] = field(default=None, metadata={"help": "Conformer blocks (xs: 6, 100h: 12)"})
    encoder_embed_dim: Optional[int] = field(default=None, metadata={"help": "model dimension (xs: 144, 100h: 256)"})
    encoder_ffn_embed_dim: Optional[int] = field(default=None, metadata={
        "help": "feed-forward inner dimension (xs: 576, 100h: 1024)"})
    encoder_attention_heads: Optional[int] = field(default=None, metadata={"help": "attention heads (4)"})
    depthwise_conv_kernel_size: Optional[int] = field(default=None, metadata={
        "help": "Conformer convolution kernel (xs: 15, 100h: 31)"})
    subsampling_channels: Optional[int] = field(default=None, metadata={
        "help": "channels of the 4x Conv2d subsampling (defaults to encoder_embed_dim)"})
    dropout: Optional[float] = field(default=None, metadata={"help": "dropout in every block (0.1)"})
    input_feat_dim: int = II("task.num_mel_bins")
    inter_ctc_layers: List[int] = field(default_factory=list, metadata={
        "help": "1-based blocks whose outputs also get a CTC loss (InterCTC, Lee & Watanabe 2021) through the "
                "shared CTC projection, e.g. [3] for 6 blocks or [6] / [4, 8] for 12; must be < encoder_layers"})


def check_tap_layers(name: str, layers, num_layers: int, allow_final: bool) -> List[int]:
    """Validate 1-based tap indices against the encoder depth; return them sorted."""
    top = num_layers if allow_final else num_layers - 1
    bad = [l for l in layers if not 1 <= l <= top]
    if bad or len(set(layers)) != len(layers):
        raise ValueError(
            f"model.{name}={list(layers)}: indices are 1-based encoder blocks and must be unique and in "
            f"[1, {top}] for an encoder of {num_layers} blocks"
            + ("" if allow_final else " (the final block already has the main CTC loss)"))
    return sorted(layers)


@register_model("ctc_kd", dataclass=CtcKdConfig)
class CtcKdModel(BaseFairseqModel):
    def __init__(self, cfg: CtcKdConfig, encoder: ConformerEncoder, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.ctc_proj = nn.Linear(cfg.encoder_embed_dim, vocab_size)
        self.inter_ctc_layers = check_tap_layers("inter_ctc_layers", cfg.inter_ctc_layers, cfg.encoder_layers,
                                                 allow_final=False)

    @classmethod
    def build_model(cls, cfg: CtcKdConfig, task):
        ARCH_CONFIG_REGISTRY[DEFAULT_ARCH](cfg)  # fills fields that neither an arch nor the user set
        encoder = ConformerEncoder(
            input_dim=cfg.input_feat_dim, embed_dim=cfg.encoder_embed_dim, ffn_embed_dim=cfg.encoder_ffn_embed_dim,
            attention_heads=cfg.encoder_attention_heads, layers=cfg.encoder_layers,
            depthwise_conv_kernel_size=cfg.depthwise_conv_kernel_size,
            subsampling_channels=cfg.subsampling_channels or cfg.encoder_embed_dim, dropout=cfg.dropout)
        return cls(cfg, encoder, len(task.target_dictionary))

    def _check_input(self, source: torch.Tensor):
        if source.dim() != 3 or source.size(-1) != self.cfg.input_feat_dim:
            raise ValueError(
                f"ctc_kd expects filterbank batches B x T x {self.cfg.input_feat_dim}, got {tuple(source.shape)}: "
                f"set task.features=fbank and task.num_mel_bins={self.cfg.input_feat_dim}")

    def forward(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, **unused):
        """``source``: ``B x T x F`` filterbanks, ``padding_mask``: ``B x T`` (True on padding)."""
        self._check_input(source)
        states, padding_mask = self.encoder(source, padding_mask)
        return {
            "encoder_out": self.ctc_proj(states[-1]),
            "padding_mask": padding_mask,
            "encoder_states": states,
            "inter_ctc_logits": [(l, self.ctc_proj(states[l - 1])) for l in self.inter_ctc_layers],
        }

    def ctc_emissions(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, **unused):
        """Inference path: final-layer CTC log-probabilities ``B x T x V`` and valid lengths ``B``."""
        self._check_input(source)
        states, padding_mask = self.encoder(source, padding_mask)
        return F.log_softmax(self.ctc_proj(states[-1]).float(), dim=-1).transpose(0, 1), (~padding_mask).sum(1)

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        """Final-layer CTC (log-)probabilities, ``T x B x V``, in float32."""
        logits = net_output["encoder_out"].float()
        return F.log_softmax(logits, dim=-1) if log_probs else F.softmax(logits, dim=-1)


def _register_size(name: str, **sizes):
    def fill(cfg):
        for key, value in sizes.items():
            if getattr(cfg, key, None) is None:
                setattr(cfg, key, value)

    register_model_architecture("ctc_kd", name)(fill)


_register_size("ctc_kd_conformer_xs", encoder_layers=6, encoder_embed_dim=144, encoder_ffn_embed_dim=576,
               encoder_attention_heads=4, depthwise_conv_kernel_size=15, dropout=0.1)
_register_size("ctc_kd_conformer_100h", encoder_layers=12, encoder_embed_dim=256, encoder_ffn_embed_dim=1024,
               encoder_attention_heads=4, depthwise_conv_kernel_size=31, dropout=0.1)
