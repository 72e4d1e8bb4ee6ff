"""wav2vec-style manifests and label files: writing them, and checking them before training.

Layout of a data directory (the one fairseq's ``audio_finetuning`` reads)::

    {split}.tsv   line 1: root directory; then ``relative/path.wav<TAB>num_samples`` per utterance
    {split}.wrd   one transcript per line (upper-case words), same order as the manifest
    {split}.ltr   letters of the same transcripts (``H I | Y O U |``)
    dict.ltr.txt  fairseq dictionary of the label units (``symbol count`` per line)

:func:`check_split` validates all of it up front, so that a bad line fails with its file and line number
instead of as a stack trace inside a collater, or worse, as silently misaligned training data.
"""
import logging
import os
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Sequence

import soundfile as sf

from ..errors import DataError  # noqa: F401  (also importable from here, as before fairseq_kd.errors)
from ..io_utils import atomic_write
from .text import normalize_transcript, words_to_letters

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".flac", ".wav")


@dataclass
class Utterance:
    utt_id: str
    audio_path: str
    transcript: str
    num_samples: int = 0


# ----------------------------------------------------------------------------------------------- reading
def read_manifest(manifest_path: str):
    """Return ``(root, [(relpath, num_samples, line_number)])``; raise :class:`DataError` on a malformed line."""
    if not os.path.isfile(manifest_path):
        raise DataError(f"{manifest_path}: manifest not found; create it with scripts/prepare_manifest.py")
    entries = []
    with open(manifest_path, encoding="utf-8") as f:
        root = f.readline().rstrip("\n")
        if not root:
            raise DataError(f"{manifest_path}:1: the first line must be the audio root directory")
        for line_no, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 2 or not fields[1].isdigit() or int(fields[1]) <= 0:
                raise DataError(
                    f"{manifest_path}:{line_no}: expected 'relative/path<TAB>num_samples' (a positive integer), "
                    f"got {line.rstrip()!r}; regenerate the manifest with scripts/prepare_manifest.py"
                )
            entries.append((fields[0], int(fields[1]), line_no))
    return root, entries


