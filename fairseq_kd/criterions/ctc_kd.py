"""Criterion ``ctc_kd``: CTC + InterCTC (+ the AED distillation terms), composed in one readable function.

Objective (all terms are sums over the utterances of the batch, like fairseq's ``ctc`` criterion; fairseq
divides by ``sample_size`` = target tokens, or sentences with ``optimization.sentence_avg``)::

    L_ctc_all = (1 - w) * CTC(final layer) + w * mean_{l in inter_ctc_layers} CTC(layer l)

with ``w = interctc_weight`` (InterCTC, Lee & Watanabe 2021). With no InterCTC layer ``L = CTC(final)``.
Every term is logged on its own (``ctc_loss``, ``interctc_loss_l{l}``), in bits per ``sample_size`` like
``loss``; validation also logs greedy-decoding ``uer`` (unit/letter error rate) and ``wer``.
"""
import logging
import math
import re
from dataclasses import dataclass, field

import editdistance
import torch
import torch.nn.functional as F
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.criterions.ctc import CtcCriterion
from fairseq.data.data_utils import post_process
from fairseq.dataclass import FairseqDataclass
from fairseq.logging import metrics
from omegaconf import II

from ..decoding.greedy import ctc_greedy_search

logger = logging.getLogger(__name__)
LOSS_TERM = re.compile(r"_loss(_l\d+)?$")  # ctc_loss, interctc_loss_l3, ...


@dataclass
class CtcKdCriterionConfig(FairseqDataclass):
    interctc_weight: float = field(default=0.0, metadata={
        "help": "w: weight of the mean InterCTC loss against the final-layer CTC loss, (1-w)*CTC + w*InterCTC; "
                "needs model.inter_ctc_layers"})
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
        if not 0.0 <= cfg.interctc_weight <= 1.0:
            raise ValueError(f"criterion.interctc_weight={cfg.interctc_weight} must be in [0, 1]")
        self.cfg = cfg
        self.dictionary = task.target_dictionary
        self.blank_idx = self.dictionary.index(task.blank_symbol)
        self._checked_taps = False

    def ctc_loss(self, log_probs, input_lengths, targets, target_lengths):
        """Summed CTC loss; ``log_probs`` ``T x B x V``, ``targets`` the concatenated label ids."""
        with torch.backends.cudnn.flags(enabled=False):
            return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=self.blank_idx,
                              reduction="sum", zero_infinity=self.cfg.zero_infinity)

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        self._check_taps(net_output)
        input_lengths = (~net_output["padding_mask"]).long().sum(-1)
        target_mask = (sample["target"] != self.dictionary.pad()) & (sample["target"] != self.dictionary.eos())
        targets, target_lengths = sample["target"].masked_select(target_mask), target_mask.sum(-1)
        lprobs = model.get_normalized_probs(net_output, log_probs=True).contiguous()  # T x B x V

        ctc = self.ctc_loss(lprobs, input_lengths, targets, target_lengths)
        inter_ctc = {layer: self.ctc_loss(F.log_softmax(logits.float(), dim=-1), input_lengths, targets,
                                          target_lengths)
                     for layer, logits in net_output["inter_ctc_logits"]}
        w = self.cfg.interctc_weight
        loss = (1 - w) * ctc + w * torch.stack(list(inter_ctc.values())).mean() if inter_ctc else ctc

        ntokens = sample["ntokens"]
        sample_size = sample["target"].size(0) if self.cfg.sentence_avg else ntokens
        logging_output = {"loss": loss.item(), "ctc_loss": ctc.item(), "ntokens": ntokens,
                          "nsentences": sample["id"].numel(), "sample_size": sample_size}
        for layer, value in inter_ctc.items():
            logging_output[f"interctc_loss_l{layer}"] = value.item()
        if not model.training:
            logging_output.update(self.error_counts(lprobs, input_lengths, sample["target"], target_mask))
        return loss, sample_size, logging_output

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
            counts["c_errors"] += editdistance.eval(hyp.tolist(), ref.tolist())
            counts["c_total"] += len(ref)
            ref_words = post_process(self.dictionary.string(ref), self.cfg.post_process).split()
            hyp_words = post_process(self.dictionary.string(hyp), self.cfg.post_process).split()
            errors = editdistance.eval(hyp_words, ref_words)
            counts["w_errors"] += errors
            counts["wv_errors"] += errors
            counts["w_total"] += len(ref_words)
        return counts

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        """fairseq's CTC metrics (loss, uer, wer), plus every ``*_loss`` term in bits per ``sample_size``."""
        CtcCriterion.reduce_metrics(logging_outputs)
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        terms = sorted({key for log in logging_outputs for key in log if LOSS_TERM.search(key)})
        for key in terms:
            value = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, value / max(sample_size, 1) / math.log(2), sample_size, round=3)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
