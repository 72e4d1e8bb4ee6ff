"""scripts/export_onnx.py, scripts/transcribe_onnx.py and the ONNX rows of scripts/benchmark_decoding.py on the
shared tiny trained model (conftest's ``interctc_run``: 6 updates, so its hypotheses are nearly empty and the label
paths and log-probabilities are the telling comparisons)."""
import json
import os
import re
import sys

import pytest

from conftest import ROOT, SENTENCES, USER_DIR, read_lines, run
from fairseq_kd.deploy.onnx_ctc import agreement_with_fairseq_generate, read_generated
from fairseq_kd.errors import DataError

pytestmark = pytest.mark.cli

pytest.importorskip("onnxruntime")
pytest.importorskip("sherpa_onnx")

SCRIPTS = os.path.join(ROOT, "scripts")


@pytest.fixture(scope="module")
def checkpoint(interctc_run):
    return os.path.join(interctc_run[0], "checkpoint_last.pt")


@pytest.fixture(scope="module")
def exported(checkpoint, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    proc = run([sys.executable, os.path.join(SCRIPTS, "export_onnx.py"), checkpoint, str(out), "--data", corpus,
                "--verify-subset", "test"])
    return str(out), proc.stdout


def test_export_matches_pytorch_and_sherpa_onnx_transcribes_as_fairseq_generate(exported, checkpoint, corpus,
                                                                                 tmp_path):
    out, stdout = exported
    report = json.load(open(os.path.join(out, "export.json")))
    check = report["verification"]
    assert check["utterances"] == 13 and re.search(r"^onnxruntime_float32 +\d\.\d\de-\d\d ", stdout, flags=re.M)
    float32 = check["onnxruntime_float32"]
    assert float32["max_abs_log_prob_diff"] < 1e-4 and float32["same_label_path"] == 1.0
    assert float32["argmax_frames_agree"] > 0.99 and float32["wer"] == check["pytorch"]["wer"]
    # int8 is kept only where it is faster than float32 on this machine
    assert ("model.int8.onnx" in report["files"]) == check["onnxruntime_int8"]["kept"]
    assert report["files"]["tokens.txt"] > 0 and "model.onnx" in report["files"]
    # sherpa-onnx computes the same filterbanks and runs the same graph, batched: the same labels at the same frames
    assert check["sherpa_onnx_float32"]["same_label_path"] == 1.0 and check["sherpa_onnx_float32"]["same_words"] == 1.0

    # the documented command against fairseq-generate's greedy hypotheses
    run(["fairseq-generate", corpus, "--user-dir", USER_DIR, "--task", "audio_kd", "--path", checkpoint,
         "--gen-subset", "test", "--results-path", str(tmp_path), "--scoring", "wer", "--post-process", "letter",
         "--max-tokens", "320000", "--cpu", "--decoding-summary", str(tmp_path / "summary.json")])
    generated = open(os.path.join(tmp_path, "generate-test.txt"), encoding="utf-8").read()
    fairseq_words = {int(i): " ".join(words.split()) for i, words in re.findall(r"^H-(\d+)\t\S+\t(.*)$", generated,
                                                                                 flags=re.M)}
    manifest = read_lines(os.path.join(corpus, "test.tsv"))
    wavs = [os.path.join(manifest[0], line.split("\t")[0]) for line in manifest[1:]]
    proc = run([sys.executable, os.path.join(SCRIPTS, "transcribe_onnx.py"), out, *wavs])
    sherpa = [line.split("\t") for line in proc.stdout.splitlines() if "\t" in line]
    assert [path for path, _ in sherpa] == wavs and len(fairseq_words) == 13
    assert [words for _, words in sherpa] == [fairseq_words[i] for i in range(13)]
    # export_onnx.py --fairseq-summary reads the same words from fairseq-generate's --decoding-summary
    from_summary = read_generated(str(tmp_path / "summary.json"), 13)
    assert from_summary == fairseq_words
    assert agreement_with_fairseq_generate([w for _, w in sherpa], from_summary) == \
        {"same_words_as_fairseq_generate": 1.0}
    with pytest.raises(DataError, match=r"summary.json: utterance id 12 but the split has 12 utterances"):
        read_generated(str(tmp_path / "summary.json"), 12)


def test_benchmark_adds_onnx_runtime_and_sherpa_onnx_rows(exported, checkpoint, corpus, tmp_path):
    out, _ = exported
    lm = tmp_path / "lm"
    run([sys.executable, os.path.join(SCRIPTS, "build_lm.py"), "--text", SENTENCES, "--dict",
         os.path.join(corpus, "dict.ltr.txt"), "--exclude", os.path.join(corpus, "valid.wrd"),
         os.path.join(corpus, "test.wrd"), "--order", "3", "--memory", "64M", "--out-dir", str(lm)])
    table = tmp_path / "bench.json"
    proc = run([sys.executable, os.path.join(SCRIPTS, "benchmark_decoding.py"), "--path", checkpoint, "--data", corpus,
                "--subset", "test", "--kenlm-model", str(lm / "lm.bin"), "--lexicon", str(lm / "lexicon.txt"),
                "--lm-weight", "1", "--word-score", "0", "--beams", "2", "--threads", "1", "--batch-size", "5",
                "--onnx-dir", out, "--json", str(table)])
    rows = json.loads(table.read_text())["rows"]
    int8 = ["int8"] if os.path.exists(os.path.join(out, "model.int8.onnx")) else []
    assert [(r["runtime"], r["encoder_dtype"], r["decoder"], r["beam"]) for r in rows] == [
        ("pytorch", "float32", "greedy", 1), ("pytorch", "float32", "beam_lm", 2),
        *[("onnxruntime", dtype, decoder, beam) for dtype in ["float32", *int8]
          for decoder, beam in (("greedy", 1), ("beam_lm", 2))],
        ("sherpa-onnx", "float32", "greedy", 1)]
    assert rows[2]["wer"] == rows[0]["wer"] and rows[-1]["includes_features"] and not rows[2]["includes_features"]
    assert all(r["encoder_threads"] == 1 for r in rows)
    assert re.search(r"^float32 +greedy +1 .* onnxruntime$", proc.stdout, flags=re.M)
    assert re.search(r"^float32 +greedy +1 .* sherpa-onnx \(time: filterbanks \+ encoder \+ search", proc.stdout,
                     flags=re.M)

    refused = run([sys.executable, os.path.join(SCRIPTS, "export_onnx.py"), str(tmp_path / "missing.pt"),
                   str(tmp_path / "out")], check=False)
    assert refused.returncode != 0 and "missing.pt" in refused.stdout
