"""The auxiliary attention decoder of interAED-KD: one Transformer decoder shared by every encoder tap.

It exists only for training: it reads the teacher's WordPiece sequence with teacher forcing and
cross-attends to the hidden states of each tapped encoder layer; its per-position output distributions are
pulled towards the teacher's top-k masked-LM distributions by the ``ctc_kd`` criterion. Inference never
runs it (greedy CTC only), and ``scripts/export_ctc_model.py`` removes it from checkpoints.

Layout::

    prev_output_tokens    B x L        teacher ids [CLS] t_1 .. t_n, padded with the teacher's [PAD]
    taps                  [(l, T x B x C)] encoder states of block l, with encoder_padding_mask B x T
    returns               [(l, B x L x V)] logits over the teacher vocabulary (V' with output_ids), per tap

With ``output_ids`` (teacher ids: [PAD] first, then e.g. the ids that occur in the training sidecars and the
other specials, sorted) the decoder works in that restricted vocabulary of ``V' = len(output_ids)`` entries: its
embeddings and output logits have ``V'`` rows, and :meth:`SharedAttentionDecoder.decoder_ids` maps teacher
ids to decoder ids (any id outside the list to the teacher's [UNK]). The map is a buffer, so it is saved in
checkpoints with the weights it indexes. Softmax over ``V'`` equals softmax over the whole vocabulary with the
logits of the left-out ids at ``-inf``: the KL to a teacher whose top-k ids are all in the list is unchanged
in form, and the output layer costs ``V' / V`` of the full one.

Beyond the paper, two ways to make the decoder listen to the audio instead of predicting the teacher from the
WordPiece prefix (a language model of its own): ``input_mask_prob`` replaces each input WordPiece by the
teacher's [MASK] with that probability while training (conditional-masked-LM style; the start symbol and
padding are never masked), and ``non_autoregressive`` masks every input WordPiece, in training and
evaluation, and drops the causal self-attention mask: the decoder then sees only the number of tokens and the
encoder states.

The taps are stacked along the batch dimension (``n_taps * B`` rows) and decoded in one call, so the shared
parameters receive the sum of the gradients of every tap. Decoder layers are fairseq's
``TransformerDecoderLayerBase`` (pre-LayerNorm); input and output embeddings are tied.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from fairseq.models.transformer import TransformerConfig
from fairseq.modules import LayerNorm, PositionalEmbedding
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase


class SharedAttentionDecoder(nn.Module):
    """Args: ``vocab_size`` the teacher vocabulary ``V``; ``pad_idx``, ``unk_idx`` teacher ids; ``output_ids``
    the restricted vocabulary (teacher ids, [PAD] first, None: all ``V``); ``output_size`` its length when the ids
    come from a checkpoint (the buffer is filled by ``load_state_dict``)."""

    def __init__(self, vocab_size: int, pad_idx: int, encoder_dim: int, embed_dim: int, ffn_embed_dim: int,
                 attention_heads: int, layers: int, dropout: float, max_target_positions: int = 1024,
                 unk_idx: Optional[int] = None, output_ids: Optional[Sequence[int]] = None,
                 output_size: Optional[int] = None, mask_idx: Optional[int] = None, input_mask_prob: float = 0.0,
                 non_autoregressive: bool = False):
        super().__init__()
        if (input_mask_prob > 0 or non_autoregressive) and mask_idx is None:
            raise ValueError("masking the decoder's input needs the teacher's [MASK] id")
        if not 0.0 <= input_mask_prob <= 1.0:
            raise ValueError(f"model.aed_input_mask_prob={input_mask_prob} must be in [0, 1]")
        self.mask_idx, self.input_mask_prob, self.non_autoregressive = mask_idx, input_mask_prob, non_autoregressive
        self.teacher_pad_idx = pad_idx
        self.restricted = output_ids is not None or output_size is not None
        if self.restricted:
            if output_ids is not None:
                output_ids = torch.as_tensor(output_ids, dtype=torch.long)
                if output_ids[0] != pad_idx or unk_idx not in output_ids[1:]:
                    raise ValueError("a restricted decoder vocabulary starts with the teacher's [PAD] and contains "
                                     "its [UNK]")
                output_size = len(output_ids)
                to_decoder = torch.full((vocab_size,), int((output_ids == unk_idx).nonzero()[0]), dtype=torch.long)
                to_decoder[output_ids] = torch.arange(output_size)
            else:  # built from a checkpoint config: load_state_dict fills both maps
                output_ids = torch.zeros(output_size, dtype=torch.long)
                to_decoder = torch.zeros(vocab_size, dtype=torch.long)
            self.register_buffer("output_ids", output_ids)          # V'  decoder id -> teacher id
            self.register_buffer("teacher_to_decoder", to_decoder)  # V   teacher id -> decoder id
            pad_idx = 0
        self.pad_idx = pad_idx
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_tokens = nn.Embedding(output_size or vocab_size, embed_dim, padding_idx=pad_idx)
        nn.init.normal_(self.embed_tokens.weight, mean=0, std=embed_dim ** -0.5)
        nn.init.zeros_(self.embed_tokens.weight[pad_idx])
        self.embed_positions = PositionalEmbedding(max_target_positions, embed_dim, pad_idx, learned=False)
        self.dropout = nn.Dropout(dropout)
        layer_cfg = TransformerConfig(dropout=dropout, attention_dropout=dropout, activation_dropout=dropout)
        layer_cfg.decoder.embed_dim = embed_dim
        layer_cfg.decoder.ffn_embed_dim = ffn_embed_dim
        layer_cfg.decoder.attention_heads = attention_heads
        layer_cfg.decoder.normalize_before = True
        layer_cfg.encoder.embed_dim = encoder_dim  # key/value size of the cross-attention
        self.layers = nn.ModuleList(TransformerDecoderLayerBase(layer_cfg) for _ in range(layers))
        self.layer_norm = LayerNorm(embed_dim)

    def decoder_ids(self, teacher_ids: torch.Tensor) -> torch.Tensor:
        """Teacher ids (any shape) -> ids of the decoder's vocabulary (the same ids when not restricted)."""
        return self.teacher_to_decoder[teacher_ids] if self.restricted else teacher_ids

    def mask_inputs(self, prev_output_tokens: torch.Tensor) -> torch.Tensor:
        """Replace input WordPieces (teacher ids ``B x L``; never position 0, the start symbol, nor [PAD]) by
        [MASK]: all of them when non-autoregressive, else each with ``input_mask_prob`` while training."""
        prob = 1.0 if self.non_autoregressive else self.input_mask_prob if self.training else 0.0
        if prob == 0.0:
            return prev_output_tokens
        maskable = prev_output_tokens.ne(self.teacher_pad_idx)
        maskable[:, 0] = False
        if prob < 1.0:
            maskable &= torch.rand(prev_output_tokens.shape, device=prev_output_tokens.device) < prob
        return prev_output_tokens.masked_fill(maskable, self.mask_idx)

    def forward(self, prev_output_tokens: torch.Tensor, taps: List[Tuple[int, torch.Tensor]],
                encoder_padding_mask: torch.Tensor) -> List[Tuple[int, torch.Tensor]]:
        """``prev_output_tokens`` in teacher ids; logits over the decoder's vocabulary (see ``decoder_ids``)."""
        prev_output_tokens = self.decoder_ids(self.mask_inputs(prev_output_tokens))
        batch, length = prev_output_tokens.shape
        n_taps = len(taps)
        tokens = prev_output_tokens.repeat(n_taps, 1)                       # (n*B) x L
        memory = torch.cat([states for _, states in taps], dim=1)           # T x (n*B) x C
        memory_padding_mask = encoder_padding_mask.repeat(n_taps, 1)        # (n*B) x T
        x = self.embed_scale * self.embed_tokens(tokens) + self.embed_positions(tokens)
        x = self.dropout(x).transpose(0, 1)                                 # L x (n*B) x D
        # True = may not attend, in both masks: one type for both, as torch's attention wants (a float causal mask
        # beside the boolean padding mask gives the same numbers with a deprecation warning on every batch)
        causal = None if self.non_autoregressive else torch.ones(length, length, dtype=torch.bool,
                                                                 device=x.device).triu(1)
        self_padding_mask = tokens.eq(self.pad_idx)
        for layer in self.layers:
            x, _, _ = layer(x, memory, memory_padding_mask, self_attn_mask=causal,
                            self_attn_padding_mask=self_padding_mask)
        x = self.layer_norm(x).transpose(0, 1)                              # (n*B) x L x D
        logits = torch.matmul(x, self.embed_tokens.weight.t())               # (n*B) x L x V, tied embeddings
        return [(layer, chunk) for (layer, _), chunk in zip(taps, logits.split(batch, dim=0))]
