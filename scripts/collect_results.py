#!/usr/bin/env python3
"""Collect the recipe's decoding results into a table (markdown + CSV) and a plot of WER vs decoding time.

Reads, under --exp, every ``<system>/seed<N>/decode/<method>/<subset>/`` directory written by
examples/kd/run.sh. Per decoding: the WER, substitutions / deletions / insertions and the decoding time (model
forward + search, without data loading) from ``decoding_summary.json``, the record fairseq-generate writes with
``--decoding-summary`` (fairseq_kd/decoding/summary.py); for a decoding made without it, from
``generate-<subset>.txt`` (fairseq-generate's T-/D- lines, words counted by fairseq_kd.decoding.scoring like the
summary's) and ``generate.log`` (its "Translated N sentences ... in X s" line). Then the real-time factor (time
/ audio duration of the subset, from ``<data>/<subset>.tsv``) and the parameters used at inference (the
checkpoint without the training-only attention decoder).

Outputs (atomic): results.csv (one row per system, seed, method, subset, with
the distillation setting alpha, beta, temperature: distillation_setting), results.md (mean and spread over
seeds, one row per system and method), wer_vs_time.png (one point per system and method, test subset, its time
from --timing: below), and with --stages the recipe's stage wall times (stage_times.md).

Decoding times. A decoding's own time (results.md's "recipe decode time") is what it took where the recipe ran it:
beside trainings or other decodings, with whatever threads were free, so a greedy decoding can take longer than
a beam search decoded at a quieter moment. Times are compared only where they were measured side by side: with
--timing DIR (``DIR/<system>.json``, scripts/benchmark_decoding.py --json: the same emissions searched greedily
and by every beam + LM, fastest of --repeats, one process), the "x greedy" and "RTF" columns and the plot's time
axis are that benchmark's (PyTorch float32 rows; --previous's ``timing/`` completes the systems not benchmarked
here). Without a benchmark of any system there is no wer_vs_time.png and the columns stay empty.

From the per-utterance errors (the summary's ``per_utterance`` records, or the T-/D- lines;
fairseq_kd/comparison.py), with 95 % t intervals over utterances and seeds whose seed component is pooled over
every system of the table (fairseq_kd/significance.py: with 2-3 seeds a system's own seed variance has 1-2
degrees of freedom; with no system of 2 seeds the intervals are over "utterances only"):

* wer_intervals.csv, results.md's "95 % CI" column (main subset), its "WER with 95 % intervals" (every subset,
  and the pooled seed components, also in seed_variance.csv) and the plot's error bars: each system's and
  method's WER with its interval;
* significance.csv and results.md's "Differences against BASELINE": per other system, method and subset, the
  paired WER difference to --baseline (seed N with seed N, utterances paired by id) with its interval, p-value,
  minimum detectable effect and what the interval is over;
* with --questions "Q1:SYSTEM:BASELINE ...": questions.csv and results.md's "Questions" (first): the same paired
  differences for each named pair of systems (the questions of an experiment's plan, e.g.
  docs/results/evidence/PLAN.md), every method and subset; and forest.png, a forest plot of them (one row per
  question and test subset; without --questions, of significance.csv's differences);
* the subsets of --cluster-by-speaker (default test_unseen: its 2 voices were never trained on) have their
  intervals over speakers instead of utterances, and those of --per-speaker (default test_unseen) also one row
  per speaker, as the subset SUBSET/SPEAKER; the speaker of each utterance comes from the file names of
  DATA/SUBSET.tsv (the synthetic corpus's <split>-<voice>-<index>, LibriSpeech's <speaker>-<chapter>-<utterance>)
  or from DIR/speakers/SUBSET.tsv of --previous, and is written to speakers/SUBSET.tsv;
* with --lexicon (the LM's lexicon.txt): error_categories.csv and results.md's "Error categories": substituted
  words that are non-words (misspellings) vs real words, and the out-of-lexicon rate of each subset's references;
* with --per-utterance-dir DIR: DIR/<system>/seed<N>/<method>/<subset>.tsv per decoding (id, reference words,
  errors, sub, del, ins, hypothesis, reference).

With --previous DIR (an earlier output of this script with its per-utterance tables, e.g. the results committed
under docs/results/<preset>/ by a session whose exp/ is gone), every decoding of DIR's results.csv that is not
under --exp is taken from DIR: its row as it is, its per-utterance records from
DIR/per_utterance/<system>/seed<N>/<method>/<subset>.tsv. A decoding under --exp always wins.

  python scripts/collect_results.py --exp exp/cpu --data data/cpu/corpus --out exp/cpu/results \
      --lexicon exp/cpu/lm/lexicon.txt --per-utterance-dir exp/cpu/results/per_utterance
"""
import argparse
import csv
import glob
import io
import os
import re
import statistics
from collections import defaultdict

import numpy as np
import torch
import yaml

