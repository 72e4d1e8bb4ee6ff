"""Criterion ``ctc_kd``: CTC + InterCTC + attention-decoder distillation, composed in one function.

Objective (arXiv 2401.11700, interCTC-interAED-KD; every term is a sum over the utterances of the batch
like fairseq's ``ctc`` criterion, and fairseq divides the total by ``sample_size`` = CTC target tokens,
or sentences with ``optimization.sentence_avg``)::

    L     = (1 - alpha) * L_ctc_all + alpha * mean_{t in aed_layers} L_aed(t)
    L_ctc_all = (1 - w) * CTC(final layer) + w * mean_{l in inter_ctc_layers} CTC(layer l)
    L_aed(t)  = (1 - beta) * CE(reference WordPieces | decoder on tap t)
                + beta * KL(teacher top-k at temperature T || decoder on tap t)

    alpha = aed_kd_weight, w = interctc_weight, beta = kd_kl_weight, T = kd_temperature.

Without InterCTC layers ``L_ctc_all = CTC(final)``; with ``alpha = 0`` the decoder is not run and the loss is
exactly the CTC + InterCTC loss. Validation batches of a split without teacher sidecar get ``L_ctc_all``. The KL at
a target position j with teacher top-k ids ``i_1..i_k`` and renormalised probabilities ``p_1..p_k`` (sum 1) is
``sum_m p_m (log p_m - log q(i_m))``, where ``q`` is the decoder's softmax over the whole teacher vocabulary; the
position after the last token (``[SEP]``, end of sentence) has the one-hot teacher distribution, so there KL = CE.
Padded positions count nothing.

Temperature: the sidecar stores the top-k of ``softmax(z / tau)`` (``tau`` = the extraction's ``--temperature``).
``kd_temperature = T`` softens it further, ``p_m <- p_m^(1/T) / sum_n p_n^(1/T)``, which is exactly the
renormalised top-k of ``softmax(z / (tau T))``: ``p_m`` is proportional to ``exp(z_m / tau)`` and a temperature keeps
the order, so the same k ids stay on top. The decoder's softmax is not tempered (the student is read at T = 1, as
in BERT-to-ASR distillation, Futami et al. 2020), so no T^2 factor. The only inexactness is the sidecar's float16:
a probability stored as 0 (below 6e-8) stays 0 instead of becoming ``(6e-8 / p_1)^(1/T)``.

Every term is logged on its own: ``ctc_loss``, ``interctc_loss_l{l}`` (bits per ``sample_size``, like
``loss``), ``aed_kl_loss_l{t}``, ``aed_ce_loss_l{t}`` (bits per teacher token); validation also logs greedy
CTC ``uer`` and ``wer``.
"""
import logging
import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.ctc import CtcCriterion
from fairseq.data.data_utils import post_process
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from ..decoding.base import ctc_blank_index
from ..decoding.greedy import ctc_greedy_search
from ..decoding.scoring import edit_errors

logger = logging.getLogger(__name__)
CTC_TERM = re.compile(r"^(inter)?ctc_loss(_l\d+)?$")  # ctc_loss, interctc_loss_l3: bits per sample_size
AED_TERM = re.compile(r"^aed_(kl|ce)_loss_l\d+$")  # bits per teacher token


@dataclass
class CtcKdCriterionConfig(FairseqDataclass):
    interctc_weight: float = field(default=0.0, metadata={
        "help": "w: weight of the mean InterCTC loss against the final-layer CTC loss, (1-w)*CTC + w*InterCTC; "
                "needs model.inter_ctc_layers"})
    aed_kd_weight: float = field(default=0.0, metadata={
        "help": "alpha: weight of the attention-decoder terms (mean over model.aed_layers) against the CTC "
                "terms, (1-alpha)*CTC_all + alpha*AED; needs model.aed_layers and task.kd_sidecar_dir; "
                "0 = plain CTC/InterCTC"})
    kd_kl_weight: float = field(default=1.0, metadata={
        "help": "beta: within each AED tap, (1-beta)*CE(reference WordPieces) + beta*KL(teacher top-k || "
                "decoder); 1 = pure distillation"})
    kd_temperature: float = field(default=1.0, metadata={
        "help": "T: soften the teacher's stored top-k, p^(1/T) renormalised = the top-k of softmax(z / (tau * T)) "
                "with tau the sidecars' extraction temperature (exact: see the module doc); 1 = as stored"})
    zero_infinity: bool = field(default=True, metadata={
        "help": "zero CTC losses that are infinite because an utterance has fewer frames than its target needs"})
    sentence_avg: bool = II("optimization.sentence_avg")
    post_process: str = field(default="letter", metadata={
        "help": "how label units become words for the validation WER (letter, sentencepiece, ...; see "
                "fairseq.data.data_utils.post_process)"})


