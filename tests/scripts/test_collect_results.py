"""scripts/collect_results.py reads each decoding's summary (fairseq-generate --decoding-summary) and counts the
words of a decoding made without one the same way."""
import importlib.util
import json
import os

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
    torch.save({"model": weights}, seed_dir / "checkpoint_best.pt")
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
