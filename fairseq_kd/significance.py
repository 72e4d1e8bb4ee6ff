"""Is a WER difference between two systems real? Intervals over utterances (or speakers) and seeds that keep
their promise with 1-3 seeds, and the smallest difference an experiment of this size could detect.

Data of one system: ``errors`` (S x U: word errors of each of S seeds on each of U utterances, the same
utterances in the same order for every system) and ``words`` (U: reference words). The WER of a seed is
``WER_s = 100 sum_u errors[s, u] / W`` with ``W = sum_u words[u]``, a system's WER is the mean over its seeds, and
a paired difference is ``delta = WER(system) - WER(baseline)`` (seed means; the seeds of the two systems are
independent trainings, so nothing is paired but the utterances).

Sampled units. The utterances (default), or the speakers when ``speakers`` (one label per utterance) is given:
then the errors and words of each speaker are summed first and the G speakers are the units. Cluster by speaker
where the question is about speakers never seen (test_unseen: its utterances are 2 TTS voices, and utterances of
one voice share its errors, so treating them as independent claims more than 2 voices can show): the speaker
component then has G - 1 degrees of freedom, 1 for 2 voices.

Model (two-way crossed random effects, seeds x units; Searle, Casella & McCulloch 1992, "Variance components",
ch. 4): for each system ``y[s, g] = 100 G errors[s, g] / W = mu[g] + a[s] + e[s, g]``, the unit's difficulty
``mu``, a seed's shift ``a`` of the whole test set (variance ``sigma2_a``) and the seed x unit interaction ``e``
(variance ``sigma2_e``: a seed is worse on some utterances and better on others), so that ``WER_s = mean_g y[s,
g]``. Over new units and new seeds, with ``c = 1 / S_sys + 1 / S_base``,

    Var(delta) = Var_g(mu_sys[g] - mu_base[g]) / G + c (sigma2_a + sigma2_e / G).

Three statistics estimate it (one formula for a difference, and with one system for a WER):

* ``V_units = s^2(z) / G`` over the units, ``z_g = 100 G (x_g - R w_g) / W`` the linearised contribution of unit g
  to ``R = sum_g x_g / W``, ``x_g`` the seed-mean errors of the system minus those of the baseline (Bisani & Ney
  2004's paired comparison as a variance: the paired bootstrap's, up to G / (G - 1)); G - 1 degrees of freedom.
  ``E[V_units] = Var_g(mu_sys - mu_base) / G + c sigma2_e / G``: seed means are noisy per utterance.
* ``between``: the sample variance (ddof 1) of the per-seed WERs around their system's mean,
  ``E[between] = sigma2_a + sigma2_e / G``, S - 1 degrees of freedom per system;
* ``interaction = MS_interaction / G``, ``MS_interaction`` the residual mean square of ``y`` after the seed and
  unit means, ``E[interaction] = sigma2_e / G``, (S - 1)(G - 1) degrees of freedom.

    V = V_units + c max(between - interaction, 0)

is unbiased while ``between >= interaction``: the unit component, which holds the seed x unit noise already, plus
what the seeds add beyond it, a seed's shift of the whole subset. Adding ``between`` to ``V_units`` as it is would
count that noise twice, and on the evidence test set it is most of what separates two seeds of a system
(``interaction`` 0.16-0.20 %^2 against ``between`` 0.002-0.18 for every system but CTC, 0.94). The positive part
keeps an interval over seeds from being narrower than the one over units alone when the seeds happen to agree
more closely than their noise predicts.

**Pooling.** With 2 or 3 seeds one system's ``between`` has 1 or 2 degrees of freedom (t quantiles 12.7 and 4.3):
honest and useless. Every system of a results table is trained the same way (data, model size, updates,
optimiser; only the objective differs), so ``between`` and ``interaction`` are pooled over all of them, per
decoding method and test subset (:func:`seed_variance`; :mod:`fairseq_kd.comparison` passes the pooled estimate):
the sums of squares of every system with >= 2 seeds, ``sum_k (S_k - 1)`` degrees of freedom for ``between`` (10
for the evidence table's 4 x 3 + 2 x 2 seeds: t 2.23) and ``sum_k (S_k - 1)(G - 1)`` for ``interaction``. The
price is the assumption that the systems' seed variances are equal. Their own estimates (1-2 degrees of freedom
each) can hardly test it; where it fails, the pooled ``between`` is too small for the systems whose seeds vary
most (the evidence's CTC on test, the KD systems on noisy speech) and too large for the others. A system decoded
with one seed still gets the pooled seed component (its one seed is a draw as well). Without any system of >= 2
seeds (the demo: 1 seed) nothing estimates the seed component: the interval is over "utterances only" and says
nothing about seeds. Without a pooled estimate, :func:`paired_difference` pools the pair's own seeds.

Interval, p and MDE: Welch-Satterthwaite degrees of freedom ``nu = V^2 / (V_units^2 / (G - 1) + (c max(between,
interaction))^2 / df_between + (c interaction)^2 / df_interaction)``, ``G - 1`` without a seed component. When
the seeds show no shift (``between < interaction``), ``between`` enters at that boundary, so that the t quantile
still says how little ``df_between`` degrees of freedom can exclude; ``nu`` is never below ``min(df_between, G -
1)`` (Satterthwaite's bound for a sum of positive parts). 95 % interval ``delta +- t_{0.975, nu} sqrt(V)``;
two-sided ``p = 2 P(T_nu > |delta| / sqrt(V))`` (no resampling, so no 1/B or 2/B floor: the tables print p <
0.001 as "<0.001"); minimum detectable effect (alpha 0.05 two-sided, power 0.8) ``MDE = (t_{0.975, nu} + t_{0.8,
nu}) sqrt(V)``.

Coverage of a zero effect by the nominal 95 % interval, simulated as in the test (300 utterances, each seed
shifting its system's error rate by N(0, 1.5 points), the pair's own seeds): 97.95 % of 2000 experiments with 2
seeds, 95.0 % with 3; 93.6-95 % when the systems also differ utterance by utterance; 95-97 % with the seed
component pooled over 6 systems; 98-100 % where the seeds shift nothing (the t quantile of few degrees of
freedom is conservative there); 73 % for an interval over "utterances only" (1 seed each): it says nothing
about seeds.

:func:`paired_difference` replaces ``paired_bootstrap``, the bootstrap over utterances and seeds that resampled
each system's 1-3 seeds as if they were the population: it shrank the seed variance by (S - 1) / S and used it as
if it were known, and its nominal 95 % intervals covered a zero effect in 81 % (2 seeds) and 89 % (3 seeds) of
simulated experiments. tests/test_significance.py simulates the same experiments (300 utterances, seed SD 1.5
points) and requires >= 93 % of this one.
"""
import math
from dataclasses import asdict, dataclass, replace
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from scipy import stats

