#!/usr/bin/env python3
"""Reuse teacher sidecars extracted earlier (on another machine, or committed with a recipe's results) for a
corpus built again, instead of fine-tuning the teacher and extracting them again.

Every split's sidecar in --from is validated in full and must have been extracted for exactly this corpus: its
keys (audio path and transcript of every manifest line) are compared with --data's {split}.tsv and {split}.wrd,
and the first differing line is named. The files are copied into --out (default DATA/teacher) atomically, the
header last; a split already copied is left as it is. Needs no teacher.

  python scripts/copy_teacher_sidecar.py --from docs/results/evidence/teacher_sidecars \\
      --data exp/evidence/data/corpus --splits train valid
"""
import argparse
import logging
import os

from fairseq_kd.teacher.extract import copy_split


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="source", required=True,
                        help="sidecar directory extracted before (teacher.json and {split}.kd.*)")
    parser.add_argument("--data", required=True, help="data directory with {split}.tsv and {split}.wrd (task.data)")
    parser.add_argument("--splits", nargs="+", required=True, help="splits to copy")
    parser.add_argument("--out", help="sidecar directory for training (task.kd_sidecar_dir); default: DATA/teacher")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    out = args.out or os.path.join(args.data, "teacher")
    for split in args.splits:
        header = copy_split(args.source, args.data, split, out)
        print(f"{split}: {header['num_utterances']} utterances, {header['num_positions']} WordPieces -> {out}")


if __name__ == "__main__":
    main()
