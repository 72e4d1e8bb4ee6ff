#!/usr/bin/env python3
"""Build the word n-gram LM and lexicon for CTC beam search with shallow fusion (--ctc-decoder beam_lm).

  python scripts/build_lm.py --text /tmp/lm/web.txt --dict /tmp/synth2/dict.ltr.txt \\
      --exclude /tmp/synth2/valid.wrd /tmp/synth2/test.wrd /tmp/synth2/test_unseen.wrd \\
      --order 4 --out-dir /tmp/lm/web_4gram

The steps and outputs (fairseq_kd/decoding/ngram_lm.py, which this script runs):
"""
import argparse

from fairseq_kd.data.exclusion import CONTAINED_MIN_WORDS
from fairseq_kd.decoding import ngram_lm
from fairseq_kd.errors import DataError, ToolError


def main():
    parser = argparse.ArgumentParser(description=__doc__ + ngram_lm.__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", required=True, help="LM training text, one sentence per line")
    parser.add_argument("--dict", required=True, help="the model's unit dictionary (dict.ltr.txt)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--exclude", nargs="*", default=[],
                        help="transcript files (.wrd) whose sentences must not be in the LM text (dev/test)")
    parser.add_argument("--contained-min-words", type=int, default=CONTAINED_MIN_WORDS,
                        help="also drop lines containing an excluded sentence of at least this many words")
    parser.add_argument("--order", type=int, default=4, help="n-gram order")
    parser.add_argument("--memory", default="1G", help="lmplz sorting memory (-S)")
    parser.add_argument("--prune", nargs="*", default=[],
                        help="lmplz --prune thresholds per order, e.g. 0 0 1 (default: no pruning)")
    parser.add_argument("--discount-fallback", action="store_true",
                        help="lmplz --discount_fallback: needed for very small texts")
    args = parser.parse_args()
    try:
        built = ngram_lm.build_lm(args.text, args.dict, args.out_dir, args.exclude, args.contained_min_words,
                                  args.order, args.memory, args.prune, args.discount_fallback)
    except (DataError, ToolError) as error:
        raise SystemExit(str(error)) from None
    info = built.info
    print(f"{info['lm_lines']} lines / {info['lm_words']} words ({info['excluded_lines']} excluded, "
          f"{info['rejected_by_normaliser']} not normalisable) -> {args.order}-gram {args.out_dir}/lm.bin; "
          f"lexicon {info['lexicon_words']} words ({len(built.words_not_spellable)} not spellable with {args.dict})")


if __name__ == "__main__":
    main()
