"""Offline decoding of a whole split for the LM-weight grid search and the decoding benchmark.

The encoder runs once per batch (:func:`encode_split`); its CTC emissions are kept so that many decoders
(greedy, beam + LM at several widths or weights) search exactly the same log-probabilities, and encoder
time is measured apart from search time. Loading follows ``fairseq-generate``: the task is configured as on
the command line (only ``data`` and ``labels`` set, so training-only inputs such as teacher sidecars are
never needed) and the split is loaded with the checkpoint's saved task config.
"""
import copy
import time
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
from fairseq import checkpoint_utils, tasks, utils
from fairseq.data.data_utils import post_process
from omegaconf import open_dict

from .greedy import ctc_greedy_search
from .scoring import WordErrors, word_errors


def add_search_arguments(parser, default_subset: str, subset_help: str) -> None:
    """The options of the offline decoding scripts (scripts/tune_lm_weights.py, scripts/benchmark_decoding.py):
    the checkpoint, the split, the KenLM model and lexicon, the beam threshold, the batch size and threads."""
    parser.add_argument("--path", required=True, help="model checkpoint")
    parser.add_argument("--data", help="data directory (default: the checkpoint's task.data)")
    parser.add_argument("--subset", default=default_subset, help=subset_help)
    parser.add_argument("--kenlm-model", required=True, help="KenLM binary (scripts/build_lm.py)")
    parser.add_argument("--lexicon", required=True, help="lexicon of the KenLM model (scripts/build_lm.py)")
    parser.add_argument("--beam-threshold", type=float, default=25.0)
    parser.add_argument("--max-tokens", type=int, default=1_000_000, help="audio samples per encoder batch")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")


def load_for_decoding(checkpoint: str, data: Optional[str], subset: str, device: str):
    """``(model, task)`` with ``subset`` loaded, the model in eval mode on ``device``."""
    model, task = load_model(checkpoint, data, device)
    task.load_dataset(subset, task_cfg=task.saved_task_cfg)
    return model, task


def load_model(checkpoint: str, data: Optional[str], device: str):
    """``(model, task)``: the model in eval mode on ``device`` and its task (target dictionary, configuration) on
    ``data`` (default: the checkpoint's ``task.data``), no split loaded; ``task.saved_task_cfg`` is the
    checkpoint's task configuration, with which splits are loaded."""
    state = checkpoint_utils.load_checkpoint_to_cpu(checkpoint)
    saved_task = state["cfg"].task
    data = data or saved_task.data
    cfg = copy.deepcopy(state["cfg"])  # the other groups resolve the task's interpolations (common.tpu, ...)
    with open_dict(cfg):
        cfg.task = {"_name": saved_task._name, "data": data, "labels": saved_task.labels}
    task = tasks.setup_task(cfg.task)
    models, saved_cfg = checkpoint_utils.load_model_ensemble([checkpoint], arg_overrides={"data": data},
                                                              task=task, state=state)
    task.saved_task_cfg = saved_cfg.task
    return models[0].to(device).eval(), task


class EncodedBatch(NamedTuple):
    ids: List[int]              # dataset indices
    log_probs: torch.Tensor     # B x T x V CTC log-probabilities (on the model's device)
    lengths: torch.Tensor       # B valid frames
    references: List[str]       # word transcripts
    audio_seconds: float


class EncodedSplit(NamedTuple):
    batches: List[EncodedBatch]
    encoder_seconds: float      # model.ctc_emissions over all batches, data loading excluded
    audio_seconds: float
    num_utterances: int


