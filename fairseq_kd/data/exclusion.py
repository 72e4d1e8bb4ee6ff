"""Keeping dev/test sentences out of the text that trains the teacher and the n-gram LM.

A line of training text must be *excluded* when it equals a dev/test transcript or contains one of at least
``k = contained_min_words`` words, word-aligned (``" sentence "`` is a substring of ``" line "``), after both went
through :func:`fairseq_kd.data.text.normalize_transcript`. Two independent algorithms look for them, each in one
pass over the text that holds one line at a time: time linear in the text and, but for the few sentences that
share an anchor with a line, independent of the number of excluded sentences; memory proportional to the excluded
sentences, never to the text.

* The filter, :class:`ExcludedSentences`, while a text is normalised: a hash set of the sentences (whole lines)
  and a dict from the *first* ``k`` words of every sentence of ``k`` or more words to the sentences that start
  with them, looked up at each word position of a line that shares a ``k``-gram with its keys; a candidate is
  compared word by word.
* The check, :func:`remaining_excluded`, of a finished text: a dict from the *last* ``k`` words of every sentence
  of ``k`` or more words to the sentences that end with them, whose keys the line's word ``k``-grams are
  intersected with; a candidate is verified by a substring search of ``" sentence "`` in ``" line "`` (a whole
  line too); a hash set of the shorter sentences for whole lines.

:class:`TextExclusion` is the whole sequence (read, filter while normalising, check the result) for a text that
trains something (the n-gram LM of ``scripts/build_lm.py``; teacher fine-tuning). Used by
``scripts/build_lm.py``, ``scripts/finetune_teacher.py`` and the recipe's ``scripts/check_excluded.py``;
``scripts/benchmark_exclusion.py`` measures both on a large text.
"""
import os
from collections import defaultdict
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from ..errors import DataError
from .text import normalize_transcript

CONTAINED_MIN_WORDS = 4


def read_excluded(paths: Iterable[str]) -> Dict[str, str]:
    """Normalised sentence -> ``file:line`` of its first occurrence in the excluded transcript files."""
    sentences = {}
    for path in paths:
        if not os.path.isfile(path):
            raise DataError(f"excluded transcript file {path} not found")
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                sentence = normalize_transcript(line)
                if sentence:
                    sentences.setdefault(sentence, f"{path}:{line_no}")
    return sentences


class ExcludedSentences:
    """The filter: finds a line equal to an excluded sentence (a hash set), or containing one of at least ``k =
    contained_min_words`` words, word-aligned, through an index of the excluded sentences' first ``k`` words.

    A line of ``n`` words costs one set look-up and one C-level pass over its ``n - k + 1`` word ``k``-grams to
    find whether any is a key of the index; only a line that shares one is searched position by position, a
    candidate compared word by word. Linear in the line, whatever the number of sentences.
    """

    def __init__(self, sentences: Iterable[str], contained_min_words: int = CONTAINED_MIN_WORDS):
        self.sentences = set(sentences)
        self.prefix_words = contained_min_words
        self.by_prefix = defaultdict(list)
        for sentence in self.sentences:
            words = sentence.split()
            if len(words) >= contained_min_words:
                self.by_prefix[tuple(words[:contained_min_words])].append(words)

    def find(self, line: str) -> Optional[str]:
        """The excluded sentence ``line`` is or contains, or None."""
        if line in self.sentences:
            return line
        words = line.split()
        k = self.prefix_words
        if self.by_prefix.keys().isdisjoint(zip(*[words[i:] for i in range(k)])):
            return None
        for start in range(len(words) - k + 1):
            for candidate in self.by_prefix.get(tuple(words[start:start + k]), ()):
                if words[start:start + len(candidate)] == candidate:
                    return " ".join(candidate)
        return None


