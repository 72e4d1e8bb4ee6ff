#!/usr/bin/env python3
"""Time and memory of keeping dev/test sentences out of a large LM text (fairseq_kd/data/exclusion.py), for a
number of excluded sentences: the filter and the check of scripts/build_lm.py, and scripts/check_excluded.py.

The text (unless --text is given) is made from examples/kd/data/web_sentences.txt, varied so that it is not one
book repeated: the sentences are normalised and split 80/20 into a text pool and a held-out pool; each of --lines
lines joins two random sentences of the text pool (~21 words, ~110 bytes: librispeech-lm-norm.txt's shape), one
random word dropped from half of them. The excluded sentences (as many as the largest --excluded) are the head of
one held-out sentence and the tail of another, like dev/test sentences of other books; --planted of them
are put into the text (half as a line of their own, half inside a line). For each --excluded N (the first N
sentences: every count contains the planted ones), each step runs in a process of its own, for its peak RSS:

  filter + check  scripts/build_lm.py's sequence: normalise + filter the text into a file, then the check of it
  check_excluded  scripts/check_excluded.py on the raw text (the same text for every N): must exit 1 naming
                  the planted sentences
  check_excluded  scripts/check_excluded.py on the filtered text: must exit 0

Prints a table (excluded x text lines -> wall and CPU seconds, MB/s, peak RSS), the ratio of check_excluded's time
at the largest and the smallest N, and the time expected for a text of --extrapolate-mb (librispeech-lm-norm.txt:
4.4 GB, 40 M lines) from the MB/s of the largest N, for build_lm.py's filter + check and for the recipe's stage 5
(which also runs check_excluded.py on the LM text); the memory does not depend on the text.

  python scripts/benchmark_exclusion.py --lines 4000000 --excluded 20 10000 --work /tmp/exclusion_benchmark
"""
import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SENTENCES = os.path.join(ROOT, "examples", "kd", "data", "web_sentences.txt")
CHECK_EXCLUDED = os.path.join(ROOT, "scripts", "check_excluded.py")
RAW_CHECK, STAGE5_CHECK = "check_excluded.py, raw text", "check_excluded.py, filtered text"


