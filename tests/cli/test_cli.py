"""The real CLIs on generated audio: fairseq-hydra-train / fairseq-train, resume, fairseq-generate."""
import json
import os
import re

import pytest

from cli_runs import generate, hydra_train
from conftest import USER_DIR, run

pytestmark = pytest.mark.cli

@pytest.fixture(scope="module")
def interctc_run(corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("interctc")
    proc = hydra_train("xs_interctc", corpus, save_dir, 6, "model.inter_ctc_layers=[1]")
    return save_dir, proc.stdout


def test_hydra_train_logs_every_term_and_validates(interctc_run):
    save_dir, log = interctc_run
    assert re.search(r"train_inner.*loss=.*ctc_loss=.*interctc_loss_l1=", log)
    valid = re.findall(r"valid on 'valid' subset \| loss .*", log)
    assert valid and all("interctc_loss_l1" in v and "| wer " in v and "| uer " in v for v in valid)
    assert os.path.isfile(os.path.join(save_dir, "checkpoint_last.pt"))


def test_generate_decodes_every_utterance_with_greedy_ctc(corpus, interctc_run, tmp_path):
    save_dir, _ = interctc_run
    out = generate(corpus, os.path.join(save_dir, "checkpoint_last.pt"), str(tmp_path))
    ids = sorted(int(m) for m in re.findall(r"^H-(\d+)\t", out, flags=re.M))
    assert ids == list(range(13))  # all 13 test utterances, not a multiple of 8
    assert re.search(r"^Generate test with beam=\d+: WER: [\d.]+$", out, flags=re.M)


def test_generate_writes_the_decoding_summary_with_fairseqs_wer(corpus, interctc_run, tmp_path):
    save_dir, _ = interctc_run
    summary_path = tmp_path / "decoding_summary.json"
    out = generate(corpus, os.path.join(save_dir, "checkpoint_last.pt"), str(tmp_path), "test",
                   "--decoding-summary", str(summary_path))
    summary = json.loads(summary_path.read_text())
    wer = float(re.search(r"^Generate test with beam=\d+: WER: ([\d.]+)$", out, flags=re.M)[1])
    assert summary["utterances"] == 13 and [u["id"] for u in summary["per_utterance"]] == list(range(13))
    assert summary["wer"] == pytest.approx(wer, abs=0.01) and summary["decode_seconds"] > 0
    hypotheses = dict(re.findall(r"^D-(\d+)\t\S+\t(.*)$", out, flags=re.M))
    assert all(hypotheses[str(u["id"])] == u["hypothesis"] for u in summary["per_utterance"])


def test_resume_from_checkpoint_last(corpus, tmp_path):
    hydra_train("xs_ctc", corpus, tmp_path, 3)
    proc = hydra_train("xs_ctc", corpus, tmp_path, 6)
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch \d+ @ 3 updates\)", proc.stdout)
    assert "num_updates: 6 >= max_update: 6" in proc.stdout


def test_fairseq_train_with_arch_and_interctc_flags(corpus, tmp_path):
    proc = run(["fairseq-train", corpus, "--user-dir", USER_DIR, "--task", "audio_kd", "--arch",
                "ctc_kd_conformer_xs", "--encoder-layers", "2", "--encoder-embed-dim", "32",
                "--encoder-ffn-embed-dim", "64", "--inter-ctc-layers", "[1]", "--criterion", "ctc_kd",
                "--interctc-weight", "0.5", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "320000",
                "--max-update", "3", "--cpu", "--save-dir", str(tmp_path), "--log-interval", "1",
                "--log-format", "simple", "--no-epoch-checkpoints"])
    assert re.search(r"ctc_loss=.*interctc_loss_l1=", proc.stdout)
    assert "encoder_layers': 2" in proc.stdout or "encoder_layers=2" in proc.stdout


def test_checkpoint_config_is_resolved_and_a_different_dictionary_is_refused(corpus, interctc_run, tmp_path):
    import shutil

    from fairseq import checkpoint_utils

    import fairseq_kd  # noqa: F401  (sets up torch.load for fairseq checkpoints)

    save_dir, _ = interctc_run
    cfg = checkpoint_utils.load_checkpoint_to_cpu(os.path.join(save_dir, "checkpoint_last.pt"))["cfg"]
    assert cfg.model.encoder_layers == 3 and cfg.model.encoder_attention_heads == 4  # arch preset resolved
    data = tmp_path / "data"
    shutil.copytree(corpus, data, ignore=shutil.ignore_patterns("audio"))
    lines = (data / "dict.ltr.txt").read_text().splitlines()
    (data / "dict.ltr.txt").write_text("\n".join(lines[1:] + lines[:1]) + "\n")  # same symbols, other order
    proc = run(["fairseq-generate", str(data), "--user-dir", USER_DIR, "--task", "audio_kd", "--path",
                os.path.join(save_dir, "checkpoint_last.pt"), "--gen-subset", "test", "--max-tokens", "320000",
                "--cpu"], check=False)
    assert proc.returncode != 0 and "is not the dictionary this checkpoint was trained with" in proc.stdout
    assert "same symbols in another order" in proc.stdout
