#!/usr/bin/env python3
"""Export a ctc_kd checkpoint as ONNX for ONNX Runtime and sherpa-onnx (greedy CTC: encoder + CTC head, no attention
decoder), and check it against PyTorch.

  python scripts/export_onnx.py exp/xs_interaedkd/checkpoint_best.pt exp/xs_interaedkd/onnx \\
      --verify-subset test --threads 2 --fairseq-summary exp/xs_interaedkd/decode/greedy/test/decoding_summary.json

Writes OUT_DIR/model.onnx (float32; the per-utterance feature normalisation inside the graph), model.int8.onnx
(ONNX Runtime's dynamic int8 quantisation; with --verify-subset kept only if it is faster than float32),
tokens.txt and export.json. With --verify-subset the split is decoded one utterance at a time by PyTorch, ONNX
Runtime float32 / int8 and sherpa-onnx (docs/deploy.md), and the report gives the max abs difference of the
log-probabilities, the share of utterances with the same greedy labels and words as PyTorch (= fairseq-generate
greedy), WER and seconds; with --fairseq-summary (fairseq-generate --decoding-summary of the same checkpoint and
split, e.g. run.sh's decode/greedy/SUBSET/decoding_summary.json) also the share of utterances with fairseq-generate's
own words. The graph, features and metadata: fairseq_kd/deploy/onnx_ctc.py.
"""
import argparse
import json
import sys

import torch

import fairseq_kd  # noqa: F401  (safe checkpoint loading, model registration)
from fairseq_kd.deploy.onnx_ctc import REPORT_FILE, export
from fairseq_kd.errors import DataError


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="ctc_kd checkpoint (training or scripts/export_ctc_model.py output)")
    parser.add_argument("out_dir", help="folder to write model.onnx, model.int8.onnx, tokens.txt, export.json to")
    parser.add_argument("--data", help="data directory with the dictionary (default: the checkpoint's task.data)")
    parser.add_argument("--verify-subset", help="split of --data to check the export on (e.g. test)")
    parser.add_argument("--fairseq-summary", help="with --verify-subset: fairseq-generate's --decoding-summary JSON of "
                        "the same checkpoint and split, to compare every runtime's words with")
    parser.add_argument("--no-int8", action="store_true", help="do not write the int8 model")
    parser.add_argument("--threads", type=int, default=1, help="threads of PyTorch, ONNX Runtime and sherpa-onnx")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        if args.fairseq_summary and not args.verify_subset:
            parser.error("--fairseq-summary needs --verify-subset (the split it decoded)")
        report = export(args.checkpoint, args.out_dir, args.data, int8=not args.no_int8,
                        verify_subset=args.verify_subset, threads=args.threads, fairseq_summary=args.fairseq_summary)
    except DataError as e:
        sys.exit(f"error: {e}")
    print(f"{args.out_dir}: " + ", ".join(f"{name} ({size / 2**20:.1f} MiB)" for name, size in report["files"].items()))
    check = report["verification"]
    if check:
        print(f"{check['subset']}: {check['utterances']} utterances, one at a time, {check['threads']} thread(s)"
              + (f"; '= generate': the words of {check['fairseq_generate']['summary']} "
                 f"({check['fairseq_generate']['utterances']} utterances)" if "fairseq_generate" in check else ""))
        generate = "fairseq_generate" in check
        print(f"{'runtime':<20} {'max |dlogp|':>11} {'argmax agree':>12} {'same path':>9} {'same words':>10} "
              + (f"{'= generate':>10} " if generate else "") + f"{'WER':>6} {'seconds':>8}")
        for name in ("pytorch", "onnxruntime_float32", "onnxruntime_int8", "sherpa_onnx_float32"):
            if name not in check:
                continue
            row = check[name]
            fmt = lambda key, spec: format(row[key], spec) if key in row else "-"  # noqa: E731
            seconds = row.get("encoder_seconds", row.get("features_encoder_search_seconds"))
            print(f"{name:<20} {fmt('max_abs_log_prob_diff', '11.2e'):>11} {fmt('argmax_frames_agree', '12.2%'):>12} "
                  f"{fmt('same_label_path', '9.1%'):>9} {fmt('same_words', '10.1%'):>10} "
                  + (f"{fmt('same_words_as_fairseq_generate', '10.1%'):>10} " if generate else "")
                  + f"{row['wer']:>6.2f} "
                  f"{seconds:>8.3f}" + ("" if row.get("kept", True) else "  (slower than float32: removed)"))
        if report["fairseq_generate_precision_on_this_cpu"] == "bfloat16":
            print("note: fairseq-generate decodes this checkpoint under bfloat16 autocast on this CPU (model."
                  "autocast_bf16 auto or true); every row here is float32: give --fairseq-summary a float32 decoding, "
                  "fairseq-generate ... --model-overrides \"{'autocast_bf16': False}\"")
        print(f"report: {args.out_dir}/{REPORT_FILE}")
    else:
        print(json.dumps(report["files"]))


if __name__ == "__main__":
    main()
