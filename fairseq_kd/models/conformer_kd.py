"""Model ``ctc_kd``: a Conformer CTC recogniser trained from scratch on filterbanks, with the taps of
InterCTC and interAED-KD.

Architectures (``--arch`` / ``model._name``)::

    ctc_kd_conformer_xs     6 blocks, d=144, 4 heads, FFN 576, kernel 15; AED 2 x d=144   (CPU-sized)
    ctc_kd_conformer_100h  12 blocks, d=256, 4 heads, FFN 1024, kernel 31; AED 6 x d=256 (ESPnet LibriSpeech-100h)
    ctc_kd_conformer_960h  12 blocks, d=512, 8 heads, FFN 2048, kernel 31; AED 6 x d=512 (ESPnet LibriSpeech-960h)

Encoder parameters: 3.1 M (xs with the xs_* configs' 32 subsampling channels; 3.6 M with 144), 21 M (100h) and 83 M
(960h) with letter units. Size fields left unset (``None``) take the architecture's value; fields set in a YAML
file or on the command line win. ``model._name: ctc_kd`` means ``ctc_kd_conformer_xs``.

Taps are 1-based encoder blocks. ``inter_ctc_layers`` get a CTC loss through the shared CTC projection;
``aed_layers`` feed the one :class:`~fairseq_kd.models.aed_decoder.SharedAttentionDecoder` (include the last
block for the final-layer tap: ``[6]`` is the prior work's final-layer AED-KD, ``[3, 6]`` interAED-KD).

Outputs of :meth:`CtcKdModel.forward` (tensors only; the criterion turns them into losses)::

    encoder_out        T x B x V  final-layer CTC logits
    padding_mask       B x T      True on padded frames (after 4x subsampling)
    encoder_states     [T x B x C] output of every block; encoder_states[l - 1] is block l
    inter_ctc_logits   [(l, T x B x V)] for l in inter_ctc_layers
    aed_logits         [(l, B x L x V_teacher)] for l in aed_layers, only when aed_prev_output_tokens is given
"""
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.dataclass import FairseqDataclass
from fairseq.models import ARCH_CONFIG_REGISTRY, BaseFairseqModel, register_model, register_model_architecture
from omegaconf import II, OmegaConf, open_dict

from ..data.teacher_sidecar import TeacherSidecar
from ..precision import use_bf16
from .aed_decoder import SharedAttentionDecoder
from .conformer import ConformerEncoder
from .dropout import use_fast_dropout

logger = logging.getLogger(__name__)

DEFAULT_ARCH = "ctc_kd_conformer_xs"
TRAIN_SIDECAR_SPLIT = "train"  # the split whose teacher ids make the restricted decoder vocabulary


