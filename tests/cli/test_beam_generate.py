"""fairseq-generate with --ctc-decoder beam / beam_lm on generated audio, and the LM tuning / benchmark scripts."""
import json
import os
import re
import sys

import pytest

from conftest import ROOT, SENTENCES, USER_DIR, run
from fairseq_kd.decoding.evaluation import encode_split, load_for_decoding

pytestmark = pytest.mark.cli

SCRIPTS = os.path.join(ROOT, "scripts")


@pytest.fixture(scope="module")
def checkpoint(interctc_run):
    return os.path.join(interctc_run[0], "checkpoint_last.pt")


@pytest.fixture(scope="module")
def corpus_lm(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus_lm")
    run([sys.executable, os.path.join(SCRIPTS, "build_lm.py"), "--text", SENTENCES, "--dict",
         os.path.join(corpus, "dict.ltr.txt"), "--exclude", os.path.join(corpus, "valid.wrd"),
         os.path.join(corpus, "test.wrd"), "--order", "3", "--memory", "64M", "--out-dir", str(out)])
    return str(out)


def generate(corpus, checkpoint, results, *decoder_args, check=True):
    proc = run(["fairseq-generate", corpus, "--user-dir", USER_DIR, "--task", "audio_kd", "--path", checkpoint,
                "--gen-subset", "test", "--results-path", str(results), "--scoring", "wer", "--post-process",
                "letter", "--max-tokens", "320000", "--cpu", *decoder_args], check=check)
    path = os.path.join(results, "generate-test.txt")
    return proc, open(path).read() if os.path.exists(path) else ""


def hypotheses(out):
    return dict(re.findall(r"^H-(\d+)\t\S+\t(.*)$", out, flags=re.M))


def test_beam_lm_decodes_every_utterance(corpus, checkpoint, corpus_lm, tmp_path):
    proc, out = generate(corpus, checkpoint, tmp_path, "--ctc-decoder", "beam_lm", "--beam", "8",
                         "--kenlm-model", os.path.join(corpus_lm, "lm.bin"),
                         "--lexicon", os.path.join(corpus_lm, "lexicon.txt"), "--lm-weight", "1.0",
                         "--word-score", "0.5")
    assert re.search(r"CTC beam search \+ KenLM .*lm.bin .*beam 8, lm_weight 1.0, word_score 0.5", proc.stdout)
    assert sorted(int(i) for i in hypotheses(out)) == list(range(13))  # 13: not a multiple of 8
    assert re.search(r"^Generate test with beam=8: WER: [\d.]+$", out, flags=re.M)
    with open(os.path.join(corpus_lm, "lexicon.txt")) as f:
        lexicon = {line.split()[0] for line in f}
    assert all(word in lexicon for text in hypotheses(out).values() for word in text.replace(" ", "").split("|")
               if word)


def test_beam_size_one_without_lm_matches_greedy_end_to_end(corpus, checkpoint, tmp_path):
    _, greedy = generate(corpus, checkpoint, tmp_path / "greedy")
    _, beam = generate(corpus, checkpoint, tmp_path / "beam", "--ctc-decoder", "beam", "--beam", "1")
    assert len(hypotheses(greedy)) == 13 and hypotheses(beam) == hypotheses(greedy)


def test_corrupt_lm_fails_before_decoding_with_the_file_and_the_fix(corpus, checkpoint, corpus_lm, tmp_path):
    bad = tmp_path / "lm.bin"
    bad.write_bytes(b"\x00garbage\n" * 100)
    proc, _ = generate(corpus, checkpoint, tmp_path, "--ctc-decoder", "beam_lm", "--kenlm-model", str(bad),
                       "--lexicon", os.path.join(corpus_lm, "lexicon.txt"), check=False)
    assert proc.returncode != 0
    assert f"DataError: {bad} is not a KenLM model" in proc.stdout and "scripts/build_lm.py" in proc.stdout


def test_tune_then_benchmark(corpus, checkpoint, corpus_lm, tmp_path):
    lm = ["--kenlm-model", os.path.join(corpus_lm, "lm.bin"), "--lexicon", os.path.join(corpus_lm, "lexicon.txt")]
    tuned = tmp_path / "tuned.json"
    proc = run([sys.executable, os.path.join(SCRIPTS, "tune_lm_weights.py"), "--path", checkpoint, "--data", corpus,
                "--subset", "valid", *lm, "--beam", "4", "--lm-weights", "0", "1", "--word-scores", "0", "2",
                "--out", str(tuned)])
    result = json.loads(tuned.read_text())
    assert len(result["grid"]) == 4 and result["subset"] == "valid"
    assert result["wer"] == min(row["wer"] for row in result["grid"]) and "<- best" in proc.stdout
    in_parallel = tmp_path / "tuned_jobs2.json"  # the grid in 2 forked processes: the same rows and choice
    run([sys.executable, os.path.join(SCRIPTS, "tune_lm_weights.py"), "--path", checkpoint, "--data", corpus,
         "--subset", "valid", *lm, "--beam", "4", "--lm-weights", "0", "1", "--word-scores", "0", "2", "--jobs", "2",
         "--out", str(in_parallel)])
    parallel_result = json.loads(in_parallel.read_text())
    drop_time = lambda rows: [{k: v for k, v in row.items() if k != "search_seconds"} for row in rows]  # noqa: E731
    assert drop_time(parallel_result["grid"]) == drop_time(result["grid"])
    assert (parallel_result["lm_weight"], parallel_result["word_score"]) == (result["lm_weight"], result["word_score"])

    table = tmp_path / "bench.json"
    proc = run([sys.executable, os.path.join(SCRIPTS, "benchmark_decoding.py"), "--path", checkpoint, "--data",
                corpus, "--subset", "test", *lm, "--tuned", str(tuned), "--beams", "2", "4", "--threads", "1",
                "--batch-size", "5", "--encoder-dtypes", "int8", "float32", "bfloat16", "--json", str(table)])
    bench = json.loads(table.read_text())
    # where and when: times compare only between benchmarks of the same machine (collect_results.py prints both)
    assert re.fullmatch(r"cpu \(\d+ cores, (no )?AVX512-BF16/AMX\)", bench["device"]) and bench["measured_at"]
    assert bench["utterances"] == 13 and [(r["encoder_dtype"], r["decoder"], r["beam"]) for r in bench["rows"]] == \
        [(dtype, decoder, beam) for dtype in ("float32", "bfloat16", "int8")  # int8 last: it quantises in place
         for decoder, beam in (("greedy", 1), ("beam_lm", 2), ("beam_lm", 4))]
    assert all(r["total_seconds"] == pytest.approx(r["encoder_seconds"] + r["search_seconds"], abs=2e-3)
               for r in bench["rows"])
    assert bench["rows"][0]["speed_ratio_vs_greedy"] == 1.0 and bench["rows"][0]["mean_batch_utterances"] > 1
    # int8 rows decode with the linear layers quantised, on their own encoder run shared by their greedy and beam rows
    # (ratios against float32 greedy), and nearly the same words; what the timings are is not asserted (two runs of
    # 13 utterances can take the same time to the millisecond)
    assert [r["quantised_linears"] > 0 for r in bench["rows"]] == [False] * 6 + [True] * 3
    for dtype_rows in (bench["rows"][:3], bench["rows"][3:6], bench["rows"][6:]):
        assert len({r["encoder_seconds"] for r in dtype_rows}) == 1
    assert abs(bench["rows"][3]["wer"] - bench["rows"][0]["wer"]) < 25  # bfloat16 autocast
    assert abs(bench["rows"][6]["wer"] - bench["rows"][0]["wer"]) < 25
    assert re.search(r"^float32 +greedy +1 ", proc.stdout, flags=re.M)
    assert re.search(r"^int8 +beam_lm +4 ", proc.stdout, flags=re.M)
    assert re.search(r"^bfloat16 +greedy +1 ", proc.stdout, flags=re.M)

    refused = run([sys.executable, os.path.join(SCRIPTS, "benchmark_decoding.py"), "--path", checkpoint, "--data",
                   corpus, "--subset", "valid", *lm, "--tuned", str(tuned)], check=False)
    assert refused.returncode != 0 and "was tuned on 'valid'" in refused.stdout


def test_the_encoded_split_holds_no_autograd_graph(corpus, checkpoint):
    """The benchmark and LM tuning time the encoder as fairseq-generate runs it: without autograd."""
    model, task = load_for_decoding(checkpoint, corpus, "test", "cpu")
    encoded = encode_split(model, task, "test", 1600000, 5, "cpu")
    assert encoded.num_utterances == 13
    assert not any(batch.log_probs.requires_grad for batch in encoded.batches)
