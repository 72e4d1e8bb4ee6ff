"""Decodings compared utterance by utterance (scripts/collect_results.py): each decoding's per-utterance errors as
a table, each system's WER with its bootstrap interval (:func:`fairseq_kd.significance.wer_interval`), paired WER
differences against a baseline system (:func:`fairseq_kd.significance.paired_bootstrap`
over utterances and seeds) and substituted words split into misspellings and wrong words against a lexicon
(:func:`fairseq_kd.significance.word_error_categories`).

A :class:`Decoding` is one ``<system>/seed<N>/decode/<method>/<subset>`` directory of the recipe. Its
``utterances`` are the ``per_utterance`` records of its decoding_summary.json (fairseq_kd/decoding/summary.py),
``{id, words, sub, del, ins, reference, hypothesis}`` in id order; summaries without the texts give records
without ``reference`` / ``hypothesis`` (no error categories), summaries without the records give None (no
per-utterance table, no paired difference: the row says which file).

Pairing: seed N of a system with seed N of the baseline (seeds present in only one are reported as skipped), and
utterance ids only: every paired decoding must have decoded the same utterance ids with the same reference word
counts, otherwise :class:`~fairseq_kd.errors.DataError` names both files.
"""
import csv
import io
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .decoding.lexicon import read_lexicon_words  # noqa: F401  (re-exported for collect_results)
from .errors import DataError
from .significance import paired_bootstrap, wer_interval, word_error_categories

UTTERANCE_COLUMNS = ("id", "words", "errors", "sub", "del", "ins", "hypothesis", "reference")
DECODE_AGAIN = "decode again with fairseq-generate --decoding-summary"


@dataclass
class Decoding:
    system: str
    seed: int
    method: str
    subset: str
    source: str  # the file the records come from (named in errors and notes)
    utterances: Optional[List[dict]]  # per-utterance records (module doc), None when the file has none

    @property
    def has_texts(self) -> bool:
        return self.utterances is not None and all("reference" in u and "hypothesis" in u for u in self.utterances)


def utterance_table(utterances: Iterable[dict]) -> str:
    """Tab-separated table of per-utterance records, one row per utterance (:data:`UTTERANCE_COLUMNS`: errors
    = sub + del + ins; empty texts when the record has none)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(UTTERANCE_COLUMNS)
    for u in utterances:
        writer.writerow([u["id"], u["words"], u["sub"] + u["del"] + u["ins"], u["sub"], u["del"], u["ins"],
                         u.get("hypothesis", ""), u.get("reference", "")])
    return buffer.getvalue()


def read_utterance_table(path: str) -> List[dict]:
    """The per-utterance records of a table written by :func:`utterance_table` (empty texts stay empty)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = tuple(next(reader, ()))
        if header != UTTERANCE_COLUMNS:
            raise DataError(f"{path}: header {header}, expected {UTTERANCE_COLUMNS} (a per-utterance table of "
                            "scripts/collect_results.py --per-utterance-dir)")
        records = []
        for line_number, row in enumerate(reader, start=2):
            if len(row) != len(UTTERANCE_COLUMNS):
                raise DataError(f"{path}:{line_number}: {len(row)} columns, expected {len(UTTERANCE_COLUMNS)}")
            record = dict(zip(UTTERANCE_COLUMNS, row))
            try:
                numbers = {k: int(record[k]) for k in ("id", "words", "errors", "sub", "del", "ins")}
            except ValueError:
                raise DataError(f"{path}:{line_number}: a count is not an integer: {row[:6]}") from None
            if numbers["errors"] != numbers["sub"] + numbers["del"] + numbers["ins"]:
                raise DataError(f"{path}:{line_number}: errors {numbers['errors']} != sub + del + ins")
            records.append({"id": numbers["id"], "words": numbers["words"], "sub": numbers["sub"],
                            "del": numbers["del"], "ins": numbers["ins"], "hypothesis": record["hypothesis"],
                            "reference": record["reference"]})
    return records


def group_decodings(decodings: Iterable[Decoding]) -> Dict[Tuple[str, str, str], Dict[int, Decoding]]:
    """``{(system, method, subset): {seed: decoding}}`` in the order of first appearance."""
    groups: Dict[Tuple[str, str, str], Dict[int, Decoding]] = {}
    for d in decodings:
        groups.setdefault((d.system, d.method, d.subset), {})[d.seed] = d
    return groups


def _errors(record: dict) -> int:
    return record["sub"] + record["del"] + record["ins"]