import fairseq_kd  # noqa: F401  (safe checkpoint loading)
from fairseq_kd.comparison import (
    Decoding,
    attach_speakers,
    categories_markdown,
    differences_markdown,
    error_categories,
    intervals_markdown,
    manifest_speakers,
    paired_differences,
    question_differences,
    questions_markdown,
    read_lexicon_words,
    read_speakers_table,
    read_utterance_table,
    reference_out_of_lexicon,
    seed_component_rows,
    seed_components,
    speaker_subsets,
    speakers_table,
    utterance_table,
    wer_intervals,
)
from fairseq_kd.data.manifest import read_manifest
from fairseq_kd.decoding.scoring import edit_errors, word_errors
from fairseq_kd.errors import DataError
from fairseq_kd.io_utils import atomic_write, read_json
from fairseq_kd.models.conformer_kd import inference_state_dict

TIMER = re.compile(r"Translated ([\d,]+) sentences .* in ([\d.]+)s")
SUMMARY_FILE = "decoding_summary.json"


def read_generate(path):
    """(ids, references, hypotheses) in utterance-id order from fairseq-generate's T-/D- lines."""
    refs, hyps = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("T-"):
                key, _, text = line.rstrip("\n").partition("\t")
                refs[int(key[2:])] = text
            elif line.startswith("D-"):
                key, _, rest = line.rstrip("\n").partition("\t")
                hyps[int(key[2:])] = rest.partition("\t")[2]
    if refs.keys() != hyps.keys():
        raise SystemExit(f"{path}: references and hypotheses differ in utterances")
    ids = sorted(refs)
    return ids, [refs[i] for i in ids], [hyps[i] for i in ids]


def read_decoding(decode_dir, subset):
    """``{utterances, words, wer, sub, del, ins, decode_seconds, per_utterance, source}`` of one decoding, or None
    if it did not finish: its decoding_summary.json, else fairseq-generate's generate-SUBSET.txt and generate.log
    (``per_utterance`` is missing from summaries written before it was recorded; ``source``: the file read)."""
    path = os.path.join(decode_dir, SUMMARY_FILE)
    summary = read_json(path, "decode again with fairseq-generate")
    if summary is not None:
        return {**summary, "source": path}
    generate = os.path.join(decode_dir, f"generate-{subset}.txt")
    log = os.path.join(decode_dir, "generate.log")
    if not (os.path.isfile(generate) and os.path.isfile(log)):
        return None
    ids, refs, hyps = read_generate(generate)
    with open(log, encoding="utf-8") as f:
        timer = TIMER.findall(f.read())
    if not timer:
        raise SystemExit(f"{log}: no 'Translated ... in X s' line: did fairseq-generate finish?")
    errors = word_errors(hyps, refs)
    per_utterance = []
    for utt_id, reference, hypothesis in zip(ids, refs, hyps):
        e = edit_errors(reference.split(), hypothesis.split())
        per_utterance.append({"id": utt_id, "reference": reference, "hypothesis": hypothesis, "words": e.words,
                              "sub": e.substitutions, "del": e.deletions, "ins": e.insertions})
    return {"utterances": len(refs), "words": errors.words, "wer": errors.wer, "sub": errors.substitutions,
            "del": errors.deletions, "ins": errors.insertions, "decode_seconds": float(timer[-1][1]),
            "per_utterance": per_utterance, "source": generate}


def audio_seconds(data, subset, sample_rate=16000):
    _, entries = read_manifest(os.path.join(data, f"{subset}.tsv"))
    return sum(n for _, n, _ in entries) / sample_rate, len(entries)


def load_checkpoint(checkpoint, cache={}):  # noqa: B006  (memo per checkpoint path)
    if checkpoint not in cache:
        cache[checkpoint] = torch.load(checkpoint, map_location="cpu", weights_only=True)  # fairseq_kd/checkpoints.py
    return cache[checkpoint]


def inference_parameters(checkpoint):
    return sum(v.numel() for v in inference_state_dict(load_checkpoint(checkpoint)["model"]).values()
               if v.is_floating_point())


SETTING_COLUMNS = ("alpha", "beta", "temperature")
RECIPE_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples", "kd")


