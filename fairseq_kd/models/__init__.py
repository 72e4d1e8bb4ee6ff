from . import ctc_kd, wav2vec_kd  # noqa: F401
