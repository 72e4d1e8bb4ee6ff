"""Does the attention decoder listen to the audio, and how does its gradient meet CTC's in the encoder?

``scripts/diagnose_kd.py`` runs these measures on a training checkpoint (with its attention decoder), the data
and the teacher sidecars of one split; the model is in eval mode throughout (no dropout, BatchNorm running
statistics), so every number is a deterministic function of the weights and the batches. Batches are
fairseq's, in its order (sorted by length, ``--max-tokens`` audio samples each).

1. **Decoder KL and CE per tap under three encoder conditions**, in bits per teacher token as the criterion logs
   ``aed_kl_loss_l{t}`` / ``aed_ce_loss_l{t}`` (``CtcKdCriterion.aed_losses`` sums nats; divided by the teacher
   tokens and ln 2)::

       true       each utterance's own tap states  T x B x C  and padding mask  B x T
       shuffled   states and padding mask rolled by one utterance along B: utterance i reads utterance i + 1's
                  (the last the first's); neighbours in a length-sorted batch have similar lengths, so only
                  the content is another sentence's
       zeroed     states replaced by zeros, true padding mask: no audio at all

   ``audio worth = KL(shuffled) - KL(true)`` is what the audio tells the decoder beyond the WordPiece prefix,
   its share ``audio worth / KL(shuffled)``. A batch of one utterance has no other to read and is skipped
   (all three conditions always cover the same tokens).
2. **Encoder gradients of the two halves of the objective** ``L = (1 - alpha) L_ctc_all + alpha L_aed``
   (:func:`objective_terms`; ``L_aed`` the mean over taps), per encoder block ``l``, with respect to the
   parameters of block ``l`` (what the optimizer applies; the gradient with respect to the block's output would
   also count the later blocks' routes)::

       g_aed(l) = d[alpha L_aed / S] / d theta_l,     g_ctc(l) = d[(1 - alpha) L_ctc_all / S] / d theta_l

   (``S`` = fairseq's ``sample_size``). Per batch the ratio ``||g_aed|| / ||g_ctc||`` and
   ``cos(g_aed, g_ctc)``, then their means over batches (the cosine over batches where both are non-zero: a
   block above the last tap gets no AED gradient), and the mean norms.
3. **Cross-attention monotonicity** per tap and decoder layer: the head-averaged cross-attention weights
   ``L x T`` of the true condition; per utterance the Pearson correlation between the target position
   ``j = 0 .. n`` (``[CLS] t_1 .. t_n`` queries) and its most attended frame ``argmax_t A[j, t]``, over the
   valid positions; mean over utterances. An utterance whose argmax never moves counts as 0 (no order; Pearson
   itself is undefined there). Near 1: the decoder reads the audio in order, as speech is.
4. **Teacher statistics per split** from the sidecars (all stored ``K`` per position, every position
   ``t_1 .. t_n``): top-1 accuracy (top-1 id = reference WordPiece), reference in the top-K, mean top-K mass,
   mean entropy in bits of the top-K renormalised to sum 1 (the distribution the decoder is pulled to).
"""
import contextlib
import itertools
import math
import os
from collections import defaultdict
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
from fairseq import checkpoint_utils
from fairseq.dataclass.utils import overwrite_args_by_name

from ..data.teacher_sidecar import TeacherSidecar, sidecar_path
from ..decoding.evaluation import split_batches
from ..errors import DataError
from ..models.wav2vec_kd import Wav2VecCtcKdModel

CONDITIONS = ("true", "shuffled", "zeroed")
STATS_BLOCK = 1 << 18  # sidecar positions per vectorised statistics step (bounds the temporary memory)
CONFIGS_WITH_DECODER = ("examples/kd/*aedkd*.yaml (xs_aedkd, xs_interaedkd, xs_interctc_interaedkd and their 100h_, "
                        "960h_ and w2v_ versions)")


