"""The greedy CTC recogniser (a ``ctc_kd`` Conformer: encoder + final CTC head, no InterCTC head, no attention
decoder) as an ONNX graph that ONNX Runtime runs and sherpa-onnx decodes as a *Zipformer CTC* model.

Why sherpa-onnx's Zipformer CTC model type: its contract is ours (filterbanks ``x``, ``x_lens`` in; ``log_probs``
with a static vocabulary dimension and their lengths out; 4x subsampling; batched), it reads no metadata, and with
the feature options below sherpa-onnx 2.0.1 computes exactly :func:`~fairseq_kd.data.fbank_dataset.compute_fbank`'s
filterbanks (kaldi-native-fbank on samples scaled to the 16-bit range; checked through a probe graph in
tests/deploy/test_onnx_graph.py). The WeNet CTC type adds Kaldi's dither (1.0) to every sample whatever the
configuration says (measured with the same probe: features of digital silence become noise, and the per-utterance
normalisation spreads that to every frame), the NeMo CTC type forces librosa mel banks and a Hann window.
Four options differ from sherpa-onnx's defaults, so :func:`sherpa_recognizer` builds the recognizer itself::

    FeatureExtractorConfig(sampling_rate=16000, feature_dim=80, low_freq=20, high_freq=0, dither=0,
                           snip_edges=True, normalize_samples=False)
    # defaults: high_freq=-400 (mel banks to 7600 Hz), snip_edges=False, normalize_samples=True (samples in [-1, 1])

The per-utterance normalisation is inside the graph, so nothing else is asked of the runtime.

Graph (opset 17; sherpa-onnx binds inputs and outputs by position and reads V from the output's shape)::

    x              N x T x F   float32  log-mel filterbanks, not normalised; frames t >= x_lens[n] are padding
                                        (any value: sherpa-onnx pads a batch with log(1e-10))
    x_lens         N           int64    valid frames per utterance
    log_probs      N x T' x V  float32  CTC log-probabilities (log_softmax), T' = ((T - 1) // 2 - 1) // 2
    log_probs_len  N           int64    valid output frames, ((x_lens - 1) // 2 - 1) // 2

Batch and length are dynamic (up to the encoder's 6000 relative positions: 24,000 input frames, 240 s). The
normalisation is :func:`~fairseq_kd.data.fbank_dataset.utterance_cmvn` over the ``L = x_lens[n]`` valid frames
of each utterance, per channel ``f``::

    mean_f = 1/L sum_t x[t, f],   std_f = sqrt(1/L sum_t (x[t, f] - mean_f)^2),
    x'[t, f] = (x[t, f] - mean_f) / max(std_f, 1e-5)   (t < L; padded frames are set to 0, as fairseq's collater)

so features that are normalised already (fairseq's batches) pass unchanged up to float rounding, and the same
graph serves the PyTorch-vs-ONNX Runtime benchmark. ``tokens.txt`` is the target dictionary in sherpa-onnx's
``symbol id`` format with the CTC blank (fairseq's ``<s>``) named ``<blk>`` and the word boundary ``|`` written
``▁`` (sherpa-onnx turns it into a space). The int8 variant is ONNX Runtime's dynamic quantisation (int8 weights
of the matrix products, activations quantised per batch at run time).
"""
import json
import logging
import os
import time
import warnings
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.fbank_dataset import FRAME_LENGTH_MS, FRAME_SHIFT_MS, compute_fbank, utterance_cmvn
from ..data.manifest import read_manifest
from ..decoding.base import ctc_blank_index
from ..decoding.greedy import ctc_greedy_search
from ..decoding.scoring import word_errors
from ..errors import DataError
from ..io_utils import atomic_write, read_json
from ..precision import use_bf16

