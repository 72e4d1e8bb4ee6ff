"""Decodings compared utterance by utterance: per-utterance tables, paired differences against a baseline (seed
and utterance pairing, skipped seeds, mismatched utterances), error categories against a lexicon."""
import numpy as np
import pytest

from fairseq_kd.comparison import (
    Decoding,
    categories_markdown,
    differences_markdown,
    error_categories,
    paired_differences,
    paired_errors,
    read_lexicon_words,
    reference_out_of_lexicon,
    utterance_table,
)
from fairseq_kd.errors import DataError


def record(utt_id, words, sub=0, deletions=0, ins=0, **texts):
    return {"id": utt_id, "words": words, "sub": sub, "del": deletions, "ins": ins, **texts}


def decoding(system, seed, utterances, method="greedy", subset="test"):
    return Decoding(system, seed, method, subset, f"{system}/seed{seed}/{method}/{subset}.json", utterances)


def test_the_utterance_table_has_one_row_per_utterance_and_empty_texts_when_unknown():
    table = utterance_table([record(3, 4, sub=1, ins=2, reference="A B C D", hypothesis="A X C D E F"),
                             record(7, 2, deletions=1)])
    assert table.splitlines() == ["id\twords\terrors\tsub\tdel\tins\thypothesis\treference",
                                  "3\t4\t3\t1\t0\t2\tA X C D E F\tA B C D", "7\t2\t1\t0\t1\t0\t\t"]


def test_utterances_are_paired_by_id_whatever_their_order():
    base = decoding("base", 1, [record(0, 4, sub=2), record(1, 6, sub=1), record(2, 5)])
    system = decoding("sys", 1, [record(2, 5, ins=3), record(0, 4), record(1, 6, sub=1)])
    system_errors, baseline_errors, words = paired_errors([system], [base])
    assert system_errors.tolist() == [[0, 1, 3]] and baseline_errors.tolist() == [[2, 1, 0]]
    assert words.tolist() == [4, 6, 5]


def test_different_utterances_or_references_name_both_files():
    base = decoding("base", 1, [record(i, 5) for i in range(4)])
    other_ids = decoding("sys", 1, [record(i, 5) for i in (0, 1, 2, 9)])
    with pytest.raises(DataError, match=r"sys/seed1/greedy/test.json and base/seed1/greedy/test.json decoded "
                                        r"different utterances .*only in the first: 1 \[9\], only in the second: "
                                        r"1 \[3\]"):
        paired_errors([other_ids], [base])
    other_words = decoding("sys", 1, [record(i, 5 if i else 6) for i in range(4)])
    with pytest.raises(DataError, match=r"different references for 1 utterances .*id 0: 6 vs 5 words"):
        paired_errors([other_words], [base])


def test_seed_n_pairs_with_seed_n_and_the_others_are_reported_as_skipped():
    words = [10] * 20
    base = [decoding("base", s, [record(i, w, sub=(i + s) % 3) for i, w in enumerate(words)]) for s in (1, 2)]
    better = [decoding("sys", s, [record(i, w, sub=max((i + s) % 3 - 1, 0)) for i, w in enumerate(words)])
              for s in (2, 3)]
    old = decoding("old", 1, None)
    rows = paired_differences(base + better + [old, decoding("lone", 5, [])], "base", resamples=500)
    sys_row, old_row, lone_row = rows
    assert [r["system"] for r in rows] == ["sys", "old", "lone"]
    # seed 2 alone is paired: baseline errors (i + 2) % 3 over i < 20 sum to 20, the system's to 7
    assert sys_row["seeds"] == "2" and sys_row["skipped_seeds"] == "sys: 3; base: 1"
    assert sys_row["diff"] == pytest.approx(100 * (7 - 20) / 200)
    assert sys_row["ci_low"] < -6.5 < sys_row["ci_high"] < 0
    assert sys_row["utterances"] == 20 and sys_row["p_value"] < 0.01
    assert old_row["diff"] is None and "no per-utterance errors in old/seed1/greedy/test.json" in old_row["note"]
    assert lone_row["diff"] is None and lone_row["seeds"] == "" and lone_row["skipped_seeds"] == "lone: 5; base: 1,2"
    text = differences_markdown(rows, "base", 500)
    assert text.startswith("## Differences against base\n")
    assert "| test | sys | greedy | -6.50 | [" in text and "| 2 (skipped sys: 3; base: 1) |" in text
    assert "| test | lone | greedy | no seed of lone decoded by base with greedy on test |" in text


def test_substituted_words_are_split_into_non_words_and_real_words():
    lexicon = {"THE", "CAT", "SAT", "MAT", "ON"}
    texts = [("THE CAT SAT ON THE MAT", "THE KAT MAT ON MAT"), ("THE ZEBRA", "THE ZEBRA SAT"), ("ON", "ONN")]
    runs = [decoding("sys", seed, [record(i, len(r.split()), reference=r, hypothesis=h)
                                   for i, (r, h) in enumerate(texts)]) for seed in (1, 2)]
    (row,) = error_categories(runs + [decoding("sys", 3, None)], lexicon)
    # per seed: KAT for CAT and ONN for ON (non-words), MAT for SAT (real word), SAT inserted, THE deleted
    assert row["seeds"] == "1,2" and row["substitutions"] == 6
    assert (row["substitution_non_word"], row["substitution_real_word"]) == (4, 2)
    assert row["non_word_percent"] == pytest.approx(100 * 4 / 6)
    assert (row["insertion_non_word"], row["insertion_real_word"], row["deletions"]) == (0, 2, 2)
    assert row["reference_out_of_lexicon_percent"] == pytest.approx(100 / 9)  # ZEBRA of 9 reference words
    (oov,) = reference_out_of_lexicon(runs, lexicon)
    assert oov == {"subset": "test", "utterances": 3, "reference_words": 9, "out_of_lexicon": 1,
                   "out_of_lexicon_percent": pytest.approx(100 / 9)}
    text = categories_markdown([row], [oov], "lm/lexicon.txt")
    assert "| test | 3 | 9 | 1 | 11.11 |" in text
    assert "| test | sys | greedy | 1,2 | 6 | 4 | 2 | 66.7 | 0 / 2 | 2 |" in text


def test_a_lexicon_is_read_by_its_first_column(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text("THE T H E |\nCAT'S C A T ' S |\n\n")
    assert read_lexicon_words(str(path)) == {"THE", "CAT'S"}
    with pytest.raises(DataError, match="nowhere.txt not found"):
        read_lexicon_words(str(tmp_path / "nowhere.txt"))


def test_a_system_equal_to_its_baseline_differs_by_nothing():
    rng = np.random.default_rng(0)
    errors = rng.integers(0, 4, (2, 30))
    base = [decoding("base", s + 1, [record(i, 8, sub=int(e)) for i, e in enumerate(errors[s])]) for s in range(2)]
    swapped = [decoding("same", s + 1, [record(i, 8, sub=int(e)) for i, e in enumerate(errors[1 - s])])
               for s in range(2)]  # the baseline's seeds swapped: the same mean WER, not the same per seed
    (row,) = paired_differences(base + swapped, "base", resamples=1000)
    assert row["diff"] == pytest.approx(0) and row["ci_low"] < 0 < row["ci_high"] and row["p_value"] > 0.5