def load_for_diagnostics(checkpoint: str, data: Optional[str], sidecar_dir: Optional[str], subset: str, device: str):
    """``(model, task, criterion)`` of a training checkpoint, the model in eval mode on ``device``, ``subset``
    loaded with its teacher targets. ``data`` and ``sidecar_dir`` default to the checkpoint's ``task.data`` and
    ``task.kd_sidecar_dir``; the criterion is the checkpoint's (its weights alpha, w, beta)."""
    if not os.path.isfile(checkpoint):
        raise DataError(f"{checkpoint}: checkpoint not found; give --path a training checkpoint (checkpoint_best.pt)")
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    cfg = state["cfg"]
    if not cfg.model.get("aed_layers"):
        raise DataError(f"{checkpoint}: model {cfg.model._name} has no attention decoder (model.aed_layers is empty), "
                        f"so there is nothing to diagnose; use the training checkpoint of a config with "
                        f"model.aed_layers, {CONFIGS_WITH_DECODER}, not a CTC / InterCTC model or one exported by "
                        f"scripts/export_ctc_model.py")
    sidecar_dir = sidecar_dir or cfg.task.get("kd_sidecar_dir")
    if not sidecar_dir or not os.path.isfile(sidecar_path(sidecar_dir, subset, "json")):
        raise DataError(f"{sidecar_path(sidecar_dir or 'SIDECARS', subset, 'json')}: no teacher sidecar of split "
                        f"{subset!r}; give --sidecars DIR (task.kd_sidecar_dir of the training), or extract it with "
                        f"scripts/extract_teacher_sidecar.py --splits {subset}")
    overwrite_args_by_name(cfg, {"data": data or cfg.task.data, "kd_sidecar_dir": sidecar_dir})
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([checkpoint], state=state)
    task.load_dataset(subset)
    return models[0].to(device).eval(), task, task.build_criterion(cfg.criterion)


def encoder_blocks(model) -> List[nn.Module]:
    """The encoder's blocks in order, block ``l`` (1-based, as taps count) at ``l - 1``."""
    if isinstance(model, Wav2VecCtcKdModel):
        return list(model.w2v_encoder.w2v_model.encoder.layers)
    return list(model.encoder.layers)


def objective_terms(model, criterion, sample: dict, net_output: dict) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(L_ctc_all, L_aed)`` of a batch, summed over its utterances, as the ``ctc_kd`` criterion composes them
    (:meth:`CtcKdCriterion.mix`), so that its loss is ``(1 - alpha) L_ctc_all + alpha L_aed``; ``net_output``
    must have ``aed_logits``."""
    ctc, inter_ctc, *_ = criterion.ctc_terms(model, sample, net_output)
    return criterion.mix(ctc, inter_ctc, criterion.aed_terms(model, sample["teacher"], net_output))


def condition_taps(condition: str, taps: List[Tuple[int, torch.Tensor]], padding_mask: torch.Tensor):
    """The taps ``[(l, T x B x C)]`` and padding mask ``B x T`` the decoder reads under ``condition``."""
    if condition == "shuffled":
        return [(l, states.roll(-1, dims=1)) for l, states in taps], padding_mask.roll(-1, dims=0)
    if condition == "zeroed":
        return [(l, torch.zeros_like(states)) for l, states in taps], padding_mask
    return taps, padding_mask


@contextlib.contextmanager
def captured_cross_attention(decoder) -> Iterator[List[torch.Tensor]]:
    """Within the block, every decoder forward appends each layer's head-averaged cross-attention weights,
    ``(n_taps * B) x L x T``, in layer order. fairseq's decoder layers compute them in eval mode (``need_attn``)."""
    if decoder.training:
        raise ValueError("cross-attention weights are only computed in eval mode: call model.eval() first")
    weights, hooks, need_attn = [], [], [layer.need_attn for layer in decoder.layers]
    for layer in decoder.layers:
        layer.need_attn = True
        hooks.append(layer.encoder_attn.register_forward_hook(lambda module, args, output: weights.append(output[1])))
    try:
        yield weights
    finally:
        for hook, layer, setting in zip(hooks, decoder.layers, need_attn):
            hook.remove()
            layer.need_attn = setting


def token_frame_correlations(attention: torch.Tensor, token_padding_mask: torch.Tensor) -> List[float]:
    """Per utterance, the Pearson correlation of target position and most attended frame, 0 where that frame
    never moves. ``attention``: ``B x L x T``; ``token_padding_mask``: ``B x L`` (at least 2 valid positions per
    utterance: ``t_1 .. t_n`` and the end of sentence)."""
    frames = attention.argmax(dim=-1).double()  # B x L
    correlations = []
    for b in range(attention.size(0)):
        attended = frames[b][~token_padding_mask[b]]
        if bool((attended == attended[0]).all()):
            correlations.append(0.0)
            continue
        positions = torch.arange(len(attended), dtype=torch.double, device=attended.device)
        correlations.append(float(torch.corrcoef(torch.stack([positions, attended]))[0, 1]))
    return correlations