def _examples(ids) -> str:
    shown = sorted(ids)[:5]
    return ", ".join(map(str, shown)) + (", ..." if len(ids) > 5 else "")


def paired_errors(system_runs: Sequence[Decoding], baseline_runs: Sequence[Decoding]):
    """``(system errors S x U, baseline errors S x U, reference words U)`` over the utterance ids of the first
    baseline run, in id order. Raises :class:`DataError` naming both files when a run decoded other utterance
    ids or other references (reference word counts)."""
    first = baseline_runs[0]
    words = {u["id"]: u["words"] for u in first.utterances}
    ids = sorted(words)
    matrices = []
    for runs in (system_runs, baseline_runs):
        rows = []
        for run in runs:
            records = {u["id"]: u for u in run.utterances}
            if records.keys() != words.keys():
                only_run, only_first = records.keys() - words.keys(), words.keys() - records.keys()
                raise DataError(
                    f"{run.source} and {first.source} decoded different utterances of '{run.subset}' "
                    f"({len(records)} and {len(words)}; ids only in the first: {len(only_run)} "
                    f"[{_examples(only_run)}], only in the second: {len(only_first)} [{_examples(only_first)}]): "
                    f"a paired comparison needs the same utterances; decode both on the same {run.subset}.tsv")
            different = [i for i in ids if records[i]["words"] != words[i]]
            if different:
                raise DataError(
                    f"{run.source} and {first.source} have different references for {len(different)} utterances "
                    f"of '{run.subset}' (e.g. id {different[0]}: {records[different[0]]['words']} vs "
                    f"{words[different[0]]} words): decode both on the same {run.subset}.tsv")
            rows.append([_errors(records[i]) for i in ids])
        matrices.append(np.array(rows, dtype=np.float64))
    return matrices[0], matrices[1], np.array([words[i] for i in ids], dtype=np.float64)


def wer_intervals(decodings: Sequence[Decoding], resamples: int = 10000,
                  seed: int = 0) -> Dict[Tuple[str, str, str], Tuple[float, float, float, int]]:
    """``{(system, method, subset): (WER, 95 % low, 95 % high, seeds)}`` over utterances and seeds, for every
    group whose decodings all have per-utterance records (the others are left out)."""
    intervals = {}
    for key, runs in group_decodings(decodings).items():
        ordered = [runs[s] for s in sorted(runs)]
        if any(run.utterances is None for run in ordered):
            continue
        errors, _, words = paired_errors(ordered, ordered)
        intervals[key] = (*wer_interval(errors, words, resamples=resamples, seed=seed), len(ordered))
    return intervals


def paired_differences(decodings: Sequence[Decoding], baseline: str, resamples: int = 10000,
                       seed: int = 0) -> List[dict]:
    """One row per (system, method, subset) of every system but ``baseline``, in the order of ``decodings``: the
    paired difference ``WER(system) - WER(baseline)`` over their common seeds (module doc), with its 95 %
    bootstrap interval, p-value and minimum detectable effect; the statistics are empty (None) when no seed
    pairs or a decoding has no per-utterance records (``note`` says why)."""
    groups = group_decodings(decodings)
    rows = []
    for (system, method, subset), runs in groups.items():
        if system == baseline:
            continue
        base = groups.get((baseline, method, subset), {})
        seeds = sorted(runs.keys() & base.keys())
        skipped = [f"{name}: {','.join(map(str, missing))}" for name, missing in
                   ((system, sorted(runs.keys() - base.keys())), (baseline, sorted(base.keys() - runs.keys())))
                   if missing]
        row = {"system": system, "baseline": baseline, "method": method, "subset": subset,
               "seeds": ",".join(map(str, seeds)), "skipped_seeds": "; ".join(skipped), "utterances": None,
               "system_wer": None, "baseline_wer": None, "diff": None, "ci_low": None, "ci_high": None,
               "p_value": None, "mde": None, "note": ""}
        rows.append(row)
        paired = [runs[s] for s in seeds] + [base[s] for s in seeds]
        missing = [run.source for run in paired if run.utterances is None]
        if not seeds:
            row["note"] = f"no seed of {system} decoded by {baseline} with {method} on {subset}"
            continue
        if missing:
            row["note"] = f"no per-utterance errors in {missing[0]}: {DECODE_AGAIN}"
            continue
        system_errors, baseline_errors, words = paired_errors([runs[s] for s in seeds], [base[s] for s in seeds])
        result = paired_bootstrap(system_errors, baseline_errors, words, resamples=resamples, seed=seed)
        row.update(utterances=result.utterances, system_wer=result.system_wer, baseline_wer=result.baseline_wer,
                   diff=result.delta, ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value,
                   mde=result.minimum_detectable_effect)
    return rows