CONFIDENCE, POWER = 0.95, 0.8


@dataclass
class SeedVariance:
    """The seed component of a WER on one test set, pooled over ``systems`` (module doc), in %^2."""

    between: float  # sample variance of a seed's WER around its system's mean
    interaction: float  # the part of it that is seed x unit noise (the unit component holds it too)
    between_df: int
    interaction_df: int
    systems: int
    homogeneity_p: Optional[float]  # Bartlett's test of equal between-seed variances (None: fewer than 2 systems)


@dataclass
class Interval:
    """A WER or a WER difference (points) with its 95 % interval (module doc)."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, of estimate = 0 (meaningful for a difference)
    minimum_detectable_effect: float  # alpha 0.05 two-sided, power 0.8
    standard_error: float
    df: float  # Welch-Satterthwaite degrees of freedom
    units: int  # sampled units: utterances, or speakers when clustered
    unit: str  # "utterances" or "speakers"
    seed_sd: Optional[float]  # sqrt(between): SD of one seed's WER (points, pooled); None: no seed component
    seed_df: Optional[int]  # degrees of freedom of the pooled between-seed variance

    @property
    def interval_over(self) -> str:
        """What the interval accounts for, as the tables say it: "utterances only", "2 speakers + seeds", ..."""
        units = self.unit if self.unit == "utterances" else f"{self.units} {self.unit}"
        return f"{units} only" if self.seed_sd is None else f"{units} + seeds"


@dataclass
class PairedDifference(Interval):
    """:class:`Interval` of ``delta = system_wer - baseline_wer`` (negative: the system is better)."""

    system_wer: float
    baseline_wer: float
    system_seeds: int
    baseline_seeds: int

    @property
    def delta(self) -> float:
        return self.estimate


def _as_errors(errors, num_utterances: int) -> np.ndarray:
    errors = np.atleast_2d(np.asarray(errors, dtype=np.float64))
    if errors.ndim != 2 or errors.shape[1] != num_utterances:
        raise ValueError(f"errors must be seeds x utterances with {num_utterances} utterances, got {errors.shape}")
    return errors


def _as_words(words) -> np.ndarray:
    words = np.asarray(words, dtype=np.float64)
    if words.ndim != 1 or len(words) < 2 or words.sum() <= 0:
        raise ValueError(f"need at least 2 utterances with reference words, got words of shape {words.shape} "
                         f"summing to {words.sum()}")
    return words


def corpus_wer(errors, words) -> float:
    """Mean over seeds of ``100 * sum errors / sum words`` (errors: S x U or U)."""
    words = _as_words(words)
    return float(100.0 * _as_errors(errors, len(words)).sum(axis=1).mean() / words.sum())


def _unit_totals(systems: Sequence[np.ndarray], words: np.ndarray, speakers) -> Tuple[List[np.ndarray], np.ndarray]:
    """Errors (S x G) and words (G) summed per sampled unit: each utterance, or each speaker of ``speakers``."""
    if speakers is None:
        return list(systems), words
    speakers = np.asarray(speakers)
    if speakers.shape != words.shape:
        raise ValueError(f"speakers must label each of the {len(words)} utterances, got {speakers.shape}")
    labels, unit_of_utterance = np.unique(speakers, return_inverse=True)
    if len(labels) < 2:
        raise ValueError(f"clustering by speaker needs at least 2 speakers, got {list(labels)}")
    membership = np.zeros((len(words), len(labels)))
    membership[np.arange(len(words)), unit_of_utterance] = 1.0
    return [errors @ membership for errors in systems], words @ membership


def _seed_sums_of_squares(errors: np.ndarray, words: np.ndarray) -> Tuple[np.ndarray, float, int]:
    """``(per-seed WERs, SS interaction, its df)`` of one system's S x G unit errors (S >= 2), in the module doc's
    scale: ``interaction = SS_interaction / df``."""
    seeds, units = errors.shape
    y = 100.0 * units * errors / words.sum()
    residual = y - y.mean(axis=1, keepdims=True) - y.mean(axis=0, keepdims=True) + y.mean()
    return y.mean(axis=1), float((residual ** 2).sum()) / units, (seeds - 1) * (units - 1)


def seed_variance(systems_errors: Iterable, words, speakers=None) -> Optional[SeedVariance]:
    """The seed component pooled over ``systems_errors`` (each S_k x U on the same utterances; systems with one
    seed contribute nothing), units as in the module doc; None when no system has 2 seeds. ``homogeneity_p``:
    Bartlett's test that the systems' between-seed variances are equal (the pooling's assumption; with 1-2
    degrees of freedom per system it has little power)."""
    words = _as_words(words)
    systems = [_as_errors(errors, len(words)) for errors in systems_errors]
    systems, unit_words = _unit_totals(systems, words, speakers)
    sums = [_seed_sums_of_squares(errors, unit_words) for errors in systems if errors.shape[0] >= 2]
    if not sums:
        return None
    seed_wers = [wers for wers, _, _ in sums]
    between_df = sum(len(wers) - 1 for wers in seed_wers)
    interaction_df = sum(df for _, _, df in sums)
    homogeneity_p = None
    if len(seed_wers) >= 2:
        with np.errstate(divide="ignore", invalid="ignore"):  # a system whose seeds agree exactly: p = 0
            homogeneity_p = float(np.nan_to_num(stats.bartlett(*seed_wers).pvalue))
    return SeedVariance(between=sum(((wers - wers.mean()) ** 2).sum() for wers in seed_wers) / between_df,
                        interaction=sum(ss for _, ss, _ in sums) / interaction_df, between_df=between_df,
                        interaction_df=interaction_df, systems=len(sums), homogeneity_p=homogeneity_p)


def _unit_variance(unit_errors: np.ndarray, unit_words: np.ndarray) -> float:
    """``V_units``: variance of ``100 sum_g x_g / sum_g w_g`` over resampled units, linearised (module doc)."""
    units, total_words = len(unit_words), unit_words.sum()
    ratio = unit_errors.sum() / total_words
    contributions = 100.0 * units * (unit_errors - ratio * unit_words) / total_words
    return float((contributions ** 2).sum() / (units * (units - 1)))


def _interval(estimate: float, unit_variance: float, units: int, unit: str, seed_weight: float,
              seed_component: Optional[SeedVariance]) -> Interval:
    """The t interval of ``estimate`` (module doc: ``V``, ``nu``) from ``V_units`` and the seed component with
    ``seed_weight`` = ``c`` (``1 / S_sys + 1 / S_base``, or ``1 / S`` for one WER)."""
    variance, df, seed_sd, seed_df = unit_variance, units - 1.0, None, None
    if seed_component is not None:
        between, interaction = seed_weight * seed_component.between, seed_weight * seed_component.interaction
        seed_sd, seed_df = math.sqrt(seed_component.between), seed_component.between_df
        variance += max(between - interaction, 0.0)
        terms = (unit_variance ** 2 / (units - 1) + max(between, interaction) ** 2 / seed_component.between_df
                 + interaction ** 2 / seed_component.interaction_df)
        # a sum of variance estimates has at least the degrees of freedom of its poorest part (Satterthwaite)
        df = max(variance ** 2 / terms, min(seed_component.between_df, units - 1.0)) if terms > 0 else df
    if variance <= 0:  # the same errors on every unit and seed: nothing varies
        return Interval(estimate, estimate, estimate, 1.0 if estimate == 0 else 0.0, 0.0, 0.0, df, units, unit,
                        seed_sd, seed_df)
    standard_error = math.sqrt(variance)
    quantile = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df))
    return Interval(
        estimate=estimate, ci_low=estimate - quantile * standard_error, ci_high=estimate + quantile * standard_error,
        p_value=float(2 * stats.t.sf(abs(estimate) / standard_error, df)),
        minimum_detectable_effect=(quantile + float(stats.t.ppf(POWER, df))) * standard_error,
        standard_error=standard_error, df=float(df), units=units, unit=unit, seed_sd=seed_sd, seed_df=seed_df)


def wer_interval(errors, words, speakers=None, seed_component: Optional[SeedVariance] = None) -> Interval:
    """One system's WER (mean over its seeds, %) with its 95 % interval over units and seeds (module doc; errors:
    S x U or U), cut at 0 (a WER is not negative; over 2 speakers the t interval can reach below).
    ``seed_component``: the pooled seed component (:func:`seed_variance`), else the system's own seeds."""
    words = _as_words(words)
    errors = _as_errors(errors, len(words))
    if seed_component is None:
        seed_component = seed_variance([errors], words, speakers)
    (unit_errors,), unit_words = _unit_totals([errors], words, speakers)
    interval = _interval(corpus_wer(errors, words), _unit_variance(unit_errors.mean(axis=0), unit_words),
                         len(unit_words), "utterances" if speakers is None else "speakers", 1.0 / errors.shape[0],
                         seed_component)
    return replace(interval, ci_low=max(interval.ci_low, 0.0))


