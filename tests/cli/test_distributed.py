"""fairseq's own distributed training with our task, criterion and model: 2 CPU ranks (gloo) through torchrun
equal 1 rank with update_freq 2 on the same batches; a run killed mid-epoch resumes identically."""
import os
import re
import signal
import subprocess

import pytest
import torch

import fairseq_kd  # noqa: F401  (checkpoint loading set-up)
from conftest import BIN, ROOT, USER_DIR, run
from fairseq_kd.distributed import cpu_ddp_overrides

pytestmark = pytest.mark.cli

CONFIG_DIR = os.path.join(ROOT, "examples", "kd")
# deterministic: no dropout (SpecAugment is off in the xs configs), same seed, no data-loader workers
TINY_KD = ["model.encoder_layers=4", "model.encoder_embed_dim=32", "model.encoder_ffn_embed_dim=64",
           "model.depthwise_conv_kernel_size=5", "model.inter_ctc_layers=[2]", "model.aed_layers=[2,4]",
           "model.aed_decoder_layers=1", "model.aed_decoder_embed_dim=32", "model.aed_decoder_ffn_embed_dim=64",
           "model.aed_decoder_attention_heads=2", "model.dropout=0", "model.aed_dropout=0",
           "dataset.num_workers=0", "common.log_interval=1", "common.seed=3", "dataset.validate_interval_updates=0"]
CPU_DDP = cpu_ddp_overrides(2)


def hydra_args(corpus, sidecars, save_dir, *overrides):
    return ["--config-dir", CONFIG_DIR, "--config-name", "xs_interctc_interaedkd", f"task.data={corpus}",
            f"task.kd_sidecar_dir={sidecars}", f"common.user_dir={USER_DIR}", f"checkpoint.save_dir={save_dir}",
            *TINY_KD, *overrides]


def losses(log):
    """{update: logged training loss}."""
    return {int(n): float(v) for v, n in re.findall(r"train_inner.* loss=([\d.]+),.*num_updates=(\d+)", log)}


def parameters(checkpoint, buffers=True):
    """A checkpoint's state dict. ``buffers=False`` leaves out BatchNorm running statistics: under DDP each rank
    updates them from its own batches only (fairseq does not average them), unlike gradient accumulation."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    return {k: v for k, v in state.items()
            if buffers or not k.split(".")[-1].startswith(("running_", "num_batches_tracked"))}


def assert_same_parameters(a, b):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


# SGD, not the configs' Adam: Adam divides by the running gradient scale, so a parameter whose gradient is ~0
# moves by ~lr in a direction set by float rounding, which differs with the all-reduce order; with SGD the
# parameters differ only by lr times the rounding of the gradients.
SGD = ["optimizer._name=sgd", "~optimizer.adam_betas", "~optimizer.adam_eps", "+optimizer.lr=[0.002]",
       "+optimizer.momentum=0.0"]


def test_two_gloo_ranks_equal_one_rank_with_update_freq_2(corpus, kd_sidecars, tmp_path):
    one = run(["fairseq-hydra-train", *hydra_args(corpus, kd_sidecars, tmp_path / "one", "optimization.max_update=4",
                                                  "optimization.update_freq=[2]", *SGD)]).stdout
    two = run(["torchrun", "--nproc-per-node=2", "--master-port=29731", "--no-python",
               os.path.join(BIN, "fairseq-hydra-train"),
               *hydra_args(corpus, kd_sidecars, tmp_path / "two", "optimization.max_update=4", *SGD, *CPU_DDP)]).stdout
    assert "distributed init (rank 1)" in two or "initialized host" in two
    assert "training on 2 devices" in two
    assert losses(one).keys() == losses(two).keys() == {1, 2, 3, 4}
    for update, loss in losses(one).items():
        assert losses(two)[update] == pytest.approx(loss, abs=2e-3)
    assert_same_parameters(parameters(tmp_path / "one" / "checkpoint_last.pt", buffers=False),
                           parameters(tmp_path / "two" / "checkpoint_last.pt", buffers=False))


def test_run_killed_mid_epoch_resumes_from_checkpoint_last_identically(corpus, kd_sidecars, tmp_path):
    common = ["optimization.max_update=6", "checkpoint.save_interval_updates=3"]
    run(["fairseq-hydra-train", *hydra_args(corpus, kd_sidecars, tmp_path / "straight", *common)])
    killed_dir = tmp_path / "killed"
    cmd = [os.path.join(BIN, "fairseq-hydra-train"), *hydra_args(corpus, kd_sidecars, killed_dir, *common)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(r"Saved checkpoint .*checkpoint_last\.pt|Saved checkpoint .*@ 3 updates", line):
            proc.send_signal(signal.SIGKILL)  # no clean shutdown: as a crash or a pre-empted job
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
    epoch_line = [line for line in seen if "@ 3 updates" in line]
    assert epoch_line and "epoch 1 @ 3 updates" in epoch_line[-1]  # killed in the middle of epoch 1
    resumed = run(["fairseq-hydra-train", *hydra_args(corpus, kd_sidecars, killed_dir, *common)]).stdout
    assert re.search(r"Loaded checkpoint .*checkpoint_last\.pt \(epoch 1 @ 3 updates\)", resumed)
    assert min(losses(resumed)) == 4
    assert_same_parameters(parameters(tmp_path / "straight" / "checkpoint_last.pt"),
                           parameters(killed_dir / "checkpoint_last.pt"))
