"""CTC beam search with n-gram LM shallow fusion: flashlight-text's ``LexiconDecoder`` + KenLM.

The baseline the distilled greedy decoder is measured against (``--ctc-decoder beam_lm``). Built as
fairseq's own ``W2lKenLMDecoder`` (examples/speech_recognition/w2l_decoder.py): blank ``<s>``, word
boundary / silence ``|``, lexicon trie with the LM's unigram scores smeared (max) for look-ahead.

What it computes. Hypotheses are sequences of lexicon words spelled by CTC frame paths over the model's units;
a hypothesis ending after word ``w_n`` scores

    sum_t log p_t(path_t) + lm_weight * log P_LM(w_1..w_n) + word_score * n
        + sil_score * #frames emitting ``|`` between words + unk_score * #unknown words

(natural logs; KenLM's log10 probabilities are converted by flashlight). The search runs frame by frame over
each utterance's ``T x V`` emissions with the same ``beam_size`` / ``beam_size_token`` / ``beam_threshold``
pruning as :mod:`fairseq_kd.decoding.beam`; only words of the lexicon can be produced.

:class:`KenLmLexicon` loads and cross-checks the three files that must agree (the model's dictionary, the
lexicon, the KenLM model) in Python, so a mismatch is a :class:`~fairseq_kd.errors.DataError` naming
the file and the fix rather than a crash or silent garbage inside the C++ decoder. Build the LM and lexicon
with ``scripts/build_lm.py``; tune ``lm_weight`` / ``word_score`` on dev with ``scripts/tune_lm_weights.py``.
"""
import logging
import os
from typing import List, Optional

from ..data.text import WORD_BOUNDARY
from ..errors import DataError
from .base import LM_INSTALL_HINT
from .beam import FlashlightCtcDecoder
from .lexicon import BUILD_HINT, read_lexicon

try:
    import kenlm
    from flashlight.lib.text.decoder import CriterionType, LexiconDecoder, LexiconDecoderOptions, SmearingMode, Trie
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary as WordDictionary
except ImportError as error:
    raise ImportError(f"CTC beam search with an n-gram LM (--ctc-decoder beam_lm) needs flashlight-text and kenlm: "
                      f"{LM_INSTALL_HINT}") from error

logger = logging.getLogger(__name__)

UNK_WORD = "<unk>"


class KenLmLexicon:
    """A KenLM word n-gram, a lexicon and the model's target dictionary, checked against each other.

    Attributes used by :class:`CtcBeamLmDecoder`: ``word_dict`` (flashlight word dictionary: the lexicon's
    words then ``<unk>``), ``lm`` (flashlight KenLM over ``word_dict``), ``trie`` (lexicon spellings in
    target-dictionary ids, smeared with unigram LM scores), ``silence``, ``unk_word``.

    Checks (each a DataError naming the file and how to fix it): the LM file exists and KenLM can read it
    (ARPA or ``build_binary`` output); the lexicon passes :func:`~fairseq_kd.decoding.lexicon.read_lexicon`;
    the target dictionary has the word boundary ``|``; more than ``max_unknown_fraction`` of the lexicon's
    words unknown to the LM means LM and lexicon were built for different vocabularies (a case mismatch, a
    different text); a smaller fraction is logged as a warning.
    """

    def __init__(self, tgt_dict, lexicon_path: str, kenlm_path: str, max_unknown_fraction: float = 0.5):
        if WORD_BOUNDARY not in tgt_dict.indices:
            raise DataError(f"lexicon decoding needs the word-boundary unit '{WORD_BOUNDARY}' in the model's "
                            f"dictionary (letter labels, .ltr); this model's units have none: use --ctc-decoder "
                            f"greedy or beam")
        self.silence = tgt_dict.index(WORD_BOUNDARY)
        lexicon = read_lexicon(lexicon_path, tgt_dict)
        lm_vocabulary = _open_kenlm(kenlm_path)
        unknown = [word for word in lexicon if word not in lm_vocabulary]
        if len(unknown) > max_unknown_fraction * len(lexicon):
            case_hint = ""
            sample = unknown[:100]
            other_case = sum(word.lower() in lm_vocabulary or word.upper() in lm_vocabulary for word in sample)
            if other_case > len(sample) / 2:
                case_hint = " (they are in the LM in another letter case: normalise both with the same text rules)"
            raise DataError(f"{len(unknown)} of the {len(lexicon)} words of lexicon {lexicon_path} are not in the "
                            f"vocabulary of LM {kenlm_path}{case_hint}, e.g. {unknown[:5]}: the LM was built for "
                            f"another vocabulary; {BUILD_HINT}")
        if unknown:
            logger.warning(f"{len(unknown)} of {len(lexicon)} lexicon words are not in LM {kenlm_path} and get its "
                           f"<unk> probability, e.g. {unknown[:5]}")

        self.word_dict = WordDictionary()
        for word in lexicon:
            self.word_dict.add_entry(word)
        if UNK_WORD not in lexicon:
            self.word_dict.add_entry(UNK_WORD)
        self.unk_word = self.word_dict.get_index(UNK_WORD)
        self.lm = KenLM(kenlm_path, self.word_dict)
        self.trie = Trie(len(tgt_dict), self.silence)
        start = self.lm.start(False)
        for word, spellings in lexicon.items():
            word_id = self.word_dict.get_index(word)
            _, unigram_score = self.lm.score(start, word_id)
            for spelling in spellings:
                self.trie.insert(spelling, word_id, unigram_score)
        self.trie.smear(SmearingMode.MAX)
        self.num_words = len(lexicon)


def _open_kenlm(path: str):
    """Open ``path`` with the kenlm module (a readable-file check and its vocabulary); DataError otherwise."""
    if not os.path.isfile(path):
        raise DataError(f"KenLM model {path} not found: {BUILD_HINT}")
    config = kenlm.Config()
    config.load_method = kenlm.LoadMethod.LAZY  # a binary LM is memory-mapped, not read, for this check
    try:
        return kenlm.Model(path, config)
    except OSError as error:
        raise DataError(f"{path} is not a KenLM model that KenLM can read (ARPA text or build_binary output; "
                        f"a fairseq checkpoint is not one): {error}. {BUILD_HINT}") from None


class CtcBeamLmDecoder(FlashlightCtcDecoder):
    """Lexicon-constrained CTC beam search with KenLM shallow fusion (``--ctc-decoder beam_lm``).

    ``lm_weight`` 0 keeps the lexicon constraint and word score without the LM. Building one is cheap once
    a :class:`KenLmLexicon` is loaded, so a weight grid reuses the same ``resources``.
    """

    def __init__(self, tgt_dict, blank: int, resources: KenLmLexicon, beam_size: int, lm_weight: float,
                 word_score: float = 0.0, beam_size_token: Optional[int] = None, beam_threshold: float = 25.0,
                 unk_score: float = float("-inf"), sil_score: float = 0.0, log_add: bool = False, nbest: int = 1):
        super().__init__(tgt_dict, blank, nbest)
        self.resources = resources
        options = LexiconDecoderOptions(
            beam_size=beam_size, beam_size_token=beam_size_token or len(tgt_dict), beam_threshold=beam_threshold,
            lm_weight=lm_weight, word_score=word_score, unk_score=unk_score, sil_score=sil_score, log_add=log_add,
            criterion_type=CriterionType.CTC)
        self.decoder = LexiconDecoder(options, resources.trie, resources.lm, resources.silence, blank,
                                      resources.unk_word, [], False)

    def _words(self, word_ids) -> List[str]:
        return [self.resources.word_dict.get_entry(w) for w in word_ids if w >= 0]
