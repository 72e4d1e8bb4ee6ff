"""One factory for the CTC decoders: :func:`build_ctc_decoder` imports a backend only when it is chosen.

``greedy`` needs nothing beyond torch; ``beam`` imports flashlight-text and ``beam_lm`` flashlight-text and
KenLM (the optional extra ``lm`` of setup.py), so that a plugin installed without them trains and decodes
greedily, and asking for beam search without them fails with the install command.
"""
import logging

from .base import ctc_blank_index
from .config import CtcDecodingConfig
from .greedy import CtcGreedyDecoder

logger = logging.getLogger(__name__)


def build_ctc_decoder(cfg: CtcDecodingConfig, tgt_dict, generation=None):
    """The decoder named by ``cfg.ctc_decoder`` over ``tgt_dict``'s units.

    ``generation`` is fairseq-generate's generation config: its ``beam``, ``lm_weight`` and ``nbest`` (5, 0
    and 1 without it) set the beam size, the LM weight and the hypotheses returned per utterance.
    """
    blank = ctc_blank_index(tgt_dict)
    if cfg.ctc_decoder == "greedy":
        return CtcGreedyDecoder(tgt_dict, blank)
    search = dict(beam_size=getattr(generation, "beam", 5), beam_size_token=cfg.beam_size_token,
                  beam_threshold=cfg.beam_threshold, sil_score=cfg.sil_score, log_add=cfg.beam_log_add,
                  nbest=getattr(generation, "nbest", 1))
    if cfg.ctc_decoder == "beam":
        from .beam import CtcBeamDecoder

        return CtcBeamDecoder(tgt_dict, blank, **search)
    if cfg.ctc_decoder != "beam_lm":
        raise ValueError(f"--ctc-decoder {cfg.ctc_decoder}: expected greedy, beam or beam_lm")
    if cfg.kenlm_model is None or cfg.lexicon is None:
        raise ValueError("--ctc-decoder beam_lm needs --kenlm-model and --lexicon (scripts/build_lm.py makes "
                         "both)")
    from .beam_lm import CtcBeamLmDecoder, KenLmLexicon

    resources = KenLmLexicon(tgt_dict, cfg.lexicon, cfg.kenlm_model)
    lm_weight = getattr(generation, "lm_weight", 0.0)
    logger.info(f"CTC beam search + KenLM {cfg.kenlm_model} ({resources.num_words} lexicon words): "
                f"beam {search['beam_size']}, lm_weight {lm_weight}, word_score {cfg.word_score}")
    return CtcBeamLmDecoder(tgt_dict, blank, resources, lm_weight=lm_weight, word_score=cfg.word_score,
                            unk_score=cfg.unk_score, **search)

