"""Extract the teacher sidecars of whole splits (format: :mod:`fairseq_kd.data.teacher_sidecar`), resumably.

The work of a split happens in ``{out}/{split}.kd.parts/``: chunk ``c`` (utterances ``c * chunk_size`` onwards)
is saved as ``{c:06d}.npz`` when it is done. A rerun with the same teacher, settings and data keeps the finished
chunks and computes the others (a rerun with anything different starts the split afresh). The chunks are then
merged into the sidecar arrays (streamed through memory maps, so memory stays at one chunk), the keys and the
header are written last, and the parts are removed. A split whose header already matches the teacher, the
settings and the data is left as it is.
"""
import json
import logging
import math
import os
import shutil

import numpy as np
from tqdm import tqdm

from ..data.manifest import DataError
from ..data.teacher_sidecar import (FORMAT_VERSION, TEACHER_FILE, keys_checksum, read_teacher_meta, sidecar_path,
                                    utterance_keys)
from ..io_utils import atomic_write
from .masked_lm import MaskedLmTeacher, fingerprint

logger = logging.getLogger(__name__)

PARAMS_FILE = "params.json"


def teacher_meta(teacher: MaskedLmTeacher, topk: int, temperature: float) -> dict:
    """The teacher header: ``teacher.json`` and the ``teacher`` entry of every split header."""
    if not 1 <= topk <= teacher.vocab_size:
        raise ValueError(f"--topk {topk}: must be in [1, {teacher.vocab_size}] (the teacher vocabulary)")
    if temperature <= 0:
        raise ValueError(f"--temperature {temperature}: must be positive")
    return {"fingerprint": fingerprint(teacher.model_dir), "vocab_size": teacher.vocab_size,
            "vocab_sha256": teacher.vocab_sha256, "special_ids": teacher.special_ids, "topk": topk,
            "temperature": temperature}


def prepare_sidecar_dir(out_dir: str, meta: dict) -> None:
    """Write ``teacher.json``, or check that the one already there describes the same teacher and settings."""
    path = os.path.join(out_dir, TEACHER_FILE)
    if os.path.isfile(path):
        existing = read_teacher_meta(out_dir)
        if existing != meta:
            differ = sorted(key for key in meta if existing.get(key) != meta[key])
            raise DataError(f"{path}: this directory holds sidecars of another teacher or settings ({', '.join(differ)} "
                            f"differ); write to a new --out directory, or delete this one to replace them")
        return
    with atomic_write(path) as f:
        json.dump(meta, f, indent=1)


def _read_json(path: str):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def extract_split(teacher: MaskedLmTeacher, meta: dict, data_dir: str, split: str, out_dir: str,
                  batch_tokens: int = 16384, chunk_size: int = 200, progress: bool = True) -> dict:
    """Extract (or resume, or skip when up to date) the sidecar of ``split``; return its header."""
    keys = utterance_keys(data_dir, split)
    checksum = keys_checksum(keys)
    header_path = sidecar_path(out_dir, split, "json")
    header = _read_json(header_path)
    if header and header.get("format") == FORMAT_VERSION and header["teacher"] == meta \
            and header["keys_sha256"] == checksum:
        logger.info(f"{split}: sidecar up to date, skipped")
        return header
    if header:  # stale: without its header a half-replaced sidecar can never be read
        logger.info(f"{header_path}: extracted from other data or by another teacher, replacing it")
        os.remove(header_path)

    parts_dir = sidecar_path(out_dir, split, "parts")
    params = {"teacher": meta, "keys_sha256": checksum, "chunk_size": chunk_size}
    if os.path.isdir(parts_dir) and _read_json(os.path.join(parts_dir, PARAMS_FILE)) != params:
        logger.info(f"{parts_dir}: unfinished work of other settings or data, starting {split} afresh")
        shutil.rmtree(parts_dir)
    if not os.path.isdir(parts_dir):
        os.makedirs(parts_dir)
        with atomic_write(os.path.join(parts_dir, PARAMS_FILE)) as f:
            json.dump(params, f, indent=1)

    transcripts = [key.split("\t", 1)[1] for key in keys]
    parts = [os.path.join(parts_dir, f"{c:06d}.npz") for c in range(math.ceil(len(keys) / chunk_size))]
    with tqdm(total=len(keys), unit="utt", desc=f"teacher {split}", disable=not progress) as bar:
        for c, part in enumerate(parts):
            lo, hi = c * chunk_size, min(len(keys), (c + 1) * chunk_size)
            if os.path.isfile(part):
                logger.info(f"{part}: done before, kept")
            else:
                _extract_chunk(teacher, meta, transcripts[lo:hi], lo, data_dir, split, batch_tokens, part)
            bar.update(hi - lo)

    header = _merge_parts(parts, out_dir, split, meta)
    header["keys_sha256"] = checksum
    with atomic_write(sidecar_path(out_dir, split, "keys.txt")) as f:
        f.write("".join(key + "\n" for key in keys))
    with atomic_write(header_path) as f:
        json.dump(header, f, indent=1)
    shutil.rmtree(parts_dir)
    return header


