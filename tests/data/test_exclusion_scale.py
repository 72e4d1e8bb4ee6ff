"""The exclusion filter and its independent check at scale (fairseq_kd/data/exclusion.py): both read the text
once, line by line, and find exactly what the brute-force definition finds (a line equal to an excluded
sentence, or containing one of at least k words, word-aligned); the fast path of the normaliser changes nothing.
Their speed and memory are measured by scripts/benchmark_exclusion.py, not here."""
import random

import pytest

from fairseq_kd.data.exclusion import ExcludedSentences, TextExclusion, remaining_excluded
from fairseq_kd.data.text import normalize_transcript
from fairseq_kd.errors import DataError


def excluded_by_definition(line, sentences, k):
    """The sentences ``line`` is or contains (those of at least ``k`` words), by substring search."""
    return {s for s in sentences if s == line or (len(s.split()) >= k and f" {s} " in f" {line} ")}


def random_text(rng, vocabulary, count, max_words):
    return [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, max_words))) for _ in range(count)]


@pytest.mark.parametrize("k", [1, 2, 4])
def test_filter_and_check_find_what_the_definition_finds(k):
    """Random lines and sentences over 4 words, so that sentences are often inside lines, at every position."""
    rng = random.Random(k)
    vocabulary = ["A", "B", "C", "DON'T"]
    for _ in range(30):
        sentences = set(random_text(rng, vocabulary, rng.randint(1, 12), 6))
        lines = random_text(rng, vocabulary, 40, 10)
        matcher = ExcludedSentences(sentences, k)
        first_line = {}
        for line_no, line in enumerate(lines, start=1):
            expected = excluded_by_definition(line, sentences, k)
            found = matcher.find(line)
            assert (found is not None) == bool(expected) and (found is None or found in expected)
            for sentence in expected:
                first_line.setdefault(sentence, line_no)
        assert remaining_excluded(lines, sentences, k) == dict(sorted(first_line.items()))


def test_the_check_reads_a_stream_once_and_names_the_first_line_of_each_sentence():
    sentences = ["THE CAT SAT ON THE MAT", "HI", "A DOG RAN FAR AWAY"]
    text = iter(["HI THERE\n", "SO THE CAT SAT ON THE MAT AGAIN\n", "HI\n", "A DOG RAN FAR AWAY\n",
                 "THE CAT SAT ON THE MAT\n"])  # a one-pass iterator, lines as a file gives them
    assert remaining_excluded(text, sentences) == {"A DOG RAN FAR AWAY": 4, "HI": 3, "THE CAT SAT ON THE MAT": 2}
    assert remaining_excluded(["THE CAT SAT ON A MAT", "CAT SAT ON THE MAT", "HI THERE"], sentences) == {}


def test_a_sentence_too_short_to_be_looked_for_inside_lines_and_a_zero_minimum_is_refused():
    assert remaining_excluded(["SO A DOG RAN"], ["A DOG RAN"], contained_min_words=4) == {}
    assert remaining_excluded(["SO A DOG RAN"], ["A DOG RAN"], contained_min_words=3) == {"A DOG RAN": 1}
    with pytest.raises(ValueError, match="contained_min_words=0"):
        remaining_excluded(["A"], ["A"], contained_min_words=0)


def test_the_check_of_a_file_names_the_sentence_its_source_and_the_line(tmp_path):
    (tmp_path / "test.wrd").write_text("Hello there.\nThe cat sat on the mat!\n")
    exclusion = TextExclusion([str(tmp_path / "test.wrd")])
    text = tmp_path / "lm_text.txt"
    text.write_text("A DOG RAN\nAND THE CAT SAT ON THE MAT\n")
    with open(text) as f, pytest.raises(DataError, match=r"1 excluded sentences are still in the LM text, e\.g\. "
                                                         r"'THE CAT SAT ON THE MAT' \(.*test\.wrd:2\); .*\(line 2 of "
                                                         r"the LM text\)"):
        exclusion.check(f, "the LM text")


def test_a_transcript_already_is_its_own_normalisation():
    """normalize_transcript's fast path (a text that is a transcript already) returns what the full normalisation
    returns: appending '.' (dropped by it) forces the full path on the same text."""
    rng = random.Random(0)
    alphabet = ["A", "B", "Z", "'", " ", "  ", "\n", "\t", "\u00a0", "-", ".", "b", "1", "\u2019"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(5000)]
    texts += ["DON'T", "'TIS", "O''CLOCK", "JESUS'", "A  B", " A B\n", "HELLO\r\n"]
    for text in texts:
        assert normalize_transcript(text) == normalize_transcript(text + "."), repr(text)
    assert normalize_transcript("DON'T STOP\n") == "DON'T STOP" and normalize_transcript("'TIS SO") == "TIS SO"