def normalised_lines_without(raw_lines: Iterable[str], excluded: ExcludedSentences, counts: dict) -> Iterator[str]:
    """Normalise ``raw_lines`` (:func:`normalize_transcript`) and yield those that are speakable and not
    excluded; ``counts`` gets ``input_lines``, ``rejected_by_normaliser`` and ``excluded_lines``."""
    for key in ("input_lines", "rejected_by_normaliser", "excluded_lines"):
        counts.setdefault(key, 0)
    for line in map(normalize_transcript, raw_lines):
        counts["input_lines"] += 1
        if line is None:
            counts["rejected_by_normaliser"] += 1
        elif excluded.find(line) is not None:
            counts["excluded_lines"] += 1
        else:
            yield line


def remaining_excluded(lines: Iterable[str], sentences: Iterable[str],
                       contained_min_words: int = CONTAINED_MIN_WORDS) -> Dict[str, int]:
    """The check, independent of :class:`ExcludedSentences`: every excluded sentence that is a line of ``lines``
    (normalised text, a trailing newline allowed) or, with at least ``k = contained_min_words`` words, inside
    one, mapped to the 1-based number of the first such line; in sentence order.

    One pass over ``lines``. A sentence ``s`` of ``m >= k`` words is (inside) a line of words ``w_1 .. w_n`` iff
    ``" s "`` is a substring of ``" w_1 .. w_n "``; then the line's ``k``-gram that ends where ``s`` ends equals the
    last ``k`` words of ``s``. So the line's ``n - k + 1`` ``k``-grams are intersected with an index of the
    sentences' last ``k`` words (one C-level pass) and only the sentences of a shared ``k``-gram are searched in
    the line. A sentence of fewer than ``k`` words can only be a whole line (a hash set). Memory: the index and
    the set, O(words of the sentences)."""
    k = contained_min_words
    if k < 1:
        raise ValueError(f"contained_min_words={k}: a sentence inside a line has at least 1 word")
    short_sentences = set()
    by_suffix: Dict[Tuple[str, ...], List[str]] = defaultdict(list)  # last k words -> [" sentence "]
    for sentence in sentences:
        words = sentence.split()
        if len(words) < k:
            short_sentences.add(" ".join(words))
        else:
            by_suffix[tuple(words[-k:])].append(f" {' '.join(words)} ")
    found = {}
    for line_no, line in enumerate(lines, start=1):
        words = line.split()
        if len(words) < k:
            if " ".join(words) in short_sentences:
                found.setdefault(" ".join(words), line_no)
        elif not by_suffix.keys().isdisjoint(zip(*[words[i:] for i in range(k)])):
            padded = f" {' '.join(words)} "
            for gram in by_suffix.keys() & set(zip(*[words[i:] for i in range(k)])):
                for candidate in by_suffix[gram]:
                    if candidate in padded:
                        found.setdefault(candidate[1:-1], line_no)
    return dict(sorted(found.items()))


class TextExclusion:
    """The dev/test sentences of the transcript files ``paths`` that a training text must not contain: filtered out
    while the text is normalised (:meth:`lines`), then looked for again, independently, in the finished text
    (:meth:`check`)."""

    def __init__(self, paths: Iterable[str], contained_min_words: int = CONTAINED_MIN_WORDS):
        self.sentences = read_excluded(paths)  # normalised sentence -> file:line
        self.contained_min_words = contained_min_words
        self.matcher = ExcludedSentences(self.sentences, contained_min_words)

    def __len__(self) -> int:
        return len(self.sentences)

    def lines(self, raw_lines: Iterable[str], counts: dict) -> Iterator[str]:
        """:func:`normalised_lines_without` the excluded sentences."""
        return normalised_lines_without(raw_lines, self.matcher, counts)

    def check(self, lines: Iterable[str], what: str) -> None:
        """Raise :class:`~fairseq_kd.errors.DataError` if an excluded sentence is still in ``lines`` (read once;
        an open file is streamed), with :func:`remaining_excluded`; ``what`` names the text in the message."""
        remaining = remaining_excluded(lines, self.sentences, self.contained_min_words)
        if remaining:
            sentence, line_no = next(iter(remaining.items()))
            raise DataError(f"{len(remaining)} excluded sentences are still in {what}, e.g. {sentence!r} "
                            f"({self.sentences[sentence]}); this is a bug of the exclusion filter (line {line_no} "
                            f"of {what})")
