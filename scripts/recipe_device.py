#!/usr/bin/env python3
"""The device of a run.sh recipe and the processes of its stage 4 (teacher sidecars), printed as one line
``DEVICE SHARDS GPUS`` for run.sh to read: ``cuda 4 0,1,2,3`` or ``cpu 16 none``.

Device: --device as given; otherwise ``cuda`` for the librispeech preset (its Conformers are not trained on a CPU by
accident) and, for the other presets, ``cuda`` when torch sees a GPU, else ``cpu``. ``cuda`` when torch sees no
GPU stops with a message (exit 1) that says why and what to do.

Stage 4 shards (sidecar extraction processes, merged afterwards): with ``cuda`` one per visible GPU, or --nj when
given explicitly (--nj-explicit; shard s then runs on GPU s mod GPUS); on the CPU --nj, one thread each. GPUS are
the ids to put in each shard's CUDA_VISIBLE_DEVICES: the entries of the CUDA_VISIBLE_DEVICES this runs under
(SLURM and other schedulers set it to the GPUs they allocated), else 0 .. N-1.

  python scripts/recipe_device.py --preset librispeech --nj 64            # -> cuda 8 0,1,2,3,4,5,6,7
  python scripts/recipe_device.py --preset cpu --nj 2 --nj-explicit       # -> cpu 2 none
"""
import argparse
import os
from typing import List, Optional

GPU_PRESETS = ("librispeech",)  # presets whose default device is cuda, whether torch sees a GPU or not


def visible_gpus(device_count: int, cuda_visible_devices: Optional[str]) -> List[str]:
    """The ids of the ``device_count`` GPUs torch sees, as CUDA_VISIBLE_DEVICES names them."""
    if cuda_visible_devices is None:
        return [str(i) for i in range(device_count)]
    return [name.strip() for name in cuda_visible_devices.split(",") if name.strip()][:device_count]


def no_gpu_reason(torch_version: str, torch_cuda: Optional[str], cuda_visible_devices: Optional[str]) -> str:
    if torch_cuda is None:
        return f"torch {torch_version} is a CPU-only build"
    if cuda_visible_devices is not None and not cuda_visible_devices.strip():
        return f"torch {torch_version} (CUDA {torch_cuda}) sees no GPU: CUDA_VISIBLE_DEVICES is empty"
    return f"torch {torch_version} (CUDA {torch_cuda}) sees no GPU (no driver or device visible)"


def choose_device(preset: str, device: Optional[str], gpus: List[str], reason: str) -> str:
    """The recipe's device (module docstring); SystemExit with the message when ``cuda`` has no GPU."""
    if device not in (None, "cpu", "cuda"):
        raise SystemExit(f"run.sh: --device {device}: choose cpu or cuda")
    default = "" if device else f" (the default of --preset {preset})"
    device = device or ("cuda" if preset in GPU_PRESETS or gpus else "cpu")
    if device == "cuda" and not gpus:
        on_purpose = (" to train on the CPU on purpose (the 100h systems are meant for GPUs; --config-prefix xs_ "
                      "--max-update 50 --device cpu rehearses every stage)") if preset in GPU_PRESETS else ""
        raise SystemExit(f"run.sh --preset {preset}: --device cuda{default}, but {reason}. Run it where torch sees a "
                         f"GPU (a GPU node, a CUDA build of torch in .venv), or pass --device cpu{on_purpose}")
    return device


def sidecar_shards(device: str, gpus: List[str], nj: int, nj_explicit: bool) -> int:
    """Stage 4's extraction processes: one per GPU with cuda (never one per CPU core), --nj on the CPU or when
    given explicitly."""
    return len(gpus) if device == "cuda" and not nj_explicit else nj


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--device", help="run.sh's --device, when given")
    parser.add_argument("--nj", type=int, required=True, help="run.sh's --nj (default: nproc)")
    parser.add_argument("--nj-explicit", action="store_true", help="--nj was given on run.sh's command line")
    args = parser.parse_args()
    if args.nj < 1:
        raise SystemExit(f"run.sh: --nj {args.nj}: give at least 1")
    import torch

    cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible_gpus(torch.cuda.device_count(), cuda_visible_devices)
    device = choose_device(args.preset, args.device, gpus,
                           no_gpu_reason(torch.__version__, torch.version.cuda, cuda_visible_devices))
    shards = sidecar_shards(device, gpus, args.nj, args.nj_explicit)
    print(device, shards, ",".join(gpus) if device == "cuda" else "none")


if __name__ == "__main__":
    main()
