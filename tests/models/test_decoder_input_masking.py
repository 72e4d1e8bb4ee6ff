"""Decoder input masking (model.aed_input_mask_prob) and the non-autoregressive decoder
(model.aed_non_autoregressive): what is masked, when, and the attention pattern."""
import warnings

import pytest
import torch

from fairseq_kd.models.aed_decoder import SharedAttentionDecoder

V, PAD, CLS, MASK, UNK = 40, 0, 1, 2, 3


def decoder(**options):
    torch.manual_seed(0)
    return SharedAttentionDecoder(vocab_size=V, pad_idx=PAD, encoder_dim=8, embed_dim=8, ffn_embed_dim=16,
                                  attention_heads=2, layers=2, dropout=0.0, unk_idx=UNK, mask_idx=MASK, **options)


def inputs(batch=64, length=30):
    torch.manual_seed(1)
    tokens = torch.randint(4, V, (batch, length))
    tokens[:, 0] = CLS
    lengths = torch.randint(2, length + 1, (batch,))
    tokens[torch.arange(length)[None, :] >= lengths[:, None]] = PAD
    return tokens


def test_masking_replaces_the_expected_share_and_never_pad_or_the_start_symbol():
    dec = decoder(input_mask_prob=0.3).train()
    tokens = inputs()
    masked = dec.mask_inputs(tokens)
    maskable = tokens.ne(PAD)
    maskable[:, 0] = False
    share = masked[maskable].eq(MASK).float().mean().item()
    n = int(maskable.sum())
    assert abs(share - 0.3) < 4 * (0.3 * 0.7 / n) ** 0.5, (share, n)
    assert torch.equal(masked[~maskable], tokens[~maskable])  # [PAD] and [CLS] untouched
    assert torch.equal(masked[maskable & masked.ne(MASK)], tokens[maskable & masked.ne(MASK)])


def test_masking_is_training_only_unless_non_autoregressive():
    tokens = inputs()
    assert torch.equal(decoder(input_mask_prob=0.5).eval().mask_inputs(tokens), tokens)
    for mode in ("train", "eval"):
        dec = decoder(non_autoregressive=True)
        masked = getattr(dec, mode)().mask_inputs(tokens)
        assert masked[:, 1:][tokens[:, 1:].ne(PAD)].eq(MASK).all()
        assert torch.equal(masked[:, 0], tokens[:, 0]) and torch.equal(masked.eq(PAD), tokens.eq(PAD))


def self_attention_masks(dec, tokens, memory, memory_padding):
    """The ``self_attn_mask`` every decoder layer receives in one forward pass."""
    masks = []
    for layer in dec.layers:
        layer.register_forward_pre_hook(lambda module, args, kwargs: masks.append(kwargs.get("self_attn_mask")),
                                        with_kwargs=True)
    dec(tokens, [(1, memory)], memory_padding)
    return masks


def test_non_autoregressive_decoder_has_no_causal_mask():
    torch.manual_seed(2)
    memory, memory_padding = torch.randn(7, 2, 8), torch.zeros(2, 7, dtype=torch.bool)
    tokens = torch.tensor([[CLS, 5, 6, 7], [CLS, 8, 9, PAD]])
    causal = self_attention_masks(decoder().eval(), tokens, memory, memory_padding)
    above = torch.ones(4, 4, dtype=torch.bool).triu(1)
    # boolean like the padding mask (True = may not attend): no mismatched-mask deprecation warning from torch
    assert len(causal) == 2 and all(m.dtype == torch.bool and torch.equal(m, above) for m in causal)
    assert self_attention_masks(decoder(non_autoregressive=True).eval(), tokens, memory, memory_padding) == [None, None]


def test_teacher_forcing_decoder_is_causal():
    """Changing the last input token leaves the earlier outputs of the autoregressive decoder as they were; padded
    inputs (the boolean padding mask beside the causal mask) raise no warning."""
    torch.manual_seed(3)
    memory, memory_padding = torch.randn(7, 2, 8), torch.zeros(2, 7, dtype=torch.bool)
    tokens = torch.tensor([[CLS, 5, 6, 7], [CLS, 8, 9, 10]])
    changed = tokens.clone()
    changed[:, -1] = 11
    tokens[1, -1] = changed[1, -1] = PAD
    dec = decoder().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (_, a), = dec(tokens, [(1, memory)], memory_padding)
    (_, b), = dec(changed, [(1, memory)], memory_padding)
    assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6) and not torch.allclose(a[0, -1], b[0, -1])


def test_masking_needs_the_mask_id_and_a_probability():
    with pytest.raises(ValueError, match="MASK"):
        SharedAttentionDecoder(vocab_size=V, pad_idx=PAD, encoder_dim=8, embed_dim=8, ffn_embed_dim=16,
                               attention_heads=2, layers=1, dropout=0.0, input_mask_prob=0.2)
    with pytest.raises(ValueError, match="aed_input_mask_prob"):
        decoder(input_mask_prob=1.5)