def paired_difference(system_errors, baseline_errors, words, speakers=None,
                      seed_component: Optional[SeedVariance] = None) -> PairedDifference:
    """``WER(system) - WER(baseline)`` with its 95 % interval, p and MDE over units (utterances paired; speakers
    with ``speakers``) and seeds (module doc). ``seed_component``: the seed component pooled over a results table
    (:func:`seed_variance`); without it, the pair's own seeds are pooled."""
    words = _as_words(words)
    system, baseline = _as_errors(system_errors, len(words)), _as_errors(baseline_errors, len(words))
    if seed_component is None:
        seed_component = seed_variance([system, baseline], words, speakers)
    (system_units, baseline_units), unit_words = _unit_totals([system, baseline], words, speakers)
    system_wer, baseline_wer = corpus_wer(system, words), corpus_wer(baseline, words)
    interval = _interval(system_wer - baseline_wer,
                         _unit_variance(system_units.mean(axis=0) - baseline_units.mean(axis=0), unit_words),
                         len(unit_words), "utterances" if speakers is None else "speakers",
                         1.0 / system.shape[0] + 1.0 / baseline.shape[0], seed_component)
    return PairedDifference(**asdict(interval), system_wer=system_wer, baseline_wer=baseline_wer,
                            system_seeds=system.shape[0], baseline_seeds=baseline.shape[0])


