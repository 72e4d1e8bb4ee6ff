#!/usr/bin/env python3
"""Build a speech corpus from text sentences with free TTS voices (flite, festival, espeak-ng), 16 kHz mono.

Sentences are shuffled (--seed) and split into disjoint test / valid / train sets, so that no test
sentence is ever heard in training. Every sentence of a split is spoken by one voice of --voices (round
robin); with --unseen-voices the test sentences are also spoken by voices never used in training, as a
second test set ``test_unseen``; with --test-noise-snrs the test utterances are also mixed with pink noise
(power ~ 1/f, generated, so derived from no utterance) at each given SNR, as ``test_noisy_<SNR>db`` (the
analogue of a harder test set such as LibriSpeech's test-other), and with --valid-noise-snrs the valid
utterances likewise, as ``valid_noisy_<SNR>db`` (to choose a test SNR on valid, never on test); with
--ood-text, --num-ood sentences of another source (e.g. ``scripts/extract_text.py --source fortunes``), none of
them in --text, spoken by the same voices as ``test_ood`` (words outside the training text's lexicon: where a
closed-lexicon LM must fail). Training utterances can be speed-perturbed (sox ``speed``: tempo and pitch) and
mixed with white noise at a random SNR.

Output (--out):
  audio/{split}/{split}.trans.txt, audio/{split}/*.wav   LibriSpeech-style folders
  {split}.tsv / .wrd / .ltr, dict.ltr.txt                 manifests and labels (scripts/prepare_manifest.py)

Voices are ``engine:name``: ``flite:slt``, ``flite:awb``, ``flite:rms``, ``flite:kal16``,
``festival:kal_diphone``, ``festival:ked_diphone``, ``festival:cmu_us_slt_arctic_hts``,
``espeak:en-us+m3`` (any espeak-ng voice+variant). Re-running resumes: finished utterances (written
atomically) are kept.

  python scripts/make_synthetic_corpus.py --text examples/kd/data/web_sentences.txt --out data/synth \
      --num-train 2000 --num-valid 200 --num-test 200 --unseen-voices espeak:en-us+f2
"""
import argparse
import os
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import soundfile as sf
from tqdm import tqdm

from fairseq_kd.data.manifest import Utterance, write_dictionary, write_split
from fairseq_kd.data.text import normalize_transcript, words_to_letters
from fairseq_kd.io_utils import atomic_write

DEFAULT_VOICES = ("flite:slt,flite:awb,flite:rms,flite:kal16,festival:kal_diphone,festival:ked_diphone,"
                  "espeak:en-us+m3,espeak:en-gb+f3")
ENGINE_BINARIES = {"flite": "flite", "festival": "festival", "espeak": "espeak-ng"}
SAMPLE_RATE = 16000
CHUNK = 40  # utterances per worker task (festival synthesises a chunk in one process)


