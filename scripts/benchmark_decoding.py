#!/usr/bin/env python3
"""Decoding benchmark: batched greedy CTC vs CTC beam search + KenLM shallow fusion, one checkpoint, one split.

  python scripts/benchmark_decoding.py --path /tmp/exp3/checkpoint_best.pt --data /tmp/synth2 --subset test \\
      --kenlm-model /tmp/lm/web_4gram/lm.bin --lexicon /tmp/lm/web_4gram/lexicon.txt \\
      --tuned /tmp/lm/web_4gram/tuned.json --beams 10 50 100 --threads 2

What is timed. All batches are loaded first (audio reading and filterbanks are the same for every decoder and
are excluded). The encoder (``model.ctc_emissions``: encoder + final CTC head, batched, --threads torch
threads) runs once over the split after one untimed warm-up batch; every decoder then searches the same
emissions. Greedy is batched tensor ops on the model's device (incl. copying the labels to the host);
beam + LM runs flashlight's C++ lexicon decoder utterance by utterance on the CPU (one thread: the binding
holds the GIL), incl. the device->host copy of the emissions. ``total = encoder + search``; RTF = total /
audio duration; "x greedy" = total / greedy total (the speed ratio); "search x" = search / greedy search.
With --repeats N each search is run N times and the fastest run is reported (the encoder likewise), which
damps the noise of a shared machine; column "enc 1st s" is the encoder's first pass (after the warm-up batch), the
one that meets every batch shape for the first time.

--encoder-dtypes float32 bfloat16 int8 repeats everything under bfloat16 autocast (``model.autocast_bf16``: what
fairseq-generate runs by default on a CPU with AVX512-BF16 or AMX, and what the recipe trains with there) and with
the encoder's linear layers dynamically quantised to int8 (torch.ao.quantization.quantize_dynamic: int8 weights,
activations quantised per batch; CPU only; the convolutions stay float32). Every row's "x greedy" is against the
first encoder's greedy total (float32 when given), "enc x" is the first encoder's seconds / this row's (the encoder
speed-up).

--onnx-dir DIR (the export of the same checkpoint by scripts/export_onnx.py) adds, after the PyTorch rows, ONNX
Runtime float32 and int8 (where DIR has model.int8.onnx) rows: the same batches (the graph re-normalises the
already normalised filterbanks, which changes nothing), the same --threads (intra-op; one inter-op thread), greedy
and every beam + LM on their emissions; and one sherpa-onnx greedy row on the same utterances' audio files
(--threads threads, the same batches), whose time covers filterbanks, encoder and search. Column "runtime" (JSON
"runtime": pytorch, onnxruntime, sherpa-onnx) names them.

--device cuda runs the encoder and greedy search on the GPU when one exists. Use the lm_weight/word_score
tuned on dev (--tuned, from scripts/tune_lm_weights.py) and never tune on the split benchmarked here.
"""
import argparse
import json
import os
import time
import warnings

import torch

from fairseq_kd.decoding.base import ctc_blank_index
from fairseq_kd.decoding.beam_lm import CtcBeamLmDecoder, KenLmLexicon
from fairseq_kd.decoding.evaluation import (
    add_search_arguments,
    decoder_search,
    encode_split,
    greedy_search,
    load_for_decoding,
    search_split,
)
from fairseq_kd.decoding.scoring import word_errors
from fairseq_kd.deploy import onnx_ctc
from fairseq_kd.io_utils import atomic_write
from fairseq_kd.precision import cpu_has_bf16_instructions

ENCODER_DTYPES = ["float32", "bfloat16", "int8"]  # in this order: int8 quantises the model in place


def quantize_int8_(model):
    """``model`` with its nn.Linear layers dynamically quantised to int8, in place (no second copy of the model in
    memory: every float32 row is decoded before)."""
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao, still working
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def set_autocast_bf16_(model, enabled: bool):
    """``model`` with (bfloat16 row) or without bfloat16 autocast (``model.autocast_bf16``, which by default turns it
    on for CPUs with AVX512-BF16 or AMX), in place: the float32 rows are float32, and int8's quantised linear layers
    take float32 activations only."""
    if not hasattr(getattr(model, "cfg", None), "autocast_bf16"):
        if enabled:
            raise SystemExit("--encoder-dtypes bfloat16: this model has no model.autocast_bf16 option")
        return
    model.cfg.autocast_bf16 = enabled