class DecoderListening:
    """Measures 1 and 3 (module doc), accumulated over batches with :meth:`add`."""

    def __init__(self, model, criterion):
        self.criterion = criterion
        self.taps = list(model.aed_layers)
        self.nats = {condition: defaultdict(lambda: np.zeros(2)) for condition in CONDITIONS}  # tap -> [KL, CE]
        self.correlations = defaultdict(list)  # (tap, decoder layer) -> per-utterance correlations
        self.kd_tokens = self.utterances = self.batches = self.skipped_batches = 0

    @torch.no_grad()
    def add(self, model, sample: dict) -> None:
        teacher = sample["teacher"]
        batch = teacher["prev_output_tokens"].size(0)
        if batch < 2:
            self.skipped_batches += 1
            return
        states, padding_mask = model.encode(**sample["net_input"])
        taps = [(l, states[l - 1]) for l in self.taps]
        for condition in CONDITIONS:
            with captured_cross_attention(model.aed_decoder) as attention:
                outputs = model.aed_decoder(teacher["prev_output_tokens"],
                                            *condition_taps(condition, taps, padding_mask))
            for l, (kl, ce) in self.criterion.aed_terms(model, teacher, {"aed_logits": outputs}).items():
                self.nats[condition][l] += [kl.item(), ce.item()]
            if condition == "true":
                for layer, weights in enumerate(attention, start=1):
                    for l, tap_weights in zip(self.taps, weights.split(batch, dim=0)):
                        self.correlations[l, layer] += token_frame_correlations(tap_weights, teacher["padding_mask"])
        self.kd_tokens += teacher["ntokens"]
        self.utterances += batch
        self.batches += 1

    def kl_ce(self) -> dict:
        """Measure 1: per tap ``l{t}``, KL and CE (bits per teacher token) under each condition, audio worth."""
        taps = {}
        for l in self.taps:
            bits = {condition: self.nats[condition][l] / max(self.kd_tokens, 1) / math.log(2)
                    for condition in CONDITIONS}
            entry = {f"kl_{condition}_bits": float(bits[condition][0]) for condition in CONDITIONS}
            entry.update({f"ce_{condition}_bits": float(bits[condition][1]) for condition in CONDITIONS})
            worth = entry["kl_shuffled_bits"] - entry["kl_true_bits"]
            entry["audio_worth_kl_bits"] = worth
            entry["audio_worth_kl_share"] = worth / entry["kl_shuffled_bits"] if entry["kl_shuffled_bits"] else None
            taps[f"l{l}"] = entry
        return {"batches": self.batches, "utterances": self.utterances, "kd_tokens": self.kd_tokens,
                "skipped_single_utterance_batches": self.skipped_batches, "taps": taps}

    def attention(self) -> dict:
        """Measure 3: per tap ``l{t}`` and decoder layer, the mean correlation and the utterances it averages."""
        taps = defaultdict(dict)
        for (l, layer), values in sorted(self.correlations.items()):
            taps[f"l{l}"][f"decoder_layer{layer}"] = {"mean_correlation": float(np.mean(values)),
                                                      "utterances": len(values)}
        return {"statistic": "Pearson correlation of target position and argmax cross-attention frame (0 where "
                             "it never moves), heads averaged, true encoder states", "taps": dict(taps)}