def distillation_setting(seed_dir, system, data):
    """``{alpha, beta, temperature}`` of a training (docs: fairseq_kd/criterions/ctc_kd.py): the criterion's
    ``aed_kd_weight``, ``kd_kl_weight`` and the teacher temperature the KL reads, ``kd_temperature`` x the
    sidecars' extraction temperature (their teacher.json). From the checkpoint's config; for a decoding taken
    from --previous without its checkpoint, from the recipe config examples/kd/SYSTEM.yaml (the recipe overrides
    only seed, updates and precision) and DATA/teacher/teacher.json. ``beta`` is empty without the decoder
    (alpha = 0), ``temperature`` also with beta = 0 (no KL term)."""
    checkpoint = os.path.join(seed_dir, "checkpoint_best.pt") if seed_dir else None
    if checkpoint and os.path.isfile(checkpoint):
        cfg = load_checkpoint(checkpoint)["cfg"]
        criterion, sidecars, source = cfg["criterion"], cfg["task"].get("kd_sidecar_dir"), checkpoint
    else:
        source = os.path.normpath(os.path.join(RECIPE_CONFIGS, f"{system}.yaml"))
        if not os.path.isfile(source):
            raise SystemExit(f"{system}: no checkpoint under {seed_dir} and no recipe config {source}: cannot tell "
                             f"its alpha / beta / temperature")
        with open(source, encoding="utf-8") as f:
            criterion = yaml.safe_load(f)["criterion"]
        sidecars = os.path.join(data, "teacher")
    alpha = float(criterion.get("aed_kd_weight") or 0.0)
    beta = float(criterion.get("kd_kl_weight", 1.0)) if alpha > 0 else ""
    temperature = ""
    if alpha > 0 and beta > 0:
        header = os.path.join(sidecars or "", "teacher.json")
        if not os.path.isfile(header):
            raise SystemExit(f"{source}: its teacher sidecars' {header} is missing: the extraction temperature of "
                             f"{system} is unknown (run on the machine of the training, or give --data the corpus "
                             f"whose teacher/ holds them)")
        temperature = float(criterion.get("kd_temperature", 1.0)) * float(read_json(header)["temperature"])
    return {"alpha": alpha, "beta": beta, "temperature": temperature}


def with_setting(row, setting):
    """``row`` with the setting columns after ``seed``."""
    out = {}
    for key, value in row.items():
        if key not in SETTING_COLUMNS:
            out[key] = value
        if key == "seed":
            out.update(setting)
    return out


def read_decodings(exp):
    """``[(seed directory, system, seed, method, subset, measured)]`` of every finished decoding under ``exp``
    (none: an empty list)."""
    found = []
    for decode_dir in sorted(glob.glob(os.path.join(exp, "*", "seed*", "decode", "*", "*"))):
        method_dir, subset = os.path.split(decode_dir)
        seed_dir, method = os.path.dirname(os.path.dirname(method_dir)), os.path.basename(method_dir)
        measured = read_decoding(decode_dir, subset)
        if measured is not None:
            found.append((seed_dir, os.path.basename(os.path.dirname(seed_dir)),
                          int(os.path.basename(seed_dir)[4:]), method, subset, measured))
    return found


INTEGER_COLUMNS = ("seed", "utterances", "words", "sub", "del", "ins", "params_inference")
FLOAT_COLUMNS = ("wer", "decode_s", "audio_s", "rtf")


def read_previous(directory, found, data):
    """``(rows, found entries)`` of the decodings in ``directory`` (an earlier output: results.csv and
    per_utterance/) that are not in ``found`` (:func:`read_decodings`' entries of --exp); the setting columns
    from its results.csv, or :func:`distillation_setting` where an older one has none."""
    have = {(system, seed, method, subset) for _, system, seed, method, subset, _ in found}
    path = os.path.join(directory, "results.csv")
    if not os.path.isfile(path):
        raise SystemExit(f"--previous {directory}: no results.csv (give an earlier --out of collect_results.py)")
    rows, entries = [], []
    with open(path, encoding="utf-8", newline="") as f:
        for line_number, row in enumerate(csv.DictReader(f), start=2):
            try:
                row.update({k: int(row[k]) for k in INTEGER_COLUMNS}, **{k: float(row[k]) for k in FLOAT_COLUMNS})
            except (KeyError, TypeError, ValueError) as error:
                raise SystemExit(f"{path}:{line_number}: not a results.csv row of collect_results.py ({error})")
            key = (row["system"], row["seed"], row["method"], row["subset"])
            if key in have:
                continue
            table = os.path.join(directory, "per_utterance", row["system"], f"seed{row['seed']}", row["method"],
                                 f"{row['subset']}.tsv")
            if not os.path.isfile(table):
                raise SystemExit(f"{path}:{line_number}: {table} is missing: the per-utterance table of that row "
                                 "(written with --per-utterance-dir DIR/per_utterance)")
            try:
                records = read_utterance_table(table)
            except DataError as error:
                raise SystemExit(f"collect_results.py: {error}") from None
            if len(records) != row["utterances"] or sum(u["words"] for u in records) != row["words"]:
                raise SystemExit(f"{table}: {len(records)} utterances / {sum(u['words'] for u in records)} words, "
                                 f"its results.csv row ({path}:{line_number}) says {row['utterances']} / "
                                 f"{row['words']}")
            if all(k in row for k in SETTING_COLUMNS):
                setting = {k: float(row[k]) if row[k] != "" else "" for k in SETTING_COLUMNS}
            else:
                setting = distillation_setting(None, row["system"], data)
            rows.append(with_setting(row, setting))
            entries.append((None, *key, {"source": table, "per_utterance": records}))
    return rows, entries


