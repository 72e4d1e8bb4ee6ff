"""Keeping dev/test sentences out of a training text: the filter while normalising, and the independent check."""
import pytest

from fairseq_kd.data.exclusion import TextExclusion
from fairseq_kd.errors import DataError


def test_excluded_sentences_are_dropped_as_lines_and_inside_lines_and_the_check_finds_a_miss(tmp_path):
    (tmp_path / "test.wrd").write_text("THE CAT SAT ON THE MAT\nHI\n")
    exclusion = TextExclusion([str(tmp_path / "test.wrd")], contained_min_words=4)
    counts = {}
    raw = ["The cat sat on the mat.", "and then the cat sat on the mat again", "hi", "a dog ran", "hi there"]
    assert list(exclusion.lines(raw, counts)) == ["A DOG RAN", "HI THERE"]  # HI is too short to match inside
    assert len(exclusion) == 2 and counts["excluded_lines"] == 3 and counts["input_lines"] == 5
    exclusion.check(["A DOG RAN", "HI THERE"], "the LM text")
    with pytest.raises(DataError, match=r"1 excluded sentences are still in the LM text, e\.g\. 'THE CAT SAT ON THE "
                                        r"MAT' \(.*test\.wrd:1\); this is a bug of the exclusion filter"):
        exclusion.check(["SO THE CAT SAT ON THE MAT"], "the LM text")
