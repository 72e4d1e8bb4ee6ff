"""Is a WER difference between two systems real? Paired bootstrap over utterances and seeds, and the smallest
difference an experiment of this size could detect.

Data of one system: ``errors`` (S x U: word errors of each of S seeds on each of U utterances, the same
utterances in the same order for every system) and ``words`` (U: reference words). The WER of a seed is
``sum_u errors[s, u] / sum_u words[u]`` and a system's WER is the mean over its seeds.

Paired bootstrap (Bisani & Ney 2004, "Bootstrap estimates for confidence intervals in ASR performance
evaluation", extended to seeds): each of ``resamples`` replicates draws U utterances with replacement (the same
draw for both systems: the pairing that removes the utterances' own difficulty from the comparison) and, for
each system on its own, S seeds with replacement (seed-to-seed variation of training), and computes
``delta* = WER*(system) - WER*(baseline)``. The 95 % interval is the 2.5th-97.5th percentile of ``delta*``;
``p`` is the two-sided share of replicates on the other side of 0 (``2 min(P(delta* <= 0), P(delta* >= 0))``).

The interval of one system's WER (:func:`wer_interval`, the error bars of the recipe's plot) resamples the same
way, utterances and seeds, without a partner.

Minimum detectable effect (two-sided test at ``alpha`` = 0.05 with power 0.8), in WER points:
``MDE = (z_{1 - alpha/2} + z_{0.8}) * SE(delta*) = 2.80 * SE``, with ``SE`` the standard deviation of the
replicates: an effect smaller than that would usually be missed by an experiment of this many utterances and
seeds.
"""
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence, Tuple

import numpy as np

Z_TWO_SIDED_5_PERCENT, Z_POWER_80_PERCENT = 1.959964, 0.841621


@dataclass
class PairedDifference:
    system_wer: float  # mean over seeds, %
    baseline_wer: float
    delta: float  # system - baseline, WER points (negative: the system is better)
    ci_low: float  # 95 % paired bootstrap interval of delta
    ci_high: float
    p_value: float
    minimum_detectable_effect: float  # WER points, alpha 0.05 two-sided, power 0.8
    utterances: int
    system_seeds: int
    baseline_seeds: int

    def as_dict(self) -> dict:
        return asdict(self)


def _as_errors(errors, num_utterances: Optional[int] = None) -> np.ndarray:
    errors = np.atleast_2d(np.asarray(errors, dtype=np.float64))
    if errors.ndim != 2 or (num_utterances is not None and errors.shape[1] != num_utterances):
        raise ValueError(f"errors must be seeds x utterances with {num_utterances} utterances, got {errors.shape}")
    return errors


def corpus_wer(errors, words) -> float:
    """Mean over seeds of ``100 * sum errors / sum words`` (errors: S x U or U)."""
    words = np.asarray(words, dtype=np.float64)
    return float(100.0 * _as_errors(errors, len(words)).sum(axis=1).mean() / words.sum())


def _bootstrap_wers(systems: Sequence[np.ndarray], words: np.ndarray, resamples: int, seed: int,
                    chunk: int = 1000) -> np.ndarray:
    """``resamples x len(systems)`` bootstrap WERs (%): each replicate draws the utterances once for all systems
    (the pairing) and each system's seeds on their own (module doc)."""
    num_utterances = len(words)
    if num_utterances < 2 or words.sum() <= 0:
        raise ValueError("need at least 2 utterances with reference words")
    rng = np.random.default_rng(seed)
    replicates = []
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        utterance_weights = rng.multinomial(num_utterances, np.full(num_utterances, 1 / num_utterances), size=n)
        resampled_words = utterance_weights @ words  # n
        wers = []
        for errors in systems:
            seeds = errors.shape[0]
            seed_weights = rng.multinomial(seeds, np.full(seeds, 1 / seeds), size=n)  # n x S
            per_seed = (utterance_weights @ errors.T) / resampled_words[:, None]  # n x S
            wers.append(100.0 * (per_seed * seed_weights).sum(axis=1) / seeds)
        replicates.append(np.stack(wers, axis=1))
    return np.concatenate(replicates)


def wer_interval(errors, words, resamples: int = 10000, seed: int = 0) -> Tuple[float, float, float]:
    """``(WER, low, high)``: one system's WER (mean over seeds, %) and its 95 % bootstrap interval over utterances
    and seeds (errors: S x U or U)."""
    words = np.asarray(words, dtype=np.float64)
    errors = _as_errors(errors, len(words))
    low, high = np.percentile(_bootstrap_wers([errors], words, resamples, seed)[:, 0], [2.5, 97.5])
    return corpus_wer(errors, words), float(low), float(high)


def paired_bootstrap(system_errors, baseline_errors, words, resamples: int = 10000, seed: int = 0
                     ) -> PairedDifference:
    """Paired bootstrap of ``WER(system) - WER(baseline)`` over utterances and seeds (module doc)."""
    words = np.asarray(words, dtype=np.float64)
    num_utterances = len(words)
    system, baseline = _as_errors(system_errors, num_utterances), _as_errors(baseline_errors, num_utterances)
    wers = _bootstrap_wers([system, baseline], words, resamples, seed)
    deltas = wers[:, 0] - wers[:, 1]
    system_wer, baseline_wer = corpus_wer(system, words), corpus_wer(baseline, words)
    low, high = np.percentile(deltas, [2.5, 97.5])
    p_value = min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0)))
    return PairedDifference(
        system_wer=system_wer, baseline_wer=baseline_wer, delta=system_wer - baseline_wer, ci_low=float(low),
        ci_high=float(high), p_value=float(p_value),
        minimum_detectable_effect=float((Z_TWO_SIDED_5_PERCENT + Z_POWER_80_PERCENT) * deltas.std(ddof=1)),
        utterances=num_utterances, system_seeds=system.shape[0], baseline_seeds=baseline.shape[0])


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
