#!/usr/bin/env python3
"""A LibriSpeech-shaped folder at a fraction of LibriSpeech, for rehearsing ``run.sh --preset librispeech`` at scale.

Written under --out:
  LibriSpeech/SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac  16 kHz mono TTS audio (the voices and machinery
  LibriSpeech/SUBSET/SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt  of scripts/make_synthetic_corpus.py), transcripts
  librispeech-lm-norm.txt   --lm-lines (default 40 M x --fraction) normalised lines, like librispeech-lm-norm.txt
  bert/                     the teacher directory: a tiny BERT masked LM (tests/tiny_bert.py: 2 layers, hidden 32,
                            WordPiece vocabulary of the transcripts) with its MLM head, so stage 3 uses it as it is;
                            a real run uses bert-base-uncased, ~3,400x the FLOPs per token (stage 4)
  rehearsal.json            the counts written

Subsets and their utterance counts are LibriSpeech's x --fraction (rounded, at least 1): train-clean-100 28,539,
dev-clean 2,703, dev-other 2,864, test-clean 2,620, test-other 2,939; speakers and chapters likewise (251/585,
40/97, 33/91, 40/87, 33/90), speaker ids disjoint between subsets. Each speaker is one TTS voice (round robin over
--voices); the ``-other`` subsets are mixed with pink noise at --other-snr dB (LibriSpeech's harder half). Every
utterance is a different sentence of --text (normalised, de-duplicated, shuffled by --seed).

The LM text (scripts/benchmark_exclusion.py's generator, so that it is not one book repeated): each line joins two
random sentences of a pool (--text and --lm-sources, minus every dev/test sentence), half of them with one word
dropped; every dev/test transcript is planted in it (half as a line of its own, half inside a line), as
librispeech-lm-norm.txt holds LibriSpeech's dev/test sentences, which the recipe must exclude (stage 5).

Re-running resumes: finished flac files are kept.

  python scripts/make_librispeech_rehearsal.py --fraction 0.01 --out exp/rehearsal_100 --jobs 1
  bash examples/kd/run.sh --preset librispeech --librispeech-dir exp/rehearsal_100/LibriSpeech \
      --teacher-dir exp/rehearsal_100/bert --lm-text exp/rehearsal_100/librispeech-lm-norm.txt \
      --config-prefix xs_ --max-update 50 --device cpu --exp exp/rehearsal_100/exp
"""
import argparse
import json
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))  # the scripts whose machinery this one reuses

from benchmark_exclusion import write_text  # noqa: E402  (the LM-text generator)
from make_synthetic_corpus import CHUNK, parse_voices, synthesize_chunk  # noqa: E402  (the TTS machinery)

from fairseq_kd.data.text import normalize_transcript  # noqa: E402

SENTENCES = os.path.join(ROOT, "examples", "kd", "data", "web_sentences.txt")
# subset -> (utterances, speakers, chapters) of LibriSpeech
LIBRISPEECH = {"train-clean-100": (28539, 251, 585), "dev-clean": (2703, 40, 97), "dev-other": (2864, 33, 91),
               "test-clean": (2620, 40, 87), "test-other": (2939, 33, 90)}
LM_LINES = 40_418_261  # librispeech-lm-norm.txt
DEFAULT_VOICES = "flite:slt,flite:awb,flite:rms,flite:kal16,espeak:en-us+m3,espeak:en-gb+f3"


def scaled(count, fraction):
    return max(1, round(count * fraction))