def _percent(part: int, whole: int) -> Optional[float]:
    return 100.0 * part / whole if whole else None


def error_categories(decodings: Sequence[Decoding], lexicon: Iterable[str]) -> List[dict]:
    """One row per (system, method, subset), seeds pooled (the decodings with texts): substituted hypothesis
    words outside the lexicon (non-words: misspellings) and in it (real words), inserted words likewise,
    deletions, and the out-of-lexicon rate of the references."""
    lexicon = set(lexicon)
    rows = []
    for (system, method, subset), runs in group_decodings(decodings).items():
        runs = {s: run for s, run in sorted(runs.items()) if run.has_texts}
        if not runs:
            continue
        total: Dict[str, int] = {}
        for run in runs.values():
            counts = word_error_categories([u["reference"] for u in run.utterances],
                                           [u["hypothesis"] for u in run.utterances], lexicon)
            for name, value in counts.items():
                total[name] = total.get(name, 0) + value
        substitutions = total["substitution_non_word"] + total["substitution_real_word"]
        rows.append({
            "system": system, "method": method, "subset": subset, "seeds": ",".join(map(str, runs)),
            "substitutions": substitutions, "substitution_non_word": total["substitution_non_word"],
            "substitution_real_word": total["substitution_real_word"],
            "non_word_percent": _percent(total["substitution_non_word"], substitutions),
            "insertion_non_word": total["non_word"] - total["substitution_non_word"],
            "insertion_real_word": total["real_word"] - total["substitution_real_word"],
            "deletions": total["deletions"],
            "reference_out_of_lexicon_percent": _percent(total["reference_out_of_lexicon"], total["reference_words"]),
        })
    return rows


def reference_out_of_lexicon(decodings: Sequence[Decoding], lexicon: Iterable[str]) -> List[dict]:
    """Per subset (the first decoding of it with texts: every decoding of a subset has its references): reference
    words, how many are not in the lexicon, their percentage."""
    lexicon = set(lexicon)
    rows = {}
    for d in decodings:
        if d.subset not in rows and d.has_texts:
            words = [w for u in d.utterances for w in u["reference"].split()]
            oov = sum(w not in lexicon for w in words)
            rows[d.subset] = {"subset": d.subset, "utterances": len(d.utterances), "reference_words": len(words),
                              "out_of_lexicon": oov, "out_of_lexicon_percent": _percent(oov, len(words))}
    return list(rows.values())


def _number(value, fmt: str = "{:.2f}") -> str:
    return "" if value is None else fmt.format(value)


def differences_markdown(rows: Sequence[dict], baseline: str, resamples: int) -> str:
    """The "Differences against BASELINE" section of results.md (rows of :func:`paired_differences`, in their
    order). Its rows and the error categories' start with the subset: the results table's rows alone start
    with ``| system | decoding |`` (what scripts/run_tests.sh counts)."""
    lines = [f"## Differences against {baseline}", "",
             f"WER(system) - WER({baseline}) in points (negative: better than {baseline}), seed N paired with seed "
             f"N, utterances paired by id; 95 % paired bootstrap interval over utterances and seeds ({resamples} "
             "resamples), two-sided p, minimum detectable effect (MDE: alpha 0.05, power 0.8) of this many "
             "utterances and seeds.", "",
             "| subset | system | decoding | diff | 95 % CI | p | MDE | seeds |",
             "|---|---|---|---:|---|---:|---:|---|"]
    floor = f"<{1 / resamples:g}"
    for r in rows:
        if r["diff"] is None:
            cells = [r["note"], "", "", "", r["seeds"]]
        else:
            p = floor if r["p_value"] == 0 else _number(r["p_value"], "{:.3f}")
            cells = [_number(r["diff"], "{:+.2f}"), f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", p,
                     _number(r["mde"]), r["seeds"]]
        if r["skipped_seeds"]:
            cells[-1] = f"{cells[-1]} (skipped {r['skipped_seeds']})".strip()
        lines.append(f"| {r['subset']} | {r['system']} | {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def question_differences(decodings: Sequence[Decoding], questions: Sequence[Tuple[str, str, str]],
                         resamples: int = 10000) -> List[dict]:
    """Rows of :func:`paired_differences` for each ``(name, system, baseline)`` of ``questions`` (e.g. ``("Q2",
    "xs_interctc_interaedkd", "xs_interctc")``), in question order, with a ``question`` column first; a question
    whose systems were not both decoded (not trained yet) gives no rows."""
    rows = []
    for name, system, baseline in questions:
        pair = [d for d in decodings if d.system in (system, baseline)]
        if {d.system for d in pair} != {system, baseline}:
            continue
        rows += [{"question": name, **row} for row in paired_differences(pair, baseline, resamples=resamples)
                 if row["system"] == system]
    return rows


