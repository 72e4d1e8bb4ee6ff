#!/usr/bin/env python3
"""Teacher sidecars: the masked-LM teacher's top-k probabilities for every WordPiece of every transcript.

Each transcript of ``{split}.wrd`` is tokenised with the teacher's WordPiece tokenizer; every position is masked
in turn and the teacher's --topk most probable tokens there (softmax at --temperature) are stored with their
probabilities, memory-mapped, in --out (format: fairseq_kd/data/teacher_sidecar.py). Training reads them with
``task.kd_sidecar_dir=<--out>``; the teacher itself never runs during ASR training.

The teacher is a transformers BertForMaskedLM directory with its tokenizer and a *trained* masked-LM head
(a raw sentence-embedding BERT such as all-MiniLM-L6-v2 is refused). Interrupted runs resume from the last
finished chunk of --chunk-size utterances; splits already extracted with the same teacher, settings and data
are skipped. Every split in one --out directory must come from the same teacher, --topk and --temperature.

Cost: a transcript of n WordPieces takes n teacher passes of length n + 2. Measured with the all-MiniLM-L6-v2
architecture (6 layers, 384 dims) on 2 busy CPU cores (load ~5): 142 WordPieces/s on 12-WordPiece sentences,
60 WordPieces/s on 36-WordPiece ones; --device cuda runs the teacher on a GPU.

  python scripts/extract_teacher_sidecar.py --teacher exp/teacher/minilm_mlm --data data/ls100 \\
      --splits train dev_clean --out data/ls100/teacher --topk 10
"""
import argparse
import logging
import os

import torch

from fairseq_kd.teacher.extract import extract_split, prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import MaskedLmTeacher


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="BertForMaskedLM directory (save_pretrained + tokenizer)")
    parser.add_argument("--data", required=True, help="data directory with {split}.tsv and {split}.wrd (task.data)")
    parser.add_argument("--splits", nargs="+", required=True, help="splits to extract, e.g. train valid")
    parser.add_argument("--out", help="sidecar directory (task.kd_sidecar_dir); default: DATA/teacher")
    parser.add_argument("--topk", type=int, default=10, help="teacher tokens kept per position (K)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the teacher logits")
    parser.add_argument("--batch-tokens", type=int, default=16384,
                        help="padded positions per teacher forward pass (larger: fewer, bigger passes, more memory)")
    parser.add_argument("--chunk-size", type=int, default=200,
                        help="utterances per resumable chunk (and per progress-bar step)")
    parser.add_argument("--device", default="cpu", help="torch device of the teacher (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    teacher = MaskedLmTeacher(args.teacher, args.device)
    meta = teacher_meta(teacher, args.topk, args.temperature)
    out = args.out or os.path.join(args.data, "teacher")
    prepare_sidecar_dir(out, meta)
    for split in args.splits:
        header = extract_split(teacher, meta, args.data, split, out, args.batch_tokens, args.chunk_size)
        stats = header["stats"]
        print(f"{split}: {header['num_utterances']} utterances, {header['num_positions']} WordPieces; teacher top-1 "
              f"accuracy {100 * stats['top1_accuracy']:.1f} %, reference in top-{args.topk} "
              f"{100 * stats['reference_in_topk']:.1f} %, mean top-{args.topk} mass {stats['topk_mass_mean']:.3f} "
              f"-> {out}")


if __name__ == "__main__":
    main()
