from . import ctc_kd  # noqa: F401