def _synchronize(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.no_grad()
def split_batches(task, model, subset: str, max_tokens: Optional[int], batch_size: Optional[int], device: str):
    """``subset``'s batches as fairseq-generate makes them (fairseq's order, no shuffling, every utterance),
    on ``device``."""
    iterator = task.get_batch_iterator(dataset=task.dataset(subset), max_tokens=max_tokens, max_sentences=batch_size,
                                       max_positions=utils.resolve_max_positions(task.max_positions(),
                                                                                 model.max_positions()),
                                       ignore_invalid_inputs=False, required_batch_size_multiple=1,
                                       ).next_epoch_itr(shuffle=False)
    for sample in iterator:
        yield utils.move_to_cuda(sample) if device.startswith("cuda") else sample


@torch.no_grad()  # as fairseq-generate's inference_step: no autograd graph in the timing or in memory
def encode_split(model, task, subset: str, max_tokens: Optional[int], batch_size: Optional[int],
                 device: str, post_process_symbol: str = "letter") -> EncodedSplit:
    """Batch ``subset`` as fairseq-generate does, load every batch first, then time the encoder alone.

    One untimed forward of the first batch warms up (allocator, kernel selection).
    """
    samples = list(split_batches(task, model, subset, max_tokens, batch_size, device))
    if samples:
        model.ctc_emissions(**samples[0]["net_input"])
    tgt_dict, sample_rate, sizes = task.target_dictionary, task.cfg.sample_rate, task.dataset(subset).sizes
    batches, encoder_seconds = [], 0.0
    for sample in samples:
        _synchronize(device)
        start = time.perf_counter()
        log_probs, lengths = model.ctc_emissions(**sample["net_input"])
        _synchronize(device)
        encoder_seconds += time.perf_counter() - start
        ids = sample["id"].tolist()
        references = [reference_text(t, tgt_dict, post_process_symbol) for t in sample["target"]]
        batches.append(EncodedBatch(ids, log_probs, lengths, references,
                                    sum(sizes[i] for i in ids) / sample_rate))
    return EncodedSplit(batches, encoder_seconds, sum(b.audio_seconds for b in batches),
                        sum(len(b.ids) for b in batches))


def hypothesis_text(tokens: torch.Tensor, tgt_dict, post_process_symbol: str = "letter") -> str:
    """Words of a hypothesis' label ids (fairseq-generate's ``D-`` line)."""
    return post_process(tgt_dict.string(tokens.int().cpu()), post_process_symbol)


def reference_text(target: torch.Tensor, tgt_dict, post_process_symbol: str = "letter") -> str:
    """Words of a padded target row (fairseq-generate's ``T-`` line)."""
    return hypothesis_text(utils.strip_pad(target, tgt_dict.pad()), tgt_dict, post_process_symbol)


Search = Callable[[EncodedBatch], List[torch.Tensor]]  # a batch -> the best hypothesis' label ids per utterance


def greedy_search(blank: int) -> Search:
    """Batched greedy decoding as a :data:`Search` (labels copied to the host)."""
    return lambda batch: [t.cpu() for t in ctc_greedy_search(batch.log_probs, batch.lengths, blank).tokens]


def decoder_search(decoder) -> Search:
    """A :class:`~fairseq_kd.decoding.base.CtcDecoder` (e.g. beam search + LM) as a :data:`Search`: its best
    hypothesis per utterance."""
    return lambda batch: [nbest[0]["tokens"] for nbest in decoder.decode(batch.log_probs, batch.lengths)]


def search_split(search: Search, encoded: EncodedSplit, tgt_dict, device: str = "cpu", repeats: int = 1,
                 post_process_symbol: str = "letter") -> Tuple[float, WordErrors]:
    """Search every batch of ``encoded``: the fastest of ``repeats`` runs in seconds (search only: the encoder
    ran in :func:`encode_split`) and the word errors of the hypotheses against the references."""
    best, hypotheses = float("inf"), None
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        hypotheses = [search(batch) for batch in encoded.batches]
        best = min(best, time.perf_counter() - start)
    texts = [hypothesis_text(t, tgt_dict, post_process_symbol) for batch_tokens in hypotheses for t in batch_tokens]
    return best, word_errors(texts, [r for batch in encoded.batches for r in batch.references])
