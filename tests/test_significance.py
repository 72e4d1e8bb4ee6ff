"""Paired bootstrap over utterances and seeds, one system's WER interval, minimum detectable effect, word error
categories."""
import numpy as np
import pytest

from fairseq_kd.significance import corpus_wer, paired_bootstrap, wer_interval, word_error_categories


def synthetic(num_utterances=400, seed=0):
    rng = np.random.default_rng(seed)
    words = rng.integers(5, 20, num_utterances)
    difficulty = rng.uniform(0, 0.6, num_utterances)  # shared by both systems: what pairing removes
    return rng, words, difficulty


def test_identical_systems_differ_by_nothing():
    rng, words, difficulty = synthetic()
    errors = rng.binomial(words, difficulty)
    result = paired_bootstrap(errors, errors, words, resamples=2000)
    assert result.delta == 0 and result.ci_low == result.ci_high == 0 and result.p_value == 1.0


def test_a_consistent_gain_is_detected_and_the_interval_matches_the_linearised_standard_error():
    rng, words, difficulty = synthetic()
    baseline = rng.binomial(words, difficulty)
    system = rng.binomial(words, difficulty * 0.8)
    result = paired_bootstrap(system, baseline, words, resamples=4000)
    assert result.delta == pytest.approx(corpus_wer(system, words) - corpus_wer(baseline, words))
    assert result.ci_high < 0 and result.p_value < 0.01 and result.ci_low < result.delta < result.ci_high
    # delta = (sum d_u) / W with d_u = e_u(system) - e_u(baseline): its standard error is sqrt(U) sd(d) / W
    d = (system - baseline).astype(float)
    analytic = 100 * np.sqrt(len(d)) * d.std(ddof=1) / words.sum()
    assert result.minimum_detectable_effect / 2.80 == pytest.approx(analytic, rel=0.1)


def test_pairing_removes_the_utterances_difficulty_from_the_interval():
    rng, words, difficulty = synthetic()
    baseline = rng.binomial(words, difficulty)
    system = rng.binomial(words, difficulty)
    paired = paired_bootstrap(system, baseline, words, resamples=2000)
    unpaired = paired_bootstrap(system, baseline[rng.permutation(len(words))], words, resamples=2000)  # pairs broken
    assert paired.minimum_detectable_effect < unpaired.minimum_detectable_effect


def test_seed_variation_widens_the_interval():
    rng, words, difficulty = synthetic()
    baseline = rng.binomial(words, difficulty)
    one_seed = rng.binomial(words, difficulty)[None, :]
    seeds = np.stack([rng.binomial(words, np.clip(difficulty * f, 0, 1)) for f in (0.8, 1.0, 1.2)])
    assert paired_bootstrap(seeds, baseline, words).minimum_detectable_effect > \
        paired_bootstrap(one_seed, baseline, words).minimum_detectable_effect
    assert paired_bootstrap(seeds, baseline, words).system_seeds == 3


def test_one_systems_interval_covers_its_wer_with_the_binomial_width_and_widens_with_seed_variation():
    rng, words, difficulty = synthetic(num_utterances=2000)
    errors = rng.binomial(words, 0.3)
    wer, low, high = wer_interval(errors, words, resamples=4000)
    assert wer == pytest.approx(corpus_wer(errors, words)) and low < wer < high
    # WER = sum_u e_u / sum_u w_u, a ratio: linearised, its standard error is sqrt(U) sd(e_u - WER w_u) / W
    r = errors - wer / 100 * words
    standard_error = 100 * np.sqrt(len(r)) * r.std(ddof=1) / words.sum()
    assert (high - low) / (2 * 1.96) == pytest.approx(standard_error, rel=0.1)
    seeds = np.stack([rng.binomial(words, p) for p in (0.25, 0.3, 0.35)])
    assert np.diff(wer_interval(seeds, words, resamples=4000)[1:])[0] > high - low


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="seeds x utterances with 3 utterances"):
        paired_bootstrap(np.zeros((2, 4)), np.zeros(3), [1, 1, 1])


def test_word_errors_are_split_into_misspellings_and_wrong_words():
    lexicon = {"THE", "CAT", "SAT", "MAT", "ON"}
    counts = word_error_categories(["THE CAT SAT ON THE MAT", "THE CAT"], ["THE KAT MAT ON MAT", "THE CAT SAT"],
                                   lexicon)
    # first: KAT (non-word) for CAT, MAT (real word) for SAT, THE deleted; second: SAT inserted (real word)
    assert counts == {"non_word": 1, "real_word": 2, "substitution_non_word": 1, "substitution_real_word": 1,
                      "deletions": 1, "reference_words": 8, "reference_out_of_lexicon": 0}
    assert word_error_categories(["ZEBRA ON"], ["ZEBRA ON"], lexicon)["reference_out_of_lexicon"] == 1