def collect(exp, data, found=None):
    """results.csv's rows (``found``: :func:`read_decodings` of ``exp``, read here when not given)."""
    rows = []
    for seed_dir, system, seed, method, subset, measured in (read_decodings(exp) if found is None else found):
        seconds, n_utts = audio_seconds(data, subset)
        if measured["utterances"] != n_utts:
            raise SystemExit(f"{measured['source']}: {measured['utterances']} utterances decoded, {subset}.tsv has "
                             f"{n_utts}")
        decode_time = measured["decode_seconds"]
        rows.append(with_setting({
            "system": system, "seed": seed, "method": method,
            "subset": subset, "utterances": n_utts, "words": measured["words"],
            "wer": measured["wer"], "sub": measured["sub"], "del": measured["del"],
            "ins": measured["ins"], "decode_s": decode_time, "audio_s": round(seconds, 2),
            "rtf": decode_time / seconds,
            "params_inference": inference_parameters(os.path.join(seed_dir, "checkpoint_best.pt")),
        }, distillation_setting(seed_dir, system, data)))
    return rows


def system_order(systems_order):
    """Sort key of systems: --systems order, then the others by name."""
    order = {s: i for i, s in enumerate(systems_order)}
    return lambda system: (order.get(system, len(order)), system)


def table_order(systems_order, main_subset):
    """Sort key of decodings: subset (main subset first, a subset's speakers after it), system in table order,
    method, seed: the order of the statistics' rows."""
    by_system = system_order(systems_order)
    return lambda d: (d.subset != main_subset, d.subset, by_system(d.system), method_order(d.method), d.seed)


def decodings_in_order(found, systems_order, main_subset):
    """fairseq_kd.comparison's Decoding of every decoding, in :func:`table_order`."""
    decodings = [Decoding(system, seed, method, subset, measured["source"], measured.get("per_utterance"))
                 for _, system, seed, method, subset, measured in found]
    return sorted(decodings, key=table_order(systems_order, main_subset))


def choose_baseline(baseline, decodings, systems_order):
    """--baseline, else xs_ctc if decoded, else the first decoded system in table order."""
    systems = sorted({d.system for d in decodings}, key=system_order(systems_order))
    if baseline is None:
        return "xs_ctc" if "xs_ctc" in systems else systems[0]
    if baseline not in systems:
        raise SystemExit(f"--baseline {baseline}: no decoding of it (systems: {', '.join(systems)})")
    return baseline


def write_csv(path, rows, digits=None):
    """``rows`` (dicts with the same keys) as CSV, atomically; floats rounded to ``digits`` when given."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows([{k: round(v, digits) if digits is not None and isinstance(v, float) else v
                       for k, v in row.items()} for row in rows])
    with atomic_write(path) as f:
        f.write(buffer.getvalue())


def write_per_utterance(decodings, directory):
    """DIR/<system>/seed<N>/<method>/<subset>.tsv per decoding with per-utterance records; the paths written. A
    table of an earlier run that is not one of ``decodings`` (a system or seed left out of the table since) is
    removed: the folder is read back as --previous-results, where a table means "decoded, skip it"."""
    written = []
    for d in decodings:
        if d.utterances is None:
            print(f"no per-utterance errors in {d.source} (decoded before they were recorded): no table")
            continue
        path = os.path.join(directory, d.system, f"seed{d.seed}", d.method, f"{d.subset}.tsv")
        with atomic_write(path) as f:
            f.write(utterance_table(d.utterances))
        written.append(path)
    for stale in sorted(set(glob.glob(os.path.join(directory, "*", "seed*", "*", "*.tsv"))) - set(written)):
        os.remove(stale)
        print(f"removed {stale}: not a decoding of this table")
    return written


def subset_speakers(subsets, data, previous=None):
    """``{subset: {utterance id: speaker}}`` of ``subsets``: from the file names of DATA/SUBSET.tsv when they name
    the speakers, else from PREVIOUS/speakers/SUBSET.tsv; a subset with neither is left out."""
    speakers = {}
    for subset in subsets:
        manifest = os.path.join(data, f"{subset}.tsv")
        found = manifest_speakers(manifest) if os.path.isfile(manifest) else None
        table = os.path.join(previous, "speakers", f"{subset}.tsv") if previous else ""
        if found is None and os.path.isfile(table):
            found = read_speakers_table(table)
        if found is not None:
            speakers[subset] = found
    return speakers


def difference_sections(compared, components, out, baseline, questions=()):
    """questions.csv (with ``questions``) and significance.csv, their results.md sections, and the rows of the
    forest plot (the questions', else the differences against ``baseline``)."""
    sections, plotted = [], []
    if questions:
        answers = question_differences(compared, questions, components)
        if answers:
            write_csv(os.path.join(out, "questions.csv"), answers, digits=4)
            sections.append(questions_markdown(answers))
            plotted = answers
    differences = paired_differences(compared, baseline, components)
    if differences:
        write_csv(os.path.join(out, "significance.csv"), differences, digits=4)
        sections.append(differences_markdown(differences, baseline))
    return sections, plotted or differences


def category_section(decodings, out, lexicon_path):
    """error_categories.csv and its results.md section (a list of none or one)."""
    lexicon = read_lexicon_words(lexicon_path)
    categories = error_categories(decodings, lexicon)
    if not categories:
        print("no decoding has per-utterance texts: no error categories")
        return []
    write_csv(os.path.join(out, "error_categories.csv"), categories, digits=4)
    return [categories_markdown(categories, reference_out_of_lexicon(decodings, lexicon), lexicon_path)]


def method_order(method):
    """greedy first, then by decoder name and beam size as a number (beam10_lm, beam50_lm, beam100_lm)."""
    match = re.fullmatch(r"([a-z]+?)(\d+)(.*)", method)
    return (method != "greedy", (match.group(1), int(match.group(2)), match.group(3)) if match else (method, 0, ""))


def spread(values, fmt="{:.1f}"):
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(statistics.stdev(values))}"