def _extract_chunk(teacher, meta, transcripts, first_line, data_dir, split, batch_tokens, part):
    sequences = teacher.tokenize(transcripts)
    for j, sequence in enumerate(sequences):
        if len(sequence) + 2 > teacher.max_length:
            raise DataError(f"{os.path.join(data_dir, split + '.wrd')}:{first_line + j + 1}: {len(sequence)} "
                            f"WordPieces, the teacher reads at most {teacher.max_length - 2}; split or remove the "
                            f"utterance")
    results = teacher.masked_topk(sequences, meta["topk"], meta["temperature"], batch_tokens)
    with atomic_write(part, "wb") as f:
        np.savez(f, lengths=np.array([len(s) for s in sequences], dtype=np.int64),
                 tokens=np.array([t for s in sequences for t in s], dtype=np.int32).reshape(-1),
                 topk_ids=np.concatenate([ids for ids, _ in results]).reshape(-1, meta["topk"]),
                 topk_probs=np.concatenate([probs for _, probs in results]).reshape(-1, meta["topk"])
                 .astype(np.float16))


def _merge_parts(parts, out_dir, split, meta) -> dict:
    """Concatenate the chunks into the sidecar arrays; return the header with the teacher's statistics on
    the reference tokens (top-1 accuracy, reference within the top-k, mean top-k mass)."""
    lengths = np.concatenate([np.load(part)["lengths"] for part in parts])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    num_positions, k = int(offsets[-1]), meta["topk"]
    with atomic_write(sidecar_path(out_dir, split, "offsets"), "wb") as f:
        np.save(f, offsets)
    shapes = {"tokens": ((num_positions,), np.int32), "topk_ids": ((num_positions, k), np.int32),
              "topk_probs": ((num_positions, k), np.float16)}
    tmp = {name: sidecar_path(out_dir, split, name) + ".tmp" for name in shapes}
    arrays = {name: np.lib.format.open_memmap(tmp[name], mode="w+", dtype=dtype, shape=shape)
              for name, (shape, dtype) in shapes.items()}
    position, top1, in_topk, mass = 0, 0, 0, 0.0
    for part in parts:
        with np.load(part) as chunk:
            n = len(chunk["tokens"])
            for name in shapes:
                arrays[name][position:position + n] = chunk[name]
            tokens, ids = chunk["tokens"], chunk["topk_ids"]
            top1 += int((ids[:, 0] == tokens).sum())
            in_topk += int((ids == tokens[:, None]).any(axis=1).sum())
            mass += float(chunk["topk_probs"].astype(np.float64).sum())
        position += n
    for name in shapes:
        arrays[name].flush()
        del arrays[name]
        os.replace(tmp[name], sidecar_path(out_dir, split, name))
    denominator = max(num_positions, 1)
    return {"format": FORMAT_VERSION, "split": split, "num_utterances": len(lengths),
            "num_positions": num_positions, "teacher": meta,
            "stats": {"top1_accuracy": top1 / denominator, "reference_in_topk": in_topk / denominator,
                      "topk_mass_mean": mass / denominator}}