def sherpa_row(onnx_dir: str, task, subset: str, encoded, threads: int, repeats: int) -> dict:
    """sherpa-onnx greedy decoding of the batches of ``encoded`` from their audio files (the fastest of ``repeats``
    runs); its time covers filterbanks, encoder and search."""
    audio = task.dataset(subset)
    while not hasattr(audio, "fnames"):  # AddTargetDataset(FbankFeatureDataset(FileAudioDataset))
        audio = audio.dataset
    sample_rate = task.cfg.sample_rate
    batches = [[onnx_ctc.read_wav(dataset_audio_path(audio, i), sample_rate) for i in batch.ids]
               for batch in encoded.batches]
    model_path, tokens_path = os.path.join(onnx_dir, onnx_ctc.MODEL_FILE), os.path.join(onnx_dir, onnx_ctc.TOKENS_FILE)
    recognizer = onnx_ctc.sherpa_recognizer(model_path, tokens_path, threads)
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        results = [r for waveforms in batches
                   for r in onnx_ctc.sherpa_transcribe(recognizer, waveforms, sample_rate, tokens_path, len(waveforms))]
        passes.append(time.perf_counter() - start)
    hypotheses = [onnx_ctc.sherpa_words(r.text) for r in results]
    return {"runtime": "sherpa-onnx", "encoder_dtype": "float32", "quantised_linears": 0,
            "encoder_seconds": min(passes), "encoder_first_pass_seconds": passes[0],
            "decoder": "greedy", "beam": 1, "search_threads": threads, "search_seconds": 0.0,
            "errors": word_errors(hypotheses, [r for batch in encoded.batches for r in batch.references]),
            "includes_features": True}