def write_intervals(intervals, out):
    """wer_intervals.csv from :func:`fairseq_kd.comparison.wer_intervals`' result."""
    if intervals:
        write_csv(os.path.join(out, "wer_intervals.csv"), list(intervals.values()), digits=4)


def read_timings(directories, subset, systems):
    """Side-by-side decoding times on ``subset`` of ``systems``: ``{system: {"device": ..., "methods": {method:
    row}, "path": ...}}`` from ``DIR/<system>.json`` (scripts/benchmark_decoding.py --json), its PyTorch float32
    rows, ``method`` named as the recipe names its decodings (greedy, beam<N>_lm). A system in two directories: the
    first directory's. A benchmark of another subset is an error naming the file."""
    timings = {}
    for directory in filter(None, directories):
        for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
            system = os.path.basename(path)[: -len(".json")]
            if system in timings or system not in systems:
                continue
            benchmark = read_json(path)
            if benchmark.get("subset") != subset:
                raise DataError(f"{path}: a benchmark of '{benchmark.get('subset')}', not of the main subset "
                                f"'{subset}' (rerun scripts/benchmark_decoding.py --subset {subset})")
            methods = {("greedy" if row["decoder"] == "greedy" else f"beam{row['beam']}_lm"): row
                       for row in benchmark["rows"]
                       if row.get("runtime", "pytorch") == "pytorch" and row.get("encoder_dtype") == "float32"}
            device = ", ".join(filter(None, (benchmark.get("device", "?"), benchmark.get("measured_at"))))
            timings[system] = {"device": device, "methods": methods, "path": path}
    return timings


def write_outputs(rows, out, systems_order, main_subset, sections=(), intervals=None, timings=None):
    """results.csv, results.md (the table, then ``sections``) and wer_vs_time.png; returns results.md's text.
    ``intervals``: :func:`fairseq_kd.comparison.wer_intervals`' result, the 95 % CI column and error bars;
    ``timings``: :func:`read_timings`' result, the "x greedy" and "RTF" columns and the plot's times (no plot
    without)."""
    intervals, timings = intervals or {}, timings or {}
    os.makedirs(out, exist_ok=True)
    write_csv(os.path.join(out, "results.csv"), rows)

    groups = defaultdict(list)
    for r in rows:
        groups[(r["system"], r["method"])].append(r)
    subsets = sorted({r["subset"] for r in rows}, key=lambda s: (s != main_subset, s))
    order = {s: i for i, s in enumerate(systems_order)}
    keys = sorted(groups, key=lambda k: (order.get(k[0], len(order)), method_order(k[1])))
    lines = ["| system | decoding | seeds | " + " | ".join(f"WER {s} (S/D/I)" for s in subsets)
             + f" | 95 % CI {main_subset} | recipe decode time {main_subset} (s) | x greedy | RTF "
             "| params at inference |",
             "|---|---|---|" + "---:|" * len(subsets) + "---:|---:|---:|---:|---:|"]
    points = []
    for key in keys:
        group = groups[key]
        cells = []
        for subset in subsets:
            sub = [r for r in group if r["subset"] == subset]
            if not sub:
                cells.append("")
                continue
            sdi = "/".join(str(round(statistics.mean(r[k] for r in sub))) for k in ("sub", "del", "ins"))
            cells.append(f"{spread([r['wer'] for r in sub])} ({sdi})")
        main = [r for r in group if r["subset"] == main_subset]
        seeds = sorted({r["seed"] for r in group})
        time_cell = spread([r["decode_s"] for r in main], "{:.2f}") if main else ""
        timed = timings.get(key[0], {}).get("methods", {}).get(key[1])
        ratio_cell = f"{timed['speed_ratio_vs_greedy']:.2f}" if timed else ""
        rtf_cell = f"{timed['rtf']:.4f}" if timed else ""
        interval = intervals.get((key[0], key[1], main_subset))
        ci_cell = f"[{interval['ci_low']:.1f}, {interval['ci_high']:.1f}]" if interval else ""
        lines.append(f"| {key[0]} | {key[1]} | {','.join(map(str, seeds))} | " + " | ".join(cells)
                     + f" | {ci_cell} | {time_cell} | {ratio_cell} | {rtf_cell} | {group[0]['params_inference']:,} |")
        if main and timed:
            points.append((key[0], key[1], timed["total_seconds"], statistics.mean(r["wer"] for r in main),
                           (interval["ci_low"], interval["ci_high"]) if interval else None))
    if timings:
        lines.append(f"\nx greedy, RTF and wer_vs_time.png: scripts/benchmark_decoding.py on {main_subset}, every "
                     "decoding of a system on the same emissions, side by side (fastest of its repeats; "
                     + "; ".join(f"{', '.join(s for s, t in timings.items() if t['device'] == device)}: {device}"
                                 for device in dict.fromkeys(t["device"] for t in timings.values()))
                     + "). The recipe's "
                     "decode times are what each decoding took beside the recipe's other jobs: not comparable.")
    text = "\n".join(["\n".join(lines) + "\n", *sections])
    with atomic_write(os.path.join(out, "results.md")) as f:
        f.write(text)
    figure = os.path.join(out, "wer_vs_time.png")
    if points:
        plot(points, figure, main_subset)
    elif os.path.exists(figure):
        os.remove(figure)  # a figure of earlier times would outlive what it showed
    return text.rstrip("\n")


