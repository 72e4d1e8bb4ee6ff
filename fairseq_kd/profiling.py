"""Where a training step's time and FLOPs go, measured in process on real batches.

The in-process half of ``scripts/benchmark_training.py`` (whose other half times the real
``fairseq-hydra-train``). :func:`build_trainer` sets a run up as ``fairseq-hydra-train`` does: the hydra
config of ``examples/kd`` plus overrides, fairseq's ``add_defaults``, task, model, criterion and fairseq's
``Trainer``; batches come from the task's epoch iterator with data-loader workers 0, so fetching them
(audio reading, filterbanks, sidecar rows, collation) is timed in this process.

* :func:`matmul_peak_gflops`: the machine's fp32 matrix-multiply rate (square ``size`` matrices).
* :func:`step_flops`: FLOPs of one forward + backward counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matrix products, convolutions, attention; element-wise ops are not counted, so the figure is a lower
  bound of the arithmetic and the natural numerator of a share of the matmul peak).
* :func:`profile_steps`: wall time per part of the step. Forward ops are tagged with the part of the model
  or criterion that runs them (``record_function`` ranges entered by module hooks); each backward op is
  the autograd node of one forward op (same ``sequence_nr``) and is charged to that op's part, so
  ``encoder backward`` means exactly the gradients of the encoder's own operations. The optimizer part is
  fairseq's gradient clipping + ``optimizer.step``; the rest of ``Trainer.train_step`` (logging, metrics) is
  ``other``. Ops are also grouped by family (convolution, matrix product, dropout masks, copies, ...).
"""
import contextlib
import os
import time
import warnings
from collections import defaultdict
from typing import Dict, List, Sequence

import torch
from fairseq.dataclass.configs import FairseqConfig
from fairseq.dataclass.initialize import add_defaults, hydra_init
from omegaconf import DictConfig, OmegaConf

EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "kd")
PART_PREFIX = "fairseq_kd_part:"
BACKWARD_NODE = "autograd::engine::evaluate_function"
TOP_OPS = 25  # ops with the most self CPU time kept in the profile
OP_FAMILIES = (  # (family, substrings of aten op names), first match wins
    ("convolution", ("conv", "mkldnn_convolution")),
    ("matrix product", ("mm", "matmul", "linear", "addmm", "bmm", "baddbmm", "einsum")),
    ("dropout masks", ("bernoulli", "dropout")),
    ("softmax", ("softmax",)),
    ("CTC loss", ("ctc_loss",)),
    ("copies", ("copy_", "clone", "contiguous", "to_copy", "cat", "index", "gather", "scatter", "repeat")),
    ("normalisation", ("layer_norm", "batch_norm")),
    ("optimizer", ("adam", "_foreach", "addcdiv", "addcmul", "sqrt", "lerp")),
)