@dataclass
class DistillationTapsConfig(FairseqDataclass):
    """Tap fields shared by ``ctc_kd`` and ``wav2vec_ctc_kd``."""

    inter_ctc_layers: List[int] = field(default_factory=list, metadata={
        "help": "1-based encoder layers whose outputs also get a CTC loss (InterCTC, Lee & Watanabe 2021) "
                "through the shared CTC projection, e.g. [3] for 6 layers; must be below the last layer"})
    aed_layers: List[int] = field(default_factory=list, metadata={
        "help": "1-based encoder layers read by the shared attention decoder (AED-KD taps); include the last "
                "layer for final-layer KD, e.g. [6] (final-layer AED-KD) or [3, 6] (interAED-KD); "
                "empty: no decoder"})
    aed_decoder_layers: Optional[int] = field(default=None, metadata={
        "help": "attention-decoder layers (xs: 2, 100h / wav2vec: 6)"})
    aed_decoder_embed_dim: Optional[int] = field(default=None, metadata={
        "help": "attention-decoder dimension (xs: 144, 100h / wav2vec: 256)"})
    aed_decoder_ffn_embed_dim: Optional[int] = field(default=None, metadata={
        "help": "attention-decoder feed-forward dimension (xs: 576, 100h / wav2vec: 2048)"})
    aed_decoder_attention_heads: Optional[int] = field(default=None, metadata={
        "help": "attention-decoder heads (4)"})
    aed_dropout: Optional[float] = field(default=None, metadata={"help": "attention-decoder dropout (0.1)"})
    aed_vocab_size: Optional[int] = field(default=None, metadata={
        "help": "teacher vocabulary size (the decoder's output size); set from the teacher sidecars at "
                "training time and stored in the checkpoint"})
    aed_vocab_sha256: Optional[str] = field(default=None, metadata={
        "help": "sha256 of the teacher vocabulary, set from the sidecars; training refuses sidecars of "
                "another teacher"})
    aed_pad_idx: Optional[int] = field(default=None, metadata={
        "help": "teacher [PAD] id, set from the sidecars"})
    aed_unk_idx: Optional[int] = field(default=None, metadata={
        "help": "teacher [UNK] id, set from the sidecars"})
    aed_mask_idx: Optional[int] = field(default=None, metadata={
        "help": "teacher [MASK] id, set from the sidecars"})
    aed_input_mask_prob: float = field(default=0.0, metadata={
        "help": "beyond the paper: while training, replace each decoder input WordPiece by the teacher's [MASK] "
                "with this probability (conditional-masked-LM style), so that the decoder must read the audio "
                "instead of predicting the teacher from the WordPiece prefix; 0 = the paper's teacher forcing"})
    aed_non_autoregressive: bool = field(default=False, metadata={
        "help": "beyond the paper: every decoder input WordPiece is [MASK] (training and validation) and the "
                "decoder's self-attention is not causal: it predicts the teacher from the audio and the "
                "number of tokens only"})
    autocast_bf16: Optional[bool] = field(default=False, metadata={
        "help": "run the model's forward pass (encoder, CTC projection, decoder; training and decoding) under "
                "torch.autocast with bfloat16 on the input's device: matrix products and convolutions in "
                "bfloat16, weights, optimizer state and every loss in float32. Pays on CPUs with AVX512-BF16 or "
                "AMX and on GPUs since Ampere, and is several times slower on other CPUs; null (auto): on a CPU "
                "with those instructions only, float32 elsewhere. Use it instead of (not with) fairseq's "
                "common.fp16 / common.bf16, which cast the weights (and whose master-weight optimizer needs CUDA)"})
    aed_restrict_vocab: bool = field(default=False, metadata={
        "help": "give the decoder only the teacher ids that occur in the training sidecar ({train split}.kd: "
                "WordPieces and top-k ids) plus the specials, instead of the whole teacher vocabulary: a "
                "smaller output layer and softmax (xs: about a quarter of the 30522 ids); the id map is saved in the "
                "checkpoint, ids outside it count as [UNK]"})
    aed_output_size: Optional[int] = field(default=None, metadata={
        "help": "size of the decoder's vocabulary, set at training time (the restricted vocabulary's size, or "
                "the teacher's) and stored in the checkpoint"})


@dataclass
class CtcKdConfig(DistillationTapsConfig):
    encoder_layers: Optional[int] = field(default=None, metadata={"help": "Conformer blocks (xs: 6, 100h: 12)"})
    encoder_embed_dim: Optional[int] = field(default=None, metadata={"help": "model dimension (xs: 144, 100h: 256)"})
    encoder_ffn_embed_dim: Optional[int] = field(default=None, metadata={
        "help": "feed-forward inner dimension (xs: 576, 100h: 1024)"})
    encoder_attention_heads: Optional[int] = field(default=None, metadata={"help": "attention heads (4)"})
    depthwise_conv_kernel_size: Optional[int] = field(default=None, metadata={
        "help": "Conformer convolution kernel (xs: 15, 100h: 31)"})
    subsampling_channels: Optional[int] = field(default=None, metadata={
        "help": "channels of the 4x Conv2d subsampling (unset: encoder_embed_dim, as ESPnet; the xs_* configs "
                "set 32, a tenth of the FLOPs of 144 channels before the same linear projection; xs models "
                "trained before December 2026 used 144)"})
    dropout: Optional[float] = field(default=None, metadata={"help": "dropout in every block (0.1)"})
    input_feat_dim: int = II("task.num_mel_bins")


def add_missing_fields(cfg, config_class) -> None:
    """Give a config saved by an older version of this plugin (a checkpoint's) the fields added since, with
    their defaults, so that old checkpoints keep loading."""
    if not OmegaConf.is_config(cfg):
        return
    with open_dict(cfg):
        for f in dataclasses.fields(config_class):
            if f.name not in cfg and f.default is not dataclasses.MISSING:
                cfg[f.name] = f.default


