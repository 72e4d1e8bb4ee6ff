#!/usr/bin/env python3
"""Training throughput and cost of the distillation variants, on real batches, in two measurements.

1. **The real trainer.** Each variant (a config of examples/kd) trains for --updates updates with
   ``fairseq-hydra-train`` on the same data, batches and seed, in its own process: seconds per update and
   audio seconds / utterances per wall second from fairseq's log (timestamps, ``apb`` and ``bsz`` of every
   update between --warmup and the last; start-up and the first updates excluded), peak memory as the
   training process' maximum resident set size (with --ranks, the largest rank's) and, on a GPU, the peak GPU
   memory: fairseq logs ``gb_free`` = total - torch.cuda.max_memory_allocated() per logged update (0.1 GB
   steps), so the peak is the card's total (fairseq's "CUDA enviroments" banner) minus the smallest
   ``gb_free``. Run on a GPU with the overrides ``common.cpu=false`` (and the precision's).
2. **In process** (--profile-steps > 0, fairseq's Trainer built as fairseq-hydra-train builds it, see
   fairseq_kd/profiling.py): FLOPs of forward + backward per audio second (FlopCounterMode on
   --flop-batches batches), this machine's fp32 matmul peak on the same threads, the share of that peak
   the real trainer reaches (GFLOP/audio-s x audio-s/s), and where a step's time goes: data, subsampling,
   Conformer blocks, CTC head + losses, attention decoder, KD losses (each forward and backward),
   optimizer, other; and by op family (convolution, matrix product, dropout masks, copies, ...).

Ratios are against the first variant. --json keeps every figure.

  python scripts/benchmark_training.py --data exp/cpu/data/corpus --sidecars exp/cpu/data/corpus/teacher \\
      --variants xs_ctc,xs_interctc_interaedkd --updates 60 --profile-steps 20 --json docs/benchmarks/training.json
  # the recipe's CPU setting (run.sh --parallel 2): two 1-thread trainings at once, audio-s/s summed
  python scripts/benchmark_training.py --data exp/cpu/data/corpus --sidecars exp/cpu/data/corpus/teacher \\
      --variants xs_ctc,xs_interctc_interaedkd --updates 100 --threads 2 --num-workers 1 --side-by-side 2
  # fairseq DDP on CPU: 2 gloo ranks (1 thread each) vs 1 rank accumulating the same 2 batches per update
  python scripts/benchmark_training.py --data data/synth --sidecars data/synth/teacher \\
      --variants xs_interctc_interaedkd --ranks 2
  python scripts/benchmark_training.py --data data/synth --sidecars data/synth/teacher \\
      --variants xs_interctc_interaedkd 'optimization.update_freq=[2]'
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

from fairseq_kd.distributed import cpu_ddp_overrides
from fairseq_kd.io_utils import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[train_inner\].*$", re.M)
FIELD = re.compile(r"\b(num_updates|apb|bsz)=([\d.]+)")
PARAMS = re.compile(r"num\. shared model params: ([\d,]+)")
GPU = re.compile(r"total memory = ([\d.]+) GB ; name = (.*?)\s*$", re.M)
GB_FREE = re.compile(r"\bgb_free=([\d.]+)")


def common_overrides(variant, args, save_dir):
    sidecars = [f"task.kd_sidecar_dir={args.sidecars}"] if args.sidecars else []
    return [f"task.data={args.data}", *sidecars, f"common.user_dir={os.path.join(ROOT, 'fairseq_kd')}",
            f"checkpoint.save_dir={save_dir}",
            f"optimization.max_update={args.updates}", "common.log_interval=1", "common.log_format=simple",
            "dataset.disable_validation=true",
            "checkpoint.no_save=true", f"common.seed={args.seed}", *args.overrides]


def start_training(variant, args, save_dir, threads, master_port):
    """Start one fairseq-hydra-train of ``variant`` in a child process (its output captured)."""
    train = os.path.join(os.path.dirname(sys.executable), "fairseq-hydra-train")
    launcher, ddp = [train], []
    if args.ranks > 1:  # fairseq's DDP on CPU ranks through torchrun, as in README "Several GPUs or nodes"
        launcher = [os.path.join(os.path.dirname(sys.executable), "torchrun"), f"--nproc-per-node={args.ranks}",
                    f"--master-port={master_port}", "--no-python", train]
        ddp = cpu_ddp_overrides(args.ranks)
    cmd = [*launcher, "--config-dir", os.path.join(ROOT, "examples", "kd"), "--config-name", variant,
           f"dataset.num_workers={args.num_workers}", *ddp, *common_overrides(variant, args, save_dir)]
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "sys.stdout.write(p.stdout + p.stderr); "
            "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    return subprocess.Popen([sys.executable, "-c", code, *cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": str(max(1, threads // args.ranks))})


def training_figures(variant, proc, args):
    """Wait for a training started by start_training; its figures from fairseq's log."""
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{stdout[-4000:]}")
    updates = {}
    for match in LOG_LINE.finditer(stdout):
        fields = dict(FIELD.findall(match.group(0)))
        stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
        updates[int(float(fields["num_updates"]))] = (stamp, float(fields.get("apb", 0)), float(fields["bsz"]))
    first, last = args.warmup, max(updates)
    seconds = (updates[last][0] - updates[first][0]).total_seconds()
    timed = [updates[n] for n in range(first + 1, last + 1)]
    gpu, gb_free = GPU.search(stdout), [float(v) for v in GB_FREE.findall(stdout)]
    on_gpu = {"gpu": gpu.group(2), "peak_gpu_gib": float(gpu.group(1)) - min(gb_free)} if gpu and gb_free else {}
    return {**on_gpu, "seconds_per_update": seconds / (last - first),
            "audio_seconds_per_second": sum(t[1] for t in timed) / seconds,
            "utterances_per_second": sum(t[2] for t in timed) / seconds,
            "audio_seconds_per_update": sum(t[1] for t in timed) / len(timed),
            "peak_rss_mib": int(re.search(r"MAXRSS_KB (\d+)", stdout).group(1)) / 1024,
            "parameters": int(PARAMS.search(stdout).group(1).replace(",", ""))}


