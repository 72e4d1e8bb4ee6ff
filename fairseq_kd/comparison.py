"""Decodings compared utterance by utterance (scripts/collect_results.py): each decoding's per-utterance errors as
a table, each system's WER with its 95 % interval (:func:`fairseq_kd.significance.wer_interval`), paired WER
differences against a baseline system (:func:`fairseq_kd.significance.paired_difference`, over utterances or
speakers and seeds) and substituted words split into misspellings and wrong words against a lexicon
(:func:`fairseq_kd.significance.word_error_categories`).

A :class:`Decoding` is one ``<system>/seed<N>/decode/<method>/<subset>`` directory of the recipe. Its
``utterances`` are the ``per_utterance`` records of its decoding_summary.json (fairseq_kd/decoding/summary.py),
``{id, words, sub, del, ins, reference, hypothesis}`` in id order; summaries without the texts give records
without ``reference`` / ``hypothesis`` (no error categories), summaries without the records give None (no
per-utterance table, no paired difference: the row says which file).

Pairing: seed N of a system with seed N of the baseline (seeds present in only one are reported as skipped), and
utterance ids only: every paired decoding must have decoded the same utterance ids with the same reference word
counts, otherwise :class:`~fairseq_kd.errors.DataError` names both files.

Seed component: one per decoding method and subset, pooled over every system of the decodings given (the results
table; :func:`seed_components`, the module doc of :mod:`fairseq_kd.significance` says why), used by every
interval and difference of that method and subset.

Speakers: a record may carry its utterance's ``speaker`` (:func:`attach_speakers`: from the file names of a
manifest, :func:`manifest_speakers`, or a speakers table, :func:`read_speakers_table`). A decoding with
``cluster_by_speaker`` has its intervals over speakers instead of utterances (test_unseen: 2 voices never trained
on); :func:`speaker_subsets` splits a subset into one pseudo-subset ``SUBSET/SPEAKER`` per speaker, each with
its intervals over that speaker's utterances.
"""
import csv
import io
import os
import re
from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .data.manifest import read_manifest
from .decoding.lexicon import read_lexicon_words  # noqa: F401  (re-exported for collect_results)
from .errors import DataError
from .significance import SeedVariance, paired_difference, seed_variance, wer_interval, word_error_categories

UTTERANCE_COLUMNS = ("id", "words", "errors", "sub", "del", "ins", "hypothesis", "reference")
DECODE_AGAIN = "decode again with fairseq-generate --decoding-summary"
INTERVALS_EXPLAINED = (
    "95 % interval delta +- t sqrt(V) over utterances (speakers where it says so) and seeds, V the variance over "
    "both with the seed component pooled over every system of the table (fairseq_kd/significance.py; "
    "\"utterances only\": no system has 2 seeds, the interval says nothing about seeds), two-sided p of the t test, "
    "minimum detectable effect (MDE: alpha 0.05, power 0.8) of this many utterances and seeds")
SeedComponents = Dict[Tuple[str, str], Optional[SeedVariance]]  # {(method, subset): pooled seed component}


@dataclass
class Decoding:
    system: str
    seed: int
    method: str
    subset: str
    source: str  # the file the records come from (named in errors and notes)
    utterances: Optional[List[dict]]  # per-utterance records (module doc), None when the file has none
    cluster_by_speaker: bool = False  # intervals over the records' speakers, not over utterances (module doc)

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


# make_synthetic_corpus.py's "<split>-<voice>-<index>" and LibriSpeech's "<speaker>-<chapter>-<utterance>"
SYNTHETIC_UTTERANCE = re.compile(r"[a-z0-9_]+-(?P<speaker>.+)-\d+")
LIBRISPEECH_UTTERANCE = re.compile(r"(?P<speaker>\d+)-\d+-\d+")
SPEAKER_COLUMNS = ("id", "speaker")


def speaker_of(audio_path: str) -> Optional[str]:
    """The speaker an audio file's name gives: LibriSpeech's ``<speaker>-<chapter>-<utterance>``, the synthetic
    corpus's ``<split>-<voice>-<index>`` (scripts/make_synthetic_corpus.py, the voice with ``_`` for ``:`` and
    ``+``); None for another naming."""
    stem = os.path.splitext(os.path.basename(audio_path))[0]
    for pattern in (LIBRISPEECH_UTTERANCE, SYNTHETIC_UTTERANCE):
        match = pattern.fullmatch(stem)
        if match:
            return match.group("speaker")
    return None


def manifest_speakers(manifest_path: str) -> Optional[Dict[int, str]]:
    """``{utterance id: speaker}`` of a manifest (fairseq's utterance id: the index of the audio line), from its
    file names (:func:`speaker_of`); None when a name does not give its speaker."""
    _, entries = read_manifest(manifest_path)
    speakers = [speaker_of(path) for path, _, _ in entries]
    return None if None in speakers else dict(enumerate(speakers))