def check_tap_layers(name: str, layers, num_layers: int, allow_final: bool) -> List[int]:
    """Validate 1-based tap indices against the encoder depth; return them sorted."""
    top = num_layers if allow_final else num_layers - 1
    bad = [l for l in layers if not 1 <= l <= top]
    if bad or len(set(layers)) != len(layers):
        raise ValueError(
            f"model.{name}={list(layers)}: indices are 1-based encoder layers and must be unique and in "
            f"[1, {top}] for an encoder of {num_layers} layers"
            + ("" if allow_final else " (the final layer already has the main CTC loss)"))
    return sorted(layers)


def configure_teacher_vocabulary(cfg: DistillationTapsConfig, task) -> Optional[np.ndarray]:
    """Fill the decoder's vocabulary fields from the task's teacher sidecars, or check them against it.

    Returns the restricted vocabulary (teacher ids, [PAD] first) when ``cfg.aed_restrict_vocab`` and the
    sidecars are at hand; None otherwise: no restriction, or a model rebuilt from its checkpoint config without
    sidecars or with sidecars whose training split has another number of ids than ``cfg.aed_output_size`` (the
    decoder is then built with ``cfg.aed_output_size`` outputs and its id map comes with the weights)."""
    header = getattr(task, "teacher_header", None)
    if header is not None:
        if cfg.aed_vocab_sha256 not in (None, header["vocab_sha256"]) or cfg.aed_vocab_size not in (
                None, header["vocab_size"]):
            raise ValueError(
                f"the attention decoder was built for a teacher vocabulary of {cfg.aed_vocab_size} entries "
                f"(sha256 {cfg.aed_vocab_sha256}) but the sidecars in task.kd_sidecar_dir come from a teacher "
                f"with {header['vocab_size']} (sha256 {header['vocab_sha256']}); regenerate the sidecars with "
                f"the same teacher or start from a model without a decoder")
        cfg.aed_vocab_size = header["vocab_size"]
        cfg.aed_vocab_sha256 = header["vocab_sha256"]
        cfg.aed_pad_idx = header["special_ids"]["pad"]
        cfg.aed_unk_idx = header["special_ids"]["unk"]
        cfg.aed_mask_idx = header["special_ids"]["mask"]
    if cfg.aed_vocab_size is None:
        raise ValueError(f"model.aed_layers={list(cfg.aed_layers)} needs the teacher vocabulary: set "
                         f"task.kd_sidecar_dir to the directory of the teacher sidecars")
    output_ids = None
    if cfg.aed_restrict_vocab and header is not None:
        sidecar_ids = training_sidecar_vocabulary(task.cfg.kd_sidecar_dir, header)
        if cfg.aed_output_size not in (None, len(sidecar_ids)):
            # a checkpoint's config meets the sidecars of another extraction (e.g. a rebuilt teacher): the decoder
            # is built at the checkpoint's size and load_state_dict gives it the checkpoint's id map
            logger.warning(f"model.aed_output_size={cfg.aed_output_size} but the training sidecar has "
                           f"{len(sidecar_ids)} distinct ids: the checkpoint's id map will be used when it is loaded")
        else:
            output_ids = sidecar_ids
            cfg.aed_output_size = len(output_ids)
            logger.info(f"attention decoder vocabulary restricted to the {len(output_ids)} teacher ids of the "
                        f"training sidecar and the specials ({len(output_ids) / header['vocab_size']:.1%} of "
                        f"{header['vocab_size']})")
    elif not cfg.aed_restrict_vocab:
        cfg.aed_output_size = cfg.aed_vocab_size
    elif cfg.aed_output_size is None:
        raise ValueError("model.aed_restrict_vocab=true needs the teacher sidecars (task.kd_sidecar_dir) when the "
                         "model is built for training")
    return output_ids


def training_sidecar_vocabulary(sidecar_dir: str, header: dict, split: str = TRAIN_SIDECAR_SPLIT) -> np.ndarray:
    """Teacher ids of the restricted decoder vocabulary: [PAD], then every id that occurs in ``split``'s
    sidecar (WordPieces and top-k ids) and the other specials, ascending."""
    sidecar = TeacherSidecar(sidecar_dir, split)
    seen = np.zeros(header["vocab_size"], dtype=bool)
    for i in range(len(sidecar)):
        tokens, topk_ids, _ = sidecar[i]
        seen[tokens] = True
        seen[topk_ids] = True
    specials = header["special_ids"]
    seen[[specials[name] for name in ("cls", "sep", "mask", "unk")]] = True
    seen[specials["pad"]] = False
    return np.concatenate([[specials["pad"]], np.flatnonzero(seen)])


