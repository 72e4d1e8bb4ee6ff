"""The restricted decoder vocabulary (model.aed_restrict_vocab): the id map, the losses it gives, and its life
through training, checkpoints and decoding."""
import os
import shutil

import numpy as np
import pytest
import torch

from cli_runs import generate, kd_train, train_in_process
from fairseq_kd.criterions.ctc_kd import CtcKdCriterion
from fairseq_kd.data.teacher_sidecar import read_teacher_meta
from fairseq_kd.models.aed_decoder import SharedAttentionDecoder
from fairseq_kd.models.conformer_kd import training_sidecar_vocabulary

V, PAD, UNK = 50, 0, 7
OUTPUT_IDS = [PAD, 3, UNK, 11, 12, 30, 41]


def decoder(output_ids=OUTPUT_IDS, output_size=None):
    torch.manual_seed(0)
    return SharedAttentionDecoder(vocab_size=V, pad_idx=PAD, encoder_dim=8, embed_dim=8, ffn_embed_dim=16,
                                  attention_heads=2, layers=1, dropout=0.0, unk_idx=UNK, output_ids=output_ids,
                                  output_size=output_size)


def test_teacher_ids_map_to_their_position_and_unknown_ids_to_unk():
    dec = decoder()
    ids = torch.tensor([[0, 3, 7, 11, 41, 5, 49]])
    assert dec.decoder_ids(ids).tolist() == [[0, 1, 2, 3, 6, 2, 2]]
    assert dec.pad_idx == 0 and dec.embed_tokens.num_embeddings == len(OUTPUT_IDS)
    assert dec.output_ids[dec.decoder_ids(torch.tensor(OUTPUT_IDS))].tolist() == OUTPUT_IDS


def test_a_vocabulary_without_pad_first_or_unk_is_refused():
    with pytest.raises(ValueError, match="PAD"):
        decoder([3, PAD, UNK])
    with pytest.raises(ValueError, match="UNK"):
        decoder([PAD, 3, 4])


def test_losses_equal_the_full_vocabulary_with_left_out_logits_at_minus_infinity():
    """softmax over V' == softmax over V with -inf on the ids outside V': KL and CE must not change."""
    torch.manual_seed(1)
    batch, length, k = 2, 4, 3
    restricted_logits = torch.randn(batch, length, len(OUTPUT_IDS))
    full_logits = torch.full((batch, length, V), float("-inf"))
    full_logits[..., OUTPUT_IDS] = restricted_logits
    in_vocab = torch.tensor(OUTPUT_IDS[1:])
    topk_ids = in_vocab[torch.randint(len(in_vocab), (batch, length, k))]
    probs = torch.rand(batch, length, k)
    teacher = {"target": in_vocab[torch.randint(len(in_vocab), (batch, length))], "topk_ids": topk_ids,
               "topk_probs": probs / probs.sum(-1, keepdim=True),
               "padding_mask": torch.tensor([[False] * 4, [False, False, True, True]])}
    dec = decoder()
    mapped = {**teacher, "target": dec.decoder_ids(teacher["target"]), "topk_ids": dec.decoder_ids(topk_ids)}
    kl_full, ce_full = CtcKdCriterion.aed_losses(full_logits, teacher)
    kl, ce = CtcKdCriterion.aed_losses(restricted_logits, mapped)
    assert torch.allclose(kl, kl_full, atol=1e-5) and torch.allclose(ce, ce_full, atol=1e-5)


@pytest.mark.cli
def test_vocabulary_of_the_training_sidecar(kd_sidecars):
    header = read_teacher_meta(kd_sidecars)
    ids = training_sidecar_vocabulary(kd_sidecars, header)
    arrays = {name: np.load(os.path.join(kd_sidecars, f"train.kd.{name}.npy")) for name in ("tokens", "topk_ids")}
    specials = header["special_ids"]
    expected = set(arrays["tokens"].tolist()) | set(arrays["topk_ids"].ravel().tolist()) | {
        specials[name] for name in ("cls", "sep", "mask", "unk")}
    expected.discard(specials["pad"])
    assert ids[0] == specials["pad"] and ids[1:].tolist() == sorted(expected)


@pytest.mark.cli
def test_restricted_decoder_trains_resumes_and_decodes(corpus, kd_sidecars, kd_run, tmp_path):
    """The id map is saved with the weights: a resumed run and fairseq-generate rebuild the same decoder (the
    shared ``kd_run`` trains with the xs default, ``model.aed_restrict_vocab=true``)."""
    from fairseq import checkpoint_utils

    import fairseq_kd  # noqa: F401  (checkpoint loading set-up)

    trained_dir, log = kd_run
    assert "attention decoder vocabulary restricted to the" in log
    checkpoint = os.path.join(trained_dir, "checkpoint_last.pt")
    models, cfg, _ = checkpoint_utils.load_model_ensemble_and_task([checkpoint], arg_overrides={
        "data": corpus, "kd_sidecar_dir": None})
    dec = models[0].aed_decoder
    expected = training_sidecar_vocabulary(kd_sidecars, read_teacher_meta(kd_sidecars))
    assert dec.output_ids.tolist() == expected.tolist() and cfg.model.aed_output_size == len(expected)
    assert dec.embed_tokens.num_embeddings == len(expected)
    assert dec.decoder_ids(torch.as_tensor(expected)).tolist() == list(range(len(expected)))
    save_dir = tmp_path / "ckpt"
    shutil.copytree(trained_dir, save_dir)
    resumed = kd_train("xs_interctc_interaedkd", corpus, kd_sidecars, save_dir, "model.encoder_layers=6",
                       "model.aed_restrict_vocab=true", "optimization.max_update=3")
    assert "@ 2 updates)" in resumed and "num_updates=3" in resumed
    out = generate(corpus, checkpoint, str(tmp_path / "decode"))
    assert len([line for line in out.splitlines() if line.startswith("H-")]) == 13


NEW_FIELDS = ("aed_unk_idx", "aed_mask_idx", "aed_input_mask_prob", "aed_non_autoregressive", "aed_restrict_vocab",
              "aed_output_size")


@pytest.mark.cli
def test_checkpoints_saved_before_the_new_fields_still_load(corpus, kd_sidecars, tmp_path):
    from fairseq import checkpoint_utils

    import fairseq_kd  # noqa: F401

    save_dir = tmp_path / "ckpt"  # fairseq's training loop in this process; the xs default is true since December 2026
    train_in_process("xs_interctc_interaedkd", corpus, kd_sidecars, save_dir, "model.encoder_layers=6",
                     "model.aed_restrict_vocab=false")
    state = torch.load(save_dir / "checkpoint_last.pt")
    for name in NEW_FIELDS:  # fairseq saves the config as plain containers
        del state["cfg"]["model"][name]
    old = str(tmp_path / "old.pt")
    torch.save(state, old)
    models, cfg, _ = checkpoint_utils.load_model_ensemble_and_task([old], arg_overrides={"data": corpus})
    vocab_size = read_teacher_meta(kd_sidecars)["vocab_size"]
    assert not cfg.model.aed_restrict_vocab and models[0].aed_decoder.embed_tokens.num_embeddings == vocab_size
    out = generate(corpus, old, str(tmp_path / "decode"))
    assert len([line for line in out.splitlines() if line.startswith("H-")]) == 13
