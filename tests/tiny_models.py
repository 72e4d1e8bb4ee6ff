"""Tiny models, batches and teacher targets for the in-process unit tests (the ``task`` fixture of conftest.py
builds the letter task they run on)."""
import torch

from fairseq_kd.criterions.ctc_kd import CtcKdCriterion, CtcKdCriterionConfig
from fairseq_kd.models.conformer_kd import CtcKdConfig, CtcKdModel
from fairseq_kd.tasks.audio_kd import AudioKdConfig, AudioKdTask

LETTERS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ'|")
TINY = dict(encoder_layers=4, encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_attention_heads=2,
            depthwise_conv_kernel_size=5, subsampling_channels=8, dropout=0.0, input_feat_dim=20)


def letter_task(data_dir):
    """An ``audio_kd`` task over the letters (``dict.ltr.txt`` written into ``data_dir``), 20 mel bins."""
    (data_dir / "dict.ltr.txt").write_text("".join(f"{s} 1\n" for s in LETTERS))
    return AudioKdTask.setup_task(AudioKdConfig(data=str(data_dir), num_mel_bins=20))


def make_model(task, **overrides):
    torch.manual_seed(0)
    return CtcKdModel.build_model(CtcKdConfig(**{**TINY, **overrides}), task)


def make_batch(task, lengths=(90, 64, 41), target_lengths=(6, 4, 2)):
    torch.manual_seed(1)
    feats = torch.randn(len(lengths), max(lengths), 20)
    padding_mask = torch.arange(max(lengths))[None] >= torch.tensor(lengths)[:, None]
    targets = torch.full((len(lengths), max(target_lengths)), task.target_dictionary.pad())
    for i, n in enumerate(target_lengths):
        targets[i, :n] = torch.randint(4, len(task.target_dictionary), (n,))
    return {"id": torch.arange(len(lengths)), "net_input": {"source": feats, "padding_mask": padding_mask},
            "target": targets, "target_lengths": torch.tensor(target_lengths), "ntokens": sum(target_lengths)}


TEACHER_VOCAB, PAD, CLS, SEP = 40, 0, 1, 2


def teacher_batch(lengths=(5, 2), k=3, seed=3):
    """Teacher targets in the collater's layout (L = max n + 1; EOS row one-hot on [SEP])."""
    g = torch.Generator().manual_seed(seed)
    B, L = len(lengths), max(lengths) + 1
    prev = torch.full((B, L), PAD)
    target = torch.full((B, L), PAD)
    topk_ids = torch.full((B, L, k), PAD)
    topk_probs = torch.zeros(B, L, k)
    for b, n in enumerate(lengths):
        tokens = torch.randint(5, TEACHER_VOCAB, (n,), generator=g)
        prev[b, : n + 1] = torch.cat([torch.tensor([CLS]), tokens])
        target[b, : n + 1] = torch.cat([tokens, torch.tensor([SEP])])
        for j in range(n):
            topk_ids[b, j] = torch.randperm(TEACHER_VOCAB - 5, generator=g)[:k] + 5
            raw = torch.rand(k, generator=g) + 0.05
            topk_probs[b, j] = raw / raw.sum()
        topk_ids[b, n, 0], topk_probs[b, n, 0] = SEP, 1.0
    return {"prev_output_tokens": prev, "target": target, "topk_ids": topk_ids, "topk_probs": topk_probs,
            "padding_mask": target.eq(PAD), "ntokens": int(target.ne(PAD).sum())}


def kd_model(task, aed_layers=(2, 4), **overrides):
    torch.manual_seed(0)
    cfg = CtcKdConfig(**{**TINY, "aed_layers": list(aed_layers), "aed_decoder_layers": 2, "aed_decoder_embed_dim": 24,
                         "aed_decoder_ffn_embed_dim": 48, "aed_decoder_attention_heads": 2, "aed_dropout": 0.0,
                         "aed_vocab_size": TEACHER_VOCAB, "aed_vocab_sha256": "test", "aed_pad_idx": PAD,
                         **overrides})
    return CtcKdModel.build_model(cfg, task)


def kd_criterion(task, **weights):
    task.cfg.kd_sidecar_dir = "teacher-sidecars"  # the criterion only checks that the task loads sidecars
    try:
        return CtcKdCriterion(CtcKdCriterionConfig(sentence_avg=False, **weights), task)
    finally:
        task.cfg.kd_sidecar_dir = None


def kd_sample(task):
    sample = make_batch(task, lengths=(90, 64), target_lengths=(6, 4))
    sample["teacher"] = teacher_batch()
    return sample