AED_DECODER_PREFIX = "aed_decoder."  # state-dict keys of CtcKdBaseModel.aed_decoder, the training-only decoder


def inference_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A ``ctc_kd`` / ``wav2vec_ctc_kd`` state dict (a model's, or a checkpoint's ``state["model"]``) without the
    training-only attention decoder: the weights greedy CTC decoding uses."""
    return {key: value for key, value in state_dict.items() if not key.startswith(AED_DECODER_PREFIX)}


class CtcKdBaseModel(BaseFairseqModel):
    """CTC head, InterCTC taps and the shared attention decoder on top of any layered encoder.

    Subclasses provide :meth:`encode` (source -> per-layer states, padding mask) and :meth:`build_model`.
    """

    def __init__(self, cfg: DistillationTapsConfig, encoder_dim: int, num_layers: int, vocab_size: int,
                 aed_output_ids: Optional[np.ndarray] = None):
        super().__init__()
        self.cfg = cfg
        self.ctc_proj = nn.Linear(encoder_dim, vocab_size)
        self.inter_ctc_layers = check_tap_layers("inter_ctc_layers", cfg.inter_ctc_layers, num_layers,
                                                 allow_final=False)
        self.aed_layers = check_tap_layers("aed_layers", cfg.aed_layers, num_layers, allow_final=True)
        self.aed_decoder = None
        if self.aed_layers:
            self.aed_decoder = SharedAttentionDecoder(
                vocab_size=cfg.aed_vocab_size, pad_idx=cfg.aed_pad_idx, encoder_dim=encoder_dim,
                embed_dim=cfg.aed_decoder_embed_dim, ffn_embed_dim=cfg.aed_decoder_ffn_embed_dim,
                attention_heads=cfg.aed_decoder_attention_heads, layers=cfg.aed_decoder_layers,
                dropout=cfg.aed_dropout, unk_idx=cfg.aed_unk_idx, output_ids=aed_output_ids,
                output_size=cfg.aed_output_size if cfg.aed_restrict_vocab else None, mask_idx=cfg.aed_mask_idx,
                input_mask_prob=cfg.aed_input_mask_prob, non_autoregressive=cfg.aed_non_autoregressive)

    def inference_state_dict(self) -> Dict[str, torch.Tensor]:
        """:meth:`state_dict` without the attention decoder (see :func:`inference_state_dict`)."""
        return inference_state_dict(self.state_dict())

    def aed_decoder_ids(self, teacher_ids: torch.Tensor) -> torch.Tensor:
        """Teacher ids -> indices of the decoder's logits (identity unless ``aed_restrict_vocab``)."""
        return self.aed_decoder.decoder_ids(teacher_ids)

    def encode(self, source, padding_mask):
        """Return ``(states, padding_mask)``: ``states[l - 1]`` is layer ``l`` (``T x B x C``), mask ``B x T``."""
        raise NotImplementedError

    def autocast(self, device: torch.device):
        """The forward pass's precision context (``model.autocast_bf16``); gradients follow the forward's dtypes."""
        enabled = use_bf16(self.cfg.autocast_bf16, device.type, "model.autocast_bf16=true")
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)

    def forward(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                aed_prev_output_tokens: Optional[torch.Tensor] = None, **unused):
        with self.autocast(source.device):
            return self._forward(source, padding_mask, aed_prev_output_tokens)

    def _forward(self, source, padding_mask, aed_prev_output_tokens):
        states, padding_mask = self.encode(source, padding_mask)
        out = {
            "encoder_out": self.ctc_proj(states[-1]),
            "padding_mask": padding_mask,
            "encoder_states": states,
            "inter_ctc_logits": [(l, self.ctc_proj(states[l - 1])) for l in self.inter_ctc_layers],
        }
        if aed_prev_output_tokens is not None:
            if self.aed_decoder is None:
                raise ValueError("teacher targets were given but the model has no attention decoder: set "
                                 "model.aed_layers, or criterion.aed_kd_weight=0")
            taps = [(l, states[l - 1]) for l in self.aed_layers]
            out["aed_logits"] = self.aed_decoder(aed_prev_output_tokens, taps, padding_mask)
        return out

    def ctc_emissions(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, **unused):
        """Inference path: final-layer CTC log-probabilities ``B x T x V`` and valid lengths ``B``; no InterCTC
        head, no attention decoder."""
        with self.autocast(source.device):
            states, padding_mask = self.encode(source, padding_mask)
            logits = self.ctc_proj(states[-1])
        return F.log_softmax(logits.float(), dim=-1).transpose(0, 1), (~padding_mask).sum(1)

    def get_normalized_probs(self, net_output, log_probs, sample=None):
        """Final-layer CTC (log-)probabilities, ``T x B x V``, in float32."""
        logits = net_output["encoder_out"].float()
        return F.log_softmax(logits, dim=-1) if log_probs else F.softmax(logits, dim=-1)