def check_split(data_dir: str, split: str, labels: Sequence[str], dictionaries: dict, sample_rate: int,
                check_audio: bool = True) -> None:
    """Validate ``{split}.tsv`` and its label files before fairseq builds datasets from them.

    Args:
        labels: label extensions to check (e.g. ``["ltr"]``); each must have one non-empty line per
            manifest line.
        dictionaries: ``{label_ext: fairseq Dictionary}``; every symbol of that label file must be in it
            (fairseq would otherwise silently map it to ``<unk>``).
        check_audio: also open every audio header: existence, readability, sample rate and length
            (about 0.1 ms per file).
    """
    manifest_path = os.path.join(data_dir, f"{split}.tsv")
    root, entries = read_manifest(manifest_path)
    if check_audio:
        if not os.path.isdir(root):
            raise DataError(f"{manifest_path}:1: audio root directory {root!r} does not exist; "
                            f"fix the first line or regenerate the manifest")
        for relpath, num_samples, line_no in entries:
            path = os.path.join(root, relpath)
            try:
                info = sf.info(path)
            except Exception as e:  # soundfile raises RuntimeError / LibsndfileError / FileNotFoundError
                raise DataError(f"{manifest_path}:{line_no}: cannot read audio file {path} ({e}); "
                                f"restore the file or remove the line (and the same line of every label file)")
            if info.samplerate != sample_rate:
                raise DataError(
                    f"{manifest_path}:{line_no}: {path} has sample rate {info.samplerate}, the task expects "
                    f"{sample_rate}; resample it (sox in.wav -r {sample_rate} -c 1 -b 16 out.wav) or set "
                    f"task.sample_rate")
            if info.frames != num_samples:
                raise DataError(f"{manifest_path}:{line_no}: manifest says {num_samples} samples but {path} has "
                                f"{info.frames}; regenerate the manifest")
    for ext in labels:
        label_path = os.path.join(data_dir, f"{split}.{ext}")
        if not os.path.isfile(label_path):
            raise DataError(f"{label_path}: label file not found (task.labels={ext}); "
                            f"create it with scripts/prepare_manifest.py")
        dictionary = dictionaries.get(ext)
        with open(label_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(entries):
            raise DataError(f"{label_path}: {len(lines)} lines but {manifest_path} lists {len(entries)} "
                            f"utterances; label files must have exactly one line per manifest line, in the "
                            f"same order (regenerate both with scripts/prepare_manifest.py)")
        for line_no, line in enumerate(lines, start=1):
            symbols = line.split()
            if not symbols:
                raise DataError(f"{label_path}:{line_no}: empty transcript (audio {entries[line_no - 1][0]}); "
                                f"CTC cannot learn from it: remove the utterance from the manifest and every "
                                f"label file, or transcribe it")
            if dictionary is not None:
                unknown = [s for s in symbols if dictionary.index(s) == dictionary.unk()]
                if unknown:
                    raise DataError(f"{label_path}:{line_no}: symbol(s) {sorted(set(unknown))} not in "
                                    f"dict.{ext}.txt; normalise the transcript or add the symbol to the "
                                    f"dictionary")


# ----------------------------------------------------------------------------------------------- writing
def scan_transcribed_audio(audio_dir: str) -> Iterator[Utterance]:
    """Find utterances in a LibriSpeech-style folder: every ``*.trans.txt`` lists ``UTT_ID TRANSCRIPT``
    lines for audio files ``UTT_ID.flac`` or ``UTT_ID.wav`` in the same directory."""
    found = False
    for directory, _, files in sorted(os.walk(audio_dir)):
        for name in sorted(f for f in files if f.endswith(".trans.txt")):
            found = True
            trans_path = os.path.join(directory, name)
            with open(trans_path, encoding="utf-8") as f:
                for line_no, line in enumerate(f, start=1):
                    if not line.strip():
                        continue
                    utt_id, _, raw = line.strip().partition(" ")
                    transcript = normalize_transcript(raw)
                    if not transcript:
                        raise DataError(f"{trans_path}:{line_no}: transcript {raw!r} is empty or has characters "
                                        f"other than letters, apostrophes and punctuation; fix or remove the line")
                    audio = next((os.path.join(directory, utt_id + ext) for ext in AUDIO_EXTENSIONS
                                  if os.path.isfile(os.path.join(directory, utt_id + ext))), None)
                    if audio is None:
                        raise DataError(f"{trans_path}:{line_no}: no audio file {utt_id}.flac or {utt_id}.wav in "
                                        f"{directory}; restore it or remove the line")
                    yield Utterance(utt_id, audio, transcript)
    if not found:
        raise DataError(f"{audio_dir}: no *.trans.txt transcript files found (expected LibriSpeech layout)")


def write_split(utterances: Iterable[Utterance], out_dir: str, split: str, audio_root: str,
                sample_rate: int = 16000) -> List[Utterance]:
    """Write ``{split}.tsv``, ``{split}.wrd`` and ``{split}.ltr``, sorted by utterance id, atomically."""
    utterances = sorted(utterances, key=lambda u: u.utt_id)
    audio_root = os.path.abspath(audio_root)
    for u in utterances:
        info = sf.info(u.audio_path)
        if info.samplerate != sample_rate:
            raise DataError(f"{u.audio_path}: sample rate {info.samplerate}, expected {sample_rate}; resample "
                            f"with: sox in.wav -r {sample_rate} -c 1 -b 16 out.wav")
        u.num_samples = info.frames
    with atomic_write(os.path.join(out_dir, f"{split}.tsv")) as tsv, \
            atomic_write(os.path.join(out_dir, f"{split}.wrd")) as wrd, \
            atomic_write(os.path.join(out_dir, f"{split}.ltr")) as ltr:
        print(audio_root, file=tsv)
        for u in utterances:
            print(f"{os.path.relpath(os.path.abspath(u.audio_path), audio_root)}\t{u.num_samples}", file=tsv)
            print(u.transcript, file=wrd)
            print(words_to_letters(u.transcript), file=ltr)
    return utterances


def write_dictionary(label_lines: Iterable[str], path: str, extra_symbols: Optional[Sequence[str]] = None):
    """Write a fairseq dictionary (``symbol count``, most frequent first) of the units in ``label_lines``."""
    counts = Counter(symbol for line in label_lines for symbol in line.split())
    for symbol in extra_symbols or ():
        counts.setdefault(symbol, 0)
    with atomic_write(path) as f:
        for symbol, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{symbol} {count}", file=f)
