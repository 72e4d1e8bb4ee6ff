#!/usr/bin/env python3
"""Speed of teacher-sidecar generation: batched masked copies vs one forward pass per masked token, and disk use.

For the first --num-sentences sentences of --text (a .wrd transcript file, or plain text that is normalised like
the transcripts) it times, after a warm-up:

  batched      MaskedLmTeacher.masked_topk: all masked copies of many sentences in padded batches of at most
               --batch-tokens positions, the MLM head at the masked positions only (what the extractor runs)
  extraction   extract_split end to end on the same sentences: batched teacher, chunk files, merge into the
               memory-mapped sidecar, header
  reference    the naive way, on the first --reference-sentences sentences: one BertForMaskedLM forward pass
               (batch 1, MLM head at every position) per masked token

and prints sentences/s, WordPieces/s (masked positions per second) and the speed-up over the reference, the
agreement of the batched and reference top-k, and the sidecar's bytes per WordPiece on disk (arrays only, and
all files). The machine load (1-minute load average) is printed with the table: numbers taken on a busy
machine are upper bounds of the cost.

  python scripts/benchmark_teacher.py --teacher exp/teacher/minilm_web \\
      --text examples/kd/data/web_sentences.txt --num-sentences 200 --threads 2
"""
import argparse
import os
import tempfile
import time

import numpy as np
import torch

from fairseq_kd.data.text import normalize_transcript
from fairseq_kd.teacher.extract import extract_split, prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import DTYPES, MaskedLmTeacher


def read_sentences(path, limit):
    sentences = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            sentence = line.strip() if path.endswith(".wrd") else normalize_transcript(line)
            if sentence:
                sentences.append(sentence)
            if len(sentences) == limit:
                break
    if not sentences:
        raise SystemExit(f"{path}: no usable sentences")
    return sentences


@torch.inference_mode()
def reference_topk(teacher, sequences, topk):
    """One full forward pass per masked position (batch 1, MLM head everywhere): [(ids [n, k], probs [n, k])]."""
    special = teacher.special_ids
    results = []
    for sequence in sequences:
        ids, probs = np.empty((len(sequence), topk), np.int64), np.empty((len(sequence), topk), np.float32)
        for u in range(len(sequence)):
            masked = torch.tensor([[special["cls"], *sequence, special["sep"]]], device=teacher.device)
            masked[0, u + 1] = special["mask"]
            logits = teacher.model(input_ids=masked).logits[0, u + 1].float()
            top_probs, top_ids = torch.softmax(logits, -1).topk(topk)
            ids[u], probs[u] = top_ids.cpu().numpy(), top_probs.cpu().numpy()
        results.append((ids, probs))
    return results


def write_corpus(directory, sentences):
    """A data directory for extract_split: a manifest of placeholder audio entries and the transcripts."""
    with open(os.path.join(directory, "bench.tsv"), "w", encoding="utf-8") as f:
        f.write("/placeholder\n" + "".join(f"utt{i:06d}.wav\t16000\n" for i in range(len(sentences))))
    with open(os.path.join(directory, "bench.wrd"), "w", encoding="utf-8") as f:
        f.write("".join(s + "\n" for s in sentences))


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="BertForMaskedLM directory with its tokenizer")
    parser.add_argument("--text", required=True, help=".wrd transcripts or plain text, one sentence per line")
    parser.add_argument("--num-sentences", type=int, default=200, help="sentences timed (batched, extraction)")
    parser.add_argument("--reference-sentences", type=int, default=50,
                        help="sentences timed with the one-pass-per-token reference (the first ones)")
    parser.add_argument("--topk", type=int, default=10, help="teacher tokens kept per position")
    parser.add_argument("--batch-tokens", type=int, default=16384, help="padded positions per batched forward pass")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32", help="teacher weights and activations")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    sentences = read_sentences(args.text, args.num_sentences)
    teacher = MaskedLmTeacher(args.teacher, args.device, args.dtype)
    sequences = [s[: teacher.max_length - 2] for s in teacher.tokenize(sentences)]
    reference_count = min(args.reference_sentences, len(sequences))
    teacher.masked_topk(sequences[:4], args.topk, batch_tokens=args.batch_tokens)  # warm-up
    reference_topk(teacher, sequences[:1], args.topk)

    batched, batched_s = timed(lambda: teacher.masked_topk(sequences, args.topk, batch_tokens=args.batch_tokens))
    reference, reference_s = timed(lambda: reference_topk(teacher, sequences[:reference_count], args.topk))
    with tempfile.TemporaryDirectory() as data:
        write_corpus(data, sentences)
        out = os.path.join(data, "sidecar")
        meta = teacher_meta(teacher, args.topk, 1.0)
        prepare_sidecar_dir(out, meta)
        header, extraction_s = timed(lambda: extract_split(teacher, meta, data, "bench", out, args.batch_tokens,
                                                           progress=False))
        sizes = {name: os.path.getsize(os.path.join(out, name)) for name in os.listdir(out)}
    positions = header["num_positions"]
    array_bytes = sum(size for name, size in sizes.items() if name.endswith(".npy"))

    tokens = [len(s) for s in sequences]
    rows = [("batched (masked_topk)", len(sequences), sum(tokens), batched_s),
            ("extraction (extract_split)", len(sequences), sum(tokens), extraction_s),
            ("reference (1 pass per token)", reference_count, sum(tokens[:reference_count]), reference_s)]
    reference_rate = rows[2][2] / reference_s
    device = f"{args.device} ({torch.get_num_threads()} threads)" if args.device == "cpu" else args.device
    print(f"teacher {os.path.basename(os.path.normpath(args.teacher))} ({teacher.model.config.num_hidden_layers} "
          f"layers, hidden {teacher.model.config.hidden_size}, vocabulary {teacher.vocab_size}), {device}, "
          f"{args.dtype}, top-{args.topk}, batch tokens {args.batch_tokens}; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'method':30} {'sentences':>9} {'WordPieces':>10} {'seconds':>8} {'sent/s':>8} {'WP/s':>8} {'speed-up':>8}")
    for name, count, wordpieces, seconds in rows:
        print(f"{name:30} {count:9d} {wordpieces:10d} {seconds:8.2f} {count / seconds:8.1f} "
              f"{wordpieces / seconds:8.1f} {wordpieces / seconds / reference_rate:7.1f}x")
    same_top1 = np.mean([int(b[0][u, 0]) == int(r[0][u, 0])
                         for b, r in zip(batched, reference) for u in range(len(r[0]))])
    max_diff = max(float(np.abs(b[1] - r[1]).max()) for b, r in zip(batched, reference))
    print(f"batched vs reference on {reference_count} sentences: same top-1 at {100 * same_top1:.1f} % of positions, "
          f"largest top-k probability difference {max_diff:.2e}")
    print(f"sidecar on disk: {array_bytes / positions:.1f} bytes per WordPiece in the arrays "
          f"(4 token + {4 * args.topk} ids + {2 * args.topk} probabilities + offsets), "
          f"{sum(sizes.values()) / positions:.1f} with keys and headers; {positions} WordPieces, "
          f"{header['num_utterances']} sentences")


if __name__ == "__main__":
    main()
