"""Keeping dev/test sentences out of the text that trains the teacher and the n-gram LM.

A line of training text must be *excluded* when it equals a dev/test transcript or contains one of at least
``contained_min_words`` words (word-aligned), after both went through
:func:`fairseq_kd.data.text.normalize_transcript`. :class:`ExcludedSentences` finds them fast (an index of
the sentences' first words) while text is filtered; :func:`remaining_excluded` is an independent brute-force
check of a finished text. :class:`TextExclusion` is the whole sequence (read, filter while normalising, check the
result) for a text that trains something (the n-gram LM of ``scripts/build_lm.py``; teacher fine-tuning). Used by
``scripts/build_lm.py``, ``scripts/finetune_teacher.py`` and the recipe's ``scripts/check_excluded.py``.
"""
import os
from collections import defaultdict
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

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
    """Finds a line equal to an excluded sentence, or containing one of at least ``contained_min_words`` words
    (word-aligned), through an index of the excluded sentences' first words."""

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
        for start in range(len(words) - self.prefix_words + 1):
            for candidate in self.by_prefix.get(tuple(words[start:start + self.prefix_words]), ()):
                if words[start:start + len(candidate)] == candidate:
                    return " ".join(candidate)
        return None


def normalised_lines_without(raw_lines: Iterable[str], excluded: ExcludedSentences, counts: dict) -> Iterator[str]:
    """Normalise ``raw_lines`` (:func:`normalize_transcript`) and yield those that are speakable and not
    excluded; ``counts`` gets ``input_lines``, ``rejected_by_normaliser`` and ``excluded_lines``."""
    for key in ("input_lines", "rejected_by_normaliser", "excluded_lines"):
        counts.setdefault(key, 0)
    for raw in raw_lines:
        counts["input_lines"] += 1
        line = normalize_transcript(raw)
        if line is None:
            counts["rejected_by_normaliser"] += 1
        elif excluded.find(line) is not None:
            counts["excluded_lines"] += 1
        else:
            yield line


def remaining_excluded(lines: Sequence[str], sentences: Iterable[str],
                       contained_min_words: int = CONTAINED_MIN_WORDS) -> List[str]:
    """Brute-force check, independent of :class:`ExcludedSentences`: the excluded sentences that are a line of
    ``lines`` or (when long enough) inside one."""
    as_lines = set(lines)
    text = "\n".join(f" {line} " for line in lines)
    return sorted(s for s in sentences
                  if s in as_lines or (len(s.split()) >= contained_min_words and f" {s} " in text))


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

    def check(self, lines: Sequence[str], what: str) -> None:
        """Raise :class:`~fairseq_kd.errors.DataError` if an excluded sentence is still in ``lines`` (``what``
        names the text in the message)."""
        remaining = remaining_excluded(lines, self.sentences, self.contained_min_words)
        if remaining:
            raise DataError(f"{len(remaining)} excluded sentences are still in {what}, e.g. {remaining[0]!r} "
                            f"({self.sentences[remaining[0]]}); this is a bug of the exclusion filter")
