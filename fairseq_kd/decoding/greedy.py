"""Parallel greedy CTC decoding: argmax per frame, collapse repeats, drop blanks, for a whole batch at once.

This is the only decoder a distilled model needs at inference: no attention decoder, no LM, no search.
"""
from typing import List, NamedTuple

import torch
import torch.nn.functional as F

from .base import CtcDecoder


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
