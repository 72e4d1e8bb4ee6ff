"""Loading fairseq checkpoints with torch's safe unpickler (``weights_only``), never with plain pickle.

torch >= 2.6 loads with ``weights_only=True`` by default: tensors, plain containers and numbers, and the classes
registered as safe globals; a global outside that list (``os.system``, any class whose reconstruction could run
code) is refused. A fairseq checkpoint holds one object beyond plain containers, the target ``Dictionary`` of the
task state (``fairseq.data.dictionary.Dictionary``: a symbol list, counts and indices); checkpoints written by
older fairseq versions (the released wav2vec 2.0 models among them) keep their options as an
``argparse.Namespace``; inference checkpoints written by ``scripts/export_ctc_model.py`` before December 2026
keep an omegaconf ``DictConfig`` (its containers, metadata and ``AnyNode`` values, with the builtin types that
metadata names). All of them rebuild from attributes only, so :func:`install`, run when the plugin is imported,
registers them (:data:`SAFE_CHECKPOINT_GLOBALS`); every checkpoint this project writes, old ones included, then
loads with ``weights_only``.

fairseq loads every checkpoint through ``fairseq.checkpoint_utils.load_checkpoint_to_cpu`` (fairseq-generate,
resuming a training, ``w2v_path``, our scripts). :func:`install` wraps that function so that a refused checkpoint
stops with :class:`UnsafeCheckpointError`, naming the file, the global it wanted and what to do, instead of
torch's generic advice to switch the protection off.
"""
import argparse
import collections
import functools
import pickle
import re
import typing

import torch
from fairseq import checkpoint_utils
from fairseq.data.dictionary import Dictionary
from omegaconf import DictConfig, ListConfig
from omegaconf.base import ContainerMetadata, Metadata
from omegaconf.nodes import AnyNode

from .errors import DataError

SAFE_CHECKPOINT_GLOBALS = [Dictionary, argparse.Namespace,
                           DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode,
                           typing.Any, dict, list, int, collections.defaultdict]


class UnsafeCheckpointError(DataError):
    """A checkpoint whose pickle needs a global that could run code when loaded."""


def refusal_message(path, error: pickle.UnpicklingError) -> str:
    wanted = re.search(r"(?:Unsupported global|GLOBAL) ?:? ?(?:GLOBAL )?([\w.]+)", str(error))
    what = f"'{wanted.group(1)}'" if wanted else "an object torch's weights-only unpickler refuses"
    return (f"{path}: refused to load: its pickle needs {what}, which is neither a tensor, a plain container nor a "
            f"class fairseq checkpoints hold, and could run code while loading. fairseq_kd loads checkpoints with "
            f"torch.load(weights_only=True) (fairseq_kd/checkpoints.py). Load only checkpoints from a source you "
            f"trust; if you trust this one, rewrite it once without that object (torch.load(path, "
            f"weights_only=False), keep 'model', 'cfg' and 'optimizer_history', torch.save), or run this command "
            f"with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1.")


def install():
    """Register :data:`SAFE_CHECKPOINT_GLOBALS` and make fairseq's checkpoint loader refuse unsafe files with
    :class:`UnsafeCheckpointError` (idempotent)."""
    torch.serialization.add_safe_globals(SAFE_CHECKPOINT_GLOBALS)
    load = checkpoint_utils.load_checkpoint_to_cpu
    if getattr(load, "refuses_unsafe_checkpoints", False):
        return

    @functools.wraps(load)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        try:
            return load(path, *args, **kwargs)
        except pickle.UnpicklingError as error:
            raise UnsafeCheckpointError(refusal_message(path, error)) from None

    load_checkpoint_to_cpu.refuses_unsafe_checkpoints = True
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
