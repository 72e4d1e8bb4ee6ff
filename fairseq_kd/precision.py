"""bfloat16 where the hardware multiplies it natively, float32 elsewhere.

CPUs with AVX512-BF16 or AMX multiply bfloat16 about 2.5x faster than float32; on every other CPU (AVX2-only
machines, for instance) PyTorch emulates bfloat16 and a matrix product is several times *slower* than in
float32 (a BERT-mini MLM step: 40 s instead of 2.7 s on an AVX2 EPYC). So the configs ask for ``auto``
(``None``) and the choice is made on the machine that runs.
"""
import functools
import warnings
from typing import Optional


@functools.lru_cache(maxsize=None)
def cpu_has_bf16_instructions() -> bool:
    """True when the CPU multiplies bfloat16 natively (the avx512_bf16 or amx_bf16 flag; Linux only)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return True  # unknown: trust the setting
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def use_bf16(setting: Optional[bool], device_type: str, option: str) -> bool:
    """Whether to run under bfloat16 autocast on ``device_type`` ("cpu", "cuda").

    ``setting`` None (auto): yes on a CPU with bfloat16 instructions, no elsewhere (on GPUs the configs' own
    ``common.fp16`` decides). True / False: as given; True on a CPU without the instructions warns, naming
    ``option`` (the setting to change).
    """
    if setting is None:
        return device_type == "cpu" and cpu_has_bf16_instructions()
    if setting and device_type == "cpu" and not cpu_has_bf16_instructions():
        warnings.warn(f"{option} on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated there and several "
                      f"times slower than float32; leave it unset (auto) or false", RuntimeWarning)
    return bool(setting)