INSTALL_HINT = "pip install onnx onnxruntime sherpa-onnx"
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model.int8.onnx"
TOKENS_FILE = "tokens.txt"
REPORT_FILE = "export.json"
OPSET = 17
TIMING_REPEATS = 3  # passes over the verification split per ONNX model; the fastest is reported
SUBSAMPLING_FACTOR = 4  # Conv2dSubsampling: two stride-2 convolutions
MAX_RELATIVE_POSITIONS = 6000  # ConformerEncoder.max_source_positions: output frames the graph supports
SHERPA_MODEL_TYPE = "zipformer_ctc"
SHERPA_BLANK = "<blk>"
SHERPA_WORD_BOUNDARY = "\u2581"  # sherpa-onnx's SymbolTable replaces a leading U+2581 by a space
# Kaldi filterbank options of compute_fbank that sherpa-onnx must be given (kaldi-native-fbank defaults otherwise)
LOW_FREQ, HIGH_FREQ, DITHER, SNIP_EDGES, NORMALIZE_SAMPLES = 20.0, 0.0, 0.0, True, False
FAIRSEQ_STRIPPED_SYMBOLS = frozenset({"</s>", "<pad>"})  # fairseq-generate drops them (and the blank) from hypotheses


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as e:
        raise ImportError(f"ONNX export and decoding need the package providing '{module}': {INSTALL_HINT}") from e


class CtcLogProbGraph(nn.Module):
    """What is exported: raw filterbanks ``N x T x F`` and lengths ``N`` -> CTC log-probabilities ``N x T' x V``
    and lengths ``N`` (see the module docstring for the normalisation), float32 whatever ``autocast_bf16`` says."""

    def __init__(self, model):
        super().__init__()
        self.encoder = model.encoder
        self.ctc_proj = model.ctc_proj

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor):
        valid = (torch.arange(x.size(1), device=x.device)[None, :] < x_lens[:, None]).unsqueeze(-1)  # N x T x 1
        frames = x_lens.clamp(min=1).to(x.dtype)[:, None, None]
        x = x.masked_fill(~valid, 0.0)  # whatever the padding holds (even inf or NaN)
        mean = x.sum(dim=1, keepdim=True) / frames
        centred = (x - mean).masked_fill(~valid, 0.0)
        std = ((centred * centred).sum(dim=1, keepdim=True) / frames).sqrt()
        features = centred / std.clamp(min=1e-5)
        states, padding_mask = self.encoder(features, ~valid.squeeze(-1))
        log_probs = F.log_softmax(self.ctc_proj(states[-1]), dim=-1).transpose(0, 1)  # N x T' x V
        return log_probs, (~padding_mask).sum(dim=1)


def check_exportable(model, checkpoint: str):
    if not (hasattr(model, "encoder") and hasattr(model, "ctc_proj")):
        raise DataError(f"{checkpoint}: a {type(model).__name__} cannot be exported: ONNX export covers the ctc_kd "
                        f"Conformer on filterbanks (model._name ctc_kd / ctc_kd_conformer_*); wav2vec_ctc_kd reads "
                        f"waveforms, which sherpa-onnx's CTC model types do not feed")


def sherpa_tokens(tgt_dict) -> List[str]:
    """``tokens.txt`` lines ``symbol id`` for the target dictionary (blank ``<blk>``, ``|`` -> ``▁``)."""
    blank = ctc_blank_index(tgt_dict)
    lines = []
    for index, symbol in enumerate(tgt_dict.symbols):
        if index == blank:
            symbol = SHERPA_BLANK
        elif symbol == "|":
            symbol = SHERPA_WORD_BOUNDARY
        elif not symbol or any(c.isspace() for c in symbol) or symbol == SHERPA_BLANK:
            raise DataError(f"target dictionary symbol {index} ({symbol!r}) cannot be written to {TOKENS_FILE}: "
                            f"symbols must be non-empty, without whitespace and other than {SHERPA_BLANK}")
        lines.append(f"{symbol} {index}")
    return lines