def plan_subsets(sentences, fraction, voices, other_snr):
    """{subset: [(speaker, chapter, utt_id, voice, raw, transcript, snr)]}: LibriSpeech's counts x ``fraction``."""
    plan, start, speaker_id, chapter_id = {}, 0, 100, 10000
    for subset, (utterances, speakers, chapters) in LIBRISPEECH.items():
        n, n_speakers = scaled(utterances, fraction), scaled(speakers, fraction)
        n_chapters = max(n_speakers, scaled(chapters, fraction))
        chapter_of = [(speaker_id + c % n_speakers, chapter_id + c) for c in range(n_chapters)]  # chapter -> speaker
        per_chapter, items = {}, []
        for i, (raw, norm) in enumerate(sentences[start: start + n]):
            speaker, chapter = chapter_of[i * n_chapters // n]  # consecutive utterances of one chapter
            k = per_chapter[chapter] = per_chapter.get(chapter, -1) + 1
            voice = voices[(speaker - 100) % len(voices)]
            snr = other_snr if subset.endswith("-other") else None
            items.append((speaker, chapter, f"{speaker}-{chapter}-{k:04d}", voice, raw, norm, snr))
        plan[subset] = items
        start += n
        speaker_id += n_speakers
        chapter_id += n_chapters
    return plan


def synthesize_flac(engine, voice, items):
    """synthesize_chunk's wav (16 kHz, noise) for ``items`` [(utt_id, raw, flac path, snr, seed)], kept as flac."""
    with tempfile.TemporaryDirectory() as tmpdir:
        wav_items = [(utt_id, raw, os.path.join(tmpdir, utt_id + ".wav"), 1.0, snr, seed, "pink")
                     for utt_id, raw, _, snr, seed in items]
        synthesize_chunk(engine, voice, wav_items)
        for (_, _, flac, *_), (_, _, wav, *_) in zip(items, wav_items):
            samples, rate = sf.read(wav, dtype="int16")
            sf.write(flac + ".part", samples, rate, format="FLAC")
            os.replace(flac + ".part", flac)
    return len(items)


def read_sentences(paths, max_words):
    """(raw, transcript) of every distinct speakable sentence of ``paths``, in file order."""
    sentences, seen = [], set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for raw in f:
                norm = normalize_transcript(raw)
                if norm and norm not in seen and len(norm.split()) <= max_words:
                    seen.add(norm)
                    sentences.append((raw.strip(), norm))
    return sentences


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fraction", type=float, required=True, help="of LibriSpeech's counts, e.g. 0.01 or 0.1")
    parser.add_argument("--out", required=True)
    parser.add_argument("--text", nargs="+", default=[SENTENCES], help="sentences to speak (raw, one per line)")
    parser.add_argument("--lm-sources", nargs="*", default=[],
                        help="more sentences for the LM text's pool (e.g. scripts/extract_text.py --source web)")
    parser.add_argument("--lm-lines", type=int, help=f"LM text lines (default {LM_LINES:,} x --fraction)")
    parser.add_argument("--voices", default=DEFAULT_VOICES)
    parser.add_argument("--other-snr", type=float, default=15.0, help="pink-noise SNR (dB) of dev-other/test-other")
    parser.add_argument("--max-words", type=int, default=40)
    parser.add_argument("--teacher-vocab", type=int, default=2000, help="WordPiece vocabulary of the tiny BERT")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.time()
    voices = parse_voices(args.voices)
    sentences = read_sentences(args.text, args.max_words)
    random.Random(args.seed).shuffle(sentences)
    needed = sum(scaled(n, args.fraction) for n, _, _ in LIBRISPEECH.values())
    if needed > len(sentences):
        raise SystemExit(f"--text: {len(sentences)} distinct sentences, {needed} utterances at --fraction "
                         f"{args.fraction}: give more text (--text FILE ...)")
    plan = plan_subsets(sentences, args.fraction, voices, args.other_snr)

    root = os.path.join(args.out, "LibriSpeech")
    todo = {}
    for subset, items in plan.items():
        for n, (speaker, chapter, utt_id, voice, raw, _, snr) in enumerate(items):
            flac = os.path.join(root, subset, str(speaker), str(chapter), utt_id + ".flac")
            if not os.path.isfile(flac):
                os.makedirs(os.path.dirname(flac), exist_ok=True)
                todo.setdefault(voice, []).append((utt_id, raw, flac, snr, args.seed * 1_000_003 + n))
    jobs = [(voice.partition(":")[0], voice.partition(":")[2], items[i: i + CHUNK])
            for voice, items in todo.items() for i in range(0, len(items), CHUNK)]
    if jobs:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            done = 0
            for n in pool.map(synthesize_flac, *zip(*jobs)):
                done += n
                print(f"\rsynthesised {done}/{sum(len(j[2]) for j in jobs)}", end="", flush=True)
        print()
    for subset, items in plan.items():
        chapters = {}
        for speaker, chapter, utt_id, _, _, norm, _ in items:
            chapters.setdefault((speaker, chapter), []).append(f"{utt_id} {norm}\n")
        for (speaker, chapter), lines in chapters.items():
            with open(os.path.join(root, subset, str(speaker), str(chapter), f"{speaker}-{chapter}.trans.txt"),
                      "w", encoding="utf-8") as f:
                f.write("".join(lines))
    print(f"audio: {', '.join(f'{s} {len(i)}' for s, i in plan.items())} utterances ({time.time() - start:.0f} s)")

    heldout = [norm for subset, items in plan.items() if subset.startswith(("dev", "test"))
               for *_, norm, _ in items]
    lm_lines = args.lm_lines or round(LM_LINES * args.fraction)
    lm_text = os.path.join(args.out, "librispeech-lm-norm.txt")
    if not (os.path.isfile(lm_text) and sum(1 for _ in open(lm_text, "rb")) == lm_lines):
        excluded = set(heldout)
        pool = [norm for _, norm in read_sentences(args.text + args.lm_sources, 10 ** 6) if norm not in excluded]
        write_text(lm_text + ".part", pool, lm_lines, heldout, random.Random(args.seed + 1))
        os.replace(lm_text + ".part", lm_text)
    print(f"LM text: {lm_text}, {lm_lines:,} lines, {len(heldout):,} dev/test sentences planted "
          f"({time.time() - start:.0f} s)")

    teacher = os.path.join(args.out, "bert")
    if not os.path.isfile(os.path.join(teacher, "config.json")):
        sys.path.insert(0, os.path.join(ROOT, "tests"))
        from tiny_bert import save_tiny_bert

        texts = [norm for items in plan.values() for *_, norm, _ in items]
        save_tiny_bert(teacher, texts, vocab_size=args.teacher_vocab, max_positions=512)
    with open(os.path.join(args.out, "rehearsal.json"), "w", encoding="utf-8") as f:
        json.dump({"fraction": args.fraction, "utterances": {s: len(i) for s, i in plan.items()},
                   "lm_lines": lm_lines, "planted": len(heldout), "teacher": "tiny BERT (tests/tiny_bert.py)",
                   "voices": voices}, f, indent=1)
    print(f"teacher: {teacher} (tiny BERT); ready in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