def pyplot():
    """matplotlib.pyplot on the Agg backend, without matplotlib's DEBUG lines (fairseq's import set the root logger
    to DEBUG)."""
    import logging

    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    """``fig`` as a PNG at ``path``, atomically, and closed."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    pyplot().close(fig)


def plot(points, path, subset):
    """WER vs decoding time: one colour per system, one marker per decoding method (greedy, beam sizes); vertical
    bars the WER's 95 % interval over utterances and seeds; the time of each point is the system's side-by-side
    benchmark (encoder + search, :func:`read_timings`)."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    systems = list(dict.fromkeys(point[0] for point in points))
    methods = sorted({point[1] for point in points}, key=method_order)
    colours = {system: plt.get_cmap("tab10")(i % 10) for i, system in enumerate(systems)}
    markers = {method: "os^Dvp*hX"[i % 9] for i, method in enumerate(methods)}
    fig, ax = plt.subplots(figsize=(8, 5))
    for system, method, seconds, wer, interval in points:
        ax.scatter(seconds, wer, s=45, color=colours[system], marker=markers[method], zorder=3)
        if interval:
            ax.errorbar(seconds, wer, yerr=[[wer - interval[0]], [interval[1] - wer]], fmt="none",
                        ecolor=colours[system], alpha=0.6, lw=1)
    handles = [Line2D([], [], color=colours[s], marker="o", linestyle="", label=s) for s in systems]
    handles += [Line2D([], [], color="grey", marker=markers[m], linestyle="", label=m) for m in methods]
    ax.legend(handles=handles, fontsize=8, loc="center right")
    ax.set_xlabel(f"decoding time on {subset} (s; benchmark_decoding.py: encoder + search, side by side)")
    ax.set_xlim(left=0)  # times as ratios: greedy's share of beam + LM's is seen from the origin
    ax.set_ylabel(f"WER on {subset} (%, bars: 95 % CI over utterances and seeds)")
    ax.set_title("Greedy CTC vs CTC beam search + n-gram LM shallow fusion")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def forest_plot(rows, path):
    """Forest plot of paired differences (rows of questions.csv, or of significance.csv without questions): one
    line per question (or system) and subset, the test subsets when there are any, in the table's order; on it a
    point per decoding method at the difference with its 95 % interval, filled when the interval is over seeds
    too, open when over utterances (speakers) only. An interval beyond the axis ends in an arrow at its edge."""
    plt = pyplot()
    from matplotlib.lines import Line2D

    rows = [r for r in rows if r["diff"] is not None]
    if any(r["subset"].startswith("test") for r in rows):
        rows = [r for r in rows if r["subset"].startswith("test")]
    if not rows:
        return False
    questions = "question" in rows[0]
    name_of = (lambda r: r["question"]) if questions else (lambda r: r["system"])
    lines = list(dict.fromkeys((name_of(r), r["subset"]) for r in rows))
    methods = sorted({r["method"] for r in rows}, key=method_order)
    colours = {method: plt.get_cmap("tab10")(i % 10) for i, method in enumerate(methods)}
    # the axis spans the intervals but the widest few (e.g. over 2 speakers): those end in an arrow
    bounds = np.abs([bound for r in rows for bound in (r["ci_low"], r["ci_high"])])
    limit = max(1.0, min(bounds.max(), 2 * np.percentile(bounds, 90))) * 1.05
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.3 * len(lines)))
    for r in rows:
        y = len(lines) - lines.index((name_of(r), r["subset"]))
        y += 0.3 * (methods.index(r["method"]) - (len(methods) - 1) / 2) / max(len(methods) - 1, 1)
        colour, filled = colours[r["method"]], "seeds" in r["interval_over"]
        low, high = max(r["ci_low"], -limit), min(r["ci_high"], limit)
        ax.plot([low, high], [y, y], color=colour, lw=1.5)
        for beyond, edge, marker in ((r["ci_low"] < -limit, -limit, "<"), (r["ci_high"] > limit, limit, ">")):
            if beyond:
                ax.plot(edge, y, marker=marker, color=colour, markersize=5)
        if abs(r["diff"]) <= limit:
            ax.plot(r["diff"], y, marker="o", markersize=6, color=colour,
                    markerfacecolor=colour if filled else "white", zorder=3)
    previous = None
    for i, (name, _) in enumerate(lines):
        if previous is not None and name != previous:
            ax.axhline(len(lines) - i + 0.5, color="grey", lw=0.5)
        previous = name
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(lines), 0, -1), [f"{name}  {subset}" for name, subset in lines], fontsize=8)
    ax.set_xlim(-limit, limit)
    ax.set_ylim(0.4, len(lines) + 0.6)
    ax.set_xlabel("WER(system) - WER(baseline), points (negative: the system is better), 95 % interval",
                  fontsize=9)
    pairs = dict.fromkeys(f"{r['question']}: {r['system']} - {r['baseline']}" if questions
                          else f"system - {r['baseline']}" for r in rows)
    ax.set_title("\n".join(pairs), fontsize=8)
    handles = [Line2D([], [], color=colours[m], marker="o", label=m) for m in methods]
    handles += [Line2D([], [], color="grey", marker="o", markerfacecolor="grey", linestyle="",
                       label="over utterances and seeds"),
                Line2D([], [], color="grey", marker="o", markerfacecolor="white", linestyle="",
                       label="over utterances (speakers) only")]
    ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    return True


