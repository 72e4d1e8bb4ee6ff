"""fairseq_kd: distil a BERT masked-LM teacher into a CTC speech recogniser, as a fairseq plugin.

Load with ``--user-dir fairseq_kd`` (fairseq-train, fairseq-hydra-train, fairseq-generate). Importing the
package registers the ``audio_kd`` task, the ``ctc_kd`` criterion and the ``ctc_kd`` / ``wav2vec_ctc_kd``
models; it also quiets the console (:mod:`fairseq_kd.console`: fairseq's log format, no third-party alarms the
user cannot act on).

Checkpoint loading (the one place this is handled)
--------------------------------------------------
Importing this package registers the classes fairseq checkpoints hold as safe globals of torch's weights-only
unpickler and makes fairseq's checkpoint loader refuse, with a clear message, a checkpoint whose pickle could
run code (:mod:`fairseq_kd.checkpoints`); torch's safe loading stays on for the whole process.
"""
from . import checkpoints
from .console import restore_fairseq_logging, silence_known_third_party_warnings

restore_fairseq_logging()
silence_known_third_party_warnings()
checkpoints.install()

from . import criterions, models, tasks  # noqa: E402,F401  (registration side effects)