def intervals_markdown(intervals: Dict[Tuple[str, str, str], Tuple[float, float, float, int]], resamples: int,
                       main_subset: str) -> str:
    """The "WER with 95 % intervals" section of results.md (the result of :func:`wer_intervals`): one row per
    method and system, in the order of ``intervals``, one column per subset (``main_subset`` first). Its rows
    start with the method: the results table's rows alone start with the system."""
    subsets = sorted({subset for _, _, subset in intervals}, key=lambda s: (s != main_subset, s))
    rows = {}
    for (system, method, subset), (wer, low, high, seeds) in intervals.items():
        row = rows.setdefault((method, system), {"seeds": set()})
        row[subset] = f"{wer:.1f} [{low:.1f}, {high:.1f}]"
        row["seeds"].add(seeds)
    lines = ["## WER with 95 % intervals", "",
             f"Each system's WER over its seeds with a 95 % bootstrap interval over utterances and seeds ({resamples} "
             "resamples); seeds: how many were decoded.", "",
             "| decoding | system | seeds | " + " | ".join(subsets) + " |",
             "|---|---|---|" + "---:|" * len(subsets)]
    for (method, system), row in rows.items():
        seeds = "/".join(str(n) for n in sorted(row["seeds"]))
        lines.append(f"| {method} | {system} | {seeds} | " + " | ".join(row.get(s, "") for s in subsets) + " |")
    return "\n".join(lines) + "\n"


def questions_markdown(rows: Sequence[dict], resamples: int) -> str:
    """The "Questions" section of results.md (rows of :func:`question_differences`)."""
    lines = ["## Questions", "",
             "WER(system) - WER(baseline) in points per question (negative: the system is better), seed N paired "
             f"with seed N, utterances paired by id; 95 % paired bootstrap interval ({resamples} resamples), "
             "two-sided p, minimum detectable effect (MDE: alpha 0.05, power 0.8).", "",
             "| question | subset | decoding | system - baseline | diff | 95 % CI | p | MDE | seeds |",
             "|---|---|---|---|---:|---|---:|---:|---|"]
    floor = f"<{1 / resamples:g}"
    for r in rows:
        if r["diff"] is None:
            cells = [r["note"], "", "", "", r["seeds"]]
        else:
            p = floor if r["p_value"] == 0 else _number(r["p_value"], "{:.3f}")
            cells = [_number(r["diff"], "{:+.2f}"), f"[{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]", p,
                     _number(r["mde"]), r["seeds"]]
        lines.append(f"| {r['question']} | {r['subset']} | {r['method']} | {r['system']} - {r['baseline']} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def categories_markdown(rows: Sequence[dict], oov_rows: Sequence[dict], lexicon_path: str) -> str:
    """The "Error categories" section of results.md (rows of :func:`error_categories` and
    :func:`reference_out_of_lexicon`)."""
    lines = [f"## Error categories (lexicon: {lexicon_path})", "",
             "Substituted hypothesis words outside the lexicon (non-words: misspellings) and in it (real words: "
             "wrong word choices), seeds pooled; inserted words likewise; reference words outside the lexicon "
             "(no lexicon-constrained decoder can output them).", "",
             "| subset | utterances | reference words | out of lexicon | % |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['subset']} | {r['utterances']} | {r['reference_words']} | {r['out_of_lexicon']} | "
              f"{_number(r['out_of_lexicon_percent'])} |" for r in oov_rows]
    lines += ["", "| subset | system | decoding | seeds | substitutions | non-word | real word | non-word % "
              "| insertions non-word / real word | deletions |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['subset']} | {r['system']} | {r['method']} | {r['seeds']} | {r['substitutions']} | "
              f"{r['substitution_non_word']} | {r['substitution_real_word']} | "
              f"{_number(r['non_word_percent'], '{:.1f}')} | {r['insertion_non_word']} / {r['insertion_real_word']} | "
              f"{r['deletions']} |" for r in rows]
    return "\n".join(lines) + "\n"
