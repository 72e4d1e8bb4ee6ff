#!/usr/bin/env python3
"""Diagnostics of a distillation checkpoint: does the attention decoder listen to the audio?

  python scripts/diagnose_kd.py --path exp/xs_interctc_interaedkd/checkpoint_best.pt --data data/synth \\
      --sidecars data/synth/teacher --subset valid --out exp/xs_interctc_interaedkd/diagnostics_valid.json

On --subset, per attention-decoder tap: KL to the teacher's top-k and CE to the reference WordPieces (bits per
teacher token) with the true encoder states, with another utterance's (rolled by one within the batch) and with
zeros, and the "audio worth" KL(shuffled) - KL(true); per encoder block, the norm ratio and cosine of the
gradients of alpha * AED and (1 - alpha) * CTC_all (CTC + InterCTC) with respect to the block's parameters over
the first --grad-batches batches; per tap and decoder layer, how monotonically the cross-attention moves through
the audio; per sidecar split (--teacher-splits), the teacher's top-1 accuracy, reference in top-k, top-k mass
and entropy. Definitions: fairseq_kd/diagnostics/kd_diagnostics.py. Writes the JSON atomically to --out and
prints markdown tables. The checkpoint must have its attention decoder (a training checkpoint of a config with
model.aed_layers); runs in eval mode, on the CPU unless --device cuda.
"""
import argparse
import json
import sys

import torch

from fairseq_kd.diagnostics.kd_diagnostics import markdown_report, run_diagnostics
from fairseq_kd.errors import DataError
from fairseq_kd.io_utils import atomic_write


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", required=True, help="training checkpoint with the attention decoder")
    parser.add_argument("--data", help="data directory (default: the checkpoint's task.data)")
    parser.add_argument("--sidecars", help="teacher sidecar directory (default: the checkpoint's task.kd_sidecar_dir)")
    parser.add_argument("--subset", default="valid", help="split measured (needs its teacher sidecar)")
    parser.add_argument("--teacher-splits", nargs="+", help="sidecar splits for the teacher statistics "
                                                            "(default: train and --subset)")
    parser.add_argument("--out", required=True, help="JSON report")
    parser.add_argument("--max-tokens", type=int, default=1_000_000, help="audio samples per batch")
    parser.add_argument("--max-batches", type=int, help="batches for the decoder and attention measures (default: all)")
    parser.add_argument("--grad-batches", type=int, default=20, help="batches for the encoder-gradient measure")
    parser.add_argument("--aed-kd-weight", type=float,
                        help="alpha for the gradient measure instead of the checkpoint's criterion.aed_kd_weight "
                             "(needed when that is 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU visible to torch")
    torch.set_num_threads(args.threads)

    teacher_splits = args.teacher_splits or list(dict.fromkeys(["train", args.subset]))
    try:
        report = run_diagnostics(args.path, args.data, args.sidecars, args.subset, teacher_splits, args.max_tokens,
                                 args.max_batches, args.grad_batches, args.aed_kd_weight, args.device)
    except DataError as error:
        sys.exit(str(error))
    with atomic_write(args.out) as f:
        json.dump(report, f, indent=1)
    print(markdown_report(report))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
