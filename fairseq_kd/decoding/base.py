"""What every CTC decoder that ``fairseq-generate`` drives shares, and the CTC blank's id.

As in fairseq's ``examples/speech_recognition/new/decoders/base_decoder.py``: the base class runs the model
once per batch and leaves the search to :meth:`CtcDecoder.decode`. Backends that need the optional LM
libraries (flashlight-text, KenLM) are imported only when :func:`fairseq_kd.decoding.build_ctc_decoder`
builds one of them, so training and greedy decoding never need those libraries.
"""
from typing import List

import torch

CTC_BLANK_SYMBOL = "<s>"  # audio_finetuning's ``blank_symbol``: the CTC blank is the dictionary's bos
LM_INSTALL_HINT = "pip install 'fairseq_kd[lm]' (i.e. pip install flashlight-text kenlm), or run scripts/setup_env.sh"


def ctc_blank_index(tgt_dict) -> int:
    """Id of the CTC blank in the target dictionary (``<s>``, as fairseq's ``audio_finetuning`` uses it)."""
    return tgt_dict.index(CTC_BLANK_SYMBOL)


class CtcDecoder:
    """What every CTC decoder that ``fairseq-generate`` drives (``task.build_generator``) shares.

    ``generate`` runs only what inference needs, the model's ``ctc_emissions`` (encoder + final CTC head; no
    InterCTC heads, no attention decoder), then :meth:`decode`, which returns fairseq's hypothesis format:
    for each utterance a list of dicts with ``tokens``, ``score``, ``positional_scores``, ``alignment``,
    ``timesteps``.
    """

    def __init__(self, tgt_dict, blank: int):
        self.tgt_dict = tgt_dict
        self.blank = blank
        self.eos = tgt_dict.eos()
        self.symbols_to_strip_from_output = {tgt_dict.eos(), tgt_dict.bos(), tgt_dict.pad()}

    @torch.no_grad()  # not inference_mode: fairseq-generate rescales the scores in place
    def generate(self, models, sample, **unused):
        if len(models) != 1:
            raise ValueError("CTC decoding takes one model; pass a single checkpoint to --path")
        log_probs, lengths = models[0].ctc_emissions(**sample["net_input"])
        return self.decode(log_probs, lengths)

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[dict]]:
        """``log_probs``: ``B x T x V``, ``lengths``: ``B`` valid frames -> hypotheses per utterance."""
        raise NotImplementedError
