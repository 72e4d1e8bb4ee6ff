"""scripts/collect_results.py reads each decoding's summary (fairseq-generate --decoding-summary) and counts the
words of a decoding made without one the same way; on fake summary trees (two seeds, 30 utterances, a known
injected difference): the paired differences against the baseline, the error categories, the per-utterance
tables, the forest plot, test_unseen's intervals over its voices and a row per voice, and the error on
different utterance sets."""
import csv
import importlib.util
import json
import os
import shutil
import sys

import pytest
import torch

from conftest import ROOT
from fairseq_kd.models.conformer_kd import AED_DECODER_PREFIX


@pytest.fixture(scope="module")
def collect_results():
    spec = importlib.util.spec_from_file_location("collect_results", os.path.join(ROOT, "scripts",
                                                                                  "collect_results.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summaries_and_fairseq_generate_outputs_give_the_same_rows(collect_results, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.tsv").write_text("/audio\na.wav\t16000\nb.wav\t32000\n")
    seed_dir = tmp_path / "exp" / "xs_ctc" / "seed1"
    seed_dir.mkdir(parents=True)
    weights = {"ctc_proj.weight": torch.zeros(3, 4), f"{AED_DECODER_PREFIX}embed.weight": torch.zeros(9, 9)}
    sidecars = tmp_path / "sidecars"
    sidecars.mkdir()
    (sidecars / "teacher.json").write_text(json.dumps({"temperature": 2.0}))
    cfg = {"criterion": {"_name": "ctc_kd", "aed_kd_weight": 0.7, "kd_kl_weight": 0.3, "kd_temperature": 1.5},
           "task": {"kd_sidecar_dir": str(sidecars)}}
    torch.save({"model": weights, "cfg": cfg}, seed_dir / "checkpoint_best.pt")
    legacy = seed_dir / "decode" / "greedy" / "test"
    legacy.mkdir(parents=True)
    (legacy / "generate-test.txt").write_text("T-1\tA DOG RAN\nD-1\t-0.5\tA DOG\nT-0\tTHE HAT\nD-0\t-0.1\tTHE CAT\n")
    (legacy / "generate.log").write_text("Translated 2 sentences (10 tokens) in 0.5s (4.00 sentences/s)\n")
    summarised = seed_dir / "decode" / "beam4_lm" / "test"
    summarised.mkdir(parents=True)
    (summarised / "decoding_summary.json").write_text(json.dumps(
        {"utterances": 2, "words": 5, "errors": 1, "wer": 20.0, "sub": 1, "del": 0, "ins": 0, "decode_seconds": 1.5}))
    rows = {row["method"]: row for row in collect_results.collect(str(tmp_path / "exp"), str(data))}
    assert {k: rows["greedy"][k] for k in ("utterances", "words", "sub", "del", "ins", "decode_s")} == \
        {"utterances": 2, "words": 5, "sub": 1, "del": 1, "ins": 0, "decode_s": 0.5}
    assert rows["greedy"]["wer"] == pytest.approx(40.0) and rows["greedy"]["rtf"] == pytest.approx(0.5 / 3)
    assert rows["beam4_lm"]["wer"] == 20.0 and rows["beam4_lm"]["decode_s"] == 1.5
    assert rows["greedy"]["params_inference"] == 12  # the attention decoder is not counted
    # the distillation setting, the temperature the KL reads = kd_temperature x the extraction's
    assert list(rows["greedy"])[:5] == ["system", "seed", "alpha", "beta", "temperature"]
    assert (rows["greedy"]["alpha"], rows["greedy"]["beta"], rows["greedy"]["temperature"]) == (0.7, 0.3, 3.0)
    found = {method: measured for _, _, _, method, _, measured in collect_results.read_decodings(str(tmp_path / "exp"))}
    assert found["greedy"]["per_utterance"] == [  # per-utterance errors of the T-/D- lines too
        {"id": 0, "reference": "THE HAT", "hypothesis": "THE CAT", "words": 2, "sub": 1, "del": 0, "ins": 0},
        {"id": 1, "reference": "A DOG RAN", "hypothesis": "A DOG", "words": 3, "sub": 0, "del": 1, "ins": 0}]
    assert found["greedy"]["source"] == str(legacy / "generate-test.txt") and "per_utterance" not in found["beam4_lm"]


VOCABULARY = ["THE", "CAT", "SAT", "ON", "MAT", "DOG", "RAN", "HOME"]
LEXICON = VOCABULARY[:-1] + ["BIRD"]  # HOME: the references' only out-of-lexicon word; BIRD: the real-word error
UTTERANCES = 30


def reference_words(utt_id):
    return [VOCABULARY[(utt_id + i) % len(VOCABULARY)] for i in range(5 + utt_id % 7)]


def baseline_errors(seed, utt_id):  # mostly the utterance's difficulty, a little the seed's
    return utt_id % 4 + (utt_id % 10 == seed)


def better_errors(seed, utt_id):  # the injected gain: one error less on every even utterance with errors
    errors = baseline_errors(seed, utt_id)
    return errors - 1 if errors and utt_id % 2 == 0 else errors


def summary(errors_of, real_words, ids=range(UTTERANCES)):
    """A decoding_summary.json whose hypotheses substitute the first errors_of(id) reference words by non-words
    (lower case) or by a real word (BIRD, in no reference)."""
    per_utterance = []
    for utt_id in ids:
        reference = reference_words(utt_id)
        substituted = ["BIRD" if real_words else w.lower() for w in reference[: errors_of(utt_id)]]
        per_utterance.append({"id": utt_id, "reference": " ".join(reference), "words": len(reference),
                              "hypothesis": " ".join(substituted + reference[len(substituted):]),
                              "sub": len(substituted), "del": 0, "ins": 0})
    words = sum(u["words"] for u in per_utterance)
    errors = sum(u["sub"] for u in per_utterance)
    return {"utterances": len(per_utterance), "words": words, "errors": errors, "wer": 100 * errors / words,
            "sub": errors, "del": 0, "ins": 0, "decode_seconds": 1.0, "per_utterance": per_utterance}


def make_experiment(root, systems, subset="test", audio_name="u{}.wav".format):
    """root/data/SUBSET.tsv (file audio_name(i) for utterance i) and
    root/exp/<system>/seed<N>/decode/greedy/SUBSET/decoding_summary.json for systems = {system: {seed: summary}}."""
    data = root / "data"
    data.mkdir()
    (data / f"{subset}.tsv").write_text("/audio\n" + "".join(f"{audio_name(i)}\t16000\n" for i in range(UTTERANCES)))
    for system, seeds in systems.items():
        for seed, content in seeds.items():
            seed_dir = root / "exp" / system / f"seed{seed}"
            (seed_dir / "decode" / "greedy" / subset).mkdir(parents=True)
            cfg = {"criterion": {"_name": "ctc_kd", "aed_kd_weight": 0.0}, "task": {"kd_sidecar_dir": None}}
            torch.save({"model": {"w": torch.zeros(2, 2)}, "cfg": cfg}, seed_dir / "checkpoint_best.pt")
            (seed_dir / "decode" / "greedy" / subset / "decoding_summary.json").write_text(json.dumps(content))
    return data, root / "exp"


def run_main(collect_results, monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["collect_results.py", *map(str, args)])
    collect_results.main()


def read_csv(path):
    with open(path, newline="") as f:
        return {(row["system"], row["method"], row["subset"]): row for row in csv.DictReader(f)}


def test_paired_differences_error_categories_and_per_utterance_tables(collect_results, tmp_path, monkeypatch):
    seeds = (1, 2)
    data, exp = make_experiment(tmp_path, {
        "xs_ctc": {s: summary(lambda u, s=s: baseline_errors(s, u), False) for s in seeds},
        # seed 3 has no baseline counterpart: skipped
        "xs_better": {s: summary(lambda u, s=s: better_errors(s, u), True) for s in (*seeds, 3)},
        # the baseline's seeds swapped: the same mean WER
        "xs_same": {s: summary(lambda u, s=s: baseline_errors(3 - s, u), False) for s in seeds},
    })
    (tmp_path / "lexicon.txt").write_text("".join(f"{w} {' '.join(w)} |\n" for w in LEXICON))
    out, per_utterance = tmp_path / "results", tmp_path / "per_utterance"
    run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", out, "--systems",
             "xs_ctc,xs_better,xs_same", "--lexicon", tmp_path / "lexicon.txt",
             "--per-utterance-dir", per_utterance,
             "--questions", "Qa:xs_better:xs_same Qb:xs_absent:xs_ctc Qc:xs_ctc:xs_absent")

    words = sum(len(reference_words(u)) for u in range(UTTERANCES))
    true_diff = 100 * sum(better_errors(s, u) - baseline_errors(s, u) for s in seeds
                          for u in range(UTTERANCES)) / len(seeds) / words
    assert true_diff == pytest.approx(-100 * (7 + 8) / 2 / words)  # even utterances with errors: 7 at seed 1, 8 at 2
    rows = read_csv(out / "significance.csv")
    better, same = rows["xs_better", "greedy", "test"], rows["xs_same", "greedy", "test"]
    assert float(better["diff"]) == pytest.approx(true_diff, abs=1e-4)
    assert float(better["ci_low"]) < true_diff < float(better["ci_high"]) < 0 and float(better["p_value"]) < 0.05
    assert float(better["mde"]) > 0 and better["utterances"] == "30" and better["baseline"] == "xs_ctc"
    assert better["interval_over"] == "utterances + seeds" and float(better["df"]) >= 3  # 3 systems of 2-3 seeds
    assert better["seeds"] == "1,2" and better["skipped_seeds"] == "xs_better: 3"
    # xs_same's seed means are the baseline's on every utterance, and its seeds vary no more than their
    # utterance-level noise: nothing is left to vary
    assert float(same["diff"]) == float(same["ci_low"]) == float(same["ci_high"]) == 0
    assert same["seeds"] == "1,2" and same["skipped_seeds"] == "" and float(same["p_value"]) == 1
    markdown = (out / "results.md").read_text()
    assert "## Differences against xs_ctc" in markdown
    assert (f"| test | xs_better | greedy | {true_diff:+.2f} | [{float(better['ci_low']):+.2f}, "
            f"{float(better['ci_high']):+.2f}] | {float(better['p_value']):.3f} | {float(better['mde']):.2f} | "
            "1,2 (skipped xs_better: 3) | utterances + seeds |"
            in markdown)
    # --questions: the same paired difference for a named pair; xs_same is the baseline with its seeds swapped, so
    # over seeds 1 and 2 the difference is the one against xs_ctc; a question on a system never decoded (as system or
    # as baseline): no rows
    with open(out / "questions.csv", newline="") as f:
        answers = list(csv.DictReader(f))
    assert [(a["question"], a["system"], a["baseline"], a["seeds"]) for a in answers] == [
        ("Qa", "xs_better", "xs_same", "1,2")]
    assert float(answers[0]["diff"]) == pytest.approx(true_diff, abs=1e-4)
    assert markdown.index("## Questions") < markdown.index("## Differences against xs_ctc")
    assert f"| Qa | test | greedy | xs_better - xs_same | {true_diff:+.2f} | [" in markdown
    intervals = read_csv(out / "wer_intervals.csv")
    for system in ("xs_ctc", "xs_better", "xs_same"):
        row = intervals[system, "greedy", "test"]
        assert float(row["ci_low"]) < float(row["wer"]) < float(row["ci_high"])
        assert f"| [{float(row['ci_low']):.1f}, {float(row['ci_high']):.1f}] |" in markdown
    assert intervals["xs_better", "greedy", "test"]["seeds"] == "3"
    better_interval = intervals["xs_better", "greedy", "test"]
    assert markdown.index("## WER with 95 % intervals") < markdown.index("## Questions")
    assert (f"| greedy | xs_better | 3 | {float(better_interval['wer']):.1f} [{float(better_interval['ci_low']):.1f}, "
            f"{float(better_interval['ci_high']):.1f}] |" in markdown)
    assert float(intervals["xs_same", "greedy", "test"]["wer"]) == pytest.approx(
        float(intervals["xs_ctc", "greedy", "test"]["wer"]))
    assert (out / "forest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")  # the questions' forest plot
    assert not list(out.glob("*.tmp"))
    # the results table's rows alone start with the system (scripts/run_tests.sh counts them)
    assert len([line for line in markdown.splitlines() if line.startswith("| xs_")]) == 3

    categories = read_csv(out / "error_categories.csv")
    baseline_subs = sum(baseline_errors(s, u) for s in seeds for u in range(UTTERANCES))
    assert (categories["xs_ctc", "greedy", "test"]["substitution_non_word"],
            categories["xs_ctc", "greedy", "test"]["substitution_real_word"]) == (str(baseline_subs), "0")
    assert float(categories["xs_ctc", "greedy", "test"]["non_word_percent"]) == 100
    better_subs = sum(better_errors(s, u) for s in (*seeds, 3) for u in range(UTTERANCES))
    assert (categories["xs_better", "greedy", "test"]["substitution_real_word"],
            categories["xs_better", "greedy", "test"]["deletions"]) == (str(better_subs), "0")
    assert float(categories["xs_better", "greedy", "test"]["non_word_percent"]) == 0
    home = sum(reference_words(u).count("HOME") for u in range(UTTERANCES))
    oov = float(categories["xs_better", "greedy", "test"]["reference_out_of_lexicon_percent"])
    assert home > 0 and oov == pytest.approx(100 * home / words, abs=1e-4)
    assert f"| test | {UTTERANCES} | {words} | {home} | {100 * home / words:.2f} |" in markdown

    tables = sorted(p.relative_to(per_utterance).as_posix() for p in per_utterance.rglob("*.tsv"))
    assert tables == ["xs_better/seed1/greedy/test.tsv", "xs_better/seed2/greedy/test.tsv",
                      "xs_better/seed3/greedy/test.tsv", "xs_ctc/seed1/greedy/test.tsv",
                      "xs_ctc/seed2/greedy/test.tsv", "xs_same/seed1/greedy/test.tsv", "xs_same/seed2/greedy/test.tsv"]
    lines = (per_utterance / "xs_ctc" / "seed1" / "greedy" / "test.tsv").read_text().splitlines()
    assert len(lines) == UTTERANCES + 1 and lines[0].split("\t") == ["id", "words", "errors", "sub", "del", "ins",
                                                                    "hypothesis", "reference"]
    # utterance 1 at seed 1: 6 words, 1 % 4 + 1 = 2 errors, its first 2 words misspelled
    assert lines[2].split("\t") == ["1", "6", "2", "2", "0", "0", "cat sat ON MAT DOG RAN", "CAT SAT ON MAT DOG RAN"]


