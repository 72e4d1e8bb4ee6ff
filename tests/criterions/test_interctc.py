"""InterCTC: tap validation, output layout, the loss formula, logging, and the architecture presets."""
import math

import pytest
import torch
import torch.nn.functional as F
from fairseq import options
from fairseq.dataclass.utils import convert_namespace_to_omegaconf, merge_with_parent
from fairseq.models import build_model
from omegaconf import OmegaConf

from conftest import USER_DIR
from fairseq_kd.criterions.ctc_kd import CtcKdCriterion, CtcKdCriterionConfig
from fairseq_kd.models.conformer_kd import CtcKdConfig
from tiny_models import make_batch, make_model


def reference_ctc(logits, out_lengths, sample, blank):
    """Sum over utterances of CTC computed one unpadded utterance at a time."""
    total = 0.0
    for b in range(logits.size(1)):
        lp = F.log_softmax(logits[: out_lengths[b], b: b + 1].float(), -1)
        tgt = sample["target"][b, : sample["target_lengths"][b]]
        total = total + F.ctc_loss(lp, tgt[None], out_lengths[b: b + 1], sample["target_lengths"][b: b + 1],
                                   blank=blank, reduction="sum", zero_infinity=True)
    return total


@pytest.mark.parametrize("layers", [[0], [4], [5], [2, 2], [-1]])
def test_invalid_inter_ctc_layers_fail_at_build(task, layers):
    with pytest.raises(ValueError, match="inter_ctc_layers"):
        make_model(task, inter_ctc_layers=layers)


def test_inter_ctc_outputs_use_the_shared_projection(task):
    model = make_model(task, inter_ctc_layers=[3, 1]).eval()
    sample = make_batch(task)
    out = model(**sample["net_input"])
    assert [l for l, _ in out["inter_ctc_logits"]] == [1, 3]  # sorted, 1-based
    T, B = out["encoder_out"].shape[:2]
    assert out["padding_mask"].shape == (B, T)
    for layer, logits in out["inter_ctc_logits"]:
        assert logits.shape == (T, B, len(task.target_dictionary))
        torch.testing.assert_close(logits, model.ctc_proj(out["encoder_states"][layer - 1]))


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_loss_is_weighted_mix_of_final_and_mean_inter_ctc(task, weight):
    model = make_model(task, inter_ctc_layers=[1, 3]).eval()
    crit = CtcKdCriterion(CtcKdCriterionConfig(interctc_weight=weight, sentence_avg=False), task)
    sample = make_batch(task)
    loss, sample_size, log = crit(model, sample)
    out = model(**sample["net_input"])
    lengths = (~out["padding_mask"]).sum(1)
    blank = task.target_dictionary.bos()
    final = reference_ctc(out["encoder_out"], lengths, sample, blank)
    inter = [reference_ctc(logits, lengths, sample, blank) for _, logits in out["inter_ctc_logits"]]
    expected = (1 - weight) * final + weight * (inter[0] + inter[1]) / 2
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-4)
    assert sample_size == sample["ntokens"]
    assert math.isclose(log["ctc_loss"], final.item(), rel_tol=1e-5)
    assert math.isclose(log["interctc_loss_l1"], inter[0].item(), rel_tol=1e-5)
    assert math.isclose(log["interctc_loss_l3"], inter[1].item(), rel_tol=1e-5)
    assert {"c_errors", "c_total", "w_errors", "w_total"} <= set(log)  # eval mode: greedy WER counts


def test_no_taps_gives_plain_ctc_and_weight_without_taps_fails(task):
    model = make_model(task).eval()
    sample = make_batch(task)
    loss, _, log = CtcKdCriterion(CtcKdCriterionConfig(sentence_avg=False), task)(model, sample)
    assert loss.item() == log["ctc_loss"] and not any(k.startswith("interctc") for k in log)
    with pytest.raises(ValueError, match="inter_ctc_layers is empty"):
        CtcKdCriterion(CtcKdCriterionConfig(interctc_weight=0.5, sentence_avg=False), task)(model, sample)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        CtcKdCriterion(CtcKdCriterionConfig(interctc_weight=1.5, sentence_avg=False), task)


def test_inter_ctc_gradient_reaches_only_the_layers_below_the_tap(task):
    model = make_model(task, inter_ctc_layers=[2]).train()
    crit = CtcKdCriterion(CtcKdCriterionConfig(interctc_weight=1.0, sentence_avg=False), task)
    loss, _, _ = crit(model, make_batch(task))
    loss.backward()
    grad = lambda m: sum(p.grad.abs().sum().item() for p in m.parameters() if p.grad is not None)  # noqa: E731
    assert grad(model.encoder.layers[0]) > 0 and grad(model.encoder.layers[1]) > 0
    assert grad(model.encoder.layers[2]) == 0 and grad(model.encoder.layers[3]) == 0
    assert grad(model.ctc_proj) > 0


def test_architecture_presets_in_hydra_and_argparse_paths(task):
    # hydra: model._name is the arch; dataclass defaults are merged first (fairseq's add_defaults)
    cfg = merge_with_parent(CtcKdConfig(), OmegaConf.create({"_name": "ctc_kd_conformer_100h", "input_feat_dim": 20}))
    model = build_model(cfg, task)
    assert len(model.encoder.layers) == 12 and model.cfg.encoder_embed_dim == 256
    assert model.cfg.depthwise_conv_kernel_size == 31
    cfg = merge_with_parent(CtcKdConfig(), OmegaConf.create({"_name": "ctc_kd_conformer_100h", "input_feat_dim": 20,
                                                            "encoder_layers": 3}))
    assert len(build_model(cfg, task).encoder.layers) == 3  # an explicit value wins over the preset
    cfg = merge_with_parent(CtcKdConfig(), OmegaConf.create({"_name": "ctc_kd", "input_feat_dim": 20}))
    assert len(build_model(cfg, task).encoder.layers) == 6  # the bare model name means the xs preset
    # argparse: fairseq-train --arch ... --encoder-layers ...
    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [task.cfg.data, "--user-dir", USER_DIR, "--task", "audio_kd",
                                                "--arch", "ctc_kd_conformer_100h", "--num-mel-bins", "20",
                                                "--encoder-layers", "2", "--criterion", "ctc_kd"])
    model = task.build_model(convert_namespace_to_omegaconf(args).model)
    assert len(model.encoder.layers) == 2 and model.cfg.encoder_embed_dim == 256
