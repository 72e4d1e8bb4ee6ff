from . import conformer_kd, wav2vec_kd  # noqa: F401