def speakers_table(speakers: Dict[int, str]) -> str:
    """Tab-separated ``id speaker`` lines (:data:`SPEAKER_COLUMNS`, a header first), in id order."""
    return "\t".join(SPEAKER_COLUMNS) + "\n" + "".join(f"{i}\t{speakers[i]}\n" for i in sorted(speakers))


def read_speakers_table(path: str) -> Dict[int, str]:
    """The ``{utterance id: speaker}`` of a table written by :func:`speakers_table`."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if not lines or tuple(lines[0].split("\t")) != SPEAKER_COLUMNS:
        raise DataError(f"{path}: expected the header {SPEAKER_COLUMNS} (a speakers table of "
                        "scripts/collect_results.py or scripts/synthetic_speakers.py)")
    speakers = {}
    for line_number, line in enumerate(lines[1:], start=2):
        utt_id, _, speaker = line.partition("\t")
        if not utt_id.isdigit() or not speaker:
            raise DataError(f"{path}:{line_number}: expected 'ID<TAB>SPEAKER', got {line!r}")
        speakers[int(utt_id)] = speaker
    return speakers


def attach_speakers(decodings: Iterable[Decoding], speakers_of_subset: Dict[str, Dict[int, str]],
                    clustered_subsets: Iterable[str] = ()) -> List[Decoding]:
    """The decodings with the ``speaker`` of each record from ``speakers_of_subset`` ({subset: {id: speaker}});
    those of ``clustered_subsets`` with ``cluster_by_speaker`` (their intervals over speakers). A decoding whose
    utterance has no speaker there raises :class:`DataError` when its subset has speakers or is clustered, and so
    does a clustered decoding of a single speaker."""
    clustered_subsets = set(clustered_subsets)
    attached = []
    for d in decodings:
        speakers = speakers_of_subset.get(d.subset)
        if d.utterances is not None and (speakers is not None or d.subset in clustered_subsets):
            missing = [u["id"] for u in d.utterances if u["id"] not in (speakers or {})]
            if missing:
                raise DataError(f"{d.source}: no speaker for {len(missing)} utterances of '{d.subset}' (ids "
                                f"{_examples(missing)}), needed to cluster its intervals by speaker: give the "
                                f"manifest {d.subset}.tsv whose file names name the speakers, or a speakers table")
            if d.subset in clustered_subsets and len({speakers[u["id"]] for u in d.utterances}) < 2:
                raise DataError(f"{d.source}: every utterance of '{d.subset}' has the same speaker: intervals over "
                                "speakers need 2 or more; do not cluster this subset by speaker")
            d = replace(d, utterances=[{**u, "speaker": speakers[u["id"]]} for u in d.utterances],
                        cluster_by_speaker=d.subset in clustered_subsets)
        attached.append(d)
    return attached


def speaker_subsets(decodings: Iterable[Decoding], subsets: Iterable[str]) -> List[Decoding]:
    """One decoding per speaker of every decoding of ``subsets`` whose records have speakers
    (:func:`attach_speakers`): its records of that speaker, as the pseudo-subset ``SUBSET/SPEAKER``, with its
    intervals over that speaker's utterances (a speaker with fewer than 2 utterances gets none)."""
    subsets = set(subsets)
    views = []
    for d in decodings:
        if d.subset not in subsets or d.utterances is None or not all("speaker" in u for u in d.utterances):
            continue
        by_speaker: Dict[str, List[dict]] = {}
        for u in d.utterances:
            by_speaker.setdefault(u["speaker"], []).append(u)
        views += [replace(d, subset=f"{d.subset}/{speaker}", utterances=records, cluster_by_speaker=False)
                  for speaker, records in sorted(by_speaker.items()) if len(records) >= 2]
    return views


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


def _unit_speakers(run: Decoding) -> Optional[List[str]]:
    """The speakers of ``run``'s utterances in id order when its intervals are over speakers, else None."""
    return [u["speaker"] for u in sorted(run.utterances, key=lambda u: u["id"])] if run.cluster_by_speaker else None


def seed_components(decodings: Sequence[Decoding]) -> SeedComponents:
    """``{(method, subset): the seed component pooled over the systems}`` (module doc) for every method and subset
    decoded; None where no system has 2 seeds with per-utterance records (those are the ones pooled, and they
    must have decoded the same utterances: :func:`paired_errors`)."""
    seeded: Dict[Tuple[str, str], List[List[Decoding]]] = {}
    for (_, method, subset), runs in group_decodings(decodings).items():
        runs = [runs[s] for s in sorted(runs) if runs[s].utterances is not None]
        seeded.setdefault((method, subset), [])
        if len(runs) >= 2:
            seeded[method, subset].append(runs)
    components = {}
    for key, systems in seeded.items():
        if not systems:
            components[key] = None
            continue
        reference = systems[0][0]
        aligned = [paired_errors(runs, [reference]) for runs in systems]
        components[key] = seed_variance([errors for errors, _, _ in aligned], aligned[0][2],
                                        _unit_speakers(reference))
    return components