def measure(variant, args, save_dir):
    """Train ``variant`` for --updates updates; with --side-by-side N, N identical trainings at once (same
    seed and batches, --threads split between them, as run.sh --parallel N trains N systems): throughputs are
    summed, seconds per update averaged, peak memory summed."""
    n = args.side_by_side
    procs = [start_training(variant, args, f"{save_dir}_{i}", args.threads // n, args.master_port + i)
             for i in range(n)]
    try:
        runs = [training_figures(variant, proc, args) for proc in procs]
    finally:  # one failed: stop the others
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    if n == 1:
        return runs[0]
    total = {key: sum(r[key] for r in runs) for key in
             ("audio_seconds_per_second", "utterances_per_second", "peak_rss_mib")}
    mean = {key: sum(r[key] for r in runs) / n for key in ("seconds_per_update", "audio_seconds_per_update")}
    return {**runs[0], **mean, **total, "side_by_side": runs}


def profile(variant, args, save_dir):
    """In-process FLOP count and per-part profile of one variant (fairseq_kd/profiling.py)."""
    import torch

    from fairseq_kd import profiling

    torch.set_num_threads(args.threads)
    cfg = profiling.training_config(variant, [*common_overrides(variant, args, save_dir), "dataset.num_workers=0"])
    trainer, iterator = profiling.build_trainer(cfg)
    task = trainer.task
    flops = audio = 0.0
    for _ in range(args.flop_batches):
        sample = next(iterator)
        flops += profiling.step_flops(trainer, sample)
        audio += task.audio_seconds(sample)
    for _ in range(args.warmup):  # the same warm-up as the timed runs, then the profiled steps
        trainer.train_step([next(iterator)])
    steps = profiling.profile_steps(trainer, iterator, args.profile_steps, task)
    return {"gflop_per_audio_second": flops / audio / 1e9, "profile": steps}


def percent(part, total):
    return f"{100 * part / total:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--sidecars", help="task.kd_sidecar_dir (needed by the KD variants)")
    parser.add_argument("--variants", default="xs_ctc,xs_interctc,xs_aedkd,xs_interaedkd,xs_interctc_interaedkd")
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="updates excluded from the timing")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--num-workers", type=int, default=0,
                        help="dataset.num_workers of the timed runs (0: features computed in the training process)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ranks", type=int, default=1,
                        help="CPU ranks (torchrun + gloo, fairseq's legacy_ddp); --threads are split between them, "
                             "and each rank takes its own batch, so 2 ranks do the work of update_freq=[2]")
    parser.add_argument("--master-port", type=int, default=29741, help="torchrun rendezvous port (--ranks > 1)")
    parser.add_argument("--side-by-side", type=int, default=1,
                        help="identical trainings of each variant run at once (--threads split between them), as "
                             "run.sh --parallel N trains N systems: audio-s/s and utt/s are their sums")
    parser.add_argument("--profile-steps", type=int, default=0,
                        help="also profile this many updates in process (FLOPs, matmul peak, per-part times)")
    parser.add_argument("--flop-batches", type=int, default=5, help="batches the FLOPs per audio second average")
    parser.add_argument("--json", help="write every figure here")
    parser.add_argument("overrides", nargs="*", help="extra hydra overrides for every variant")
    args = parser.parse_args()
    if args.updates <= args.warmup:
        raise SystemExit("--updates must exceed --warmup")
    if args.side_by_side < 1 or args.threads < args.side_by_side * args.ranks:
        raise SystemExit(f"--side-by-side {args.side_by_side} x --ranks {args.ranks} needs at least as many --threads "
                         f"(got {args.threads})")

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            results[variant] = measure(variant, args, os.path.join(tmp, variant))
            r = results[variant]
            print(f"  {variant}: {r['seconds_per_update']:.3f} s/update, {r['audio_seconds_per_second']:.1f} "
                  f"audio-s/s, {r['peak_rss_mib']:.0f} MiB", file=sys.stderr)
            if args.profile_steps:
                results[variant].update(profile(variant, args, os.path.join(tmp, variant + "_profile")))
    peak = None
    if args.profile_steps:
        import torch

        from fairseq_kd.profiling import matmul_peak_gflops

        torch.set_num_threads(args.threads)
        peak = matmul_peak_gflops()

    base = next(iter(results.values()))
    print(f"\nTraining throughput, fairseq-hydra-train, {args.updates - args.warmup} timed updates after "
          f"{args.warmup}, {args.threads} threads, {args.side_by_side} training(s) at once (figures summed), "
          f"{args.ranks} rank(s), dataset.num_workers={args.num_workers}, "
          f"data {args.data}, overrides {' '.join(args.overrides) or 'none'}")
    gpus = sorted({r["gpu"] for r in results.values() if "gpu" in r})
    print("| variant | trained parameters | s / update | audio s / update | audio-s / s | utt / s | "
          "speed ratio | peak RSS (MiB) |" + (f" peak GPU memory (GiB, {', '.join(gpus)}) |" if gpus else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if gpus else ""))
    for variant, r in results.items():
        print(f"| {variant} | {r['parameters']:,} | {r['seconds_per_update']:.3f} | "
              f"{r['audio_seconds_per_update']:.1f} | {r['audio_seconds_per_second']:.1f} | "
              f"{r['utterances_per_second']:.2f} | "
              f"{r['audio_seconds_per_second'] / base['audio_seconds_per_second']:.2f} | {r['peak_rss_mib']:.0f} |"
              + (f" {r['peak_gpu_gib']:.1f} |" if "peak_gpu_gib" in r else (" - |" if gpus else "")))
    if args.profile_steps:
        print(f"\nCompute: fp32 matmul peak of this machine {peak:.1f} GFLOP/s ({args.threads} threads, 2048^2); "
              f"FLOPs counted over {args.flop_batches} batches (FlopCounterMode: matmul, conv, attention)")
        print("| variant | GFLOP / audio-s | achieved GFLOP/s | share of matmul peak | "
              "bound at peak (audio-s / s) |")
        print("|---|---:|---:|---:|---:|")
        for variant, r in results.items():
            achieved = r["gflop_per_audio_second"] * r["audio_seconds_per_second"]
            print(f"| {variant} | {r['gflop_per_audio_second']:.2f} | {achieved:.1f} | {percent(achieved, peak)} % | "
                  f"{peak / r['gflop_per_audio_second']:.1f} |")
        for key, title in (("parts", "part"), ("families", "op family"), ("top_ops", "op (self time)")):
            print(f"\nWhere the time goes ({args.profile_steps} profiled updates, % of wall time; "
                  f"torch.profiler self CPU time)")
            names = sorted({n for r in results.values() for n in r["profile"][key]},
                           key=lambda n: -sum(r["profile"][key].get(n, 0) for r in results.values()))
            print(f"| {title} | " + " | ".join(results) + " |")
            print("|---|" + "---:|" * len(results))
            for name in names:
                print(f"| {name} | " + " | ".join(
                    percent(r["profile"][key].get(name, 0.0), r["profile"]["wall_seconds"])
                    for r in results.values()) + " |")
    if args.json:
        with atomic_write(args.json) as f:
            json.dump({"command": sys.argv, "matmul_peak_gflops": peak, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
