"""fairseq_kd: distil a BERT masked-LM teacher into a CTC speech recogniser, as a fairseq plugin.

Load with ``--user-dir fairseq_kd`` (fairseq-train, fairseq-hydra-train, fairseq-generate). Importing the
package registers the ``audio_kd`` task, the ``ctc_kd`` criterion and the ``ctc_kd`` / ``wav2vec_ctc_kd``
models.

Checkpoint loading (the one place this is handled)
--------------------------------------------------
torch >= 2.6 loads checkpoints with ``weights_only=True``; fairseq checkpoints pickle a ``Dictionary`` and
omegaconf/argparse configs, so ``fairseq-generate --path``, resuming from ``checkpoint_last.pt`` and
``w2v_path`` would fail with ``UnpicklingError: Weights only load failed``. Importing this package sets
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (unless the user already set the variable), which torch reads at each
``torch.load`` call. Checkpoints are the user's own training outputs; do not load untrusted checkpoints
(a pickle can run code), with or without this plugin.
"""
import os

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

from . import criterions, models, tasks  # noqa: E402,F401  (registration side effects)
