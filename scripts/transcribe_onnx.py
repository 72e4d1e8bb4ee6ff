#!/usr/bin/env python3
"""Transcribe audio files with sherpa-onnx's OfflineRecognizer on a model exported by scripts/export_onnx.py:
greedy CTC, no fairseq and no PyTorch needed at run time (only sherpa-onnx, soundfile and onnx for the metadata).

  python scripts/transcribe_onnx.py exp/xs_interaedkd/onnx a.wav b.wav            # model.onnx
  python scripts/transcribe_onnx.py exp/xs_interaedkd/onnx --int8 --threads 2 *.wav

Prints ``path<TAB>words`` per file, the words as fairseq-generate writes them (its ``H-`` line with
``--post-process letter``). Audio: mono, at the model's sample rate (16 kHz). The features sherpa-onnx is told to
compute (Kaldi filterbanks with high_freq=0 and snip_edges=True): fairseq_kd/deploy/onnx_ctc.py, docs/deploy.md.
"""
import argparse
import os
import sys

from fairseq_kd.deploy.onnx_ctc import (
    INT8_MODEL_FILE,
    MODEL_FILE,
    TOKENS_FILE,
    read_metadata,
    read_wav,
    sherpa_recognizer,
    sherpa_transcribe,
    sherpa_words,
)
from fairseq_kd.errors import DataError


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="output folder of scripts/export_onnx.py (model.onnx, tokens.txt)")
    parser.add_argument("audio", nargs="+", help="audio files (wav, flac)")
    parser.add_argument("--int8", action="store_true", help=f"use {INT8_MODEL_FILE} instead of {MODEL_FILE}")
    parser.add_argument("--threads", type=int, default=1, help="sherpa-onnx threads")
    parser.add_argument("--batch-size", type=int, default=8, help="files decoded together (one padded batch)")
    args = parser.parse_args()
    model_path = os.path.join(args.model_dir, INT8_MODEL_FILE if args.int8 else MODEL_FILE)
    tokens_path = os.path.join(args.model_dir, TOKENS_FILE)
    try:
        sample_rate = int(read_metadata(model_path).get("sample_rate", 16000))
        recognizer = sherpa_recognizer(model_path, tokens_path, args.threads)
        waveforms = [read_wav(path, sample_rate) for path in args.audio]
    except DataError as e:
        sys.exit(f"error: {e}")
    for path, result in zip(args.audio, sherpa_transcribe(recognizer, waveforms, sample_rate, tokens_path,
                                                                    args.batch_size)):
        print(f"{path}\t{sherpa_words(result.text)}")


if __name__ == "__main__":
    main()
