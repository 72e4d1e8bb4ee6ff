#!/usr/bin/env python3
"""What a recipe's training and decoding stages have done and what remains, with an estimate of the time left.

For every run (--runs, SYSTEM:SEED in run.sh's work order) under --exp, from ``<exp>/<system>/seed<N>.train.log``
(the log run.sh's stage 6 writes; fairseq resumes an interrupted training from checkpoint_last.pt): updates done
of --max-update, seconds per update (1 / the median of fairseq's logged updates per second, ``ups``: a training
paused for a while, e.g. while another job decodes, logs one slow interval, which the median ignores, where
cumulative ``wall`` over ``num_updates`` would count the pause; ``wall`` when no ``ups`` is logged), the best valid WER,
whether it still improved in the last 3 validations, and whether stage 7 has decoded it
(``seed<N>.decode.done``; or decoded in --previous, an earlier results directory with per_utterance/ tables,
and not trained under --exp). The time left assumes --parallel trainings at once at the median measured seconds per
update (or --default-seconds-per-update before any training has logged).

  python scripts/recipe_plan.py --exp exp/evidence --runs "xs_ctc:1 xs_interctc:1 xs_ctc:2" \\
      --max-update 7500 --parallel 2
"""
import argparse
import os
import re
import statistics

# fairseq simple log: epoch lines "| num_updates 500 | ... | wall 250", train_inner "num_updates=500, ... wall=250"
TRAIN_LINE = re.compile(r"[|,] wall[ =](\d+(?:\.\d+)?)(?:[ ,]|$)")
NUM_UPDATES = re.compile(r"num_updates[ =](\d+)")
UPDATES_PER_SECOND = re.compile(r"[|,] ups[ =](\d+(?:\.\d+)?)(?:[ ,]|$)")
VALID_LINE = re.compile(r"valid on '[^']+' subset .*?\| wer ([\d.]+) .*?num_updates (\d+)")


def training_state(log_path):
    """(updates done, seconds per update or None, [(updates, valid WER)], finished) from a fairseq train log."""
    updates, seconds_per_update, valid, finished, updates_per_second = 0, None, [], False, []
    if not os.path.isfile(log_path):
        return updates, seconds_per_update, valid, finished
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if "done training" in line:
                finished = True
            match = VALID_LINE.search(line)
            if match:
                valid.append((int(match.group(2)), float(match.group(1))))
                continue
            wall, count, ups = TRAIN_LINE.search(line), NUM_UPDATES.search(line), UPDATES_PER_SECOND.search(line)
            if wall and count and int(count.group(1)) > 0:
                updates = int(count.group(1))
                seconds_per_update = float(wall.group(1)) / updates
                if ups and float(ups.group(1)) > 0:
                    updates_per_second.append(float(ups.group(1)))
    if updates_per_second:
        seconds_per_update = 1 / statistics.median(updates_per_second)
    return updates, seconds_per_update, valid, finished


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", required=True)
    parser.add_argument("--runs", required=True, help="space-separated SYSTEM:SEED (config name, seed) in work order")
    parser.add_argument("--max-update", type=int, required=True)
    parser.add_argument("--parallel", type=int, default=1, help="trainings run at once")
    parser.add_argument("--previous", help="earlier results (run.sh --previous-results): runs decoded there are done")
    parser.add_argument("--default-seconds-per-update", type=float, default=0.6,
                        help="estimate before any training has logged (1-thread xs training on 2 cores)")
    args = parser.parse_args()

    rows, speeds, remaining_updates = [], [], 0
    for run in args.runs.split():
        variant, _, seed = run.rpartition(":")
        if not variant or not seed.isdigit():
            parser.error(f"--runs: {run!r} is not SYSTEM:SEED")
        prefix = os.path.join(args.exp, variant, f"seed{seed}")
        updates, seconds, valid, finished = training_state(prefix + ".train.log")
        earlier = bool(args.previous) and not os.path.isfile(prefix + ".train.done") and \
            os.path.isdir(os.path.join(args.previous, "per_utterance", variant, f"seed{seed}"))
        if earlier:
            rows.append(f"| {variant} | {seed} | decoded in {args.previous} | | | | |")
            continue
        done = finished or updates >= args.max_update
        if seconds:
            speeds.append(seconds)
        remaining_updates += 0 if done else args.max_update - updates
        best = min(valid, key=lambda v: v[1]) if valid else None
        improving = bool(valid) and best in valid[-3:] and len(valid) >= 3
        if done:
            status = "trained, decoded" if os.path.isfile(prefix + ".decode.done") else "trained"
        else:
            status = "running or interrupted" if updates else "to do"
        rows.append(f"| {variant} | {seed} | {status} | {updates} / {args.max_update} | "
                    f"{f'{seconds:.2f}' if seconds else ''} | {f'{best[1]:.2f} @ {best[0]}' if best else ''} | "
                    f"{'yes' if improving else ('no' if len(valid) >= 3 else '')} |")
    print("| system | seed | status | updates | s/update | best valid WER @ update | improved in the last 3 "
          "validations |\n|---|---|---|---:|---:|---:|---|")
    print("\n".join(rows))
    per_update = statistics.median(speeds) if speeds else args.default_seconds_per_update
    hours = remaining_updates * per_update / max(args.parallel, 1) / 3600
    print(f"\n{remaining_updates} updates left: ~{hours:.1f} h at {per_update:.2f} s/update with "
          f"{args.parallel} training(s) at once ({'measured median' if speeds else 'assumed'})")


if __name__ == "__main__":
    main()
