"""What fairseq's command lines print when the plugin is loaded: fairseq's own log format and level, without the
alarms raised on every run for things no user of ``--user-dir fairseq_kd`` can change, and with greedy decoding
called greedy.

Three sources of noise, each handled at its source and no wider:

* ``fairseq.models.wav2vec.wav2vec2_classification`` calls ``logging.basicConfig(level=logging.DEBUG)`` when
  ``import fairseq`` imports every model. That handler pre-empts the ``basicConfig`` of ``fairseq_cli``
  (timestamped ``date | LEVEL | logger | message`` at ``$LOGLEVEL``, INFO by default), so every tool printed
  hydra's and fairseq's DEBUG lines in Python's bare format. :func:`restore_fairseq_logging` replaces exactly that
  handler by the one fairseq_cli intends, and leaves any other logging set-up alone.
* fairseq drives hydra through APIs that hydra 1.3 deprecates, and fairseq's data loader asks for pinned memory on
  machines without a GPU. :data:`KNOWN_THIRD_PARTY_WARNINGS` lists those warnings by category and message;
  :func:`silence_known_third_party_warnings` ignores exactly them. Every other warning, ours included (a
  skipped utterance, bfloat16 emulated on a CPU without it, bad input), still shows.
* ``fairseq-generate`` ends with ``Generate SUBSET with beam=N: WER ...`` whatever the generator is. For greedy
  CTC, which has no beam, :func:`label_greedy_decoding` makes that line ``Generate SUBSET with greedy CTC: WER``.
"""
import builtins
import logging
import os
import re
import sys
import warnings

FAIRSEQ_LOG_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"
FAIRSEQ_LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

# (category, message regex matched at the start of the message) of warnings raised in fairseq's own code paths
KNOWN_THIRD_PARTY_WARNINGS = [
    # hydra 1.3 on fairseq 0.12's use of it (fairseq_cli, fairseq.dataclass.utils)
    (UserWarning, r"hydra\.experimental\.(initialize|compose)\(\) is no longer experimental"),
    (UserWarning, r"\s*The version_base parameter is not specified"),
    (UserWarning, r"In '[^']*': Usage of deprecated keyword in package header '# @package _group_'"),
    (UserWarning, r"\s*'[^']*' is validated against ConfigStore schema with the same name"),
    (UserWarning, r"\s*The strict flag in the compose API is deprecated"),
    # fairseq's iterators ask for pinned memory on every device; without an accelerator torch says it is unused
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
]

GENERATE_RESULT_LINE = re.compile(r"^Generate (\S+) with beam=\d+: ")


def restore_fairseq_logging():
    """Replace the DEBUG-level bare-format root handler that a fairseq model module installs on import by
    fairseq_cli's own logging set-up (``$LOGLEVEL``, INFO by default); any other root set-up is left as it is."""
    root = logging.getLogger()
    if len(root.handlers) != 1 or root.level != logging.DEBUG:
        return
    handler = root.handlers[0]
    if type(handler) is not logging.StreamHandler or handler.formatter is None or \
            handler.formatter._fmt != logging.BASIC_FORMAT:
        return
    root.removeHandler(handler)
    logging.basicConfig(format=FAIRSEQ_LOG_FORMAT, datefmt=FAIRSEQ_LOG_DATE_FORMAT,
                        level=os.environ.get("LOGLEVEL", "INFO").upper(), stream=handler.stream)


def silence_known_third_party_warnings():
    """Ignore each warning of :data:`KNOWN_THIRD_PARTY_WARNINGS`, matched by category and message."""
    for category, message in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def label_greedy_decoding():
    """Make fairseq-generate's result line ``Generate SUBSET with greedy CTC: ...`` (called when the task builds a
    greedy decoder). Only ``print`` inside ``fairseq_cli.generate`` is affected, and only that line."""
    generate = sys.modules.get("fairseq_cli.generate")
    if generate is None:
        return

    def print_result(*args, **kwargs):
        if args and isinstance(args[0], str):
            args = (GENERATE_RESULT_LINE.sub(r"Generate \1 with greedy CTC: ", args[0]), *args[1:])
        builtins.print(*args, **kwargs)

    generate.print = print_result
