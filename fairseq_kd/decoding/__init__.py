"""CTC decoders that fairseq-generate drives through ``AudioKdTask.build_generator``.

``base`` (the decoder base class, the blank id), ``config`` (:class:`CtcDecodingConfig`, mixed into the task
config), ``factory`` (:func:`build_ctc_decoder`, which imports the flashlight / KenLM backends only when one is
chosen), ``greedy`` (batched best path), ``beam`` (flashlight beam search, no LM), ``beam_lm`` (+ KenLM shallow
fusion), ``lexicon``, ``evaluation`` (offline decoding of a split for tuning and benchmarks).
"""
from .config import CtcDecodingConfig
from .factory import build_ctc_decoder

__all__ = ["CtcDecodingConfig", "build_ctc_decoder"]