class GradientAgreement:
    """Measure 2 (module doc), accumulated over batches with :meth:`add`; ``alpha`` weighs the two terms."""

    def __init__(self, model, alpha: float):
        self.alpha = alpha
        self.blocks = [[p for p in block.parameters() if p.requires_grad] for block in encoder_blocks(model)]
        self.sums = defaultdict(lambda: np.zeros(5))  # block -> [ratio, cosine, cosine batches, |g_aed|, |g_ctc|]
        self.batches = 0

    def add(self, model, criterion, sample: dict) -> None:
        net_output = model(**sample["net_input"], aed_prev_output_tokens=sample["teacher"]["prev_output_tokens"])
        ctc_all, aed = objective_terms(model, criterion, sample, net_output)
        sample_size = sample["target"].size(0) if criterion.cfg.sentence_avg else sample["ntokens"]
        parameters = [p for block in self.blocks for p in block]
        aed_grads = torch.autograd.grad(self.alpha * aed / sample_size, parameters, retain_graph=True,
                                        allow_unused=True)
        ctc_grads = torch.autograd.grad((1 - self.alpha) * ctc_all / sample_size, parameters, allow_unused=True)
        start = 0
        for l, block in enumerate(self.blocks, start=1):
            g_aed, g_ctc = (torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1).double()
                                       for g, p in zip(grads[start:start + len(block)], block)])
                            for grads in (aed_grads, ctc_grads))
            start += len(block)
            norm_aed, norm_ctc = g_aed.norm().item(), g_ctc.norm().item()
            sums = self.sums[l]
            sums[0] += norm_aed / norm_ctc if norm_ctc else 0.0
            if norm_aed and norm_ctc:
                sums[1] += torch.dot(g_aed, g_ctc).item() / (norm_aed * norm_ctc)
                sums[2] += 1
            sums[3:] += [norm_aed, norm_ctc]
        self.batches += 1

    def summary(self) -> dict:
        blocks = {}
        for l, (ratio, cosine, cosine_batches, norm_aed, norm_ctc) in sorted(self.sums.items()):
            blocks[f"l{l}"] = {"grad_norm_ratio": ratio / self.batches,
                               "grad_cosine": cosine / cosine_batches if cosine_batches else None,
                               "aed_grad_norm": norm_aed / self.batches, "ctc_grad_norm": norm_ctc / self.batches}
        return {"with_respect_to": "parameters of each encoder block", "mode": "eval (no dropout)",
                "aed_kd_weight": self.alpha, "batches": self.batches, "blocks": blocks}


def teacher_statistics(sidecar_dir: str, split: str) -> dict:
    """Measure 4 on ``split``'s sidecar (validated on opening), in vectorised blocks of :data:`STATS_BLOCK`."""
    sidecar = TeacherSidecar(sidecar_dir, split)
    tokens, topk_ids, topk_probs = (np.load(sidecar_path(sidecar_dir, split, name), mmap_mode="r")
                                    for name in ("tokens", "topk_ids", "topk_probs"))
    positions = sidecar.header["num_positions"]
    top1 = in_topk = 0
    mass = entropy = 0.0
    for start in range(0, positions, STATS_BLOCK):
        end = min(positions, start + STATS_BLOCK)
        reference, ids = np.asarray(tokens[start:end]), np.asarray(topk_ids[start:end])
        probs = torch.from_numpy(np.asarray(topk_probs[start:end], dtype=np.float64))
        top1 += int((ids[:, 0] == reference).sum())
        in_topk += int((ids == reference[:, None]).any(axis=1).sum())
        row_mass = probs.sum(dim=1, keepdim=True)
        mass += float(row_mass.sum())
        entropy += float(torch.special.entr(probs / row_mass).sum()) / math.log(2)
    n = max(positions, 1)
    stats = {"positions": positions, "topk": sidecar.topk, "top1_accuracy": top1 / n, "reference_in_topk": in_topk / n,
             "topk_entropy_bits": entropy / n}
    if "drop_unspeakable" in sidecar.header["teacher"]:
        stats["topk_mass_mean"] = None
        stats["topk_mass_note"] = ("extracted with --drop-unspeakable: the stored probabilities are those of the "
                                   "teacher renormalised without the unspeakable ids, and the probability each "
                                   "position lost there is stored only as a mean, so the top-k mass of the whole "
                                   "teacher distribution is not available")
        stats["topk_mass_speakable_mean"] = mass / n
        stats["unspeakable_mass_mean"] = sidecar.header["stats"]["unspeakable_mass_mean"]
    else:
        stats["topk_mass_mean"] = mass / n
    return stats


