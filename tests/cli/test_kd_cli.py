"""Every variant config trains through fairseq's training loop with a tiny teacher's sidecars (in this process:
the YAML composed as fairseq-hydra-train composes it, then ``fairseq_cli.train.main``; the real
fairseq-hydra-train of a KD config is the shared ``kd_run``), KD checkpoints decode with fairseq-generate (greedy
CTC), and the exported inference checkpoint decodes the same."""
import os
import re
import sys

import pytest

from cli_runs import CONFIG_DIR, ON_CPU, TINY_KD_MODEL, generate, train_in_process
from conftest import ROOT, USER_DIR, run

pytestmark = pytest.mark.cli

VARIANTS = ["xs_ctc", "xs_interctc", "xs_aedkd", "xs_interaedkd", "xs_interctc_interaedkd",
            "100h_ctc", "100h_interctc", "100h_aedkd", "100h_interaedkd", "100h_interctc_interaedkd",
            "960h_interctc_interaedkd", "xs_interctc_interaedkd_masked", "xs_interctc_interaedkd_nar",
            "100h_interctc_interaedkd_masked", "100h_interctc_interaedkd_nar",
            "100h_interctc_interaedkd_beta0", "xs_interctc_interaedkd_beta0",
            "xs_interctc_interaedkd_beta05", "xs_interctc_interaedkd_alpha05",
            # the dose-response screening (docs/results/dose/PLAN.md)
            "xs_interctc_interaedkd_alpha05_beta0", "xs_interctc_interaedkd_alpha07",
            "xs_interctc_interaedkd_alpha07_beta0", "xs_interctc_interaedkd_alpha09",
            "xs_interctc_interaedkd_alpha09_beta0", "xs_interctc_interaedkd_alpha05_t3",
            "xs_interctc_interaedkd_alpha05_beta03"]


@pytest.mark.parametrize("config", VARIANTS)
def test_variant_trains_and_logs_its_terms(config, corpus, kd_sidecars, tmp_path):
    log = train_in_process(config, corpus, kd_sidecars, tmp_path / "ckpt", "checkpoint.no_save=true",
                           "model.encoder_layers=6" if config.startswith("xs") else "model.encoder_layers=12")
    step = re.findall(r"train_inner.*num_updates=2.*", log)
    assert step, log[-3000:]
    has_aed, has_inter = "aedkd" in config, "interctc" in config
    taps = {"xs": {"aedkd": [6], "interaedkd": [3, 6]}, "100h": {"aedkd": [12], "interaedkd": [6, 12]},
            "960h": {"interaedkd": [6, 12]}}
    size, _, variant = config.partition("_")
    expected = taps[size]["aedkd" if variant == "aedkd" else "interaedkd"] if has_aed else []
    assert sorted(int(l) for l in re.findall(r"aed_kl_loss_l(\d+)=", step[0])) == expected
    assert ("interctc_loss_l" in step[0]) == has_inter
    valid = re.findall(r"valid on 'valid' subset .*", log)[-1]
    assert ("aed_kl_loss" in valid) == has_aed and "| wer " in valid


@pytest.fixture(scope="module")
def kd_checkpoint(kd_run):
    return os.path.join(kd_run[0], "checkpoint_last.pt")


def test_kd_checkpoint_decodes_with_greedy_ctc_without_sidecars(corpus, kd_checkpoint, tmp_path):
    out = generate(corpus, kd_checkpoint, str(tmp_path))
    assert sorted(int(i) for i in re.findall(r"^H-(\d+)\t", out, flags=re.M)) == list(range(13))


def test_export_drops_the_decoder_and_keeps_the_greedy_output(corpus, kd_checkpoint, tmp_path):
    exported = str(tmp_path / "model_ctc.pt")
    out = run([sys.executable, os.path.join(ROOT, "scripts", "export_ctc_model.py"), kd_checkpoint, exported]).stdout
    assert "removed the attention decoder" in out
    assert os.path.getsize(exported) < os.path.getsize(kd_checkpoint) / 2
    before = generate(corpus, kd_checkpoint, str(tmp_path / "before"))
    after = generate(corpus, exported, str(tmp_path / "after"))
    hyps = lambda text: sorted(re.findall(r"^H-.*$", text, flags=re.M))  # noqa: E731
    assert hyps(before) == hyps(after) and len(hyps(after)) == 13
    import torch

    import fairseq_kd  # noqa: F401  (safe globals of fairseq checkpoints)
    from fairseq_kd.models.conformer_kd import AED_DECODER_PREFIX

    state = torch.load(exported, weights_only=True)
    assert not any(k.startswith(AED_DECODER_PREFIX) for k in state["model"])
    assert state["cfg"]["model"]["aed_layers"] == []


def test_kd_weight_without_sidecar_dir_fails_before_training(corpus, tmp_path):
    proc = run(["fairseq-hydra-train", "--config-dir", CONFIG_DIR, "--config-name", "xs_interaedkd",
                f"task.data={corpus}", "task.kd_sidecar_dir=null", f"common.user_dir={USER_DIR}",
                f"checkpoint.save_dir={tmp_path}", *ON_CPU, *TINY_KD_MODEL], check=False)
    assert proc.returncode != 0 and "kd_sidecar_dir" in proc.stdout and "num_updates=1" not in proc.stdout
