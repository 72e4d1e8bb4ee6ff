"""The machine-readable record of one ``fairseq-generate`` decoding (``--decoding-summary PATH``), as icefall's
``save_wer_results`` writes one per decoding: tables are built from these files, not from logs.

``AudioKdTask.inference_step`` adds every batch (:meth:`DecodingSummary.add`); the file is written once,
atomically, when the last of the utterances fairseq-generate's batch iterator holds has been added. So it exists
only for a finished decoding: a decoding killed or failed midway leaves none (nor a stale one of an earlier run:
the task deletes it before the first batch), and the recipe, which keeps a decoding whose summary exists, decodes
it again. Layout (JSON)::

    decoder         the --ctc-decoder options and fairseq-generate's beam / lm_weight / nbest
    command         the command line (provenance)
    utterances, words, errors, wer, sub, del, ins     summed over utterances (fairseq's wer scorer)
    decode_seconds  model forward + search, the span fairseq-generate's "Translated ... in X s" timer measures
    audio_seconds   valid audio of the decoded batches
    per_utterance   [{id, reference, hypothesis, words, sub, del, ins}] in id order

Words are counted by :mod:`fairseq_kd.decoding.scoring`, as everywhere else.
"""
import dataclasses
import json
import math
import os
import sys

from ..io_utils import atomic_write
from .config import CtcDecodingConfig
from .evaluation import hypothesis_text, reference_text
from .scoring import edit_errors, sum_errors


def decoder_settings(cfg: CtcDecodingConfig, generation) -> dict:
    """The ``--ctc-decoder`` options of ``cfg`` and fairseq-generate's ``beam`` / ``lm_weight`` / ``nbest``, as
    JSON values (an infinite score as the string ``"-inf"``)."""
    settings = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(CtcDecodingConfig)
                if not f.name.startswith("_") and f.name != "decoding_summary"}
    settings.update({name: getattr(generation, name, None) for name in ("beam", "lm_weight", "nbest")})
    plain = (str, int, type(None))
    return {name: value if isinstance(value, plain) or isinstance(value, float) and math.isfinite(value)
            else str(value) for name, value in settings.items()}


class DecodingSummary:
    """The summary of a decoding of ``utterances_to_decode`` utterances, written to ``path`` when the last of them
    has been added (an earlier file at ``path`` is deleted when the summary is made)."""

    def __init__(self, path: str, tgt_dict, post_process_symbol: str, decoder: dict, utterances_to_decode: int):
        self.path, self.tgt_dict, self.post_process_symbol = path, tgt_dict, post_process_symbol
        self.decoder = decoder
        self.utterances_to_decode = utterances_to_decode
        self.utterances = {}
        self.decode_seconds = self.audio_seconds = 0.0
        if os.path.lexists(path):
            os.unlink(path)

    def add(self, sample, hypotheses, decode_seconds: float, audio_seconds: float) -> None:
        """Record one batch: its samples' references, the best hypothesis of each, the batch's timings; write the
        file after the last batch."""
        for utt_id, target, nbest in zip(sample["id"].tolist(), sample["target"], hypotheses):
            reference = reference_text(target, self.tgt_dict, self.post_process_symbol)
            hypothesis = hypothesis_text(nbest[0]["tokens"], self.tgt_dict, self.post_process_symbol)
            self.utterances[utt_id] = (reference, hypothesis, edit_errors(reference.split(), hypothesis.split()))
        self.decode_seconds += decode_seconds
        self.audio_seconds += audio_seconds
        if len(self.utterances) == self.utterances_to_decode:
            self.write()

    def to_dict(self) -> dict:
        total = sum_errors(errors for _, _, errors in self.utterances.values())
        return {
            "decoder": self.decoder, "command": " ".join(sys.argv),
            "utterances": len(self.utterances), "words": total.words, "errors": total.errors, "wer": total.wer,
            "sub": total.substitutions, "del": total.deletions, "ins": total.insertions,
            "decode_seconds": self.decode_seconds, "audio_seconds": self.audio_seconds,
            "per_utterance": [{"id": utt_id, "reference": reference, "hypothesis": hypothesis, "words": e.words,
                               "sub": e.substitutions, "del": e.deletions, "ins": e.insertions}
                              for utt_id, (reference, hypothesis, e) in sorted(self.utterances.items())],
        }

    def write(self) -> None:
        with atomic_write(self.path) as f:
            json.dump(self.to_dict(), f, indent=1)
