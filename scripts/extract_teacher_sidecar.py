#!/usr/bin/env python3
"""Teacher sidecars: the masked-LM teacher's top-k probabilities for every WordPiece of every transcript.

Each transcript of ``{split}.wrd`` is tokenised with the teacher's WordPiece tokenizer; every position is masked
in turn and the teacher's --topk most probable tokens there (softmax at --temperature) are stored with their
probabilities, memory-mapped, in --out (format: fairseq_kd/data/teacher_sidecar.py). Training reads them with
``task.kd_sidecar_dir=<--out>``; the teacher itself never runs during ASR training.

The teacher is a transformers BertForMaskedLM directory with its tokenizer and a *trained* masked-LM head
(a raw sentence-embedding BERT such as all-MiniLM-L6-v2 is refused: give it a head with
scripts/finetune_teacher.py). Interrupted runs resume from the last finished chunk of --chunk-size utterances;
splits already extracted with the same teacher, settings and data are skipped.

Options that change the stored numbers (recorded in teacher.json and every split header, the same for every
split of one --out directory): --topk, --temperature, --dtype, --long-transcripts (a transcript longer than
the teacher's max_length - 2 WordPieces is an error by default; "window" reads each position in a window of
max_length - 2 WordPieces centred on it), --context-utterances N (the teacher also reads up to N preceding
and N following utterances of the same chapter/speaker, Futami et al.'s "full-length" context; the group and
the order come from the audio file names, LibriSpeech SPEAKER-CHAPTER-NNNN by default, other corpora need
--context-group-regex), --drop-unspeakable (the top-k leaves out the ids a transcript's tokenisation can
never produce, i.e. the special tokens but [UNK] and WordPieces with characters other than letters and the
apostrophe, and renormalises over the rest; the probability they held is printed and kept in the header).
Details: docs/teacher_sidecar.md.

Cost: a transcript of n WordPieces takes n teacher passes of length n + 2 (more with context); measure it
with scripts/benchmark_teacher.py. --device cuda (--dtype float16/bfloat16) runs the teacher on a GPU.

  python scripts/extract_teacher_sidecar.py --teacher exp/teacher/minilm_web --data data/ls100 \\
      --splits train dev_clean --out data/ls100/teacher --topk 10

Sharding (many GPUs or nodes; --out on a file system they share): shard s of S computes every S-th chunk of
--chunk-size utterances; scripts/merge_teacher_sidecar.py then joins the chunks into the same files (byte for
byte) that one process would write. On one machine with 4 GPUs:

  for s in 0 1 2 3; do CUDA_VISIBLE_DEVICES=$s python scripts/extract_teacher_sidecar.py --teacher T \\
      --data D --splits train --out D/teacher --device cuda --dtype float16 --shard-id $s --num-shards 4 & done
  wait && python scripts/merge_teacher_sidecar.py --data D --splits train --out D/teacher

As a SLURM array (sbatch --array=0-15 --gres=gpu:1 extract.sh, then the merge as a dependent job,
sbatch --dependency=afterok:<array job id> merge.sh):

  # extract.sh
  python scripts/extract_teacher_sidecar.py --teacher T --data D --splits train --out D/teacher \\
      --device cuda --shard-id $SLURM_ARRAY_TASK_ID --num-shards $SLURM_ARRAY_TASK_COUNT
  # merge.sh
  python scripts/merge_teacher_sidecar.py --data D --splits train --out D/teacher

A failed or pre-empted shard resumes from its finished chunks when run again with the same options; every
shard must use the same options (a shard with others is refused).
"""
import argparse
import logging
import os

import torch

from fairseq_kd.teacher.extract import LIBRISPEECH_GROUPS, extract_split, prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import DTYPES, LONG_TRANSCRIPT_POLICIES, MaskedLmTeacher


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="BertForMaskedLM directory (save_pretrained + tokenizer)")
    parser.add_argument("--data", required=True, help="data directory with {split}.tsv and {split}.wrd (task.data)")
    parser.add_argument("--splits", nargs="+", required=True, help="splits to extract, e.g. train valid")
    parser.add_argument("--out", help="sidecar directory (task.kd_sidecar_dir); default: DATA/teacher")
    parser.add_argument("--topk", type=int, default=10, help="teacher tokens kept per position (K)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the teacher logits")
    parser.add_argument("--batch-tokens", type=int, default=16384,
                        help="padded positions per teacher forward pass (larger: fewer, bigger passes, more memory)")
    parser.add_argument("--chunk-size", type=int, default=200,
                        help="utterances per resumable chunk (and per progress-bar step)")
    parser.add_argument("--long-transcripts", choices=LONG_TRANSCRIPT_POLICIES, default="error",
                        help="transcripts longer than the teacher reads: refuse them, or read each position in a "
                             "window centred on it")
    parser.add_argument("--context-utterances", type=int, default=0,
                        help="neighbouring utterances (of the same group) read on each side as context (0: none)")
    parser.add_argument("--context-group-regex", default=LIBRISPEECH_GROUPS,
                        help="regex that fully matches every audio file stem, with named groups 'group' (the "
                             "chapter/speaker) and 'index' (integer order); default: LibriSpeech SPK-CHAPTER-NNNN")
    parser.add_argument("--drop-unspeakable", action="store_true",
                        help="take the top-k from the teacher's distribution without the tokens no transcript contains "
                             "([CLS], [SEP], [PAD], [MASK], WordPieces with digits, punctuation but the apostrophe or "
                             "non-ASCII characters; [UNK] is kept), renormalised")
    parser.add_argument("--shard-id", type=int, default=0, help="this process' shard, 0 .. --num-shards - 1")
    parser.add_argument("--num-shards", type=int, default=1,
                        help="shards computing a split together; >1: merge with scripts/merge_teacher_sidecar.py")
    parser.add_argument("--device", default="cpu", help="torch device of the teacher (cpu, cuda)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="float32",
                        help="teacher weights and activations (float16/bfloat16 for GPUs); softmax in float32")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)

    teacher = MaskedLmTeacher(args.teacher, args.device, args.dtype)
    meta = teacher_meta(teacher, args.topk, args.temperature, args.long_transcripts, args.context_utterances,
                        args.context_group_regex, args.drop_unspeakable)
    if args.drop_unspeakable:
        print(f"--drop-unspeakable: {meta['drop_unspeakable']['num_dropped_ids']} of the {teacher.vocab_size} teacher "
              f"ids left out of the top-k")
    out = args.out or os.path.join(args.data, "teacher")
    prepare_sidecar_dir(out, meta)
    for split in args.splits:
        header = extract_split(teacher, meta, args.data, split, out, args.batch_tokens, args.chunk_size,
                               shard_id=args.shard_id, num_shards=args.num_shards)
        if header is None:
            print(f"{split}: shard {args.shard_id} of {args.num_shards} done -> {out}")
            continue
        stats = header["stats"]
        dropped = (f", mean probability of the dropped unspeakable tokens {stats['unspeakable_mass_mean']:.4f}"
                   if "unspeakable_mass_mean" in stats else "")
        print(f"{split}: {header['num_utterances']} utterances, {header['num_positions']} WordPieces; teacher top-1 "
              f"accuracy {100 * stats['top1_accuracy']:.1f} %, reference in top-{args.topk} "
              f"{100 * stats['reference_in_topk']:.1f} %, mean top-{args.topk} mass {stats['topk_mass_mean']:.3f}"
              f"{dropped} -> {out}")


if __name__ == "__main__":
    main()