@register_model("ctc_kd", dataclass=CtcKdConfig)
class CtcKdModel(CtcKdBaseModel):
    def __init__(self, cfg: CtcKdConfig, encoder: ConformerEncoder, vocab_size: int,
                 aed_output_ids: Optional[np.ndarray] = None):
        super().__init__(cfg, cfg.encoder_embed_dim, cfg.encoder_layers, vocab_size, aed_output_ids)
        self.encoder = encoder

    @classmethod
    def build_model(cls, cfg: CtcKdConfig, task):
        add_missing_fields(cfg, CtcKdConfig)
        ARCH_CONFIG_REGISTRY[DEFAULT_ARCH](cfg)  # fills fields that neither an arch nor the user set
        cfg.subsampling_channels = cfg.subsampling_channels or cfg.encoder_embed_dim
        aed_output_ids = configure_teacher_vocabulary(cfg, task) if cfg.aed_layers else None
        encoder = ConformerEncoder(
            input_dim=cfg.input_feat_dim, embed_dim=cfg.encoder_embed_dim, ffn_embed_dim=cfg.encoder_ffn_embed_dim,
            attention_heads=cfg.encoder_attention_heads, layers=cfg.encoder_layers,
            depthwise_conv_kernel_size=cfg.depthwise_conv_kernel_size,
            subsampling_channels=cfg.subsampling_channels, dropout=cfg.dropout)
        return use_fast_dropout(cls(cfg, encoder, len(task.target_dictionary), aed_output_ids))

    def encode(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        """``source``: ``B x T x F`` filterbanks, ``padding_mask``: ``B x T`` (True on padding)."""
        if source.dim() != 3 or source.size(-1) != self.cfg.input_feat_dim:
            raise ValueError(
                f"ctc_kd expects filterbank batches B x T x {self.cfg.input_feat_dim}, got {tuple(source.shape)}: "
                f"set task.features=fbank and task.num_mel_bins={self.cfg.input_feat_dim}")
        return self.encoder(source, padding_mask)


def _register_size(name: str, **sizes):
    def fill(cfg):
        for key, value in sizes.items():
            if getattr(cfg, key, None) is None:
                setattr(cfg, key, value)

    register_model_architecture("ctc_kd", name)(fill)


_register_size("ctc_kd_conformer_xs", encoder_layers=6, encoder_embed_dim=144, encoder_ffn_embed_dim=576,
               encoder_attention_heads=4, depthwise_conv_kernel_size=15, dropout=0.1,
               aed_decoder_layers=2, aed_decoder_embed_dim=144, aed_decoder_ffn_embed_dim=576,
               aed_decoder_attention_heads=4, aed_dropout=0.1)
_register_size("ctc_kd_conformer_100h", encoder_layers=12, encoder_embed_dim=256, encoder_ffn_embed_dim=1024,
               encoder_attention_heads=4, depthwise_conv_kernel_size=31, dropout=0.1,
               aed_decoder_layers=6, aed_decoder_embed_dim=256, aed_decoder_ffn_embed_dim=2048,
               aed_decoder_attention_heads=4, aed_dropout=0.1)
_register_size("ctc_kd_conformer_960h", encoder_layers=12, encoder_embed_dim=512, encoder_ffn_embed_dim=2048,
               encoder_attention_heads=8, depthwise_conv_kernel_size=31, dropout=0.1,
               aed_decoder_layers=6, aed_decoder_embed_dim=512, aed_decoder_ffn_embed_dim=2048,
               aed_decoder_attention_heads=8, aed_dropout=0.1)