def run_diagnostics(checkpoint: str, data: Optional[str], sidecar_dir: Optional[str], subset: str,
                    teacher_splits: Sequence[str], max_tokens: int, max_batches: Optional[int], grad_batches: int,
                    aed_kd_weight: Optional[float], device: str) -> dict:
    """All four measures (module doc) as one JSON-ready dict. ``aed_kd_weight`` replaces the checkpoint's alpha
    in measure 2 (needed when it is 0 or 1: one of the two terms would have no weight)."""
    model, task, criterion = load_for_diagnostics(checkpoint, data, sidecar_dir, subset, device)
    alpha = criterion.cfg.aed_kd_weight if aed_kd_weight is None else aed_kd_weight
    if not 0 < alpha < 1:
        raise DataError(f"criterion.aed_kd_weight={alpha}{' (--aed-kd-weight)' if aed_kd_weight is not None else ''} "
                        f"of {checkpoint} leaves alpha * AED or (1 - alpha) * CTC at 0, so their gradients cannot be "
                        f"compared; give --aed-kd-weight in (0, 1)")
    listening, gradients = DecoderListening(model, criterion), GradientAgreement(model, alpha)
    needed = None if max_batches is None else max(max_batches, grad_batches)
    split = split_batches(task, model, subset, max_tokens, None, device)
    for index, sample in enumerate(itertools.islice(split, needed)):
        if max_batches is None or index < max_batches:
            listening.add(model, sample)
        if index < grad_batches:
            gradients.add(model, criterion, sample)
    sidecar_dir = task.cfg.kd_sidecar_dir
    return {"checkpoint": os.path.abspath(checkpoint), "subset": subset, "sidecars": os.path.abspath(sidecar_dir),
            "weights": {"aed_kd_weight": criterion.cfg.aed_kd_weight, "interctc_weight": criterion.cfg.interctc_weight,
                        "kd_kl_weight": criterion.cfg.kd_kl_weight, "aed_kd_weight_for_gradients": alpha},
            "decoder_kl_ce": listening.kl_ce(), "encoder_grad_aed_vs_ctc": gradients.summary(),
            "cross_attention_monotonicity": listening.attention(),
            "teacher_statistics": {split: teacher_statistics(sidecar_dir, split) for split in teacher_splits}}


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_report(report: dict) -> str:
    """Three markdown tables of the report: decoder per tap, gradients per encoder block, teacher per split."""
    decoder, attention = report["decoder_kl_ce"], report["cross_attention_monotonicity"]["taps"]
    lines = [f"{report['subset']}: {decoder['utterances']} utterances in {decoder['batches']} batches, "
             f"{decoder['kd_tokens']} teacher tokens; bits per teacher token", "",
             "| tap | KL true | KL shuffled | KL zeroed | audio worth (KL) | CE true | CE shuffled | CE zeroed "
             "| attention r (last decoder layer) |", "|---|---|---|---|---|---|---|---|---|"]
    for tap, m in decoder["taps"].items():
        layers = attention.get(tap, {})
        last = layers[max(layers, key=lambda name: int(name.removeprefix("decoder_layer")))] if layers else {}
        share = m["audio_worth_kl_share"]
        lines.append(f"| {tap} | {_number(m['kl_true_bits'])} | {_number(m['kl_shuffled_bits'])} | "
                     f"{_number(m['kl_zeroed_bits'])} | {_number(m['audio_worth_kl_bits'])} "
                     f"({_number(None if share is None else 100 * share, 1)} %) | {_number(m['ce_true_bits'])} | "
                     f"{_number(m['ce_shuffled_bits'])} | {_number(m['ce_zeroed_bits'])} | "
                     f"{_number(last.get('mean_correlation'))} |")
    gradients = report["encoder_grad_aed_vs_ctc"]
    lines += ["", f"encoder gradients, alpha = {gradients['aed_kd_weight']}, mean of {gradients['batches']} batches",
              "", "| block | ‖α g_AED‖ / ‖(1-α) g_CTC‖ | cosine | ‖α g_AED‖ | ‖(1-α) g_CTC‖ |",
              "|---|---|---|---|---|"]
    for block, m in gradients["blocks"].items():
        lines.append(f"| {block} | {_number(m['grad_norm_ratio'])} | {_number(m['grad_cosine'])} | "
                     f"{_number(m['aed_grad_norm'], 4)} | {_number(m['ctc_grad_norm'], 4)} |")
    lines += ["", "| teacher split | positions | top-1 accuracy | reference in top-K | top-K mass "
                  "| top-K entropy (bits) |", "|---|---|---|---|---|---|"]
    for split, m in report["teacher_statistics"].items():
        mass = m["topk_mass_mean"] if m["topk_mass_mean"] is not None else m["topk_mass_speakable_mean"]
        mark = "" if m["topk_mass_mean"] is not None else " (speakable ids)"
        lines.append(f"| {split} | {m['positions']} | {_number(m['top1_accuracy'])} | "
                     f"{_number(m['reference_in_topk'])} (K={m['topk']}) | {_number(mass)}{mark} | "
                     f"{_number(m['topk_entropy_bits'])} |")
    return "\n".join(lines)