def seed_component_rows(components: SeedComponents) -> List[dict]:
    """One row per method and subset with a seed component: systems pooled, degrees of freedom, the SD of a seed's
    WER around its system's mean (points), the part of its variance that is seed x unit noise, what remains (a
    seed's shift of the whole subset, positive part) and Bartlett's p of equal seed variances across systems."""
    return [{"method": method, "subset": subset, "systems": c.systems, "df": c.between_df,
             "seed_sd": c.between ** 0.5, "noise_sd": c.interaction ** 0.5,
             "shift_sd": max(c.between - c.interaction, 0.0) ** 0.5, "homogeneity_p": c.homogeneity_p}
            for (method, subset), c in components.items() if c is not None]


def wer_intervals(decodings: Sequence[Decoding],
                  components: Optional[SeedComponents] = None
                  ) -> Dict[Tuple[str, str, str], dict]:
    """``{(system, method, subset): {system, method, subset, seeds, wer, ci_low, ci_high, df, interval_over}}``:
    each system's WER over its seeds with its 95 % interval over utterances (or speakers) and seeds
    (``components``: :func:`seed_components` of ``decodings`` when not given), for every group whose decodings
    all have per-utterance records (the others are left out)."""
    components = seed_components(decodings) if components is None else components
    intervals = {}
    for (system, method, subset), runs in group_decodings(decodings).items():
        ordered = [runs[s] for s in sorted(runs)]
        if any(run.utterances is None for run in ordered):
            continue
        errors, _, words = paired_errors(ordered, ordered)
        interval = wer_interval(errors, words, speakers=_unit_speakers(ordered[0]),
                                seed_component=components.get((method, subset)))
        intervals[system, method, subset] = {
            "system": system, "method": method, "subset": subset, "seeds": len(ordered), "wer": interval.estimate,
            "ci_low": interval.ci_low, "ci_high": interval.ci_high, "df": interval.df,
            "interval_over": interval.interval_over}
    return intervals


def paired_differences(decodings: Sequence[Decoding], baseline: str,
                       components: Optional[SeedComponents] = None) -> List[dict]:
    """One row per (system, method, subset) of every system but ``baseline``, in the order of ``decodings``: the
    paired difference ``WER(system) - WER(baseline)`` over their common seeds (module doc), with its 95 %
    interval, p-value, minimum detectable effect, standard error, degrees of freedom and what the interval is
    over (``components``: :func:`seed_components` of ``decodings`` when not given); the statistics are empty
    (None) when no seed pairs or a decoding has no per-utterance records (``note`` says why)."""
    components = seed_components(decodings) if components is None else components
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
               "p_value": None, "mde": None, "se": None, "df": None, "interval_over": "", "note": ""}
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
        result = paired_difference(system_errors, baseline_errors, words, speakers=_unit_speakers(base[seeds[0]]),
                                   seed_component=components.get((method, subset)))
        row.update(utterances=len(words), system_wer=result.system_wer, baseline_wer=result.baseline_wer,
                   diff=result.delta, ci_low=result.ci_low, ci_high=result.ci_high, p_value=result.p_value,
                   mde=result.minimum_detectable_effect, se=result.standard_error, df=result.df,
                   interval_over=result.interval_over)
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