def benchmark(subset, rows):
    """benchmark_decoding.py --json with ``rows``: (runtime, encoder dtype, decoder, beam, total s, x greedy)."""
    return {"subset": subset, "device": "cpu (2 cores)", "rows": [
        {"runtime": runtime, "encoder_dtype": dtype, "decoder": decoder, "beam": beam, "total_seconds": total,
         "speed_ratio_vs_greedy": ratio, "rtf": total / 30} for runtime, dtype, decoder, beam, total, ratio in rows]}


def test_decoding_times_are_the_side_by_side_benchmarks(collect_results, tmp_path, monkeypatch):
    """--timing: "x greedy", "RTF" and the plot come from each system's benchmark (greedy and beam + LM on the same
    emissions), its PyTorch float32 rows, not from the recipe's decodings (run beside other jobs: here the greedy
    decoding took 3x the beam search's time); the benchmarks are kept in OUT/timing; without one, no plot (nor a
    stale one); a benchmark of another subset stops with the file named."""
    data, exp = make_experiment(tmp_path, {"xs_ctc": {1: summary(lambda u: baseline_errors(1, u), False)},
                                           "xs_other": {1: summary(lambda u: baseline_errors(2, u), False)}})
    beam_dir = exp / "xs_ctc" / "seed1" / "decode" / "beam50_lm" / "test"
    beam_dir.mkdir(parents=True)
    beam = summary(lambda u: max(baseline_errors(1, u) - 1, 0), False)
    (beam_dir / "decoding_summary.json").write_text(json.dumps({**beam, "decode_seconds": 1 / 3}))
    timing = tmp_path / "timing"
    timing.mkdir()
    (timing / "xs_ctc.json").write_text(json.dumps(benchmark("test", [
        ("pytorch", "float32", "greedy", 1, 2.0, 1.0), ("pytorch", "float32", "beam_lm", 50, 5.0, 2.5),
        ("pytorch", "int8", "beam_lm", 50, 4.0, 2.0), ("onnxruntime", "float32", "beam_lm", 50, 3.0, 1.5)])))
    (timing / "xs_unlisted.json").write_text(json.dumps(benchmark("valid", [])))  # not a system of the table
    out = tmp_path / "results"
    run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", out, "--systems",
             "xs_ctc,xs_other", "--timing", timing)
    markdown = (out / "results.md").read_text()
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")
            for line in markdown.splitlines() if line.startswith("| xs_")}
    # the columns after the WER and the CI: recipe decode time, x greedy, RTF
    assert [cell.strip() for cell in rows["xs_ctc", "greedy"][-5:-2]] == ["1.00", "1.00", "0.0667"]
    assert [cell.strip() for cell in rows["xs_ctc", "beam50_lm"][-5:-2]] == ["0.33", "2.50", "0.1667"]
    assert [cell.strip() for cell in rows["xs_other", "greedy"][-5:-2]] == ["1.00", "", ""]
    assert "side by side" in markdown and "xs_ctc: cpu (2 cores)" in markdown and "xs_unlisted" not in markdown
    assert (out / "wer_vs_time.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert sorted(p.name for p in (out / "timing").iterdir()) == ["xs_ctc.json"]

    run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", out, "--systems", "xs_ctc,xs_other")
    assert not (out / "wer_vs_time.png").exists()  # the earlier figure went with its times
    (out / "timing" / "xs_ctc.json").unlink()
    (timing / "xs_ctc.json").write_text(json.dumps(benchmark("valid", [])))
    with pytest.raises(SystemExit, match=r"timing/xs_ctc.json: a benchmark of 'valid', not of the main subset"):
        run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", out, "--timing", timing)


def test_the_table_holds_the_named_systems_and_seeds_only(collect_results, tmp_path, monkeypatch):
    """Presets share one --exp (exp/evidence: evidence, dose, dose_confirm): --systems names the table's systems
    and --seeds its seeds (dose_confirm's 4-6, not the screening's seed 1 of the same system); the others found there
    stay out of it (and of the pooled seed variance); without them, every one."""
    data, exp = make_experiment(tmp_path, {system: {1: summary(lambda u: baseline_errors(1, u), False)}
                                           for system in ("xs_ctc", "xs_interctc", "xs_other_study")})
    seed4 = exp / "xs_ctc" / "seed4"
    shutil.copytree(exp / "xs_ctc" / "seed1", seed4)
    tables = tmp_path / "seed4" / "per_utterance"
    run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", tmp_path / "seed4",
             "--systems", "xs_ctc", "--per-utterance-dir", tables)
    assert (tables / "xs_ctc" / "seed1" / "greedy" / "test.tsv").is_file()
    run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", tmp_path / "seed4",
             "--systems", "xs_ctc", "--seeds", "4,5", "--per-utterance-dir", tables)
    assert list(read_csv(tmp_path / "seed4" / "results.csv")) == [("xs_ctc", "greedy", "test")]
    assert "| xs_ctc | greedy | 4 |" in (tmp_path / "seed4" / "results.md").read_text()
    # seed 1's table went with it: read back as --previous-results it would say "seed 1 decoded"
    assert sorted(p.relative_to(tables).as_posix() for p in tables.rglob("*.tsv")) == ["xs_ctc/seed4/greedy/test.tsv"]
    shutil.rmtree(seed4)
    run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", tmp_path / "named",
             "--systems", "xs_interctc,xs_ctc")
    assert [row[0] for row in read_csv(tmp_path / "named" / "results.csv")] == ["xs_interctc", "xs_ctc"]
    run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", tmp_path / "all")
    assert [row[0] for row in read_csv(tmp_path / "all" / "results.csv")] == ["xs_ctc", "xs_interctc",
                                                                              "xs_other_study"]
    with pytest.raises(SystemExit, match="no decoding results under .* of --systems xs_absent"):
        run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", tmp_path / "none",
                 "--systems", "xs_absent")


