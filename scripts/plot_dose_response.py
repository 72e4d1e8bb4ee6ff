#!/usr/bin/env python3
"""Dose-response figure of a distillation study: WER against alpha (the decoder terms' weight), one line per beta
(1: the teacher's KL, 0: the reference's CE, between: their mix), each point a system's mean WER over its seeds with
its 95 % interval (docs/results/dose/PLAN.md).

Reads an output directory of scripts/collect_results.py: results.csv for each system's setting (alpha, beta,
temperature) and wer_intervals.csv for its WER and interval on --subset (t interval over utterances and seeds, the
seed component pooled over the table's systems, so a 1-seed system's interval includes the seed-to-seed spread).
Only the --systems are drawn (one family: the same model and taps, only alpha and beta differ); the one without
the decoder (alpha = 0: CTC or InterCTC) at alpha = 0 on every line. Systems at another temperature than
--temperature are left out (they are a separate question).

  python scripts/plot_dose_response.py --results exp/evidence/results_dose --subset valid \
      --systems xs_interctc,xs_interctc_interaedkd,xs_interctc_interaedkd_beta0,xs_interctc_interaedkd_alpha05,...
"""
import argparse
import csv
import logging
import os
from collections import defaultdict

from fairseq_kd.io_utils import atomic_write


def read_settings(results_csv):
    """``{system: (alpha, beta, temperature)}`` from results.csv (beta, temperature None where empty)."""
    settings = {}
    with open(results_csv, encoding="utf-8", newline="") as f:
        for line_number, row in enumerate(csv.DictReader(f), start=2):
            if "alpha" not in row:
                raise SystemExit(f"{results_csv}: no alpha / beta / temperature columns (written by an older "
                                 f"scripts/collect_results.py: run it again)")
            setting = tuple(float(row[k]) if row[k] != "" else None for k in ("alpha", "beta", "temperature"))
            if settings.setdefault(row["system"], setting) != setting:
                raise SystemExit(f"{results_csv}:{line_number}: {row['system']} has two settings, "
                                 f"{settings[row['system']]} and {setting}")
    return settings


def dose_points(results_dir, systems, subset, method="greedy", temperature=1.0):
    """``{beta: [(alpha, wer, ci_low, ci_high, seeds, system)]}`` of ``systems``, sorted by alpha; the one system
    without the decoder (alpha = 0) is the first point of every beta."""
    settings = read_settings(os.path.join(results_dir, "results.csv"))
    intervals = {}
    with open(os.path.join(results_dir, "wer_intervals.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["subset"] == subset and row["method"] == method:
                intervals[row["system"]] = (float(row["wer"]), float(row["ci_low"]), float(row["ci_high"]),
                                            int(row["seeds"]))
    missing = [s for s in systems if s not in settings or s not in intervals]
    if missing:
        raise SystemExit(f"{results_dir}: no {method} WER on {subset} of {', '.join(missing)}")
    lines, base = defaultdict(list), []
    for system in systems:
        alpha, beta, system_temperature = settings[system]
        point = (alpha, *intervals[system], system)
        if alpha == 0:
            base.append(point)
        elif beta == 0 or system_temperature == temperature:
            lines[beta].append(point)
    if len(base) > 1:
        raise SystemExit(f"--systems: {len(base)} systems without the decoder ({', '.join(p[-1] for p in base)}): "
                         f"name one")
    return {beta: sorted(base + points) for beta, points in sorted(lines.items())}


def plot(lines, subset, method, out):
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for offset, (beta, points) in zip((-0.006, 0.006, 0.0, 0.012), lines.items()):
        label = {1.0: "beta = 1 (teacher KL)", 0.0: "beta = 0 (reference CE)"}.get(beta, f"beta = {beta:g}")
        xs = [p[0] + offset for p in points]
        ax.errorbar(xs, [p[1] for p in points], yerr=[[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]],
                    marker="o", capsize=3, label=label)
        for x, p in zip(xs, points):
            ax.annotate(f"{p[4]}", (x, p[1]), textcoords="offset points", xytext=(5, -10), fontsize=7)
    ax.set_xlabel("alpha (weight of the decoder terms; 0 = no decoder)")
    ax.set_ylabel(f"{method} WER on {subset} (%)")
    ax.set_title("Dose-response: mean over seeds (number beside each point), 95 % intervals", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(out, mode="wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="output directory of scripts/collect_results.py")
    parser.add_argument("--subset", default="valid", help="the subset plotted (a screening's: valid)")
    parser.add_argument("--method", default="greedy")
    parser.add_argument("--systems", required=True, help="comma-separated systems of one family (alpha = 0 one "
                        "included, e.g. xs_interctc)")
    parser.add_argument("--temperature", type=float, default=1.0, help="the teacher temperature of the lines")
    parser.add_argument("--out", help="PNG to write (default RESULTS/dose_response.png)")
    args = parser.parse_args()
    lines = dose_points(args.results, args.systems.split(","), args.subset, args.method, args.temperature)
    if not lines:
        raise SystemExit(f"{args.results}: no system with a decoder has a {args.method} WER on {args.subset}")
    out = args.out or os.path.join(args.results, "dose_response.png")
    plot(lines, args.subset, args.method, out)
    for beta, points in lines.items():
        print(f"beta {beta:g}: " + ", ".join(f"alpha {a:g} {w:.2f} [{lo:.2f}, {hi:.2f}] ({n} seed{'s' * (n > 1)})"
                                              for a, w, lo, hi, n, _ in points))
    print(f"figure: {out}")


if __name__ == "__main__":
    main()