def word_error_categories(references: Sequence[str], hypotheses: Sequence[str], lexicon: Iterable[str]) -> dict:
    """Word errors split by what language knowledge could fix, against a lexicon (e.g. the LM's words):
    ``non_word`` substitutions / insertions produce a word outside the lexicon (a misspelling), ``real_word``
    ones produce a lexicon word (a wrong word choice), plus ``deletions``; the same split for substitutions
    alone (``substitution_non_word`` / ``substitution_real_word``); and the out-of-lexicon count of the
    references. The alignment is the one every WER here is counted with (:mod:`fairseq_kd.decoding.scoring`)."""
    from rapidfuzz.distance import Levenshtein

    lexicon = set(lexicon)
    counts = {"non_word": 0, "real_word": 0, "substitution_non_word": 0, "substitution_real_word": 0,
              "deletions": 0, "reference_words": 0, "reference_out_of_lexicon": 0}
    for reference, hypothesis in zip(references, hypotheses):
        reference, hypothesis = reference.split(), hypothesis.split()
        counts["reference_words"] += len(reference)
        counts["reference_out_of_lexicon"] += sum(word not in lexicon for word in reference)
        for op in Levenshtein.editops(reference, hypothesis):
            if op.tag == "delete":
                counts["deletions"] += 1
                continue
            kind = "real_word" if hypothesis[op.dest_pos] in lexicon else "non_word"  # replace / insert
            counts[kind] += 1
            if op.tag == "replace":
                counts[f"substitution_{kind}"] += 1
    return counts