def stage_times(stages_dir):
    """Markdown table of the recipe's stage wall times: per stage the sum over its finished invocations
    (``wall_times.tsv``: stage, start, end in epoch seconds, a line per invocation; stages 6-8 run once per
    session, an interrupted stage 3 resumes) and their number. Without that file (an older recipe), the last
    invocation: ``<n>.<name>.start`` holds its start, the ``.done`` marker's modification time is its end (a stage
    running now, whose marker is older than its start, is left out)."""
    spans = {}
    log_path = os.path.join(stages_dir, "wall_times.tsv")
    if os.path.isfile(log_path):
        with open(log_path, encoding="utf-8") as f:
            for line_number, line in enumerate(f, 1):
                fields = line.split()
                if len(fields) != 3 or not all(x.isdigit() for x in fields[1:]):
                    raise SystemExit(f"{log_path}:{line_number}: expected 'STAGE START END' (epoch seconds), got "
                                     f"{line.strip()!r}; delete the line (run.sh appends one per finished stage)")
                spans.setdefault(fields[0], []).append(int(fields[2]) - int(fields[1]))
    else:
        for start_file in glob.glob(os.path.join(stages_dir, "*.start")):
            done_file = start_file[: -len(".start")] + ".done"
            with open(start_file) as f:
                start = int(f.read().strip())
            if os.path.isfile(done_file) and os.path.getmtime(done_file) >= start:
                spans[os.path.basename(start_file)[: -len(".start")]] = [os.path.getmtime(done_file) - start]
    rows = [f"| {stage} | {sum(seconds) / 60:.1f} | {len(seconds)} |"
            for stage, seconds in sorted(spans.items(), key=lambda item: int(item[0].split(".")[0]))]
    return "| stage | wall time (min) | invocations |\n|---|---:|---:|\n" + "\n".join(rows) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", required=True, help="experiment root with <system>/seed<N>/decode/<method>/<subset>")
    parser.add_argument("--data", required=True, help="data directory with the decoded subsets' manifests")
    parser.add_argument("--out", required=True)
    parser.add_argument("--systems", help="comma-separated systems: the table's rows, in this order, and no other "
                        "(several presets share one --exp: evidence, dose, dose_confirm); default: every system "
                        "found, by name")
    parser.add_argument("--main-subset", default="test", help="subset of the timing columns and the plot")
    parser.add_argument("--stages", help="the recipe's stage markers directory: adds stage_times.md")
    parser.add_argument("--baseline", help="system the others are compared with (default: xs_ctc if decoded, "
                        "else the first system of --systems that was decoded)")
    parser.add_argument("--questions", default="",
                        help="space-separated NAME:SYSTEM:BASELINE, e.g. 'Q1:xs_interaedkd:xs_ctc': the paired "
                             "difference of each pair (questions.csv, results.md's Questions)")
    parser.add_argument("--cluster-by-speaker", default="test_unseen",
                        help="comma-separated subsets whose intervals are over speakers instead of utterances (voices "
                             "never trained on: a claim about unseen voices rests on how many there are); '' for none")
    parser.add_argument("--per-speaker", default="test_unseen",
                        help="comma-separated subsets that also get a row per speaker (subset SUBSET/SPEAKER)")
    parser.add_argument("--lexicon", help="the LM's lexicon (lexicon.txt: first column the word): adds the error "
                        "categories (non-words vs real words) and the references' out-of-lexicon rate")
    parser.add_argument("--per-utterance-dir", help="write DIR/<system>/seed<N>/<method>/<subset>.tsv per decoding")
    parser.add_argument("--seeds", help="space- or comma-separated seeds: the table's runs are of these seeds only (a "
                        "study whose systems were also trained with other seeds for another study in the same --exp, "
                        "e.g. dose_confirm's 4-6 beside the screening's seed 1); default: every seed found")
    parser.add_argument("--timing", help="folder of side-by-side decoding benchmarks, <system>.json of "
                        "scripts/benchmark_decoding.py --json on the main subset: the x greedy / RTF columns and "
                        "the plot's times (copied to OUT/timing)")
    parser.add_argument("--previous", help="an earlier output directory of this script (results.csv, "
                        "per_utterance/, speakers/): its decodings that are not under --exp are included")
    args = parser.parse_args()
    systems_order = args.systems.split(",") if args.systems else []
    questions = [tuple(q.split(":")) for q in args.questions.split()]
    for q in questions:
        if len(q) != 3 or not all(q):
            parser.error(f"--questions: {':'.join(q)!r} is not NAME:SYSTEM:BASELINE")

    seeds = {int(seed) for seed in (args.seeds or "").replace(",", " ").split()}

    def named(system, seed):
        return (not systems_order or system in systems_order) and (not seeds or seed in seeds)

    found = [decoding for decoding in read_decodings(args.exp) if named(*decoding[1:3])]
    rows = collect(args.exp, args.data, found)
    if args.previous:
        previous_rows, previous_found = read_previous(args.previous, found, args.data)
        previous_rows = [row for row in previous_rows if named(row["system"], row["seed"])]
        previous_found = [decoding for decoding in previous_found if named(*decoding[1:3])]
        print(f"{len(previous_rows)} decodings from {args.previous} (not under {args.exp})")
        rows, found = rows + previous_rows, found + previous_found
    if not found:
        raise SystemExit(f"no decoding results under {args.exp}/*/seed*/decode/*/*"
                         + (f" nor in {args.previous}" if args.previous else "")
                         + (f" of --systems {args.systems}" if args.systems else "")
                         + (f" of --seeds {args.seeds}" if args.seeds else ""))
    by_system = system_order(systems_order)
    rows.sort(key=lambda r: (by_system(r["system"]), r["seed"], method_order(r["method"]), r["subset"]))
    decodings = decodings_in_order(found, systems_order, args.main_subset)
    if args.per_utterance_dir:
        written = write_per_utterance(decodings, args.per_utterance_dir)
        print(f"{len(written)} per-utterance tables under {args.per_utterance_dir}")
    baseline = choose_baseline(args.baseline, decodings, systems_order)
    clustered, per_speaker = (set(filter(None, option.split(","))) for option in (args.cluster_by_speaker,
                                                                                   args.per_speaker))
    decoded = {d.subset for d in decodings}
    try:
        speakers = subset_speakers(sorted((clustered | per_speaker) & decoded), args.data, args.previous)
        unknown = sorted(clustered & decoded - speakers.keys())
        if unknown:
            raise SystemExit(f"--cluster-by-speaker: no speakers for {', '.join(unknown)}: neither the file names of "
                             f"{args.data}/SUBSET.tsv name them (<split>-<voice>-<index>, LibriSpeech "
                             "<speaker>-<chapter>-<utterance>) nor is there a --previous DIR/speakers/SUBSET.tsv; "
                             "--cluster-by-speaker '' treats the utterances as independent")
        for subset, table in speakers.items():
            with atomic_write(os.path.join(args.out, "speakers", f"{subset}.tsv")) as f:
                f.write(speakers_table(table))
        decodings = attach_speakers(decodings, speakers, clustered)
        compared = sorted(decodings + speaker_subsets(decodings, per_speaker),
                          key=table_order(systems_order, args.main_subset))
        components = seed_components(compared)
        intervals = wer_intervals(compared, components)
        sections, plotted = difference_sections(compared, components, args.out, baseline, questions)
        if args.lexicon:
            sections += category_section(decodings, args.out, args.lexicon)
        timings = read_timings([args.timing, args.previous and os.path.join(args.previous, "timing")],
                               args.main_subset, {r["system"] for r in rows})
    except DataError as error:  # different utterances or references, a missing lexicon: named in the message
        raise SystemExit(f"collect_results.py: {error}") from None
    for timing in timings.values():  # the output holds the benchmarks its table and plot show
        kept = os.path.join(args.out, "timing", os.path.basename(timing["path"]))
        if not os.path.exists(kept):
            with open(timing["path"], encoding="utf-8") as src, atomic_write(kept) as dst:
                dst.write(src.read())
    write_intervals(intervals, args.out)
    seed_rows = seed_component_rows(components)
    if seed_rows:
        write_csv(os.path.join(args.out, "seed_variance.csv"), seed_rows, digits=4)
    if intervals:
        sections.insert(0, intervals_markdown(intervals, args.main_subset, seed_rows))
    print(write_outputs(rows, args.out, systems_order, args.main_subset, sections, intervals, timings))
    if forest_plot(plotted, os.path.join(args.out, "forest.png")):
        print(f"forest plot: {os.path.join(args.out, 'forest.png')}")
    if args.stages:
        table = stage_times(args.stages)
        with atomic_write(os.path.join(args.out, "stage_times.md")) as f:
            f.write(table)
        print("\n" + table)


if __name__ == "__main__":
    main()
