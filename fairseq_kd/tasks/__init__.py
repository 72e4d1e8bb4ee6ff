from . import audio_kd  # noqa: F401