def test_unseen_voices_cluster_the_intervals_and_get_rows_of_their_own(collect_results, tmp_path, monkeypatch):
    """test_unseen (the default --cluster-by-speaker and --per-speaker): the voices from the manifest's file names
    (the synthetic corpus's <split>-<voice>-<index>, sorted: ids 0-14 voice a, 15-29 voice b); a system worse on
    voice b alone is far less certainly worse over the 2 voices than over their utterances; a row per voice; the
    voices reach a later run through --previous."""
    def voice(utt_id):
        return "a" if utt_id < UTTERANCES // 2 else "b"

    data, exp = make_experiment(tmp_path, {
        "xs_ctc": {s: summary(lambda u, s=s: baseline_errors(s, u), False) for s in (1, 2)},
        "xs_worse": {s: summary(lambda u, s=s: baseline_errors(s, u) + 2 * (voice(u) == "b"), False) for s in (1, 2)},
    }, subset="test_unseen", audio_name=lambda i: f"test_unseen-{voice(i)}-{i:06d}.wav")
    common = ["--exp", exp, "--data", data, "--systems", "xs_ctc,xs_worse", "--main-subset", "test_unseen"]
    out = tmp_path / "results"
    run_main(collect_results, monkeypatch, *common, "--out", out, "--per-utterance-dir", out / "per_utterance")
    rows = read_csv(out / "significance.csv")
    clustered = rows["xs_worse", "greedy", "test_unseen"]
    by_voice = {v: rows["xs_worse", "greedy", f"test_unseen/{v}"] for v in "ab"}
    assert clustered["interval_over"] == "2 speakers + seeds"
    assert by_voice["a"]["interval_over"] == "utterances + seeds" and by_voice["b"]["utterances"] == "15"
    assert float(by_voice["a"]["diff"]) == 0 and float(by_voice["b"]["diff"]) > 0
    assert (out / "speakers" / "test_unseen.tsv").read_text().splitlines()[1:3] == ["0\ta", "1\ta"]
    assert "| test_unseen/b | xs_worse | greedy |" in (out / "results.md").read_text()

    independent = tmp_path / "independent"
    run_main(collect_results, monkeypatch, *common, "--out", independent, "--cluster-by-speaker", "")
    utterances = read_csv(independent / "significance.csv")["xs_worse", "greedy", "test_unseen"]
    assert utterances["interval_over"] == "utterances + seeds" and utterances["diff"] == clustered["diff"]
    assert float(utterances["ci_low"]) > 0  # "worse" over 30 utterances; over 2 voices the interval reaches below 0
    assert float(clustered["ci_low"]) < 0 < float(clustered["ci_high"])

    for path in sorted(exp.rglob("*"), reverse=True):  # a new machine: exp/ and the corpus are gone
        path.unlink() if path.is_file() else path.rmdir()
    (data / "test_unseen.tsv").unlink()
    later = tmp_path / "later"
    run_main(collect_results, monkeypatch, *common, "--out", later, "--previous", out)
    assert read_csv(later / "significance.csv") == rows
    (out / "speakers" / "test_unseen.tsv").unlink()
    with pytest.raises(SystemExit, match=r"--cluster-by-speaker: no speakers for test_unseen: .* ''"):
        run_main(collect_results, monkeypatch, *common, "--out", later, "--previous", out)


