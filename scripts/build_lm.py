#!/usr/bin/env python3
"""Build the word n-gram LM and lexicon for CTC beam search with shallow fusion (--ctc-decoder beam_lm).

  python scripts/build_lm.py --text /tmp/lm/web.txt --dict /tmp/synth2/dict.ltr.txt \\
      --exclude /tmp/synth2/valid.wrd /tmp/synth2/test.wrd /tmp/synth2/test_unseen.wrd \\
      --order 4 --out-dir /tmp/lm/web_4gram

Steps: every line of --text is normalised like the transcripts (fairseq_kd.data.text.normalize_transcript;
lines it rejects are dropped); lines equal to a sentence of an --exclude file (dev/test transcripts), or
containing one of at least --contained-min-words words, are removed, and the written text is checked again
for any excluded sentence (the build fails if one remains); KenLM's lmplz (modified Kneser-Ney) and
build_binary (from .venv/bin, built by scripts/setup_env.sh) make the LM; the lexicon spells every word of
the LM vocabulary in the model's units (letters: "WORD W O R D |") and leaves out words with a letter
missing from --dict.

Outputs in --out-dir, each written atomically: lm.bin (KenLM binary), lexicon.txt, lm_text.txt (the
normalised text the LM was estimated on) and build_lm.json (sources, checksums, counts; written last).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from fairseq.data import Dictionary
from tqdm import tqdm

from fairseq_kd.data.exclusion import ExcludedSentences, normalised_lines_without, read_excluded, remaining_excluded
from fairseq_kd.decoding.lexicon import write_lexicon
from fairseq_kd.errors import DataError
from fairseq_kd.io_utils import atomic_write, sha256_file

ARPA_SPECIALS = {"<s>", "</s>", "<unk>"}


def kenlm_tool(name):
    path = os.path.join(os.path.dirname(sys.executable), name)
    path = path if os.access(path, os.X_OK) else shutil.which(name)
    if path is None:
        sys.exit(f"KenLM's {name} not found next to {sys.executable} or on PATH: run scripts/setup_env.sh")
    return path


def arpa_vocabulary(arpa_path):
    """Words of the ARPA \\1-grams section, in file order, without <s>, </s>, <unk>."""
    words, in_unigrams = [], False
    with open(arpa_path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                in_unigrams = True
            elif in_unigrams and (line.startswith("\\") or not line):
                break
            elif in_unigrams:
                word = line.split("\t")[1]
                if word not in ARPA_SPECIALS:
                    words.append(word)
    return words


def run_tool(cmd, stdin=None, stdout=None):
    proc = subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        hint = ("\n(small text: add --discount-fallback)" if "discount" in proc.stderr.lower()
                and "--discount_fallback" not in cmd else "")
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}{hint}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", required=True, help="LM training text, one sentence per line")
    parser.add_argument("--dict", required=True, help="the model's unit dictionary (dict.ltr.txt)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--exclude", nargs="*", default=[],
                        help="transcript files (.wrd) whose sentences must not be in the LM text (dev/test)")
    parser.add_argument("--contained-min-words", type=int, default=4,
                        help="also drop lines containing an excluded sentence of at least this many words")
    parser.add_argument("--order", type=int, default=4, help="n-gram order")
    parser.add_argument("--memory", default="1G", help="lmplz sorting memory (-S)")
    parser.add_argument("--prune", nargs="*", default=[],
                        help="lmplz --prune thresholds per order, e.g. 0 0 1 (default: no pruning)")
    parser.add_argument("--discount-fallback", action="store_true",
                        help="lmplz --discount_fallback: needed for very small texts")
    args = parser.parse_args()

    if not os.path.isfile(args.text):
        sys.exit(f"--text {args.text} not found (scripts/extract_text.py makes one)")
    if not os.path.isfile(args.dict):
        sys.exit(f"--dict {args.dict} not found: pass the dict.ltr.txt the model was trained with")
    lmplz, build_binary = kenlm_tool("lmplz"), kenlm_tool("build_binary")
    units = Dictionary.load(args.dict).symbols
    try:
        excluded = read_excluded(args.exclude)
    except DataError as error:
        sys.exit(str(error))
    matcher = ExcludedSentences(excluded, args.contained_min_words)
    os.makedirs(args.out_dir, exist_ok=True)

    with tempfile.TemporaryDirectory(dir=args.out_dir, prefix=".build_lm.") as work:
        text_tmp, arpa_tmp = os.path.join(work, "lm_text.txt"), os.path.join(work, "lm.arpa")
        counts = {"lm_lines": 0, "lm_words": 0}
        with open(args.text, encoding="utf-8") as src, open(text_tmp, "w", encoding="utf-8") as out:
            raw_lines = tqdm(src, desc="normalise + exclude", unit=" lines", disable=None)
            for line in normalised_lines_without(raw_lines, matcher, counts):
                out.write(line + "\n")
                counts["lm_lines"] += 1
                counts["lm_words"] += len(line.split())
        if counts["lm_lines"] == 0:
            sys.exit(f"no LM text left from {args.text} after normalisation and exclusion")
        with open(text_tmp, encoding="utf-8") as f:
            remaining = remaining_excluded(f.read().splitlines(), excluded, args.contained_min_words)
        if remaining:
            sys.exit(f"{len(remaining)} excluded sentences are still in the LM text, e.g. {remaining[:3]}")

        lmplz_cmd = [lmplz, "-o", str(args.order), "-S", args.memory, "-T", work]
        if args.prune:
            lmplz_cmd += ["--prune", *args.prune]
        if args.discount_fallback:
            lmplz_cmd.append("--discount_fallback")
        with open(text_tmp, encoding="utf-8") as stdin, open(arpa_tmp, "w", encoding="utf-8") as stdout:
            run_tool(lmplz_cmd, stdin=stdin, stdout=stdout)
        run_tool([build_binary, arpa_tmp, os.path.join(work, "lm.bin")])
        vocabulary = arpa_vocabulary(arpa_tmp)
        written, skipped = write_lexicon(os.path.join(work, "lexicon.txt"), vocabulary, units)

        for name in ("lm.bin", "lexicon.txt", "lm_text.txt"):
            os.replace(os.path.join(work, name), os.path.join(args.out_dir, name))
    info = {
        "text": os.path.abspath(args.text), "text_sha256": sha256_file(args.text),
        "dict": os.path.abspath(args.dict), "dict_sha256": sha256_file(args.dict),
        "exclude": [{"path": os.path.abspath(p), "sha256": sha256_file(p)} for p in args.exclude],
        "excluded_sentences": len(excluded), "contained_min_words": args.contained_min_words,
        **counts, "order": args.order, "prune": args.prune, "discount_fallback": args.discount_fallback,
        "lm_vocabulary": len(vocabulary), "lexicon_words": written, "words_not_spellable": skipped[:100],
        "lm_bin_sha256": sha256_file(os.path.join(args.out_dir, "lm.bin")),
    }
    with atomic_write(os.path.join(args.out_dir, "build_lm.json")) as f:
        json.dump(info, f, indent=1)
    print(f"{counts['lm_lines']} lines / {counts['lm_words']} words ({counts['excluded_lines']} excluded, "
          f"{counts['rejected_by_normaliser']} not normalisable) -> {args.order}-gram {args.out_dir}/lm.bin; "
          f"lexicon {written} words ({len(skipped)} not spellable with {args.dict})")


if __name__ == "__main__":
    main()