@register_criterion("ctc_kd", dataclass=CtcKdCriterionConfig)
class CtcKdCriterion(FairseqCriterion):
    def __init__(self, cfg: CtcKdCriterionConfig, task):
        super().__init__(task)
        for name in ("interctc_weight", "aed_kd_weight", "kd_kl_weight"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise ValueError(f"criterion.{name}={getattr(cfg, name)} must be in [0, 1]")
        if cfg.kd_temperature <= 0:
            raise ValueError(f"criterion.kd_temperature={cfg.kd_temperature} must be positive (1 = the sidecars' "
                             f"probabilities as stored)")
        if cfg.aed_kd_weight > 0 and getattr(task.cfg, "kd_sidecar_dir", None) is None:
            raise ValueError(f"criterion.aed_kd_weight={cfg.aed_kd_weight} needs teacher targets: set "
                             f"task.kd_sidecar_dir to the directory of the {{split}}.kd sidecars "
                             f"(scripts/extract_teacher_sidecar.py)")
        self.cfg = cfg
        self.dictionary = task.target_dictionary
        self.blank_idx = ctc_blank_index(self.dictionary)
        self._checked_taps = False

    def forward(self, model, sample, reduce=True):
        alpha = self.cfg.aed_kd_weight
        teacher = sample.get("teacher") if alpha > 0 else None
        if alpha > 0 and teacher is None and model.training:
            raise ValueError(f"criterion.aed_kd_weight={alpha} but this training batch has no teacher targets: its "
                             f"split has no sidecar in task.kd_sidecar_dir")
        net_output = model(**sample["net_input"],
                           aed_prev_output_tokens=teacher["prev_output_tokens"] if teacher else None)
        self._check_taps(net_output)

        ctc, inter_ctc, lprobs, input_lengths, target_mask = self.ctc_terms(model, sample, net_output)
        aed = self.aed_terms(model, teacher, net_output)
        ctc_all, aed_mixed = self.mix(ctc, inter_ctc, aed)
        loss = (1 - alpha) * ctc_all + alpha * aed_mixed if aed else ctc_all

        ntokens = sample["ntokens"]
        sample_size = sample["target"].size(0) if self.cfg.sentence_avg else ntokens
        logging_output = {"loss": loss.item(), "ctc_loss": ctc.item(), "ntokens": ntokens,
                          "nsentences": sample["id"].numel(), "sample_size": sample_size}
        for l, value in inter_ctc.items():
            logging_output[f"interctc_loss_l{l}"] = value.item()
        for l, (kl, ce) in aed.items():
            logging_output[f"aed_kl_loss_l{l}"] = kl.item()
            logging_output[f"aed_ce_loss_l{l}"] = ce.item()
        if aed:
            logging_output["kd_ntokens"] = teacher["ntokens"]
        if not model.training:
            logging_output.update(self.error_counts(lprobs, input_lengths, sample["target"], target_mask))
        return loss, sample_size, logging_output

    def ctc_terms(self, model, sample, net_output):
        """Summed final-layer CTC and ``{l: InterCTC(l)}``, with what validation needs: the final-layer
        log-probabilities ``T x B x V``, valid frames per utterance ``B`` and the label mask ``B x S``."""
        input_lengths = (~net_output["padding_mask"]).long().sum(-1)
        target_mask = (sample["target"] != self.dictionary.pad()) & (sample["target"] != self.dictionary.eos())
        targets, target_lengths = sample["target"].masked_select(target_mask), target_mask.sum(-1)
        lprobs = model.get_normalized_probs(net_output, log_probs=True).contiguous()  # T x B x V
        ctc = self.ctc_loss(lprobs, input_lengths, targets, target_lengths)
        inter_ctc = {l: self.ctc_loss(F.log_softmax(logits.float(), dim=-1), input_lengths, targets, target_lengths)
                     for l, logits in net_output["inter_ctc_logits"]}
        return ctc, inter_ctc, lprobs, input_lengths, target_mask

    def aed_terms(self, model, teacher, net_output):
        """``{t: (KL, CE)}`` of every decoder tap (empty without decoder output); the teacher's ids are first
        mapped to the decoder's vocabulary (restricted or not) and its top-k tempered (``kd_temperature``), once for
        every tap."""
        if "aed_logits" not in net_output:
            return {}
        teacher = {**teacher, "target": model.aed_decoder_ids(teacher["target"]),
                   "topk_ids": model.aed_decoder_ids(teacher["topk_ids"]),
                   "topk_probs": self.tempered(teacher["topk_probs"].float(), self.cfg.kd_temperature)}
        return {l: self.aed_losses(logits, teacher) for l, logits in net_output["aed_logits"]}

    def mix(self, ctc, inter_ctc, aed):
        """``(L_ctc_all, L_aed)``: ``(1 - w) CTC + w mean_l InterCTC(l)`` and ``mean_t [(1 - beta) CE + beta KL]``
        (None without decoder terms)."""
        w, beta = self.cfg.interctc_weight, self.cfg.kd_kl_weight
        ctc_all = (1 - w) * ctc + w * torch.stack(list(inter_ctc.values())).mean() if inter_ctc else ctc
        aed_mixed = torch.stack([(1 - beta) * ce + beta * kl for kl, ce in aed.values()]).mean() if aed else None
        return ctc_all, aed_mixed

    def ctc_loss(self, log_probs, input_lengths, targets, target_lengths):
        """Summed CTC loss; ``log_probs`` ``T x B x V``, ``targets`` the concatenated label ids."""
        with torch.backends.cudnn.flags(enabled=False):
            return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=self.blank_idx,
                              reduction="sum", zero_infinity=self.cfg.zero_infinity)

    @staticmethod
    def tempered(probs, temperature):
        """``probs^(1/T)`` renormalised over the last dimension (``B x L x k``); rows of zeros (padding) stay
        zero."""
        if temperature == 1.0:
            return probs
        powered = probs.pow(1.0 / temperature)
        return powered / powered.sum(-1, keepdim=True).clamp_min(torch.finfo(powered.dtype).tiny)

    @staticmethod
    def aed_losses(logits, teacher):
        """Summed ``(KL(teacher top-k || decoder), CE(reference))`` of one tap (the top-k already tempered).

        ``logits``: ``B x L x V``; ``teacher["target"]``: ``B x L``; ``teacher["topk_ids"]``,
        ``teacher["topk_probs"]``: ``B x L x k``; ``teacher["padding_mask"]``: ``B x L`` (True on padding).
        Ids index the decoder's vocabulary (``model.aed_decoder_ids`` of the teacher's ids).
        """
        lprobs = F.log_softmax(logits.float(), dim=-1)
        keep = ~teacher["padding_mask"]
        ce = -lprobs.gather(-1, teacher["target"].unsqueeze(-1)).squeeze(-1)
        p = teacher["topk_probs"].float()
        kl = (torch.xlogy(p, p) - p * lprobs.gather(-1, teacher["topk_ids"])).sum(-1)
        return kl[keep].sum(), ce[keep].sum()

    def _check_taps(self, net_output):
        if self._checked_taps:
            return
        self._checked_taps = True
        if self.cfg.interctc_weight > 0 and not net_output["inter_ctc_logits"]:
            raise ValueError(f"criterion.interctc_weight={self.cfg.interctc_weight} but model.inter_ctc_layers is "
                             f"empty: set model.inter_ctc_layers (e.g. [3]) or interctc_weight=0")
        if self.cfg.interctc_weight == 0 and net_output["inter_ctc_logits"]:
            logger.warning("model.inter_ctc_layers is set but criterion.interctc_weight=0: InterCTC is computed "
                           "and logged but does not train the model")

    @torch.no_grad()
    def error_counts(self, lprobs, input_lengths, target, target_mask):
        """Greedy-decoding unit and word errors of a batch (fairseq ``ctc`` logging keys)."""
        hyps = ctc_greedy_search(lprobs.transpose(0, 1).float(), input_lengths, self.blank_idx).tokens
        counts = {"c_errors": 0, "c_total": 0, "w_errors": 0, "wv_errors": 0, "w_total": 0}
        for hyp, ref, mask in zip(hyps, target, target_mask):
            ref = ref[mask]
            counts["c_errors"] += edit_errors(ref.tolist(), hyp.tolist()).errors
            counts["c_total"] += len(ref)
            ref_words = post_process(self.dictionary.string(ref), self.cfg.post_process).split()
            hyp_words = post_process(self.dictionary.string(hyp), self.cfg.post_process).split()
            errors = edit_errors(ref_words, hyp_words).errors
            counts["w_errors"] += errors
            counts["wv_errors"] += errors
            counts["w_total"] += len(ref_words)
        return counts

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        """fairseq's CTC metrics (loss, uer, wer), the CTC terms in bits per ``sample_size`` and the AED terms
        in bits per teacher token."""
        CtcCriterion.reduce_metrics(logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        kd_ntokens = sum(log.get("kd_ntokens", 0) for log in logging_outputs)
        for key in sorted({key for log in logging_outputs for key in log}):
            norm = sample_size if CTC_TERM.match(key) else kd_ntokens if AED_TERM.match(key) else 0
            if norm > 0:
                value = sum(log.get(key, 0) for log in logging_outputs)
                metrics.log_scalar(key, value / norm / math.log(2), norm, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