def training_config(config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``fairseq-hydra-train --config-dir examples/kd --config-name NAME OVERRIDES`` trains with.

    Overrides are ``key=value`` strings as on the command line (no ``+`` needed: the config is merged onto
    fairseq's full schema first).
    """
    from hydra import compose, initialize_config_dir

    hydra_init()
    with warnings.catch_warnings():  # "@package _group_" headers, read as fairseq-hydra-train reads them (1.1)
        warnings.simplefilter("ignore")
        with initialize_config_dir(config_dir=EXAMPLES_DIR, version_base="1.1"):
            composed = compose(config_name=config_name)
    OmegaConf.set_struct(composed, False)  # "+key=value" fields, as on the command line
    cfg = OmegaConf.merge(OmegaConf.structured(FairseqConfig), composed,
                          OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
    add_defaults(cfg)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    OmegaConf.set_struct(cfg, True)
    return cfg


def build_trainer(cfg: DictConfig):
    """Task, model, criterion and fairseq ``Trainer`` as ``fairseq_cli.train.main`` builds them; returns
    ``(trainer, epoch_iterator)`` over the training split."""
    from fairseq import tasks, utils
    from fairseq.trainer import Trainer

    utils.import_user_module(cfg.common)
    utils.set_torch_seed(cfg.common.seed)
    task = tasks.setup_task(cfg.task)
    task.load_dataset(cfg.dataset.train_subset, combine=False, epoch=1)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    trainer = Trainer(cfg, task, model, criterion)
    dataset = task.dataset(cfg.dataset.train_subset)
    iterator = task.get_batch_iterator(
        dataset=dataset, max_tokens=cfg.dataset.max_tokens, max_sentences=cfg.dataset.batch_size,
        max_positions=utils.resolve_max_positions(task.max_positions(), model.max_positions()),
        ignore_invalid_inputs=True, seed=cfg.common.seed, num_workers=0, epoch=1,
    ).next_epoch_itr(shuffle=True)
    return trainer, iterator


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best-of-``repeats`` fp32 ``size x size`` matrix-multiply rate in GFLOP/s on torch's current threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def step_flops(trainer, sample) -> float:
    """FLOPs of the forward and backward pass of ``sample`` (no optimizer step; gradients are discarded)."""
    from torch.utils.flop_counter import FlopCounterMode

    model, criterion = trainer.model, trainer.criterion
    model.train()
    sample = trainer._prepare_sample(sample)[0]
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _, _ = criterion(model, sample)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def model_parts(model, criterion) -> Dict[str, List]:
    """``{part: [modules or (object, method name)]}`` whose calls are tagged with that part."""
    parts = {"subsampling": [], "conformer blocks": [], "CTC head + losses": [], "attention decoder": [],
             "KD losses": []}
    encoder = getattr(model, "encoder", None)
    if encoder is not None and hasattr(encoder, "subsampling"):
        parts["subsampling"].append(encoder.subsampling)
        parts["conformer blocks"].extend(encoder.layers)
    elif encoder is not None:  # wav2vec_ctc_kd: the whole wav2vec encoder
        parts["conformer blocks"].append(encoder)
    parts["CTC head + losses"] += [model.ctc_proj, (criterion, "ctc_loss")]
    if getattr(model, "aed_decoder", None) is not None:
        parts["attention decoder"].append(model.aed_decoder)
        parts["KD losses"].append((criterion, "aed_losses"))
    return {part: items for part, items in parts.items() if items}


@contextlib.contextmanager
def tagged_parts(parts: Dict[str, List]):
    """Wrap every call of the parts' modules / methods in a ``record_function`` range named after the part."""
    from torch.autograd.profiler import record_function

    handles, restored = [], []
    for part, items in parts.items():
        for item in items:
            if isinstance(item, tuple):
                owner, name = item
                original = getattr(owner, name)

                def wrapped(*args, _original=original, _part=part, **kwargs):
                    with record_function(PART_PREFIX + _part):
                        return _original(*args, **kwargs)

                setattr(owner, name, wrapped)
                restored.append((owner, name))
                continue
            ranges = []

            def enter(module, args, _part=part, _ranges=ranges):
                _ranges.append(record_function(PART_PREFIX + _part).__enter__())

            def leave(module, args, output, _ranges=ranges):
                _ranges.pop().__exit__(None, None, None)

            handles += [item.register_forward_pre_hook(enter), item.register_forward_hook(leave)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for owner, name in restored:
            delattr(owner, name)  # the instance attribute hid the class method


def op_family(name: str) -> str:
    lowered = name.lower()
    for family, keys in OP_FAMILIES:
        if any(key in lowered for key in keys):
            return family
    return "other"


def profile_steps(trainer, iterator, steps: int, task) -> dict:
    """Run ``steps`` real training updates under ``torch.profiler``; return per-part and per-op-family times.

    Returns ``{"steps", "audio_seconds", "sentences", "wall_seconds", "parts": {part: seconds},
    "families": {family: seconds}, "top_ops": {op: seconds}}``; parts are ``data``, ``<part> forward``,
    ``<part> backward``, ``optimizer`` and ``other``, summing to ``wall_seconds``.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    parts = model_parts(trainer.model, trainer.criterion)
    optimizer = trainer.optimizer
    original_step, original_clip = optimizer.step, optimizer.clip_grad_norm

    def timed_step(*args, **kwargs):
        with record_function(PART_PREFIX + "optimizer"):
            return original_step(*args, **kwargs)

    def timed_clip(*args, **kwargs):
        with record_function(PART_PREFIX + "optimizer"):
            return original_clip(*args, **kwargs)

    audio = sentences = 0.0
    optimizer.step, optimizer.clip_grad_norm = timed_step, timed_clip
    try:
        with tagged_parts(parts), profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(steps):
                with record_function(PART_PREFIX + "data"):
                    sample = next(iterator)
                audio += task.audio_seconds(sample)
                sentences += len(sample["id"])
                trainer.train_step([sample])
            wall = time.perf_counter() - start
    finally:
        del optimizer.step, optimizer.clip_grad_norm
    return {"steps": steps, "audio_seconds": audio, "sentences": sentences, "wall_seconds": wall,
            **attribute(prof.events(), wall)}


def attribute(events, wall: float) -> dict:
    """Charge every op's self CPU time to a part (see the module docstring) and to an op family.

    On CPU the autograd engine runs the backward pass on the thread that called ``backward()``: an op is a
    backward op when an ``autograd::engine::evaluate_function`` range encloses it, and that node's
    ``sequence_nr`` is the one of the forward op that created it.
    """
    def enclosing(event):
        """(part range name or None, backward node or None) of the innermost enclosing range."""
        while event is not None:
            if event.name.startswith(BACKWARD_NODE):
                return None, event
            if event.name.startswith(PART_PREFIX):
                return event.name[len(PART_PREFIX):], None
            event = event.cpu_parent
        return None, None

    # Forward ops name the parts of the autograd nodes they create. An op that creates no node records the
    # sequence number the next node will get, so the last forward op (in time) with a number is its creator.
    part_by_sequence = {}
    for event in sorted(events, key=lambda e: e.time_range.start):
        if event.sequence_nr >= 0 and not event.name.startswith(BACKWARD_NODE):
            part, node = enclosing(event)
            if node is None:
                part_by_sequence[event.sequence_nr] = part if part not in ("data", "optimizer") else None
    parts, families, ops = defaultdict(float), defaultdict(float), defaultdict(float)
    for event in events:
        if event.name.startswith(PART_PREFIX) or event.self_cpu_time_total <= 0:
            continue
        part, node = enclosing(event)
        if node is not None:
            backward_part = part_by_sequence.get(node.sequence_nr)
            label = f"{backward_part} backward" if backward_part else "other backward"
        else:
            label = part if part in ("data", "optimizer") else f"{part} forward" if part else "other"
        seconds = event.self_cpu_time_total / 1e6
        parts[label] += seconds
        families[op_family(event.name)] += seconds
        ops[event.name] += seconds
    parts["other"] += max(0.0, wall - sum(parts.values()))
    top_ops = dict(sorted(ops.items(), key=lambda item: -item[1])[:TOP_OPS])
    return {"parts": dict(parts), "families": dict(families), "top_ops": top_ops}
