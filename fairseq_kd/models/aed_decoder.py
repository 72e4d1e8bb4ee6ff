"""The auxiliary attention decoder of interAED-KD: one Transformer decoder shared by every encoder tap.

It exists only for training: it reads the teacher's WordPiece sequence with teacher forcing and
cross-attends to the hidden states of each tapped encoder layer; its per-position output distributions are
pulled towards the teacher's top-k masked-LM distributions by the ``ctc_kd`` criterion. Inference never
runs it (greedy CTC only), and ``scripts/export_ctc_model.py`` removes it from checkpoints.

Layout::

    prev_output_tokens    B x L        teacher ids [CLS] t_1 .. t_n, padded with the teacher's [PAD]
    taps                  [(l, T x B x C)] encoder states of block l, with encoder_padding_mask B x T
    returns               [(l, B x L x V)] logits over the teacher vocabulary, one entry per tap

The taps are stacked along the batch dimension (``n_taps * B`` rows) and decoded in one call, so the shared
parameters receive the sum of the gradients of every tap. Decoder layers are fairseq's
``TransformerDecoderLayerBase`` (pre-LayerNorm); input and output embeddings are tied.
"""
import math
from typing import List, Tuple

import torch
import torch.nn as nn
from fairseq.models.transformer import TransformerConfig
from fairseq.modules import LayerNorm, PositionalEmbedding
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase


class SharedAttentionDecoder(nn.Module):
    def __init__(self, vocab_size: int, pad_idx: int, encoder_dim: int, embed_dim: int, ffn_embed_dim: int,
                 attention_heads: int, layers: int, dropout: float, max_target_positions: int = 1024):
        super().__init__()
        self.pad_idx = pad_idx
        self.embed_scale = math.sqrt(embed_dim)
        self.embed_tokens = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_idx)
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

    def forward(self, prev_output_tokens: torch.Tensor, taps: List[Tuple[int, torch.Tensor]],
                encoder_padding_mask: torch.Tensor) -> List[Tuple[int, torch.Tensor]]:
        batch, length = prev_output_tokens.shape
        n_taps = len(taps)
        tokens = prev_output_tokens.repeat(n_taps, 1)                       # (n*B) x L
        memory = torch.cat([states for _, states in taps], dim=1)           # T x (n*B) x C
        memory_padding_mask = encoder_padding_mask.repeat(n_taps, 1)        # (n*B) x T
        x = self.embed_scale * self.embed_tokens(tokens) + self.embed_positions(tokens)
        x = self.dropout(x).transpose(0, 1)                                 # L x (n*B) x D
        causal = torch.triu(x.new_full((length, length), float("-inf")), diagonal=1)
        self_padding_mask = tokens.eq(self.pad_idx)
        for layer in self.layers:
            x, _, _ = layer(x, memory, memory_padding_mask, self_attn_mask=causal,
                            self_attn_padding_mask=self_padding_mask)
        x = self.layer_norm(x).transpose(0, 1)                              # (n*B) x L x D
        logits = torch.matmul(x, self.embed_tokens.weight.t())               # (n*B) x L x V, tied embeddings
        return [(layer, chunk) for (layer, _), chunk in zip(taps, logits.split(batch, dim=0))]