def synthesize_raw(engine, voice, items, tmpdir):
    """Synthesise ``items`` [(utt_id, text, ...)] with one voice; return {utt_id: raw wav path}."""
    paths = {item[0]: os.path.join(tmpdir, item[0] + ".raw.wav") for item in items}
    if engine == "festival":
        script = os.path.join(tmpdir, "synth.scm")
        with open(script, "w") as f:
            f.write(f"(voice_{voice})\n")
            for utt_id, text, *_ in items:
                text = text.replace("\\", " ").replace('"', "")
                f.write(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{paths[utt_id]}" \'riff)\n')
        subprocess.run(["festival", "-b", script], check=True, capture_output=True)
    else:
        for utt_id, text, *_ in items:
            cmd = (["flite", "-voice", voice, "-t", text, "-o", paths[utt_id]] if engine == "flite"
                   else ["espeak-ng", "-v", voice, "-w", paths[utt_id], text])
            subprocess.run(cmd, check=True, capture_output=True)
    return paths


def coloured_noise(num_samples, colour, rng):
    """Gaussian noise: ``white``, or ``pink`` (spectrum scaled by 1/sqrt(f), i.e. equal power per octave)."""
    white = rng.standard_normal(num_samples)
    if colour == "white":
        return white
    spectrum = np.fft.rfft(white)
    frequency = np.arange(len(spectrum), dtype=np.float64)
    frequency[0] = 1.0
    return np.fft.irfft(spectrum / np.sqrt(frequency), num_samples)


def mix_at_snr(wav, noise, snr_db):
    """``wav + g * noise`` with ``g`` such that ``10 log10(P_wav / P_{g noise}) = snr_db`` (powers over the whole
    utterance), clipped to [-1, 1]."""
    scale = np.sqrt(np.mean(wav ** 2) / (10 ** (snr_db / 10)) / np.mean(noise ** 2))
    return np.clip(wav + scale * noise, -1, 1).astype(np.float32)


def synthesize_chunk(engine, voice, items):
    """Worker: synthesise, resample to 16 kHz mono 16-bit (with speed perturbation), add noise, write."""
    with tempfile.TemporaryDirectory() as tmpdir:
        raw = synthesize_raw(engine, voice, items, tmpdir)
        for utt_id, _, out_path, speed, snr_db, seed, colour in items:
            if not os.path.isfile(raw[utt_id]) or os.path.getsize(raw[utt_id]) == 0:
                raise RuntimeError(f"{engine}:{voice} produced no audio for {utt_id}")
            mid = os.path.join(tmpdir, utt_id + ".wav")
            effects = ["speed", str(speed)] if speed != 1.0 else []
            subprocess.run(["sox", raw[utt_id], "-c", "1", "-b", "16", "-r", str(SAMPLE_RATE), mid] + effects,
                           check=True, capture_output=True)
            if snr_db is not None:
                wav, _ = sf.read(mid, dtype="float32")
                noise = coloured_noise(len(wav), colour, np.random.default_rng(seed))
                sf.write(mid, mix_at_snr(wav, noise, snr_db), SAMPLE_RATE, subtype="PCM_16")
            tmp_out = out_path + ".part.wav"
            shutil.move(mid, tmp_out)
            os.replace(tmp_out, out_path)
    return len(items)


def parse_voices(spec):
    voices = [v.strip() for v in spec.split(",") if v.strip()] if spec else []
    for v in voices:
        engine, _, name = v.partition(":")
        if engine not in ENGINE_BINARIES or not name:
            raise SystemExit(f"bad voice {v!r}: expected engine:name with engine in {sorted(ENGINE_BINARIES)}")
        if shutil.which(ENGINE_BINARIES[engine]) is None:
            raise SystemExit(f"{ENGINE_BINARIES[engine]} not installed: run scripts/setup_env.sh")
    return voices


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", required=True, help="one sentence per line (raw, with punctuation)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--num-train", type=int, required=True, help="training sentences")
    parser.add_argument("--num-valid", type=int, required=True)
    parser.add_argument("--num-test", type=int, required=True)
    parser.add_argument("--voices", default=DEFAULT_VOICES, help="voices for train/valid/test, comma-separated")
    parser.add_argument("--train-voices-per-sentence", type=int, default=1,
                        help="speak each training sentence with this many different voices")
    parser.add_argument("--unseen-voices", default="", help="voices for the extra test_unseen split")
    parser.add_argument("--speed-perturb", default="1.0",
                        help="comma-separated speed factors; each training utterance draws one (e.g. 0.9,1.0,1.1)")
    parser.add_argument("--noise-snr", default="",
                        help="'lo,hi': add white noise to training utterances at an SNR drawn from [lo, hi] dB")
    parser.add_argument("--test-noise-snrs", default="",
                        help="comma-separated SNRs in dB, e.g. 10,5: the test sentences (same voices) mixed with pink "
                             "noise at each, as splits test_noisy_<SNR>db")
    parser.add_argument("--valid-noise-snrs", default="",
                        help="comma-separated SNRs in dB: the valid utterances mixed with pink noise at each, as "
                             "splits valid_noisy_<SNR>db (choose the test SNR on these, not on test)")
    parser.add_argument("--ood-text", help="sentences of another source for the test_ood split (one per line)")
    parser.add_argument("--num-ood", type=int, default=0, help="test_ood sentences drawn from --ood-text")
    parser.add_argument("--max-words", type=int, default=0, help="skip sentences with more words (0: no limit)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    voices, unseen = parse_voices(args.voices), parse_voices(args.unseen_voices)
    if not voices:
        raise SystemExit("--voices is empty")
    if set(voices) & set(unseen):
        raise SystemExit(f"--unseen-voices {sorted(set(voices) & set(unseen))} also in --voices")
    speeds = [float(s) for s in args.speed_perturb.split(",")]
    snr_range = [float(s) for s in args.noise_snr.split(",")] if args.noise_snr else None

    sentences, seen, in_text = [], set(), set()
    with open(args.text, encoding="utf-8") as f:
        for raw in f:
            norm = normalize_transcript(raw)
            in_text.add(norm)
            if args.max_words and norm and len(norm.split()) > args.max_words:
                continue
            if norm and norm not in seen:  # one transcript may occur in one split only
                seen.add(norm)
                sentences.append((raw.strip(), norm))
    rng = random.Random(args.seed)
    rng.shuffle(sentences)
    needed = args.num_train + args.num_valid + args.num_test
    if needed > len(sentences):
        raise SystemExit(f"{args.text}: {len(sentences)} usable sentences, {needed} requested")
    split_sentences = {"test": sentences[: args.num_test],
                       "valid": sentences[args.num_test: args.num_test + args.num_valid],
                       "train": sentences[args.num_test + args.num_valid: needed]}
    plan = {"train": [], "valid": [], "test": []}
    for split, items in split_sentences.items():
        copies = args.train_voices_per_sentence if split == "train" else 1
        for i, (raw, norm) in enumerate(items):
            for c in range(copies):
                voice = voices[(i * copies + c) % len(voices)]
                speed = rng.choice(speeds) if split == "train" else 1.0
                snr = rng.uniform(*snr_range) if split == "train" and snr_range else None
                plan[split].append((voice, raw, norm, speed, snr, "white"))
    if unseen:
        plan["test_unseen"] = [(unseen[i % len(unseen)], raw, norm, 1.0, None, "white")
                               for i, (raw, norm) in enumerate(split_sentences["test"])]
    if args.num_ood:
        if not args.ood_text:
            raise SystemExit("--num-ood needs --ood-text")
        ood, ood_seen = [], set(in_text)  # never a sentence of --text
        with open(args.ood_text, encoding="utf-8") as f:
            for raw in f:
                norm = normalize_transcript(raw)
                if norm and norm not in ood_seen and not (args.max_words and len(norm.split()) > args.max_words):
                    ood_seen.add(norm)
                    ood.append((raw.strip(), norm))
        if len(ood) < args.num_ood:
            raise SystemExit(f"{args.ood_text}: {len(ood)} usable sentences not in --text, {args.num_ood} requested")
        random.Random(args.seed).shuffle(ood)
        plan["test_ood"] = [(voices[i % len(voices)], raw, norm, 1.0, None, "white")
                            for i, (raw, norm) in enumerate(ood[: args.num_ood])]
    for clean, snrs in (("valid", args.valid_noise_snrs), ("test", args.test_noise_snrs)):
        for snr in (float(s) for s in snrs.split(",") if s.strip()):
            plan[f"{clean}_noisy_{snr:g}db"] = [(voice, raw, norm, 1.0, snr, "pink")
                                                for voice, raw, norm, *_ in plan[clean]]

    jobs, utterances = [], {}
    for split, items in plan.items():
        audio_dir = os.path.join(args.out, "audio", split)
        os.makedirs(audio_dir, exist_ok=True)
        by_voice = {}
        utterances[split] = []
        for idx, (voice, raw, norm, speed, snr, colour) in enumerate(items):
            utt_id = f"{split}-{voice.replace(':', '_').replace('+', '_')}-{idx:06d}"
            out_path = os.path.join(audio_dir, utt_id + ".wav")
            utterances[split].append(Utterance(utt_id, out_path, norm))
            if not os.path.isfile(out_path):
                by_voice.setdefault(voice, []).append((utt_id, raw, out_path, speed, snr,
                                                       args.seed * 1_000_003 + idx, colour))
        for voice, todo in by_voice.items():
            engine, _, name = voice.partition(":")
            jobs += [(engine, name, todo[i: i + CHUNK]) for i in range(0, len(todo), CHUNK)]

    total = sum(len(j[2]) for j in jobs)
    start = time.time()
    if jobs:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool, \
                tqdm(total=total, desc=f"synthesising ({args.jobs} processes)", unit="utt", mininterval=5) as bar:
            for n in pool.map(synthesize_chunk, *zip(*jobs)):
                bar.update(n)

    for split, utts in utterances.items():
        audio_dir = os.path.join(args.out, "audio", split)
        with atomic_write(os.path.join(audio_dir, f"{split}.trans.txt")) as f:
            f.write("".join(f"{u.utt_id} {u.transcript}\n" for u in utts))
        written = write_split(utts, args.out, split, audio_dir, SAMPLE_RATE)
        hours = sum(u.num_samples for u in written) / SAMPLE_RATE / 3600
        print(f"{split}: {len(written)} utterances, {hours:.3f} h")
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)] + ["'", "|"]
    write_dictionary((words_to_letters(u.transcript) for u in utterances["train"]),
                     os.path.join(args.out, "dict.ltr.txt"), extra_symbols=letters)
    print(f"corpus ready in {args.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
