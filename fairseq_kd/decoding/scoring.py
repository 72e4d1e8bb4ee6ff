"""Word (and unit) errors, counted one way everywhere: the criterion's validation WER, the LM tuning and decoding
benchmarks, the decoding summaries and the results table.

Errors are the Levenshtein alignment of hypothesis against reference (rapidfuzz, the alignment jiwer uses):
``substitutions + deletions + insertions`` is the minimum edit distance, and ``WER = 100 * errors / reference
words`` summed over utterances (fairseq's ``wer`` scorer: errors and words summed first, one division).
Transcripts are split on whitespace.
"""
from typing import Iterable, NamedTuple, Sequence

from rapidfuzz.distance import Levenshtein


class WordErrors(NamedTuple):
    substitutions: int
    deletions: int
    insertions: int
    words: int  # reference words

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        return 100.0 * self.errors / max(self.words, 1)


def edit_errors(reference: Sequence, hypothesis: Sequence) -> WordErrors:
    """Substitutions, deletions and insertions turning ``reference`` into ``hypothesis`` (any hashable units:
    words, label ids), and the reference length."""
    counts = {"replace": 0, "delete": 0, "insert": 0}
    for op in Levenshtein.editops(reference, hypothesis):
        counts[op.tag] += 1
    return WordErrors(counts["replace"], counts["delete"], counts["insert"], len(reference))


def sum_errors(errors: Iterable[WordErrors]) -> WordErrors:
    return WordErrors(*(sum(column) for column in zip(WordErrors(0, 0, 0, 0), *errors)))


def word_errors(hypotheses: Sequence[str], references: Sequence[str]) -> WordErrors:
    """Word errors of transcripts, summed over utterances."""
    return sum_errors(edit_errors(r.split(), h.split()) for h, r in zip(hypotheses, references))
