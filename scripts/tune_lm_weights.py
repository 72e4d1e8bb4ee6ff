#!/usr/bin/env python3
"""Grid search of the shallow-fusion LM weight and word score on a dev split (never on test).

  python scripts/tune_lm_weights.py --path /tmp/exp3/checkpoint_best.pt --data /tmp/synth2 --subset valid \\
      --kenlm-model /tmp/lm/web_4gram/lm.bin --lexicon /tmp/lm/web_4gram/lexicon.txt --beam 50 \\
      --lm-weights 0 0.5 1 1.5 2 3 --word-scores -1 0 1 2 --out /tmp/lm/web_4gram/tuned.json

The encoder runs once; every (lm_weight, word_score) pair then decodes the same emissions with
fairseq_kd.decoding.beam_lm.CtcBeamLmDecoder. Prints one table row per pair (plus greedy for reference)
and writes the best pair (lowest WER; ties: the first in grid order) with the whole table to --out
(JSON, atomically), which scripts/benchmark_decoding.py --tuned reads. Decode with the same values:
fairseq-generate ... --ctc-decoder beam_lm --lm-weight W --word-score S.
"""
import argparse
import itertools
import json
import multiprocessing
import os

import torch
from tqdm import tqdm

from fairseq_kd.decoding.base import ctc_blank_index
from fairseq_kd.decoding.beam_lm import CtcBeamLmDecoder, KenLmLexicon
from fairseq_kd.decoding.evaluation import (
    add_search_arguments,
    decoder_search,
    encode_split,
    greedy_search,
    load_for_decoding,
    search_split,
)
from fairseq_kd.io_utils import atomic_write

SEARCH = {}  # what every grid point searches: set before the workers fork, which then share it (copy on write)


def score_grid_point(point):
    """Beam search + LM over the encoded split at one (lm_weight, word_score): the grid table's row."""
    lm_weight, word_score = point
    decoder = CtcBeamLmDecoder(SEARCH["tgt_dict"], SEARCH["blank"], SEARCH["resources"], beam_size=SEARCH["beam"],
                               lm_weight=lm_weight, word_score=word_score, beam_threshold=SEARCH["beam_threshold"])
    seconds, errors = search_split(decoder_search(decoder), SEARCH["encoded"], SEARCH["tgt_dict"])
    return {"lm_weight": lm_weight, "word_score": word_score, "wer": round(errors.wer, 2), "errors": errors.errors,
            "words": errors.words, "search_seconds": round(seconds, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_arguments(parser, "valid", "dev split to tune on")
    parser.add_argument("--beam", type=int, default=50)
    parser.add_argument("--lm-weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    parser.add_argument("--word-scores", type=float, nargs="+", default=[-1.0, 0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--out", required=True, help="JSON with the best values and the table")
    parser.add_argument("--jobs", type=int, default=1,
                        help="grid points searched at once, in forked processes sharing the emissions (computed "
                             "once) and the LM; the rows and the choice do not depend on it")
    args = parser.parse_args()
    if args.subset.startswith("test"):
        parser.error(f"--subset {args.subset}: tune on a dev split; test WER is only measured with the result")

    torch.set_num_threads(args.threads)
    model, task = load_for_decoding(args.path, args.data, args.subset, "cpu")
    tgt_dict = task.target_dictionary
    blank = ctc_blank_index(tgt_dict)
    resources = KenLmLexicon(tgt_dict, args.lexicon, args.kenlm_model)
    encoded = encode_split(model, task, args.subset, args.max_tokens, None, "cpu")

    _, greedy = search_split(greedy_search(blank), encoded, tgt_dict)

    grid = list(itertools.product(args.lm_weights, args.word_scores))
    SEARCH.update(encoded=encoded, tgt_dict=tgt_dict, blank=blank, resources=resources, beam=args.beam,
                  beam_threshold=args.beam_threshold)
    if args.jobs > 1:  # forked workers share the emissions and the LM; one search thread each
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            rows = list(tqdm(pool.imap(score_grid_point, grid), total=len(grid), desc="grid", disable=None))
    else:
        rows = [score_grid_point(point) for point in tqdm(grid, desc="grid", disable=None)]
    best = min(rows, key=lambda row: row["wer"])  # min keeps the first of equal rows

    print(f"\n{args.subset}: {encoded.num_utterances} utterances, {greedy.words} words, beam {args.beam}; "
          f"greedy WER {greedy.wer:.2f}")
    print(f"{'lm_weight':>9} {'word_score':>10} {'WER':>7} {'errors':>7} {'search s':>9}")
    for row in rows:
        mark = "  <- best" if row is best else ""
        print(f"{row['lm_weight']:>9.2f} {row['word_score']:>10.2f} {row['wer']:>7.2f} {row['errors']:>7d} "
              f"{row['search_seconds']:>9.2f}{mark}")
    result = {"lm_weight": best["lm_weight"], "word_score": best["word_score"], "wer": best["wer"],
              "greedy_wer": round(greedy.wer, 2), "subset": args.subset, "beam": args.beam,
              "beam_threshold": args.beam_threshold, "checkpoint": os.path.abspath(args.path),
              "kenlm_model": os.path.abspath(args.kenlm_model), "lexicon": os.path.abspath(args.lexicon),
              "grid": rows}
    with atomic_write(args.out) as f:
        json.dump(result, f, indent=1)
    print(f"best: --lm-weight {best['lm_weight']} --word-score {best['word_score']} (WER {best['wer']:.2f}) "
          f"-> {args.out}")


if __name__ == "__main__":
    main()
