#!/usr/bin/env python3
"""Manifests and labels of one or more splits, each from a folder of audio + transcripts (fairseq's
wav2vec_manifest.py and libri_labels.py in one tool).

Input: a LibriSpeech-style folder: ``*.trans.txt`` files with ``UTT_ID TRANSCRIPT`` lines, audio
``UTT_ID.flac``/``.wav`` beside them (LibriSpeech itself, or what scripts/make_synthetic_corpus.py writes).
Output in --out: ``{split}.tsv``, ``{split}.wrd``, ``{split}.ltr``; with --write-dict also ``dict.ltr.txt``
(every letter A-Z, the apostrophe and ``|`` are always included); with --spm-model also ``{split}.spm``
(sentencepiece pieces) and, with --write-dict, ``dict.spm.txt``.

  python scripts/prepare_manifest.py --audio-dir LibriSpeech/train-clean-100 --split train --out data/ls100 --write-dict
  python scripts/prepare_manifest.py --audio-dir LibriSpeech/dev-clean --split dev_clean --out data/ls100
  # several splits in one process: --split / --audio-dir pairs, in order
  python scripts/prepare_manifest.py --split dev_clean --audio-dir LibriSpeech/dev-clean \
      --split test_clean --audio-dir LibriSpeech/test-clean --out data/ls100
  python scripts/prepare_manifest.py --audio-dir LibriSpeech/train-clean-{100,360} --split train --out data/ls460 \\
      --write-dict
  # sentencepiece units instead of letters (task.labels=spm, criterion.post_process=sentencepiece):
  python scripts/prepare_manifest.py ... --spm-model data/ls100/spm_unigram300.model --spm-train-vocab 300 --write-dict
"""
import argparse
import os
import string

from fairseq_kd.data.manifest import scan_transcribed_audio, write_dictionary, write_split
from fairseq_kd.data.text import WORD_BOUNDARY, words_to_letters
from fairseq_kd.io_utils import atomic_write

LETTERS = list(string.ascii_uppercase) + ["'", WORD_BOUNDARY]


def write_spm_labels(out_dir, split, transcripts, model_path, train_vocab, write_dict):
    import sentencepiece as spm

    if not os.path.isfile(model_path):
        if not train_vocab:
            raise SystemExit(f"{model_path}: no sentencepiece model; pass --spm-train-vocab N to train one on "
                             f"this split's transcripts")
        text_path = os.path.join(out_dir, f"{split}.wrd")
        spm.SentencePieceTrainer.train(input=text_path, model_prefix=model_path[: -len(".model")],
                                       vocab_size=train_vocab, model_type="unigram", character_coverage=1.0,
                                       bos_id=-1, eos_id=-1, unk_id=0, pad_id=-1)
    sp = spm.SentencePieceProcessor(model_file=model_path)
    lines = [" ".join(sp.encode(t, out_type=str)) for t in transcripts]
    with atomic_write(os.path.join(out_dir, f"{split}.spm")) as f:
        f.write("".join(line + "\n" for line in lines))
    if write_dict:
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_unknown(i)]
        write_dictionary(lines, os.path.join(out_dir, "dict.spm.txt"), extra_symbols=pieces)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio-dir", required=True, nargs="+", action="append",
                        help="folder(s) with *.trans.txt and audio files; several (e.g. train-clean-100 "
                             "train-clean-360) make one split whose manifest root is their common parent; repeated "
                             "with --split, one per split")
    parser.add_argument("--split", required=True, action="append",
                        help="split name: writes {split}.tsv/.wrd/.ltr (repeated with --audio-dir for several splits)")
    parser.add_argument("--out", required=True, help="data directory (task.data)")
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--write-dict", action="store_true", help="write dict.ltr.txt (use on the training split)")
    parser.add_argument("--spm-model", help="also write sentencepiece labels {split}.spm with this model")
    parser.add_argument("--spm-train-vocab", type=int, default=0,
                        help="train --spm-model (unigram, this vocabulary size) on this split if it does not exist")
    args = parser.parse_args()
    if len(args.split) != len(args.audio_dir):
        parser.error(f"{len(args.split)} --split for {len(args.audio_dir)} --audio-dir: give them in pairs")
    if len(args.split) > 1 and (args.write_dict or args.spm_model):
        parser.error("--write-dict and --spm-model take one split (the training split)")
    for split, audio_dir in zip(args.split, args.audio_dir):
        prepare_split(split, audio_dir, args)


def prepare_split(split, audio_dir, args):
    audio_dirs = [os.path.abspath(d) for d in audio_dir]
    root = audio_dirs[0] if len(audio_dirs) == 1 else os.path.commonpath(audio_dirs)
    utterances = write_split((u for d in audio_dirs for u in scan_transcribed_audio(d)), args.out, split,
                             root, args.sample_rate)
    if args.write_dict:
        write_dictionary((words_to_letters(u.transcript) for u in utterances),
                         os.path.join(args.out, "dict.ltr.txt"), extra_symbols=LETTERS)
    if args.spm_model:
        write_spm_labels(args.out, split, [u.transcript for u in utterances], args.spm_model,
                         args.spm_train_vocab, args.write_dict)
    hours = sum(u.num_samples for u in utterances) / args.sample_rate / 3600
    print(f"{split}: {len(utterances)} utterances, {hours:.2f} h -> {args.out}")

if __name__ == "__main__":
    main()
