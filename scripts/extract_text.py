#!/usr/bin/env python3
"""Extract speakable English sentences from public-domain text, one per line.

Sources:
  --source web       the World English Bible (public domain) from Debian's ``sword-text-web`` through
                     ``diatheke`` (installed by scripts/setup_env.sh);
  --source fortunes  Debian's ``fortunes-min`` (fortunes, literature, riddles; installed by scripts/setup_env.sh):
                     ordinary modern English from another source than the Bible, for an out-of-domain test set;
  --source FILE      any plain-text file (paragraphs are joined, then split into sentences).

A sentence is kept when :func:`fairseq_kd.data.text.normalize_transcript` accepts it (no digits or symbols),
it has ``--min-words``..``--max-words`` words and is not mostly names; duplicates (after normalisation) are
dropped. The raw
sentence (with punctuation, for the TTS voices' prosody) is written, in source order, atomically.

  python scripts/extract_text.py --source web --out data/text/web.txt
"""
import argparse
import os
import re
import subprocess
import sys

from fairseq_kd.data.text import normalize_transcript

SENTENCE_END = re.compile(r"(?<=[.!?;])[\"\u201d\u2019]*\s+")
VERSE = re.compile(r"^(?P<book>.+?) (?P<chapter>\d+):(?P<verse>\d+): ?(?P<text>.*)$")


def web_paragraphs():
    """Yield one string per chapter of the World English Bible."""
    try:
        out = subprocess.run(["diatheke", "-b", "engWEB2015eb", "-f", "plain", "-k", "Genesis 1:1-Revelation 22:21"],
                             check=True, capture_output=True, text=True).stdout
    except FileNotFoundError:
        sys.exit("diatheke not found: run scripts/setup_env.sh (apt packages sword-text-web and diatheke)")
    chapter, verses = None, []
    for line in out.splitlines():
        m = VERSE.match(line)
        if not m:
            continue
        key = (m["book"], m["chapter"])
        if key != chapter and verses:
            yield " ".join(verses)
            verses = []
        chapter = key
        verses.append(m["text"].strip())
    if verses:
        yield " ".join(verses)


FORTUNE_FILES = ("/usr/share/games/fortunes/fortunes", "/usr/share/games/fortunes/literature",
                 "/usr/share/games/fortunes/riddles")


def fortune_paragraphs():
    """Yield one string per fortune (entries are separated by lines holding only ``%``)."""
    for path in FORTUNE_FILES:
        if not os.path.isfile(path):
            sys.exit(f"{path} not found: run scripts/setup_env.sh (apt package fortunes-min)")
        with open(path, encoding="utf-8", errors="replace") as f:
            yield from (" ".join(entry.split()) for entry in re.split(r"^%$", f.read(), flags=re.MULTILINE))


def file_paragraphs(path):
    with open(path, encoding="utf-8") as f:
        yield from (p.replace("\n", " ") for p in f.read().split("\n\n"))


def name_ratio(raw):
    """Fraction of words after the first that are capitalised: lists of names are hard for every voice."""
    words = raw.split()[1:]
    return sum(w[0].isupper() for w in words) / max(len(words), 1)


def sentences(paragraphs, min_words, max_words, max_name_ratio):
    seen = set()
    for paragraph in paragraphs:
        for raw in SENTENCE_END.split(paragraph):
            raw = " ".join(raw.split())
            norm = normalize_transcript(raw)
            if (norm is None or not (min_words <= len(norm.split()) <= max_words) or norm in seen
                    or name_ratio(raw) > max_name_ratio):
                continue
            seen.add(norm)
            yield raw


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="'web', 'fortunes' or a plain-text file")
    parser.add_argument("--out", required=True)
    parser.add_argument("--min-words", type=int, default=4)
    parser.add_argument("--max-words", type=int, default=20)
    parser.add_argument("--max-name-ratio", type=float, default=0.25,
                        help="drop sentences where more than this fraction of words (after the first) is capitalised")
    args = parser.parse_args()
    paragraphs = {"web": web_paragraphs, "fortunes": fortune_paragraphs}.get(
        args.source, lambda: file_paragraphs(args.source))()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    n = 0
    with open(tmp, "w", encoding="utf-8") as f:
        for sentence in sentences(paragraphs, args.min_words, args.max_words, args.max_name_ratio):
            f.write(sentence + "\n")
            n += 1
    os.replace(tmp, args.out)
    print(f"wrote {n} sentences to {args.out}")


if __name__ == "__main__":
    main()
