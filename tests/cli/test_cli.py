"""The real CLIs on generated audio: fairseq-hydra-train / fairseq-train, resume, fairseq-generate."""
import json
import os
import re
import shutil
import sys

import pytest

from cli_runs import generate, hydra_train
from conftest import ROOT, USER_DIR, run

pytestmark = pytest.mark.cli


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
    assert re.search(r"^Generate test with greedy CTC: WER: [\d.]+$", out, flags=re.M)


def test_generate_writes_the_decoding_summary_with_fairseqs_wer(corpus, interctc_run, tmp_path):
    save_dir, _ = interctc_run
    summary_path = tmp_path / "decoding_summary.json"
    out = generate(corpus, os.path.join(save_dir, "checkpoint_last.pt"), str(tmp_path), "test",
                   "--decoding-summary", str(summary_path))
    summary = json.loads(summary_path.read_text())
    wer = float(re.search(r"^Generate test with greedy CTC: WER: ([\d.]+)$", out, flags=re.M)[1])
    assert summary["utterances"] == 13 and [u["id"] for u in summary["per_utterance"]] == list(range(13))
    assert summary["wer"] == pytest.approx(wer, abs=0.01) and summary["decode_seconds"] > 0
    hypotheses = dict(re.findall(r"^D-(\d+)\t\S+\t(.*)$", out, flags=re.M))
    assert all(hypotheses[str(u["id"])] == u["hypothesis"] for u in summary["per_utterance"])


def test_resume_from_checkpoint_last(corpus, interctc_run, tmp_path):
    shutil.copytree(interctc_run[0], tmp_path, dirs_exist_ok=True)  # the shared run stopped at 6 updates
    proc = hydra_train("xs_interctc", corpus, tmp_path, 9, "model.inter_ctc_layers=[1]")
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch \d+ @ 6 updates\)", proc.stdout)
    assert "num_updates: 9 >= max_update: 9" in proc.stdout


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
    from fairseq import checkpoint_utils

    import fairseq_kd  # noqa: F401  (safe globals of fairseq checkpoints)

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


def test_greedy_generate_prints_no_warning_debug_or_beam_line(corpus, interctc_run):
    """The console of a plain greedy decoding (test audio, never trained on): fairseq's log lines, the result
    labelled greedy, and none of the third-party alarms the user cannot act on."""
    proc = run(["fairseq-generate", corpus, "--user-dir", USER_DIR, "--task", "audio_kd", "--path",
                os.path.join(interctc_run[0], "checkpoint_last.pt"), "--gen-subset", "test", "--scoring", "wer",
                "--post-process", "letter", "--max-tokens", "320000", "--cpu"])
    noise = [line for line in proc.stdout.splitlines() if re.search(r"Warning|DEBUG|beam=", line)]
    assert not noise, "\n".join(noise)
    assert re.search(r"^Generate test with greedy CTC: WER: [\d.]+$", proc.stdout, flags=re.M)
    assert re.search(r"\| INFO \| fairseq_cli\.generate \| Translated 13 sentences \((\d+) tokens\)", proc.stdout)


def test_checkpoints_load_with_weights_only_and_a_code_payload_is_refused(corpus, interctc_run, kd_run, tmp_path):
    import torch
    from omegaconf import OmegaConf

    import fairseq_kd  # noqa: F401  (registers the safe globals)

    for save_dir in (interctc_run[0], kd_run[0]):
        torch.load(os.path.join(save_dir, "checkpoint_last.pt"), weights_only=True)
    state = torch.load(os.path.join(interctc_run[0], "checkpoint_last.pt"), weights_only=True)
    torch.save({**state, "cfg": OmegaConf.create(state["cfg"])}, tmp_path / "old_export.pt")  # as exported before
    torch.load(tmp_path / "old_export.pt", weights_only=True)
    state["extra_state"]["payload"] = CodePayload(str(tmp_path / "ran"))
    crafted = str(tmp_path / "crafted.pt")
    torch.save(state, crafted)
    for cmd in (["fairseq-generate", corpus, "--user-dir", USER_DIR, "--task", "audio_kd", "--path", crafted,
                 "--gen-subset", "test", "--max-tokens", "320000", "--cpu"],
                [sys.executable, os.path.join(ROOT, "scripts", "export_ctc_model.py"), crafted,
                 str(tmp_path / "exported.pt")]):
        proc = run(cmd, check=False)
        assert proc.returncode != 0 and f"{crafted}: refused to load: its pickle needs 'posix.system'" in proc.stdout
    assert not (tmp_path / "ran").exists()


class CodePayload:
    """Unpickling it runs a shell command (creates ``path``): what a malicious checkpoint would carry."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)