def export_graph(model, tgt_dict, sample_rate: int, path: str, source: str) -> None:
    """Write the float32 graph of ``model`` to ``path`` (atomically), with metadata that records the model type
    and feature options sherpa-onnx must be given (it reads none of them: :func:`sherpa_recognizer` does)."""
    onnx = _require("onnx")
    graph = CtcLogProbGraph(model).eval()
    num_mel_bins = model.cfg.input_feat_dim
    example = (torch.zeros(2, 100, num_mel_bins), torch.tensor([100, 60]))
    tmp = path + ".torch-export.tmp"
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter (dynamo=False) traces the relative-position table's size check once: the
            # graph keeps MAX_RELATIVE_POSITIONS, as the module docstring says
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, example, tmp, input_names=["x", "x_lens"],
                              output_names=["log_probs", "log_probs_len"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={"x": {0: "N", 1: "T"}, "x_lens": {0: "N"},
                                            "log_probs": {0: "N", 1: "T_out"}, "log_probs_len": {0: "N"}})
        proto = onnx.load(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    metadata = {
        "model_type": SHERPA_MODEL_TYPE, "vocab_size": len(tgt_dict), "subsampling_factor": SUBSAMPLING_FACTOR,
        "blank_id": ctc_blank_index(tgt_dict), "sample_rate": sample_rate, "feature_dim": num_mel_bins,
        "features": (f"kaldi fbank: {num_mel_bins} bins, low_freq {LOW_FREQ:g}, high_freq {HIGH_FREQ:g} (Nyquist), "
                     f"{FRAME_LENGTH_MS:g} ms window, {FRAME_SHIFT_MS:g} ms shift, povey window, dither {DITHER:g}, "
                     f"snip_edges {SNIP_EDGES}, samples x 32768 (normalize_samples {NORMALIZE_SAMPLES}); "
                     f"per-utterance mean/variance normalisation is in the graph"),
        "max_output_frames": MAX_RELATIVE_POSITIONS, "exported_from": os.path.abspath(source),
        "comment": "fairseq_kd ctc_kd greedy CTC model (fairseq_kd/deploy/onnx_ctc.py)",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    with atomic_write(path, "wb") as f:
        f.write(proto.SerializeToString())


def quantize_int8(src: str, dst: str) -> None:
    """ONNX Runtime's dynamic quantisation of ``src`` to ``dst`` (atomically; the metadata is kept): int8 weights
    of the matrix products, activations quantised per call, after ONNX Runtime's pre-processing (graph
    optimisation and ONNX shape inference, which it recommends before quantising)."""
    _require("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared, quantized = dst + ".prepared.tmp", dst + ".quantized.tmp"
    root_level = logging.root.level
    logging.root.setLevel(logging.WARNING)  # the quantiser logs a line per tensor to the root logger
    try:
        # symbolic shape inference cannot follow the dynamic relative-position slice; ONNX's own inference can
        quant_pre_process(src, prepared, skip_symbolic_shape=True)
        quantize_dynamic(prepared, quantized, weight_type=QuantType.QInt8)
        with open(quantized, "rb") as f, atomic_write(dst, "wb") as out:
            out.write(f.read())
    finally:
        logging.root.setLevel(root_level)
        for tmp in (prepared, quantized):
            if os.path.exists(tmp):
                os.unlink(tmp)


def ort_session(path: str, threads: int):
    """An ONNX Runtime CPU session of ``path`` with ``threads`` intra-op threads (one inter-op thread)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class OnnxCtcEncoder:
    """An exported graph behind the model interface :func:`~fairseq_kd.decoding.evaluation.encode_split` uses:
    ``ctc_emissions(source B x T x F, padding_mask B x T)`` -> log-probabilities ``B x T' x V`` and lengths
    ``B`` (torch tensors), so ONNX Runtime decodes the very batches PyTorch does."""

    def __init__(self, path: str, threads: int, max_positions=None):
        self.path = path
        self.session = ort_session(path, threads)
        self._max_positions = max_positions

    def max_positions(self):
        return self._max_positions

    def ctc_emissions(self, source: torch.Tensor, padding_mask: Optional[torch.Tensor] = None, **unused):
        lengths = (torch.full(source.shape[:1], source.size(1)) if padding_mask is None
                   else (~padding_mask).sum(dim=1))
        log_probs, out_lengths = self.session.run(None, {"x": source.float().numpy(), "x_lens": lengths.numpy()})
        return torch.from_numpy(log_probs), torch.from_numpy(out_lengths)


def read_metadata(model_path: str) -> Dict[str, str]:
    onnx = _require("onnx")
    if not os.path.isfile(model_path):
        raise DataError(f"{model_path}: no such ONNX model; export one with scripts/export_onnx.py CHECKPOINT OUT_DIR")
    return {entry.key: entry.value for entry in onnx.load(model_path, load_external_data=False).metadata_props}


def sherpa_recognizer(model_path: str, tokens_path: Optional[str] = None, threads: int = 1):
    """sherpa-onnx's ``OfflineRecognizer`` for an exported model: a Zipformer CTC model with greedy search and the
    feature options of :func:`~fairseq_kd.data.fbank_dataset.compute_fbank` (sample rate and bins from the model's
    metadata). ``from_zipformer_ctc`` cannot set them, so the configuration is built from sherpa-onnx's config
    classes, as ``from_zipformer_ctc`` builds it."""
    sherpa_onnx = _require("sherpa_onnx")
    metadata = read_metadata(model_path)
    if metadata.get("model_type") != SHERPA_MODEL_TYPE or "feature_dim" not in metadata:
        raise DataError(f"{model_path}: not a model written by scripts/export_onnx.py (no {SHERPA_MODEL_TYPE} "
                        f"metadata); export the checkpoint with scripts/export_onnx.py CHECKPOINT OUT_DIR")
    tokens_path = tokens_path or os.path.join(os.path.dirname(model_path), TOKENS_FILE)
    if not os.path.isfile(tokens_path):
        raise DataError(f"{tokens_path}: tokens file not found; scripts/export_onnx.py writes it beside the model")
    features = sherpa_onnx.FeatureExtractorConfig(
        sampling_rate=int(metadata["sample_rate"]), feature_dim=int(metadata["feature_dim"]), low_freq=LOW_FREQ,
        high_freq=HIGH_FREQ, dither=DITHER, snip_edges=SNIP_EDGES, normalize_samples=NORMALIZE_SAMPLES)
    model_config = sherpa_onnx.OfflineModelConfig(
        zipformer_ctc=sherpa_onnx.OfflineZipformerCtcModelConfig(model=model_path), tokens=tokens_path,
        num_threads=threads, provider="cpu", model_type=SHERPA_MODEL_TYPE)
    config = sherpa_onnx.OfflineRecognizerConfig(feat_config=features, model_config=model_config,
                                                 decoding_method="greedy_search")
    recognizer = sherpa_onnx.OfflineRecognizer.__new__(sherpa_onnx.OfflineRecognizer)
    recognizer.recognizer = sherpa_onnx.lib._sherpa_onnx.OfflineRecognizer(config)
    recognizer.config = config
    return recognizer


def read_wav(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 samples in [-1, 1] of ``path`` (as fairseq's audio dataset reads them)."""
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32")
    if rate != sample_rate or samples.ndim != 1:
        raise DataError(f"{path}: {rate} Hz, {samples.ndim} channel(s); the model takes mono {sample_rate} Hz audio: "
                        f"convert it (e.g. sox IN -r {sample_rate} -c 1 OUT.wav)")
    return samples


class SherpaResult(NamedTuple):
    text: str            # sherpa-onnx's text: the symbols concatenated, ▁ as a space
    tokens: List[int]    # emitted label ids
    frames: List[int]    # output frame of each emitted label


def sherpa_transcribe(recognizer, waveforms: Sequence[np.ndarray], sample_rate: int, tokens_path: str,
                      batch_size: int = 8) -> List[SherpaResult]:
    """Decode ``waveforms`` with sherpa-onnx, ``batch_size`` at a time (one padded batch through the graph each):
    a :class:`SherpaResult` per waveform."""
    symbol_ids = {}
    with open(tokens_path, encoding="utf-8") as f:
        for line in f:
            symbol, index = line.split()
            symbol_ids[" " + symbol[1:] if symbol.startswith(SHERPA_WORD_BOUNDARY) else symbol] = int(index)
    frame_seconds = SUBSAMPLING_FACTOR * FRAME_SHIFT_MS / 1000
    results = []
    for first in range(0, len(waveforms), batch_size):
        streams = []
        for samples in waveforms[first: first + batch_size]:
            streams.append(recognizer.create_stream())
            streams[-1].accept_waveform(sample_rate, samples)
        recognizer.decode_streams(streams)
        results += [SherpaResult(s.result.text, [symbol_ids[t] for t in s.result.tokens],
                                 [round(t / frame_seconds) for t in s.result.timestamps]) for s in streams]
    return results


def words_of(token_ids: Sequence[int], tgt_dict) -> str:
    """fairseq-generate's words of a greedy label sequence (``H-`` line with ``--post-process letter``):
    bos, eos and pad dropped, ``|`` a space, spaces normalised."""
    skip = {tgt_dict.bos(), tgt_dict.eos(), tgt_dict.pad()}
    letters = "".join(tgt_dict[i] for i in token_ids if i not in skip)
    return " ".join(letters.replace("|", " ").split())


class LabelledAudio(NamedTuple):
    path: str
    reference: str


def read_split(data: str, subset: str, labels: str) -> List[LabelledAudio]:
    """Audio paths and reference words of ``{data}/{subset}.tsv`` and ``.{labels}`` (letters)."""
    root, entries = read_manifest(os.path.join(data, f"{subset}.tsv"))
    label_path = os.path.join(data, f"{subset}.{labels}")
    if not os.path.isfile(label_path):
        raise DataError(f"{label_path}: labels not found; the split needs {subset}.tsv and {subset}.{labels}")
    with open(label_path, encoding="utf-8") as f:
        references = [" ".join(line.replace(" ", "").replace("|", " ").split()) for line in f.read().splitlines()]
    if len(references) != len(entries):
        raise DataError(f"{label_path}: {len(references)} lines for {len(entries)} utterances in {subset}.tsv; "
                        f"regenerate the split with scripts/prepare_manifest.py")
    return [LabelledAudio(os.path.join(root, relpath), ref) for (relpath, _, _), ref in zip(entries, references)]


class GreedyPath(NamedTuple):
    log_probs: torch.Tensor  # T' x V, valid frames only
    tokens: List[int]        # emitted labels
    frames: List[int]        # output frame of each


def greedy_path(log_probs: torch.Tensor, blank: int) -> GreedyPath:
    out = ctc_greedy_search(log_probs[None], torch.tensor([log_probs.size(0)]), blank)
    return GreedyPath(log_probs, out.tokens[0].tolist(), out.frames[0].tolist())


def share(flags) -> float:
    flags = list(flags)
    return sum(flags) / max(len(flags), 1)


def agreement_with_fairseq_generate(words: Sequence[str], generated: Optional[Dict[int, str]]) -> dict:
    """``same_words_as_fairseq_generate``: the share of the utterances fairseq-generate decoded (``generated``: its
    hypothesis per manifest line, from ``--decoding-summary``) where ``words`` (in manifest order) are the same;
    nothing without ``generated``."""
    if generated is None:
        return {}
    return {"same_words_as_fairseq_generate": share(words[i] == hypothesis for i, hypothesis in generated.items())}


def read_generated(summary_path: str, num_utterances: int) -> Dict[int, str]:
    """``{manifest line: words}`` of a fairseq-generate ``--decoding-summary`` file of the same split."""
    summary = read_json(summary_path)
    records = summary.get("per_utterance")
    if not records:
        raise DataError(f"{summary_path}: no per-utterance records (write it with fairseq-generate "
                        f"--decoding-summary, fairseq_kd/decoding/summary.py)")
    generated = {int(r["id"]): " ".join(r["hypothesis"].split()) for r in records}
    outside = [i for i in generated if not 0 <= i < num_utterances]
    if outside:
        raise DataError(f"{summary_path}: utterance id {outside[0]} but the split has {num_utterances} utterances: "
                        f"a decoding of another split")
    return generated


def compare_onnx_runtime(path: str, threads: int, features: Sequence[np.ndarray], reference: Sequence[GreedyPath],
                         blank: int, tgt_dict, references: Sequence[str],
                         generated: Optional[Dict[int, str]] = None) -> dict:
    """ONNX Runtime on raw filterbanks, one utterance at a time, against PyTorch's greedy paths ``reference`` (and
    fairseq-generate's words, ``generated``)."""
    session, paths = ort_session(path, threads), []
    for raw, expected in zip(features, reference):
        log_probs, lengths = session.run(None, {"x": raw[None], "x_lens": np.array([len(raw)], dtype=np.int64)})
        paths.append(greedy_path(torch.from_numpy(log_probs[0, : lengths[0]]), blank))
        if paths[-1].log_probs.shape != expected.log_probs.shape:
            raise AssertionError(f"{path}: {tuple(paths[-1].log_probs.shape)} log-probabilities where PyTorch gives "
                                 f"{tuple(expected.log_probs.shape)}")
    differences = [(p.log_probs - e.log_probs).abs().max().item() for p, e in zip(paths, reference) if len(p.log_probs)]
    words = [words_of(p.tokens, tgt_dict) for p in paths]
    return {"max_abs_log_prob_diff": max(differences, default=0.0),
            "argmax_frames_agree": share(a == b for p, e in zip(paths, reference)
                                         for a, b in zip(p.log_probs.argmax(-1).tolist(),
                                                         e.log_probs.argmax(-1).tolist())),
            "same_label_path": share(p.tokens == e.tokens for p, e in zip(paths, reference)),
            "same_words": share(w == words_of(e.tokens, tgt_dict) for w, e in zip(words, reference)),
            **agreement_with_fairseq_generate(words, generated),
            "wer": round(word_errors(words, references).wer, 2)}


def fastest_passes(paths: Dict[str, str], threads: int, features: Sequence[np.ndarray], repeats: int) -> dict:
    """Seconds of the fastest of ``repeats`` passes of each ONNX model over ``features`` (one utterance at a time),
    the models' passes interleaved so that a busy machine slows them alike."""
    sessions = {name: ort_session(path, threads) for name, path in paths.items()}
    best = dict.fromkeys(paths, float("inf"))
    for _ in range(repeats):
        for name, session in sessions.items():
            start = time.perf_counter()
            for raw in features:
                session.run(None, {"x": raw[None], "x_lens": np.array([len(raw)], dtype=np.int64)})
            best[name] = min(best[name], time.perf_counter() - start)
    return best


@torch.no_grad()
def verify(model, tgt_dict, sample_rate: int, out_dir: str, utterances: Sequence[LabelledAudio], threads: int,
           generated: Optional[Dict[int, str]] = None) -> dict:
    """Decode ``utterances`` one at a time with PyTorch and ONNX Runtime float32 and int8, and with sherpa-onnx
    (8 at a time: its batches, padded), and compare with PyTorch greedy decoding, whose output is fairseq-generate's
    (the same ``ctc_emissions`` and greedy search; fairseq-generate pads its batches, which may move a
    log-probability in the last digits), and with ``generated``, fairseq-generate's own words where given
    (:func:`read_generated`).

    Per runtime: the max abs difference of the log-probabilities over valid frames, the share of frames whose
    argmax agrees, the shares of utterances with PyTorch's label path (sherpa-onnx: labels and frames) and words,
    the WER and the seconds (encoder, ONNX Runtime: the fastest of TIMING_REPEATS passes; sherpa-onnx: filterbanks
    + encoder + search). The int8 model is deleted unless it is faster than float32.
    """
    blank = ctc_blank_index(tgt_dict)
    waveforms = [read_wav(u.path, sample_rate) for u in utterances]
    features = [compute_fbank(w, sample_rate, model.cfg.input_feat_dim) for w in waveforms]
    references = [u.reference for u in utterances]
    reference, seconds = [], 0.0
    for raw in features:
        start = time.perf_counter()
        log_probs, lengths = model.ctc_emissions(torch.from_numpy(utterance_cmvn(raw))[None])
        seconds += time.perf_counter() - start
        reference.append(greedy_path(log_probs[0, : lengths[0]], blank))
    reference_words = [words_of(p.tokens, tgt_dict) for p in reference]
    report = {"utterances": len(utterances), "threads": threads,
              "pytorch": {**agreement_with_fairseq_generate(reference_words, generated),
                          "wer": round(word_errors(reference_words, references).wer, 2),
                          "encoder_seconds": round(seconds, 3)}}
    paths = {name: os.path.join(out_dir, file)
             for name, file in (("onnxruntime_float32", MODEL_FILE), ("onnxruntime_int8", INT8_MODEL_FILE))
             if os.path.isfile(os.path.join(out_dir, file))}
    for name, path in paths.items():
        report[name] = compare_onnx_runtime(path, threads, features, reference, blank, tgt_dict, references,
                                            generated)
    for name, seconds in fastest_passes(paths, threads, features, TIMING_REPEATS).items():
        report[name]["encoder_seconds"] = round(seconds, 3)
    if "onnxruntime_int8" in report:
        int8 = report["onnxruntime_int8"]
        int8["kept"] = int8["encoder_seconds"] < report["onnxruntime_float32"]["encoder_seconds"]
        if not int8["kept"]:
            os.unlink(os.path.join(out_dir, INT8_MODEL_FILE))

    tokens_path = os.path.join(out_dir, TOKENS_FILE)
    recognizer = sherpa_recognizer(os.path.join(out_dir, MODEL_FILE), tokens_path, threads)
    start = time.perf_counter()
    results = sherpa_transcribe(recognizer, waveforms, sample_rate, tokens_path)
    seconds = time.perf_counter() - start
    words = [sherpa_words(r.text) for r in results]
    report["sherpa_onnx_float32"] = {
        "same_label_path": share((r.tokens, r.frames) == (p.tokens, p.frames) for r, p in zip(results, reference)),
        "same_words": share(a == b for a, b in zip(words, reference_words)),
        **agreement_with_fairseq_generate(words, generated),
        "wer": round(word_errors(words, references).wer, 2), "features_encoder_search_seconds": round(seconds, 3)}
    report["examples"] = [{"path": u.path, "reference": u.reference, "pytorch": p, "sherpa_onnx": w}
                          for u, p, w in list(zip(utterances, reference_words, words))[:3]]
    return report


def sherpa_words(text: str, strip_symbols=FAIRSEQ_STRIPPED_SYMBOLS) -> str:
    """Words of sherpa-onnx's text as fairseq-generate writes them: the symbols fairseq strips from hypotheses
    (eos, pad: a barely trained model may emit them) removed, spaces normalised."""
    for symbol in strip_symbols:
        text = text.replace(symbol, "")
    return " ".join(text.split())


def export(checkpoint: str, out_dir: str, data: Optional[str] = None, int8: bool = True,
           verify_subset: Optional[str] = None, threads: int = 1, fairseq_summary: Optional[str] = None) -> dict:
    """Export ``checkpoint`` to ``out_dir`` (model.onnx, model.int8.onnx, tokens.txt) and, with
    ``verify_subset``, check it against PyTorch on that split (:func:`verify`, written to export.json) and against
    ``fairseq_summary``, fairseq-generate's ``--decoding-summary`` of the same split, where given."""
    from ..decoding.evaluation import load_model

    model, task = load_model(checkpoint, data, "cpu")
    check_exportable(model, checkpoint)
    # how fairseq-generate runs this checkpoint on this CPU (model.autocast_bf16 auto: bfloat16 with AVX512-BF16/AMX)
    fairseq_precision = "bfloat16" if use_bf16(model.cfg.autocast_bf16, "cpu", "model.autocast_bf16") else "float32"
    model.cfg.autocast_bf16 = False  # compare float32 with float32
    tgt_dict, task_cfg = task.target_dictionary, task.saved_task_cfg
    sample_rate = task_cfg.sample_rate
    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, MODEL_FILE)
    export_graph(model, tgt_dict, sample_rate, model_path, checkpoint)
    with atomic_write(os.path.join(out_dir, TOKENS_FILE)) as f:
        f.write("\n".join(sherpa_tokens(tgt_dict)) + "\n")
    int8_path = os.path.join(out_dir, INT8_MODEL_FILE)
    if int8:
        quantize_int8(model_path, int8_path)
    elif os.path.exists(int8_path):
        os.unlink(int8_path)  # from an earlier export: not of this checkpoint
    verification = None
    if verify_subset:
        utterances = read_split(data or task.cfg.data, verify_subset, task_cfg.labels)
        generated = read_generated(fairseq_summary, len(utterances)) if fairseq_summary else None
        verification = {"subset": verify_subset, **verify(model, tgt_dict, sample_rate, out_dir, utterances, threads,
                                                           generated)}
        if generated is not None:
            verification["fairseq_generate"] = {"summary": os.path.abspath(fairseq_summary),
                                                "utterances": len(generated)}
    paths = {name: os.path.join(out_dir, name) for name in (MODEL_FILE, INT8_MODEL_FILE, TOKENS_FILE)}
    report = {"checkpoint": os.path.abspath(checkpoint), "fairseq_generate_precision_on_this_cpu": fairseq_precision,
              "files": {name: os.path.getsize(path) for name, path in paths.items() if os.path.exists(path)},
              "verification": verification}
    with atomic_write(os.path.join(out_dir, REPORT_FILE)) as f:
        json.dump(report, f, indent=1)
    return report
