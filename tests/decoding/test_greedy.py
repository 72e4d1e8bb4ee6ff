"""Greedy CTC decoding: collapse/blank rules, padding, batch = one-by-one, fairseq hypothesis format."""
import torch
from fairseq.data import Dictionary

from fairseq_kd.decoding.greedy import CtcGreedyDecoder, ctc_greedy_search

BLANK = 0


def one_hot_log_probs(paths, vocab=6, length=None):
    """B x T x V log-probs whose argmax follows ``paths`` (padded with blank up to ``length``)."""
    length = length or max(len(p) for p in paths)
    lp = torch.full((len(paths), length, vocab), -10.0)
    for b, path in enumerate(paths):
        for t in range(length):
            lp[b, t, path[t] if t < len(path) else BLANK] = -0.1
    return lp


def test_collapse_repeats_then_drop_blanks():
    out = ctc_greedy_search(one_hot_log_probs([[1, 1, 0, 1, 2, 2, 0, 0, 3]]), torch.tensor([9]), BLANK)
    assert out.tokens[0].tolist() == [1, 1, 2, 3]
    assert out.frames[0].tolist() == [0, 3, 4, 8]
    assert torch.allclose(out.token_scores[0], torch.full((4,), -0.1))
    assert torch.allclose(out.path_scores, torch.tensor([-0.9]))


def test_padded_frames_are_ignored():
    lp = one_hot_log_probs([[1, 2, 3, 4], [1, 2]], length=4)
    lp[1, 2:, 5] = 0.0  # garbage in the padding of utterance 2 must not be decoded
    out = ctc_greedy_search(lp, torch.tensor([4, 2]), BLANK)
    assert [t.tolist() for t in out.tokens] == [[1, 2, 3, 4], [1, 2]]
    assert torch.allclose(out.path_scores, torch.tensor([-0.4, -0.2]))


def test_empty_hypothesis_and_all_blank():
    out = ctc_greedy_search(one_hot_log_probs([[0, 0, 0], [2, 2, 2]]), torch.tensor([3, 3]), BLANK)
    assert out.tokens[0].numel() == 0 and out.tokens[1].tolist() == [2]


def test_batch_equals_one_by_one():
    torch.manual_seed(0)
    lp = torch.randn(5, 30, 8).log_softmax(-1)
    lengths = torch.tensor([30, 12, 25, 1, 17])
    batched = ctc_greedy_search(lp, lengths, BLANK)
    for b in range(5):
        single = ctc_greedy_search(lp[b: b + 1, : lengths[b]], lengths[b: b + 1], BLANK)
        assert batched.tokens[b].tolist() == single.tokens[0].tolist()
        assert torch.allclose(batched.path_scores[b], single.path_scores[0])


class _EmissionModel:
    def __init__(self, log_probs, lengths):
        self.log_probs, self.lengths = log_probs, lengths

    def ctc_emissions(self, source, padding_mask=None):
        return self.log_probs, self.lengths


def test_generator_returns_fairseq_hypotheses():
    d = Dictionary()  # <s>=0 (the CTC blank, as in audio_finetuning), <pad>, </s>, <unk>
    for sym in "AB|":
        d.add_symbol(sym)
    a, b = d.index("A"), d.index("B")
    lp = one_hot_log_probs([[a, a, 0, b], [b]], vocab=len(d), length=4)
    gen = CtcGreedyDecoder(d, blank=d.bos())
    hypos = gen.generate([_EmissionModel(lp, torch.tensor([4, 1]))], {"net_input": {"source": None}})
    assert len(hypos) == 2 and all(len(h) == 1 for h in hypos)
    assert d.string(hypos[0][0]["tokens"]) == "A B" and d.string(hypos[1][0]["tokens"]) == "B"
    for h in hypos:
        assert set(h[0]) >= {"tokens", "score", "positional_scores", "alignment"}
        assert h[0]["positional_scores"].shape == h[0]["tokens"].shape