def _p_value(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _difference_cells(row: dict) -> List[str]:
    """diff, 95 % CI, p, MDE, seeds and interval-over cells of a row of :func:`paired_differences`."""
    if row["diff"] is None:
        return [row["note"], "", "", "", row["seeds"], ""]
    return [_number(row["diff"], "{:+.2f}"), f"[{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]",
            _p_value(row["p_value"]), _number(row["mde"]), row["seeds"], row["interval_over"]]


def differences_markdown(rows: Sequence[dict], baseline: str) -> str:
    """The "Differences against BASELINE" section of results.md (rows of :func:`paired_differences`, in their
    order). Its rows and the error categories' start with the subset: the results table's rows alone start
    with ``| system | decoding |`` (what scripts/run_tests.sh counts)."""
    lines = [f"## Differences against {baseline}", "",
             f"WER(system) - WER({baseline}) in points (negative: better than {baseline}), seed N paired with seed "
             f"N, utterances paired by id; {INTERVALS_EXPLAINED}.", "",
             "| subset | system | decoding | diff | 95 % CI | p | MDE | seeds | interval over |",
             "|---|---|---|---:|---|---:|---:|---|---|"]
    for r in rows:
        cells = _difference_cells(r)
        if r["skipped_seeds"]:
            cells[-2] = f"{cells[-2]} (skipped {r['skipped_seeds']})".strip()
        lines.append(f"| {r['subset']} | {r['system']} | {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def question_differences(decodings: Sequence[Decoding], questions: Sequence[Tuple[str, str, str]],
                         components: Optional[SeedComponents] = None) -> List[dict]:
    """Rows of :func:`paired_differences` for each ``(name, system, baseline)`` of ``questions`` (e.g. ``("Q2",
    "xs_interctc_interaedkd", "xs_interctc")``), in question order, with a ``question`` column first; a question
    whose systems were not both decoded (not trained yet) gives no rows. The seed component is pooled over every
    system of ``decodings`` (``components``: :func:`seed_components` of them when not given), not over the pair."""
    components = seed_components(decodings) if components is None else components
    rows = []
    for name, system, baseline in questions:
        pair = [d for d in decodings if d.system in (system, baseline)]
        if {d.system for d in pair} != {system, baseline}:
            continue
        rows += [{"question": name, **row} for row in paired_differences(pair, baseline, components)
                 if row["system"] == system]
    return rows


def intervals_markdown(intervals: Dict[Tuple[str, str, str], dict], main_subset: str,
                       seed_rows: Sequence[dict] = ()) -> str:
    """The "WER with 95 % intervals" section of results.md (the result of :func:`wer_intervals`): one row per
    method and system, in the order of ``intervals``, one column per subset (``main_subset`` first); then the
    pooled seed components (``seed_rows``: :func:`seed_component_rows`). Its rows start with the method: the
    results table's rows alone start with the system."""
    subsets = sorted({subset for _, _, subset in intervals}, key=lambda s: (s != main_subset, s))
    rows = {}
    for (system, method, subset), interval in intervals.items():
        row = rows.setdefault((method, system), {"seeds": set()})
        row[subset] = f"{interval['wer']:.1f} [{interval['ci_low']:.1f}, {interval['ci_high']:.1f}]"
        row["seeds"].add(interval["seeds"])
    over = sorted({f"{subset}: {i['interval_over']}" for (_, _, subset), i in intervals.items()
                   if not i["interval_over"].startswith("utterances")})
    lines = ["## WER with 95 % intervals", "",
             "Each system's WER over its seeds with its 95 % interval over utterances and seeds (t interval, the seed "
             "component pooled over the table's systems: fairseq_kd/significance.py"
             + (f"; over speakers instead of utterances for {', '.join(over)}" if over else "")
             + "); seeds: how many were decoded.", "",
             "| decoding | system | seeds | " + " | ".join(subsets) + " |",
             "|---|---|---|" + "---:|" * len(subsets)]
    for (method, system), row in rows.items():
        seeds = "/".join(str(n) for n in sorted(row["seeds"]))
        lines.append(f"| {method} | {system} | {seeds} | " + " | ".join(row.get(s, "") for s in subsets) + " |")
    if seed_rows:
        lines += ["", "Seed component, pooled over the systems with 2 or more seeds: the SD of one seed's WER around "
                  "its system's mean, the part of it that is seed x utterance noise (already in the utterance "
                  "component), what remains (a seed's shift of the whole subset; points), and Bartlett's p of equal "
                  "seed variances across the systems (the pooling's assumption; little power with 2-3 seeds).", "",
                  "| decoding | subset | systems | df | seed SD | of it noise | shift SD | equal variances p |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['method']} | {r['subset']} | {r['systems']} | {r['df']} | {r['seed_sd']:.2f} | "
                  f"{r['noise_sd']:.2f} | {r['shift_sd']:.2f} | {_number(r['homogeneity_p'], '{:.3f}')} |"
                  for r in seed_rows]
    return "\n".join(lines) + "\n"


def questions_markdown(rows: Sequence[dict]) -> str:
    """The "Questions" section of results.md (rows of :func:`question_differences`)."""
    lines = ["## Questions", "",
             "WER(system) - WER(baseline) in points per question (negative: the system is better), seed N paired "
             f"with seed N, utterances paired by id; {INTERVALS_EXPLAINED}.", "",
             "| question | subset | decoding | system - baseline | diff | 95 % CI | p | MDE | seeds | interval over |",
             "|---|---|---|---|---:|---|---:|---:|---|---|"]
    lines += [f"| {r['question']} | {r['subset']} | {r['method']} | {r['system']} - {r['baseline']} | "
              + " | ".join(_difference_cells(r)) + " |" for r in rows]
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
