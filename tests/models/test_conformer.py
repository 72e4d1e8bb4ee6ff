"""Conformer encoder: subsampled lengths, per-block states, padding masks, no padding leakage."""
import pytest
import torch

from fairseq_kd.models.conformer import ConformerEncoder, Conv2dSubsampling


def tiny_encoder(layers=3):
    torch.manual_seed(0)
    return ConformerEncoder(input_dim=20, embed_dim=16, ffn_embed_dim=32, attention_heads=2, layers=layers,
                            depthwise_conv_kernel_size=5, subsampling_channels=8, dropout=0.0).eval()


@pytest.mark.parametrize("frames", [7, 8, 10, 11, 100, 101, 163])
def test_subsampled_length_matches_convolution_output(frames):
    sub = Conv2dSubsampling(20, 4, 16)
    x, lengths = sub(torch.randn(1, frames, 20), torch.tensor([frames]))
    assert x.shape[0] == lengths.item() == ((frames - 1) // 2 - 1) // 2
    assert x.shape[1:] == (1, 16)


def test_every_block_state_and_mask_layout():
    enc = tiny_encoder(layers=3)
    lengths = torch.tensor([120, 80, 47])
    feats = torch.randn(3, 120, 20)
    mask = torch.arange(120)[None] >= lengths[:, None]
    states, pad = enc(feats, mask)
    t_out = ((lengths - 1) // 2 - 1) // 2
    assert len(states) == 3
    for s in states:
        assert s.shape == (int(t_out.max()), 3, 16)  # T x B x C
    assert pad.shape == (3, int(t_out.max()))  # B x T
    assert ((~pad).sum(1) == t_out).all()


def test_batched_forward_equals_single_utterance_forward():
    """Valid frames must not depend on how much padding the batch adds (masked conv, valid subsampling)."""
    enc = tiny_encoder()
    lengths = [150, 61, 98]
    utts = [torch.randn(n, 20) for n in lengths]
    feats = torch.zeros(3, 150, 20)
    for i, u in enumerate(utts):
        feats[i, : len(u)] = u
    mask = torch.arange(150)[None] >= torch.tensor(lengths)[:, None]
    with torch.no_grad():
        batched, pad = enc(feats, mask)
        for i, u in enumerate(utts):
            single, _ = enc(u[None], None)
            n = single[-1].shape[0]
            assert (~pad[i]).sum() == n
            for layer in range(3):
                torch.testing.assert_close(batched[layer][:n, i], single[layer][:, 0], atol=1e-5, rtol=1e-4)
