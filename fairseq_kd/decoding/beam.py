"""CTC beam search without a language model: flashlight-text's lexicon-free decoder with a zero LM.

This is the search machinery of the shallow-fusion baseline (:mod:`fairseq_kd.decoding.beam_lm`) with the
LM taken out, so that search cost and search effects can be measured on their own.

What it computes. A hypothesis is a label prefix; its score is the best (``log_add=False``, fairseq's
setting) or the log-sum (``log_add=True``, CTC prefix beam search) over the frame paths that collapse to it,
``score = sum_t log p_t(path_t) + sil_score * #frames emitting the word boundary``. Each frame extends every
hypothesis by the ``beam_size_token`` most likely units, drops candidates more than ``beam_threshold``
below the best and keeps the ``beam_size`` best. With the max rule the best prefix is the best frame path,
i.e. the greedy result (:mod:`fairseq_kd.decoding.greedy`), at every beam size; with ``log_add`` wider beams
can find a prefix whose paths together outweigh the best single path. At beam size 1 both equal greedy.

Conventions follow fairseq's ``W2lKenLMDecoder`` (examples/speech_recognition/w2l_decoder.py): the CTC
blank is ``<s>`` (bos, ``audio_finetuning``'s ``blank_symbol``), the word boundary / silence unit is ``|``.
"""
from typing import List, Optional

import torch

from ..data.text import WORD_BOUNDARY
from .base import LM_INSTALL_HINT, CtcDecoder

try:
    from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions, ZeroLM
except ImportError as error:
    raise ImportError(f"CTC beam search (--ctc-decoder beam / beam_lm) needs flashlight-text: {LM_INSTALL_HINT}") \
        from error


class FlashlightCtcDecoder(CtcDecoder):
    """What the flashlight-based decoders share: emissions, the per-utterance C++ search, fairseq hypotheses.

    Subclasses set ``self.decoder`` (a flashlight decoder whose ``decode(pointer, T, V)`` reads a
    row-major ``T x V`` float32 matrix) and may override :meth:`_words`.
    """

    decoder = None

    def __init__(self, tgt_dict, blank: int, nbest: int = 1):
        super().__init__(tgt_dict, blank)
        self.nbest = nbest
        self.silence = tgt_dict.index(WORD_BOUNDARY) if WORD_BOUNDARY in tgt_dict.indices else blank

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[dict]]:
        """Search every utterance of a padded batch.

        Args:
            log_probs: ``B x T x V`` CTC log-probabilities (any device/dtype; searched as float32 on CPU).
            lengths: ``B`` valid frames per utterance; padding frames are never read.

        Returns, per utterance, the ``nbest`` best hypotheses in fairseq's format: ``tokens`` (unit ids,
        repeats collapsed, blanks removed), ``score`` (the decoder's total score: acoustic + weighted LM +
        word/silence scores, natural log), ``positional_scores`` (log-probability of each emitted unit at the
        frame where it starts), ``timesteps`` (those frames), ``alignment`` None, ``words``.
        """
        if log_probs.dim() != 3 or log_probs.size(-1) != len(self.tgt_dict):
            raise ValueError(f"emissions must be B x T x V with V = {len(self.tgt_dict)} (the target dictionary), "
                             f"got {tuple(log_probs.shape)}")
        emissions = log_probs.detach().float().cpu().contiguous()
        batch, _, vocab = emissions.shape
        hypotheses = []
        for b, num_frames in enumerate(lengths.tolist()):
            if num_frames == 0:
                hypotheses.append([self._hypothesis(emissions[b, :0], [], 0.0, [])])
                continue
            pointer = emissions.data_ptr() + b * emissions.stride(0) * emissions.element_size()
            results = self.decoder.decode(pointer, num_frames, vocab)[: self.nbest]
            # result.tokens holds one unit per frame, framed by a start and an end marker: T + 2 entries
            hypotheses.append([self._hypothesis(emissions[b, :num_frames], r.tokens[1: num_frames + 1], r.score,
                                                self._words(r.words)) for r in results])
        return hypotheses

    def _words(self, word_ids) -> Optional[List[str]]:
        return None

    def _hypothesis(self, emissions: torch.Tensor, frame_units: List[int], score: float, words):
        """Collapse a frame path (``T`` units) into fairseq's hypothesis dict, exactly as greedy does."""
        path = torch.tensor(frame_units, dtype=torch.long)
        previous = torch.cat([path.new_full((1,), self.blank), path[:-1]])
        frames = ((path != self.blank) & (path != previous)).nonzero(as_tuple=True)[0]
        tokens = path[frames]
        return {"tokens": tokens, "score": torch.tensor(score), "positional_scores": emissions[frames, tokens],
                "alignment": None, "timesteps": frames, "words": words}


class CtcBeamDecoder(FlashlightCtcDecoder):
    """Lexicon-free CTC beam search without LM (``--ctc-decoder beam``); see the module docstring."""

    def __init__(self, tgt_dict, blank: int, beam_size: int, beam_size_token: Optional[int] = None,
                 beam_threshold: float = 25.0, sil_score: float = 0.0, log_add: bool = False, nbest: int = 1):
        super().__init__(tgt_dict, blank, nbest)
        options = LexiconFreeDecoderOptions(
            beam_size=beam_size, beam_size_token=beam_size_token or len(tgt_dict), beam_threshold=beam_threshold,
            lm_weight=0.0, sil_score=sil_score, log_add=log_add, criterion_type=CriterionType.CTC)
        self.decoder = LexiconFreeDecoder(options, ZeroLM(), self.silence, blank, [])