def sentence_pools(seed: int):
    """``(text pool, held-out pool)``: the normalised web sentences, shuffled, split 80/20."""
    from fairseq_kd.data.text import normalize_transcript

    with open(SENTENCES, encoding="utf-8") as f:
        sentences = sorted({s for s in map(normalize_transcript, f) if s})
    random.Random(seed).shuffle(sentences)
    return sentences[: len(sentences) * 4 // 5], sentences[len(sentences) * 4 // 5:]


def make_excluded(heldout, count: int, rng: random.Random):
    """``count`` distinct sentences, each the head of a held-out sentence and the tail of another."""
    excluded = {}  # an insertion-ordered set
    while len(excluded) < count:
        head, tail = rng.choice(heldout).split(), rng.choice(heldout).split()
        excluded[" ".join(head[: rng.randint(1, len(head))] + tail[rng.randint(0, len(tail) - 1):])] = None
    return list(excluded)


def write_text(path: str, text_pool, num_lines: int, planted, rng: random.Random) -> None:
    """``num_lines`` lines of two text-pool sentences (half with a word dropped); the ``planted`` sentences go on
    random lines, the even-numbered ones as the whole line, the others inside it."""
    planted_at = dict(zip(rng.sample(range(num_lines), len(planted)), enumerate(planted)))
    with open(path, "w", encoding="utf-8") as out:
        for line_no in range(num_lines):
            words = f"{rng.choice(text_pool)} {rng.choice(text_pool)}".split()
            if rng.random() < 0.5:
                del words[rng.randrange(len(words))]
            if line_no in planted_at:
                i, sentence = planted_at[line_no]
                words = [sentence] if i % 2 == 0 else words[:3] + [sentence] + words[3:]
            out.write(" ".join(words) + "\n")


def run_measured(cmd):
    """``(wall seconds, CPU seconds, peak RSS in MB, exit status, output)`` of ``cmd`` run to its end."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), \
            out.read()


def filter_and_check(excluded_path: str, text: str, out_path: str) -> None:
    """scripts/build_lm.py's exclusion (fairseq_kd/decoding/ngram_lm.py) without the LM: print the wall and CPU
    seconds of the filter and of the check, and the filter's counts, as JSON."""
    from fairseq_kd.data.exclusion import TextExclusion

    exclusion = TextExclusion([excluded_path])
    counts = {}
    wall, cpu = time.perf_counter(), time.process_time()
    with open(text, encoding="utf-8") as src, open(out_path, "w", encoding="utf-8") as out:
        for line in exclusion.lines(src, counts):
            out.write(line + "\n")
    filter_wall, filter_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall, cpu = time.perf_counter(), time.process_time()
    with open(out_path, encoding="utf-8") as f:
        exclusion.check(f, "the filtered text")
    print(json.dumps({"filter": [filter_wall, filter_cpu],
                      "check": [time.perf_counter() - wall, time.process_time() - cpu], **counts}))


@dataclasses.dataclass
class Step:
    name: str
    wall: float  # seconds
    cpu: float  # seconds
    mb: float  # text read
    rss: float  # peak of the process, MB
    result: str


def measure(count: int, excluded_path: str, text: str, filtered: str, planted) -> List[Step]:
    """The steps of the module docstring with ``count`` excluded sentences."""
    _, _, rss, status, out = run_measured([sys.executable, os.path.abspath(__file__), "--work", ".",
                                           "--filter-and-check", excluded_path, text, filtered])
    if status != 0:
        raise SystemExit(f"filter + check with {count} excluded sentences failed ({status}):\n{out[-3000:]}")
    timings = json.loads(out.strip().splitlines()[-1])
    steps = [Step("filter (build_lm)", *timings["filter"], os.path.getsize(text) / 1e6, rss,
                  f"{timings['excluded_lines']} lines excluded"),
             Step("check (build_lm)", *timings["check"], os.path.getsize(filtered) / 1e6, rss, "clean")]
    for name, checked, expected in ((RAW_CHECK, text, 1 if planted else 0), (STAGE5_CHECK, filtered, 0)):
        wall, cpu, rss, status, out = run_measured([sys.executable, CHECK_EXCLUDED, "--excluded", excluded_path,
                                                    "--texts", checked])
        named = all(repr(sentence) in out for sentence in planted) if checked == text else True
        if status != expected or not named:
            raise SystemExit(f"{name}: exit {status} (expected {expected}), every planted sentence named: {named}"
                             f"\n{out[-3000:]}")
        steps.append(Step(name, wall, cpu, os.path.getsize(checked) / 1e6, rss,
                          f"exit {status}" + (f", the {len(planted)} planted sentences named" if status else "")))
    return steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="directory for the text, the excluded files and outputs")
    parser.add_argument("--lines", type=int, default=4_000_000, help="lines of the generated text")
    parser.add_argument("--text", help="use this text instead of generating one (nothing is planted in it)")
    parser.add_argument("--excluded", type=int, nargs="+", default=[20, 10_000], help="numbers of excluded sentences")
    parser.add_argument("--planted", type=int, default=4, help="excluded sentences put into the generated text")
    parser.add_argument("--extrapolate-mb", type=float, default=4400.0,
                        help="text size (MB) to extrapolate to (librispeech-lm-norm.txt: 4400)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--filter-and-check", nargs=3, metavar=("EXCLUDED", "TEXT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.filter_and_check:
        return filter_and_check(*args.filter_and_check)
    counts = sorted(args.excluded)
    if args.planted > counts[0]:
        raise SystemExit(f"--planted {args.planted} must not exceed the smallest --excluded {counts[0]}")
    os.makedirs(args.work, exist_ok=True)
    rng = random.Random(args.seed)
    text_pool, heldout = sentence_pools(args.seed)
    excluded = make_excluded(heldout, counts[-1], rng)
    planted = [] if args.text else excluded[: args.planted]
    text = args.text or os.path.join(args.work, "text.txt")
    if not args.text:
        write_text(text, text_pool, args.lines, planted, rng)
    with open(text, "rb") as f:
        text_lines = sum(1 for _ in f)

    steps = {}
    for count in counts:
        excluded_path = os.path.join(args.work, f"excluded_{count}.wrd")
        with open(excluded_path, "w", encoding="utf-8") as f:
            f.write("".join(sentence + "\n" for sentence in excluded[:count]))
        steps[count] = measure(count, excluded_path, text, os.path.join(args.work, f"filtered_{count}.txt"), planted)

    print(f"text: {text} ({text_lines:,} lines, {os.path.getsize(text) / 1e6:.0f} MB); excluded sentences: "
          f"{args.work}/excluded_N.wrd")
    print("| excluded | text lines | step | wall s | CPU s | MB/s (wall) | MB/s (CPU) | peak RSS MB | result |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for count in counts:
        for step in steps[count]:
            print(f"| {count:,} | {text_lines:,} | {step.name} | {step.wall:.1f} | {step.cpu:.1f} | "
                  f"{step.mb / step.wall:.1f} | {step.mb / step.cpu:.1f} | {step.rss:.0f} | {step.result} |")
    most, fewest = (next(step for step in steps[count] if step.name == RAW_CHECK) for count in (counts[-1], counts[0]))
    print(f"\n{RAW_CHECK} (the same text): {counts[-1]:,} excluded sentences take {most.wall / fewest.wall:.2f}x "
          f"the wall time of {counts[0]:,} ({most.cpu / fewest.cpu:.2f}x the CPU time)")
    build_lm = [step for step in steps[counts[-1]] if step.name.endswith("(build_lm)")]
    stage5 = build_lm + [step for step in steps[counts[-1]] if step.name == STAGE5_CHECK]
    print(f"extrapolated to {args.extrapolate_mb:,.0f} MB with {counts[-1]:,} excluded sentences, from the MB/s above "
          f"(wall at this machine's load / CPU, i.e. one free core):")
    for what, chosen in (("filter + check of scripts/build_lm.py", build_lm),
                         ("the recipe's stage 5, check_excluded.py of the LM text included", stage5)):
        wall = sum(args.extrapolate_mb / (step.mb / step.wall) for step in chosen) / 60
        cpu = sum(args.extrapolate_mb / (step.mb / step.cpu) for step in chosen) / 60
        print(f"  {what}: {wall:.1f} min wall / {cpu:.1f} min CPU, peak RSS {max(step.rss for step in chosen):.0f} MB "
              f"(it does not grow with the text)")

if __name__ == "__main__":
    main()
