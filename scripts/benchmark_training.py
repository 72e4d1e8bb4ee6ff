#!/usr/bin/env python3
"""Training cost of the distillation variants: time per update and peak memory, measured in one run.

Each variant (a config of examples/kd) trains for --updates updates with the real ``fairseq-hydra-train``
on the same data, batches and seed, in its own process; time per update is taken from fairseq's log
timestamps between update --warmup and the last one (start-up and the first updates excluded), peak memory
is the training process' maximum resident set size (with --ranks, the largest rank's). Ratios are against
the first variant.

  python scripts/benchmark_training.py --data data/synth --sidecars data/synth/teacher \
      --variants xs_ctc,xs_interctc,xs_aedkd,xs_interaedkd --updates 60
  # fairseq DDP on CPU: 2 gloo ranks (1 thread each) vs 1 rank accumulating the same 2 batches per update
  python scripts/benchmark_training.py --data data/synth --sidecars data/synth/teacher \
      --variants xs_interctc_interaedkd --ranks 2
  python scripts/benchmark_training.py --data data/synth --sidecars data/synth/teacher \
      --variants xs_interctc_interaedkd 'optimization.update_freq=[2]'
"""
import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile

from fairseq_kd.distributed import cpu_ddp_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[train_inner\].*num_updates=(\d+)", re.M)
PARAMS = re.compile(r"num\. shared model params: ([\d,]+)")


def measure(variant, args, save_dir):
    """Train one variant in a child process; return (seconds per update, peak RSS MiB, parameters)."""
    train = os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train")
    launcher, ddp = [train], []
    if args.ranks > 1:  # fairseq's DDP on CPU ranks through torchrun, as in README "Several GPUs or nodes"
        launcher = [os.path.join(os.path.dirname(sys.executable), "torchrun"), f"--nproc-per-node={args.ranks}",
                    f"--master-port={args.master_port}", "--no-python", train]
        ddp = cpu_ddp_overrides(args.ranks)
    cmd = [*launcher, "--config-dir",
           os.path.join(ROOT, "examples", "kd"), "--config-name", variant, f"task.data={args.data}",
           f"task.kd_sidecar_dir={args.sidecars}", f"common.user_dir={os.path.join(ROOT, 'fairseq_kd')}",
           f"checkpoint.save_dir={save_dir}", f"optimization.max_update={args.updates}", "common.log_interval=1",
           "dataset.disable_validation=true", "checkpoint.no_save=true", f"common.seed={args.seed}",
           "dataset.num_workers=0", *ddp, *args.overrides]
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stdout.write(p.stdout + p.stderr); "
            "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // args.ranks))})
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{proc.stdout[-4000:]}")
    stamps = {int(n): datetime.datetime.strptime(t, "%Y-%m-%d %H:%M:%S,%f") for t, n in LOG_LINE.findall(proc.stdout)}
    first, last = args.warmup, max(stamps)
    seconds = (stamps[last] - stamps[first]).total_seconds() / (last - first)
    rss = int(re.search(r"MAXRSS_KB (\d+)", proc.stdout).group(1)) / 1024
    params = int(PARAMS.search(proc.stdout).group(1).replace(",", ""))
    return seconds, rss, params


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--sidecars", required=True, help="task.kd_sidecar_dir (needed by the KD variants)")
    parser.add_argument("--variants", default="xs_ctc,xs_interctc,xs_aedkd,xs_interaedkd,xs_interctc_interaedkd")
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="updates excluded from the timing")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ranks", type=int, default=1,
                        help="CPU ranks (torchrun + gloo, fairseq's legacy_ddp); --threads are split between them, "
                             "and each rank takes its own batch, so 2 ranks do the work of update_freq=[2]")
    parser.add_argument("--master-port", type=int, default=29741, help="torchrun rendezvous port (--ranks > 1)")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides for every variant")
    args = parser.parse_args()
    if args.updates <= args.warmup:
        raise SystemExit("--updates must exceed --warmup")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            seconds, rss, params = measure(variant, args, os.path.join(tmp, variant))
            rows.append((variant, params, seconds, rss))
            print(f"  {variant}: {seconds:.3f} s/update, {rss:.0f} MiB", file=sys.stderr)
    base_s, base_rss = rows[0][2], rows[0][3]
    print(f"\nTraining cost, {args.updates - args.warmup} timed updates after {args.warmup}, {args.threads} threads, "
          f"{args.ranks} rank(s), data {args.data}, overrides {' '.join(args.overrides) or 'none'}")
    print("| variant | trained parameters | s / update | ratio | peak RSS (MiB) | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for variant, params, seconds, rss in rows:
        print(f"| {variant} | {params:,} | {seconds:.3f} | {seconds / base_s:.2f} | {rss:.0f} | {rss / base_rss:.2f} |")


if __name__ == "__main__":
    main()
