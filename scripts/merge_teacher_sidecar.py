#!/usr/bin/env python3
"""Join the chunks written by the shards of scripts/extract_teacher_sidecar.py --num-shards S into the sidecar.

Checks that every chunk of every split is there and was computed with the same teacher, settings and data
(the manifest and transcripts unchanged since), then writes the same files, byte for byte, as an unsharded
extraction (see scripts/extract_teacher_sidecar.py for a multi-GPU and a SLURM-array example). Needs no teacher
and no GPU; memory stays at one chunk.

  python scripts/merge_teacher_sidecar.py --data data/ls960 --splits train --out data/ls960/teacher
"""
import argparse
import logging
import os

from fairseq_kd.teacher.extract import merge_split


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="data directory with {split}.tsv and {split}.wrd (task.data)")
    parser.add_argument("--splits", nargs="+", required=True, help="splits to merge")
    parser.add_argument("--out", help="sidecar directory the shards wrote to; default: DATA/teacher")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    out = args.out or os.path.join(args.data, "teacher")
    for split in args.splits:
        header = merge_split(args.data, split, out)
        print(f"{split}: {header['num_utterances']} utterances, {header['num_positions']} WordPieces -> {out}")


if __name__ == "__main__":
    main()
