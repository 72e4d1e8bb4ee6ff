#!/usr/bin/env python3
"""Prove that no dev/test sentence is in the text that trained the teacher or the n-gram LM.

Every sentence of the --excluded transcript files (normalised like the transcripts) is searched in every
--texts file, as a whole line and (when it has at least --contained-min-words words) inside a line, by
brute force (fairseq_kd.data.exclusion.remaining_excluded). Prints one line per text and exits with status 1
if any sentence is found, naming it and where it came from.

  python scripts/check_excluded.py --excluded data/valid.wrd data/test.wrd \
      --texts exp/lm/lm_text.txt exp/teacher/train_text.txt exp/teacher/heldout_text.txt
"""
import argparse
import sys

from fairseq_kd.data.exclusion import CONTAINED_MIN_WORDS, read_excluded, remaining_excluded
from fairseq_kd.data.text import normalize_transcript


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--excluded", nargs="+", required=True, help="dev/test transcripts (.wrd)")
    parser.add_argument("--texts", nargs="+", required=True, help="training texts of the teacher and the LM")
    parser.add_argument("--contained-min-words", type=int, default=CONTAINED_MIN_WORDS)
    args = parser.parse_args()
    excluded = read_excluded(args.excluded)
    found = False
    for path in args.texts:
        with open(path, encoding="utf-8") as f:
            lines = [n for n in map(normalize_transcript, f) if n]
        remaining = remaining_excluded(lines, excluded, args.contained_min_words)
        print(f"{path}: {len(lines)} lines, {len(remaining)} of {len(excluded)} dev/test sentences found")
        for sentence in remaining[:10]:
            print(f"  {sentence!r} (from {excluded[sentence]})")
        found |= bool(remaining)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
