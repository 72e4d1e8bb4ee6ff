"""Decodings compared utterance by utterance: per-utterance tables, paired differences against a baseline (seed
and utterance pairing, skipped seeds, mismatched utterances), the seed component pooled over a table, speakers
(from file names, clustering, one pseudo-subset per speaker), error categories against a lexicon."""
import numpy as np
import pytest

from fairseq_kd.comparison import (
    Decoding,
    attach_speakers,
    categories_markdown,
    differences_markdown,
    error_categories,
    manifest_speakers,
    paired_differences,
    paired_errors,
    question_differences,
    read_lexicon_words,
    read_speakers_table,
    reference_out_of_lexicon,
    seed_components,
    speaker_of,
    speaker_subsets,
    speakers_table,
    utterance_table,
    wer_intervals,
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
    rows = paired_differences(base + better + [old, decoding("lone", 5, [])], "base")
    sys_row, old_row, lone_row = rows
    assert [r["system"] for r in rows] == ["sys", "old", "lone"]
    # seed 2 alone is paired: baseline errors (i + 2) % 3 over i < 20 sum to 20, the system's to 7
    assert sys_row["seeds"] == "2" and sys_row["skipped_seeds"] == "sys: 3; base: 1"
    assert sys_row["diff"] == pytest.approx(100 * (7 - 20) / 200)
    assert sys_row["ci_low"] < -6.5 < sys_row["ci_high"] < 0
    assert sys_row["utterances"] == 20 and sys_row["p_value"] < 0.05
    assert old_row["diff"] is None and "no per-utterance errors in old/seed1/greedy/test.json" in old_row["note"]
    assert lone_row["diff"] is None and lone_row["seeds"] == "" and lone_row["skipped_seeds"] == "lone: 5; base: 1,2"
    text = differences_markdown(rows, "base")
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
    (row,) = paired_differences(base + swapped, "base")
    assert row["diff"] == pytest.approx(0) and row["ci_low"] < 0 < row["ci_high"] and row["p_value"] > 0.5


def seeded_decodings(system, seeds, errors_of, words, subset="test", speakers=None):
    """Decodings of ``system`` whose seed s has errors_of(s, i) on utterance i (words[i] words, speakers[i])."""
    return [decoding(system, s, [record(i, w, sub=int(errors_of(s, i)), **({"speaker": speakers[i]} if speakers
                                                                             else {}))
                                 for i, w in enumerate(words)], subset=subset) for s in seeds]


def test_the_seed_component_is_pooled_over_the_table_and_reaches_a_question_of_one_seed():
    rng = np.random.default_rng(0)
    words = rng.integers(5, 15, 60)
    noisy = rng.integers(0, 4, (4, 60))  # four seeds of a system, each shifted by one error more on every other
    table = (seeded_decodings("ctc", (1, 2, 3, 4), lambda s, i: noisy[s - 1, i] + s * (i % 2), words)
             + seeded_decodings("kd", (1,), lambda s, i: noisy[0, i] + (i % 3 == 0), words)
             + seeded_decodings("other", (1,), lambda s, i: noisy[1, i], words))
    components = seed_components(table)
    assert components["greedy", "test"].systems == 1 and components["greedy", "test"].between_df == 3
    (pooled,) = question_differences(table, [("Q", "kd", "other")])
    (alone,) = question_differences([d for d in table if d.system != "ctc"], [("Q", "kd", "other")])
    assert pooled["question"] == "Q" and pooled["seeds"] == "1" and pooled["diff"] == alone["diff"]
    assert pooled["interval_over"] == "utterances + seeds" and alone["interval_over"] == "utterances only"
    assert pooled["se"] > alone["se"] and pooled["df"] < alone["df"] == 59
    intervals = wer_intervals(table, components)
    assert intervals["kd", "greedy", "test"]["interval_over"] == "utterances + seeds"
    assert intervals["ctc", "greedy", "test"]["seeds"] == 4


def test_speakers_come_from_file_names_and_cluster_or_split_a_subset(tmp_path):
    assert speaker_of("test_unseen/test_unseen-espeak_en-us_f2-000012.wav") == "espeak_en-us_f2"
    assert speaker_of("test-clean/1089/134686/1089-134686-0000.flac") == "1089"
    assert speaker_of("audio/u7.wav") is None
    manifest = tmp_path / "test_unseen.tsv"
    manifest.write_text("/audio\n" + "".join(f"test_unseen-{v}-{i:06d}.wav\t16000\n"
                                             for v, i in (("a", 0), ("a", 2), ("b", 1), ("b", 3))))
    assert manifest_speakers(str(manifest)) == {0: "a", 1: "a", 2: "b", 3: "b"}
    (tmp_path / "other.tsv").write_text("/audio\nu0.wav\t16000\n")
    assert manifest_speakers(str(tmp_path / "other.tsv")) is None
    table = tmp_path / "speakers.tsv"
    table.write_text(speakers_table({1: "a", 0: "b"}))
    assert table.read_text() == "id\tspeaker\n0\tb\n1\ta\n" and read_speakers_table(str(table)) == {0: "b", 1: "a"}
    table.write_text("id\tvoice\n")
    with pytest.raises(DataError, match="expected the header"):
        read_speakers_table(str(table))

    words = [10] * 40
    speakers = {i: "ab"[i % 2] for i in range(40)}
    runs = [*seeded_decodings("base", (1, 2), lambda s, i: (i + s) % 4, words, "test_unseen"),
            *seeded_decodings("sys", (1, 2), lambda s, i: (i + s) % 4 + 2 * (i % 2), words, "test_unseen")]
    attached = attach_speakers(runs, {"test_unseen": speakers}, ["test_unseen"])
    assert all(d.cluster_by_speaker and d.utterances[3]["speaker"] == "b" for d in attached)
    assert "speaker" not in runs[0].utterances[0]  # the records given are left as they were
    views = speaker_subsets(attached, ["test_unseen"])
    assert sorted({d.subset for d in views}) == ["test_unseen/a", "test_unseen/b"]
    assert all(len(d.utterances) == 20 and not d.cluster_by_speaker for d in views)
    rows = {r["subset"]: r for r in paired_differences(attached + views, "base")}
    # the system makes 2 more errors on every utterance of speaker b: 0 points on a, 20 on b, 10 over both
    assert (rows["test_unseen/a"]["diff"], rows["test_unseen/b"]["diff"]) == (0, pytest.approx(20))
    assert rows["test_unseen"]["diff"] == pytest.approx(10)
    assert rows["test_unseen"]["interval_over"].startswith("2 speakers")
    assert rows["test_unseen"]["ci_high"] - rows["test_unseen"]["ci_low"] > 10  # 2 speakers who disagree
    with pytest.raises(DataError, match=r"base/seed1/greedy/test_unseen.json: no speaker for 20 utterances"):
        attach_speakers(runs, {"test_unseen": {i: "a" for i in range(20)}}, ["test_unseen"])
    with pytest.raises(DataError, match="no speaker for 40 utterances of 'test_unseen'"):
        attach_speakers(runs, {}, ["test_unseen"])
    with pytest.raises(DataError, match="every utterance of 'test_unseen' has the same speaker"):
        attach_speakers(runs, {"test_unseen": {i: "a" for i in range(40)}}, ["test_unseen"])
