"""Parallel greedy CTC decoding: argmax per frame, collapse repeats, drop blanks, for a whole batch at once.

This is the only decoder a distilled model needs at inference: no attention decoder, no LM, no search.
"""
from typing import List, NamedTuple

import torch
import torch.nn.functional as F


class GreedyCtcOutput(NamedTuple):
    tokens: List[torch.Tensor]        # per utterance: emitted label ids (LongTensor)
    frames: List[torch.Tensor]        # per utterance: frame index at which each label was emitted
    token_scores: List[torch.Tensor]  # per utterance: log-probability of each emitted label at that frame
    path_scores: torch.Tensor         # B: log-probability of the best frame path (sum over valid frames)


def ctc_greedy_search(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int) -> GreedyCtcOutput:
    """Best-path CTC decoding of a padded batch.

    Args:
        log_probs: ``B x T x V`` frame log-probabilities (or logits: only the argmax matters for the labels;
            the scores are then unnormalised).
        lengths: ``B`` number of valid frames per utterance; frames ``>= lengths[b]`` are padding and ignored.
        blank: index of the CTC blank.

    A label is emitted at frame ``t`` when it is the argmax, is not blank, and differs from the argmax at
    ``t - 1`` (so ``a a _ a`` -> ``a a``). Everything is tensor ops over the whole batch; the per-utterance
    results are views obtained with one ``split``.
    """
    batch, num_frames, _ = log_probs.shape
    best_scores, best = log_probs.max(dim=-1)  # B x T
    valid = torch.arange(num_frames, device=best.device)[None, :] < lengths[:, None].to(best.device)
    previous = F.pad(best, (1, 0), value=blank)[:, :-1]
    emit = valid & (best != blank) & (best != previous)
    counts = emit.sum(dim=1).tolist()
    frame_index = torch.arange(num_frames, device=best.device).expand(batch, num_frames)
    return GreedyCtcOutput(
        tokens=list(torch.split(best[emit], counts)),
        frames=list(torch.split(frame_index[emit], counts)),
        token_scores=list(torch.split(best_scores[emit], counts)),
        path_scores=(best_scores * valid).sum(dim=1),
    )


class CtcDecoder:
    """What every CTC decoder that ``fairseq-generate`` drives (``task.build_generator``) shares.

    ``generate`` runs only what inference needs, the model's ``ctc_emissions`` (encoder + final CTC head; no
    InterCTC heads, no attention decoder), then :meth:`decode`, which returns fairseq's hypothesis format:
    for each utterance a list of dicts with ``tokens``, ``score``, ``positional_scores``, ``alignment``,
    ``timesteps``.
    """

    def __init__(self, tgt_dict, blank: int):
        self.tgt_dict = tgt_dict
        self.blank = blank
        self.eos = tgt_dict.eos()
        self.symbols_to_strip_from_output = {tgt_dict.eos(), tgt_dict.bos(), tgt_dict.pad()}

    @torch.no_grad()  # not inference_mode: fairseq-generate rescales the scores in place
    def generate(self, models, sample, **unused):
        if len(models) != 1:
            raise ValueError("CTC decoding takes one model; pass a single checkpoint to --path")
        log_probs, lengths = models[0].ctc_emissions(**sample["net_input"])
        return self.decode(log_probs, lengths)

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[dict]]:
        """``log_probs``: ``B x T x V``, ``lengths``: ``B`` valid frames -> hypotheses per utterance."""
        raise NotImplementedError


class CtcGreedyDecoder(CtcDecoder):
    """Batched best-path decoding (``--ctc-decoder greedy``, the default): one hypothesis per utterance."""

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[dict]]:
        out = ctc_greedy_search(log_probs, lengths, self.blank)
        return [
            [{"tokens": tokens, "score": score, "positional_scores": token_scores, "alignment": None,
              "timesteps": frames}]
            for tokens, frames, token_scores, score
            in zip(out.tokens, out.frames, out.token_scores, out.path_scores)
        ]
