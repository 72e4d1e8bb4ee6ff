"""wav2vec_ctc_kd: fine-tuning from a checkpoint made by fairseq's own audio_pretraining, taps under layerdrop."""
import os
import re

import numpy as np
import pytest
import torch
from fairseq import tasks
from omegaconf import OmegaConf

import fairseq_kd  # noqa: F401  (registers audio_kd and wav2vec_ctc_kd)
from conftest import ROOT, USER_DIR, run

pytestmark = pytest.mark.cli

CONFIG_DIR = os.path.join(ROOT, "examples", "kd")


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory):
    """A tiny wav2vec 2.0 pretrained for a few updates with fairseq's audio_pretraining + wav2vec criterion."""
    save_dir = tmp_path_factory.mktemp("w2v_pretrain")
    run(["fairseq-hydra-train", "--config-dir", CONFIG_DIR, "--config-name", "w2v_pretrain_tiny",
         f"task.data={corpus}", f"checkpoint.save_dir={save_dir}", "optimization.max_update=3"])
    return os.path.join(save_dir, "checkpoint_last.pt")


FINETUNE = ["common.fp16=false", "common.cpu=true", "distributed_training.distributed_world_size=1",
            "model.mask_channel_prob=0", "dataset.max_tokens=320000", "dataset.valid_subset=valid",
            "dataset.num_workers=0", "optimization.update_freq=[1]", "common.log_interval=1",
            "common.log_format=simple", "model.aed_decoder_layers=1", "model.aed_decoder_embed_dim=32",
            "model.aed_decoder_ffn_embed_dim=64", "model.aed_decoder_attention_heads=2"]


def test_interctc_interaedkd_finetunes_an_audio_pretraining_checkpoint_and_decodes(corpus, pretrained, kd_sidecars,
                                                                                     tmp_path):
    """The base_100h-like config (layerdrop 0.1 kept) on the 4-layer pretrained model: taps [2] and [2, 4]."""
    save_dir = tmp_path / "ft"
    proc = run(["fairseq-hydra-train", "--config-dir", CONFIG_DIR, "--config-name",
                "w2v_base_100h_interctc_interaedkd", f"task.data={corpus}", f"common.user_dir={USER_DIR}",
                f"checkpoint.save_dir={save_dir}", f"model.w2v_path={pretrained}", f"task.kd_sidecar_dir={kd_sidecars}",
                "model.aed_layers=[2,4]", "model.inter_ctc_layers=[2]", "optimization.max_update=3", *FINETUNE])
    step = re.findall(r"train_inner.*num_updates=3.*", proc.stdout)[0]
    assert all(f"{term}=" in step for term in ("ctc_loss", "interctc_loss_l2", "aed_kl_loss_l2", "aed_kl_loss_l4"))
    assert "valid on 'valid' subset" in proc.stdout
    out = run(["fairseq-generate", corpus, "--user-dir", USER_DIR, "--task", "audio_kd", "--path",
               str(save_dir / "checkpoint_last.pt"), "--gen-subset", "test", "--results-path", str(tmp_path),
               "--scoring", "wer", "--post-process", "letter", "--max-tokens", "320000", "--cpu"])
    text = (tmp_path / "generate-test.txt").read_text()
    assert text.count("\nH-") + text.startswith("H-") == 13 and "WER:" in text, out.stdout[-2000:]


def build_model(corpus, pretrained, **overrides):
    task = tasks.setup_task(OmegaConf.create({"_name": "audio_kd", "data": corpus, "features": "waveform",
                                              "labels": "ltr"}))
    cfg = OmegaConf.create({"_name": "wav2vec_ctc_kd", "w2v_path": pretrained, "normalize": False, "data": corpus,
                            "mask_prob": 0.0, "mask_channel_prob": 0.0, "ddp_backend": "legacy_ddp", **overrides})
    return task.build_model(cfg), task


def test_taps_are_keyed_by_layer_id_under_layerdrop(corpus, pretrained):
    model, task = build_model(corpus, pretrained, layerdrop=0.5, inter_ctc_layers=[1, 2, 3])
    layers = model.w2v_encoder.w2v_model.encoder.layers
    ran = {}
    hooks = [layer.register_forward_hook(lambda m, a, out, i=i: ran.__setitem__(i, out[0])) for i, layer in
             enumerate(layers)]
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    source = torch.randn(2, 16000)
    seen_partial_drop = False
    for seed in range(20):
        np.random.seed(seed)
        ran.clear()
        states, padding_mask = model.encode(source, torch.zeros(2, 16000, dtype=torch.bool))
        assert len(states) == len(layers) == 4  # one state per layer id, whatever ran
        T = states[-1].shape[0]
        for l in range(1, 4):
            below = [i for i in ran if i < l]
            if below:
                torch.testing.assert_close(states[l - 1], ran[max(below)][:T])
            else:
                torch.testing.assert_close(states[l - 1], states[0])
        if 0 < len(ran) < 4 and any(i not in ran for i in range(3)):
            seen_partial_drop = True
            dropped = min(i for i in range(3) if i not in ran)
            if dropped > 0:  # a dropped layer passes on the state below it
                torch.testing.assert_close(states[dropped], states[dropped - 1])
    assert seen_partial_drop
    for h in hooks:
        h.remove()


def test_waveform_model_refuses_filterbank_batches(corpus, pretrained):
    model, _ = build_model(corpus, pretrained)
    with pytest.raises(ValueError, match="task.features=waveform"):
        model(torch.randn(2, 100, 80))