def dataset_audio_path(audio, index: int) -> str:
    """Audio file of item ``index`` of fairseq's ``FileAudioDataset`` (its file names may be compressed)."""
    name = audio.fnames[index]
    name = name if isinstance(audio.fnames, list) else name.as_py()
    return os.path.join(audio.root_dir, audio.text_compressor.decompress(name))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_arguments(parser, "test", "split to decode")
    parser.add_argument("--tuned", help="JSON from scripts/tune_lm_weights.py (lm_weight, word_score)")
    parser.add_argument("--lm-weight", type=float, help="overrides --tuned")
    parser.add_argument("--word-score", type=float, help="overrides --tuned")
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--batch-size", type=int, help="utterances per batch (at most)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeats", type=int, default=1, help="report the fastest of this many runs")
    parser.add_argument("--encoder-dtypes", nargs="+", default=["float32"], choices=ENCODER_DTYPES,
                        help="bfloat16: also decode under bfloat16 autocast; int8: also decode with the encoder's "
                        "linear layers dynamically quantised (CPU)")
    parser.add_argument("--onnx-dir", help="also decode with the ONNX export of --path in this folder "
                        "(scripts/export_onnx.py): ONNX Runtime float32 (and int8 where exported) on the same "
                        "batches, and sherpa-onnx greedy from the audio files")
    parser.add_argument("--json", help="also write the table here (atomically)")
    args = parser.parse_args()

    tuned = {}
    if args.tuned:
        with open(args.tuned, encoding="utf-8") as f:
            tuned = json.load(f)
        if tuned.get("subset") == args.subset:
            parser.error(f"{args.tuned} was tuned on '{args.subset}', the split benchmarked here")
    lm_weight = args.lm_weight if args.lm_weight is not None else tuned.get("lm_weight")
    word_score = args.word_score if args.word_score is not None else tuned.get("word_score")
    if lm_weight is None or word_score is None:
        parser.error("give --tuned or both --lm-weight and --word-score")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU visible to torch")
    if args.onnx_dir and args.device != "cpu":
        parser.error("--onnx-dir: ONNX Runtime and sherpa-onnx rows run on the CPU (--device cpu)")
    if "int8" in args.encoder_dtypes and not args.device == "cpu":
        parser.error("--encoder-dtypes int8: dynamic int8 quantisation runs on the CPU only (--device cpu)")
    torch.set_num_threads(args.threads)

    model, task = load_for_decoding(args.path, args.data, args.subset, args.device)
    set_autocast_bf16_(model, False)
    tgt_dict = task.target_dictionary
    blank = ctc_blank_index(tgt_dict)
    resources = KenLmLexicon(tgt_dict, args.lexicon, args.kenlm_model)
    rows = []

    def decode(encoder, runtime: str, dtype: str, quantised: int):
        """Rows of one encoder: its emissions of the split (fastest of --repeats), searched greedily and by every
        beam + LM; returns the emissions."""
        runs = [encode_split(encoder, task, args.subset, args.max_tokens, args.batch_size, args.device)
                for _ in range(args.repeats)]
        encoded = runs[0]
        encoder_seconds = min(run.encoder_seconds for run in runs)
        common = {"runtime": runtime, "encoder_dtype": dtype, "quantised_linears": quantised,
                  "encoder_seconds": encoder_seconds, "encoder_first_pass_seconds": runs[0].encoder_seconds}
        seconds, errors = search_split(greedy_search(blank), encoded, tgt_dict, args.device, args.repeats)
        rows.append({**common, "decoder": "greedy", "beam": 1, "search_threads": args.threads,
                     "search_seconds": seconds, "errors": errors})
        for beam in args.beams:
            decoder = CtcBeamLmDecoder(tgt_dict, blank, resources, beam_size=beam, lm_weight=lm_weight,
                                       word_score=word_score, beam_threshold=args.beam_threshold)
            seconds, errors = search_split(decoder_search(decoder), encoded, tgt_dict, args.device, args.repeats)
            rows.append({**common, "decoder": "beam_lm", "beam": beam, "search_threads": 1,
                         "search_seconds": seconds, "errors": errors})
        return encoded

    for dtype in sorted(set(args.encoder_dtypes), key=ENCODER_DTYPES.index):  # int8 quantises in place: last
        set_autocast_bf16_(model, dtype == "bfloat16")
        encoder = quantize_int8_(model) if dtype == "int8" else model
        quantised = sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in encoder.modules())
        encoded = decode(encoder, "pytorch", dtype, quantised)
    set_autocast_bf16_(model, False)
    if args.onnx_dir:
        for dtype, file in (("float32", onnx_ctc.MODEL_FILE), ("int8", onnx_ctc.INT8_MODEL_FILE)):
            path = os.path.join(args.onnx_dir, file)
            if os.path.isfile(path):
                decode(onnx_ctc.OnnxCtcEncoder(path, args.threads, model.max_positions()), "onnxruntime", dtype, 0)
        rows.append(sherpa_row(args.onnx_dir, task, args.subset, encoded, args.threads, args.repeats))
    batch_size = encoded.num_utterances / len(encoded.batches)
    greedy = rows[0]  # the first encoder dtype's greedy decoding: the reference of every ratio
    greedy_total = greedy["encoder_seconds"] + greedy["search_seconds"]
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"cpu ({os.cpu_count()} cores, {'' if cpu_has_bf16_instructions() else 'no '}AVX512-BF16/AMX)"
    print(f"\n{args.subset}: {encoded.num_utterances} utterances, {encoded.audio_seconds:.1f} s audio, "
          f"{rows[0]['errors'].words} words; {len(encoded.batches)} batches (mean {batch_size:.1f} utterances, "
          f"max_tokens {args.max_tokens}, batch_size {args.batch_size}); device {device}; "
          f"torch threads {args.threads}; "
          f"LM {args.kenlm_model} lm_weight {lm_weight} word_score {word_score}; fastest of {args.repeats}; "
          f"load {os.getloadavg()[0]:.2f}")
    header = (f"{'encoder':<8} {'decoder':<8} {'beam':>4} {'WER':>6} {'encoder s':>9} {'search s':>9} {'total s':>8} "
              f"{'RTF':>7} {'x greedy':>8} {'search x':>8} {'batch':>5} {'threads enc/search':>18} {'enc x':>5} "
              f"{'enc 1st s':>9} runtime")
    print(header)
    table = []
    for row in rows:
        encoder_seconds = row["encoder_seconds"]
        total = encoder_seconds + row["search_seconds"]
        entry = {"runtime": row["runtime"], "encoder_dtype": row["encoder_dtype"],
                 "quantised_linears": row["quantised_linears"],
                 "decoder": row["decoder"], "beam": row["beam"],
                 "wer": round(row["errors"].wer, 2),
                 "encoder_seconds": round(encoder_seconds, 3), "search_seconds": round(row["search_seconds"], 3),
                 "total_seconds": round(total, 3), "rtf": round(total / encoded.audio_seconds, 5),
                 "speed_ratio_vs_greedy": round(total / greedy_total, 2),
                 "search_ratio_vs_greedy": round(row["search_seconds"] / greedy["search_seconds"], 1),
                 "mean_batch_utterances": round(batch_size, 1),
                 "encoder_threads": args.threads, "search_threads": row["search_threads"],
                 "encoder_speedup_vs_first": round(greedy["encoder_seconds"] / max(encoder_seconds, 1e-9), 2),
                 "encoder_first_pass_seconds": round(row.get("encoder_first_pass_seconds", encoder_seconds), 3),
                 "includes_features": row.get("includes_features", False)}
        table.append(entry)
        print(f"{entry['encoder_dtype']:<8} {entry['decoder']:<8} {entry['beam']:>4} {entry['wer']:>6.2f} "
              f"{encoder_seconds:>9.2f} "
              f"{row['search_seconds']:>9.2f} {total:>8.2f} {entry['rtf']:>7.4f} "
              f"{entry['speed_ratio_vs_greedy']:>8.2f} {entry['search_ratio_vs_greedy']:>8.1f} {batch_size:>5.1f} "
              f"{args.threads:>9}/{row['search_threads']:<8} {entry['encoder_speedup_vs_first']:>5.2f} "
              f"{entry['encoder_first_pass_seconds']:>9.2f} {row['runtime']}"
              + (" (time: filterbanks + encoder + search)" if entry["includes_features"] else ""))
    if args.json:
        with atomic_write(args.json) as f:
            json.dump({"subset": args.subset, "checkpoint": os.path.abspath(args.path), "device": device,
                       "measured_at": time.strftime("%Y-%m-%d %H:%M %Z"),
                       "audio_seconds": encoded.audio_seconds, "utterances": encoded.num_utterances,
                       "lm_weight": lm_weight, "word_score": word_score, "load_average": os.getloadavg(),
                       "rows": table}, f, indent=1)


if __name__ == "__main__":
    main()
