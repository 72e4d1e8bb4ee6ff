"""``CtcDecodingConfig``: the ``fairseq-generate`` options of the CTC decoders (``--ctc-decoder``, ``--kenlm-model``,
``--lexicon``, ...), mixed into the ``audio_kd`` task config so that the flags stay task options.

The beam size, LM weight and n-best are fairseq-generate's own ``--beam``, ``--lm-weight`` and ``--nbest``
(its generation config), not fields here.
"""
from dataclasses import dataclass, field
from typing import Optional

from fairseq.dataclass import ChoiceEnum, FairseqDataclass

CTC_DECODER_CHOICES = ChoiceEnum(["greedy", "beam", "beam_lm"])


@dataclass
class CtcDecodingConfig(FairseqDataclass):
    ctc_decoder: CTC_DECODER_CHOICES = field(default="greedy", metadata={
        "help": "CTC decoder for fairseq-generate: 'greedy' (batched best path), 'beam' (flashlight lexicon-free "
                "beam search, no LM) or 'beam_lm' (flashlight lexicon beam search with KenLM shallow fusion; "
                "needs --kenlm-model and --lexicon; weight --lm-weight, beam size --beam)"})
    kenlm_model: Optional[str] = field(default=None, metadata={
        "help": "KenLM word n-gram (binary or ARPA, scripts/build_lm.py) for --ctc-decoder beam_lm; not --lm-path, "
                "which fairseq-generate loads as a fairseq neural LM checkpoint"})
    lexicon: Optional[str] = field(default=None, metadata={
        "help": "lexicon for --ctc-decoder beam_lm, one 'WORD W O R D |' spelling per line in the model's units "
                "(scripts/build_lm.py writes it from the LM vocabulary)"})
    word_score: float = field(default=0.0, metadata={
        "help": "beam_lm: score added per word (insertion bonus); tune with scripts/tune_lm_weights.py"})
    beam_threshold: float = field(default=25.0, metadata={
        "help": "beam/beam_lm: drop hypotheses scoring more than this below the best at the same frame"})
    beam_size_token: Optional[int] = field(default=None, metadata={
        "help": "beam/beam_lm: units tried per hypothesis and frame (the most likely ones); default all"})
    unk_score: float = field(default=float("-inf"), metadata={
        "help": "beam_lm: score of a word outside the lexicon (-inf: never produced)"})
    sil_score: float = field(default=0.0, metadata={
        "help": "beam/beam_lm: score added per frame emitting the word boundary '|' as silence"})
    beam_log_add: bool = field(default=False, metadata={
        "help": "beam/beam_lm: sum (instead of max, fairseq's default) the scores of paths merging into one "
                "hypothesis, i.e. CTC prefix beam search"})
    decoding_summary: Optional[str] = field(default=None, metadata={
        "help": "fairseq-generate: write a JSON summary of this decoding to this file (WER, substitutions / "
                "deletions / insertions, decoding time, audio seconds, per-utterance errors; words as "
                "--eval-wer-post-process makes them), the input of scripts/collect_results.py"})
