"""Conformer encoder on filterbank features that exposes the hidden states of every block.

Layout: features ``B x T x F`` -> :class:`Conv2dSubsampling` (4x, ``T' = ((T - 1) // 2 - 1) // 2``) ->
scaled embedding + relative positions -> ``N`` Conformer blocks (fairseq's ``ConformerEncoderLayer``, ESPnet
relative-position attention) -> block outputs ``T' x B x C``, each ending in the block's final LayerNorm.

Padding never leaks into valid frames: the subsampling uses valid (unpadded) convolutions, attention masks
padded keys, and :class:`MaskedConformerLayer` zeroes padded frames before the depthwise convolution (as
ESPnet and WeNet do; fairseq's layer does not). In eval mode a batched forward therefore gives the same
valid-frame outputs as one utterance at a time.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
from fairseq.modules import RelPositionalEncoding
from fairseq.modules.conformer_layer import ConformerEncoderLayer, ConvolutionModule


class Conv2dSubsampling(nn.Module):
    """Two 3x3 stride-2 convolutions without padding (ESPnet ``Conv2dSubsampling``), then a projection.

    ``B x T x F`` -> ``T' x B x D`` with ``T' = ((T - 1) // 2 - 1) // 2``: output frame ``t`` sees input
    frames ``4t .. 4t + 6`` only, so valid output frames never depend on padding.
    """

    def __init__(self, input_dim: int, channels: int, output_dim: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, 2), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, 2), nn.ReLU())
        self.out = nn.Linear(channels * (((input_dim - 1) // 2 - 1) // 2), output_dim)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(torch.div(lengths - 1, 2, rounding_mode="floor") - 1, 2, rounding_mode="floor").clamp(min=0)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(features.unsqueeze(1))  # B x C x T' x F'
        batch, channels, frames, freq = x.shape
        x = self.out(x.permute(2, 0, 1, 3).reshape(frames, batch, channels * freq))
        return x, self.output_lengths(lengths)


class MaskedConvolutionModule(ConvolutionModule):
    """fairseq's Conformer convolution module, with padded frames zeroed before the depthwise convolution."""

    def forward(self, x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``x``: ``B x T x C``; ``padding_mask``: ``B x T``, True on padding. Returns ``B x T x C``."""
        x = self.glu(self.pointwise_conv1(self.layer_norm(x).transpose(1, 2)))  # B x C x T
        if padding_mask is not None:
            x = x.masked_fill(padding_mask.unsqueeze(1), 0.0)
        x = self.activation(self.batch_norm(self.depthwise_conv(x)))
        return self.dropout(self.pointwise_conv2(x)).transpose(1, 2)


class MaskedConformerLayer(ConformerEncoderLayer):
    """fairseq's ``ConformerEncoderLayer`` (macaron FFN, MHSA, conv, FFN, LayerNorm) with a masked conv."""

    def __init__(self, embed_dim, ffn_embed_dim, attention_heads, dropout, depthwise_conv_kernel_size):
        super().__init__(embed_dim=embed_dim, ffn_embed_dim=ffn_embed_dim, attention_heads=attention_heads,
                         dropout=dropout, use_fp16=False, depthwise_conv_kernel_size=depthwise_conv_kernel_size,
                         attn_type="espnet", pos_enc_type="rel_pos")
        self.conv_module = MaskedConvolutionModule(embed_dim=embed_dim, channels=embed_dim,
                                                   depthwise_kernel_size=depthwise_conv_kernel_size, dropout=dropout)

    def forward(self, x, encoder_padding_mask, position_emb=None):
        """``x``: ``T x B x C``; ``encoder_padding_mask``: ``B x T``; returns ``T x B x C``."""
        x = 0.5 * self.ffn1(x) + x
        residual = x
        x = self.self_attn_layer_norm(x)
        x, _ = self.self_attn(query=x, key=x, value=x, pos_emb=position_emb,
                              key_padding_mask=encoder_padding_mask, need_weights=False)
        x = self.self_attn_dropout(x) + residual
        x = x + self.conv_module(x.transpose(0, 1), encoder_padding_mask).transpose(0, 1)
        x = 0.5 * self.ffn2(x) + x
        return self.final_layer_norm(x)


class ConformerEncoder(nn.Module):
    """Filterbanks -> per-block hidden states.

    ``forward(features B x T x F, padding_mask B x T)`` returns ``(states, padding_mask)``: ``states[l - 1]``
    is the output of block ``l`` (1-based, as InterCTC / AED tap indices are), ``T' x B x C``; the returned
    padding mask (``B x T'``, True on padding) is rebuilt from the subsampled lengths.
    """

    def __init__(self, input_dim: int, embed_dim: int, ffn_embed_dim: int, attention_heads: int, layers: int,
                 depthwise_conv_kernel_size: int, subsampling_channels: int, dropout: float,
                 max_source_positions: int = 6000):
        super().__init__()
        self.embed_dim = embed_dim
        self.subsampling = Conv2dSubsampling(input_dim, subsampling_channels, embed_dim)
        self.embed_positions = RelPositionalEncoding(max_source_positions, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            MaskedConformerLayer(embed_dim, ffn_embed_dim, attention_heads, dropout, depthwise_conv_kernel_size)
            for _ in range(layers))

    def forward(self, features: torch.Tensor, padding_mask: Optional[torch.Tensor]):
        lengths = (features.new_full(features.shape[:2], 1, dtype=torch.long) if padding_mask is None
                   else (~padding_mask).long()).sum(dim=1)
        x, lengths = self.subsampling(features, lengths)
        padding_mask = torch.arange(x.size(0), device=x.device)[None, :] >= lengths[:, None]
        x = self.dropout(x * math.sqrt(self.embed_dim))
        positions = self.embed_positions(x)
        states: List[torch.Tensor] = []
        for layer in self.layers:
            x = layer(x, padding_mask, positions)
            states.append(x)
        return states, padding_mask