def test_different_utterance_sets_stop_with_both_files_named(collect_results, tmp_path, monkeypatch):
    data, exp = make_experiment(tmp_path, {
        "xs_ctc": {1: summary(lambda u: baseline_errors(1, u), False)},
        "xs_better": {1: summary(lambda u: better_errors(1, u), False, ids=[*range(UTTERANCES - 1), 40])},
    })
    with pytest.raises(SystemExit, match=r"xs_better/seed1/decode/greedy/test/decoding_summary.json and .*"
                                         r"xs_ctc/seed1/decode/greedy/test/decoding_summary.json decoded different "
                                         r"utterances of 'test' .*only in the first: 1 \[40\], only in the second: "
                                         r"1 \[29\]"):
        run_main(collect_results, monkeypatch, "--exp", exp, "--data", data, "--out", tmp_path / "results")
    assert not (tmp_path / "results" / "significance.csv").exists()


def test_decodings_of_an_earlier_output_complete_an_experiment_that_lost_them(collect_results, tmp_path,
                                                                               monkeypatch):
    """--previous: a session on a new machine (exp/ gone) still reports the decodings committed before."""
    data, exp = make_experiment(tmp_path, {
        "xs_ctc": {s: summary(lambda u, s=s: baseline_errors(s, u), False) for s in (1, 2)},
        "xs_better": {s: summary(lambda u, s=s: better_errors(s, u), True) for s in (1, 2)},
    })
    common = ["--data", data, "--systems", "xs_ctc,xs_better"]
    earlier = tmp_path / "earlier"
    run_main(collect_results, monkeypatch, "--exp", exp, "--out", earlier, "--per-utterance-dir",
             earlier / "per_utterance", *common)
    for seed_dir in (exp / "xs_better").iterdir():  # the KD system's decodings are gone from exp/
        for path in sorted(seed_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    merged = tmp_path / "merged"
    run_main(collect_results, monkeypatch, "--exp", exp, "--out", merged, "--previous", earlier, *common)
    assert (merged / "results.csv").read_text() == (earlier / "results.csv").read_text()
    assert read_csv(merged / "significance.csv") == read_csv(earlier / "significance.csv")
    assert read_csv(merged / "wer_intervals.csv") == read_csv(earlier / "wer_intervals.csv")

    # an output written before results.csv had the setting columns: the recipe config and the corpus's sidecars
    with_columns = (earlier / "results.csv").read_text()
    with open(earlier / "results.csv", newline="") as f:
        old_rows = list(csv.DictReader(f))
    assert {(r["alpha"], r["beta"], r["temperature"]) for r in old_rows} == {("0.0", "", "")}
    with open(earlier / "results.csv", "w", newline="") as f:
        old_columns = [k for k in old_rows[0] if k not in ("alpha", "beta", "temperature")]
        writer = csv.DictWriter(f, fieldnames=old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(old_rows)
    (data / "teacher").mkdir()
    (data / "teacher" / "teacher.json").write_text(json.dumps({"temperature": 1.0}))
    renamed = {"xs_better": "xs_interctc_interaedkd_alpha07"}  # a system with a recipe config
    text = (earlier / "results.csv").read_text().replace("xs_better", renamed["xs_better"])
    (earlier / "results.csv").write_text(text)
    os.rename(earlier / "per_utterance" / "xs_better", earlier / "per_utterance" / renamed["xs_better"])
    run_main(collect_results, monkeypatch, "--exp", exp, "--out", merged, "--previous", earlier,
             "--data", data, "--systems", f"xs_ctc,{renamed['xs_better']}")
    with open(merged / "results.csv", newline="") as f:
        settings = {(r["system"], r["alpha"], r["beta"], r["temperature"]) for r in csv.DictReader(f)}
    assert settings == {("xs_ctc", "0.0", "", ""), (renamed["xs_better"], "0.7", "1.0", "1.0")}
    os.rename(earlier / "per_utterance" / renamed["xs_better"], earlier / "per_utterance" / "xs_better")
    (earlier / "results.csv").write_text(with_columns)

    (earlier / "per_utterance" / "xs_better" / "seed2" / "greedy" / "test.tsv").unlink()
    with pytest.raises(SystemExit, match=r"results.csv:\d+: .*xs_better/seed2/greedy/test.tsv is missing"):
        run_main(collect_results, monkeypatch, "--exp", exp, "--out", merged, "--previous", earlier, *common)


def test_stage_times_sum_every_invocation_and_name_a_bad_line(collect_results, tmp_path):
    """A stage run in several invocations (a resumed teacher, stage 7 once per session) counts all of them; the
    fallback for an older recipe (.start / .done only) leaves out a stage running now (marker older than start)."""
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "wall_times.tsv").write_text("2.speech\t1000\t1300\n7.decode\t2000\t2060\n2.speech\t5000\t5060\n")
    assert collect_results.stage_times(str(stages)).splitlines()[2:] == ["| 2.speech | 6.0 | 2 |",
                                                                         "| 7.decode | 1.0 | 1 |"]
    (stages / "wall_times.tsv").write_text("2.speech\t1000\t1300\n7.decode 2000\n")
    with pytest.raises(SystemExit, match=r"wall_times.tsv:2: expected 'STAGE START END'"):
        collect_results.stage_times(str(stages))

    older = tmp_path / "older"
    older.mkdir()
    for name, start, end in (("1.text", 1000, 1120), ("8.results", 4000, 3000)):
        (older / f"{name}.start").write_text(f"{start}\n")
        (older / f"{name}.done").touch()
        os.utime(older / f"{name}.done", (end, end))
    assert collect_results.stage_times(str(older)).splitlines()[2:] == ["| 1.text | 2.0 | 1 |"]
