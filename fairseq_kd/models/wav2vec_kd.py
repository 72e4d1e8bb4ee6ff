"""Model ``wav2vec_ctc_kd``: fairseq's wav2vec 2.0 CTC fine-tuning (``wav2vec_ctc``) with InterCTC and
interAED-KD taps on the transformer layers.

The pretrained checkpoint is loaded by fairseq's own :class:`Wav2VecEncoder` through ``w2v_path``, so masking,
``freeze_finetune_updates``, ``feature_grad_mult``, ``layerdrop`` and ``normalize`` behave exactly as in
``wav2vec_ctc``; the input is the raw waveform (``task.features=waveform``).

Taps are keyed by layer id, not by position in fairseq's ``layer_results`` (which only lists the layers that
ran, so with ``layerdrop > 0`` positions shift): forward hooks record the input and output of every
transformer layer that runs, and the state "after layer ``l``" is the output of the last layer ``<= l``
that ran (a dropped layer is the identity), or the encoder input when none did. Intermediate states go
through the encoder's final LayerNorm when the model is pre-LN (``layer_norm_first``, e.g. the large
models), like the final output does; the final layer's state is the encoder output itself.
``final_dropout`` applies to every tap as to the CTC input. Layer layout: ``T x B x C``.
"""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from fairseq.models import register_model
from fairseq.models.wav2vec.wav2vec2_asr import Wav2Vec2AsrConfig, Wav2VecEncoder

from .conformer_kd import CtcKdBaseModel, DistillationTapsConfig, add_missing_fields, configure_teacher_vocabulary

DEFAULT_AED = dict(aed_decoder_layers=6, aed_decoder_embed_dim=256, aed_decoder_ffn_embed_dim=2048,
                   aed_decoder_attention_heads=4, aed_dropout=0.1)


@dataclass
class Wav2VecCtcKdConfig(Wav2Vec2AsrConfig, DistillationTapsConfig):
    pass


@register_model("wav2vec_ctc_kd", dataclass=Wav2VecCtcKdConfig)
class Wav2VecCtcKdModel(CtcKdBaseModel):
    def __init__(self, cfg: Wav2VecCtcKdConfig, w2v_encoder: Wav2VecEncoder, vocab_size: int,
                 aed_output_ids: Optional[np.ndarray] = None):
        transformer = w2v_encoder.w2v_model.encoder
        super().__init__(cfg, transformer.embedding_dim, len(transformer.layers), vocab_size, aed_output_ids)
        self.w2v_encoder = w2v_encoder

    @classmethod
    def build_model(cls, cfg: Wav2VecCtcKdConfig, task):
        add_missing_fields(cfg, Wav2VecCtcKdConfig)
        for key, value in DEFAULT_AED.items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        aed_output_ids = configure_teacher_vocabulary(cfg, task) if cfg.aed_layers else None
        return cls(cfg, Wav2VecEncoder(cfg), len(task.target_dictionary), aed_output_ids)

    def encode(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None):
        """``source``: ``B x S`` waveform, ``padding_mask``: ``B x S``. Returns per-layer ``T x B x C`` states."""
        if source.dim() != 2:
            raise ValueError(f"wav2vec_ctc_kd expects waveform batches B x S, got {tuple(source.shape)}: set "
                             f"task.features=waveform")
        transformer = self.w2v_encoder.w2v_model.encoder
        inputs, outputs = {}, {}
        hooks = []
        for i, layer in enumerate(transformer.layers):
            hooks.append(layer.register_forward_pre_hook(lambda m, args, i=i: inputs.setdefault(i, args[0])))
            hooks.append(layer.register_forward_hook(lambda m, args, out, i=i: outputs.__setitem__(i, out[0])))
        try:
            out = self.w2v_encoder(source, padding_mask)
        finally:
            for hook in hooks:
                hook.remove()
        final, padding_mask = out["encoder_out"], out["padding_mask"]  # T x B x C (final_dropout applied)
        num_frames = final.size(0)
        states = []
        for l in range(1, len(transformer.layers)):
            ran = [i for i in outputs if i < l]
            state = outputs[max(ran)] if ran else inputs.get(min(inputs)) if inputs else None
            if state is None:  # no layer ran at all: every state is the encoder input, i.e. the output
                states.append(final)
                continue
            state = state[:num_frames]  # undo fairseq's padding to required_seq_len_multiple
            if transformer.layer_norm_first:
                state = transformer.layer_norm(state)
            states.append(self.w2v_encoder.final_dropout(state))
        states.append(final)
        if padding_mask is None:
            padding_mask = final.new_zeros(final.shape[1], num_frames, dtype=torch.bool)
        return states, padding_mask
