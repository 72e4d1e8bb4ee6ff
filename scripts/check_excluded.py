#!/usr/bin/env python3
"""Prove that no dev/test sentence is in the text that trained the teacher or the n-gram LM.

Every sentence of the --excluded transcript files (normalised like the transcripts) is searched in every
--texts file (each line normalised too), as a whole line and (when it has at least --contained-min-words words)
inside a line, by the check that is independent of the filter (fairseq_kd.data.exclusion.remaining_excluded):
one pass over each text, in memory bounded by the excluded sentences. Prints one line per text and exits with
status 1 if any sentence is found, naming it, where it came from and the first text line that has it.

  python scripts/check_excluded.py --excluded data/valid.wrd data/test.wrd \
      --texts exp/lm/lm_text.txt exp/teacher/train_text.txt exp/teacher/heldout_text.txt
"""
import argparse
import os
import sys

from fairseq_kd.data.exclusion import CONTAINED_MIN_WORDS, read_excluded, remaining_excluded
from fairseq_kd.data.text import normalize_transcript
from fairseq_kd.errors import DataError


def normalised_lines(f, counts: dict):
    """The lines of ``f`` normalised (an empty line for one that cannot be, so that numbers stay the file's);
    ``counts["lines"]`` counts them."""
    for line in map(normalize_transcript, f):
        counts["lines"] += 1
        yield line or ""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--excluded", nargs="+", required=True, help="dev/test transcripts (.wrd)")
    parser.add_argument("--texts", nargs="+", required=True, help="training texts of the teacher and the LM")
    parser.add_argument("--contained-min-words", type=int, default=CONTAINED_MIN_WORDS)
    args = parser.parse_args()
    try:
        excluded = read_excluded(args.excluded)
    except DataError as error:
        raise SystemExit(str(error)) from None
    missing = [path for path in args.texts if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"--texts: {', '.join(missing)} not found")
    found = False
    for path in args.texts:
        counts = {"lines": 0}
        with open(path, encoding="utf-8") as f:
            remaining = remaining_excluded(normalised_lines(f, counts), excluded, args.contained_min_words)
        print(f"{path}: {counts['lines']} lines, {len(remaining)} of {len(excluded)} dev/test sentences found")
        for sentence, line_no in list(remaining.items())[:10]:
            print(f"  {sentence!r} (from {excluded[sentence]}) in {path}:{line_no}")
        found |= bool(remaining)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
