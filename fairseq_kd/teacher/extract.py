"""Extract the teacher sidecars of whole splits (format: :mod:`fairseq_kd.data.teacher_sidecar`): resumable,
shardable, optionally with neighbouring utterances as context.

Chunks: the utterances of a split are cut into chunks of ``chunk_size`` manifest lines; chunk ``c`` (lines
``c * chunk_size`` onwards) is computed as one unit and saved as ``{out}/{split}.kd.parts/{c:06d}.npz`` when it
is done, together with ``params.json`` (teacher, settings, data checksum). Batches never mix chunks, so a chunk's
bytes depend on its utterances and the settings only, not on which process computed it.

Resume: a rerun with the same teacher, settings and data keeps the finished chunks and computes the others.

Shards: with ``num_shards = S``, shard ``s`` computes the chunks ``c`` with ``c % S == s`` and stops; any number
of shards can run at once (processes, GPUs, nodes of a SLURM array) on a directory they share. A shard started
with other settings or data than ``params.json`` is refused instead of overwriting the others' work.
:func:`merge_split` (``scripts/merge_teacher_sidecar.py``) then checks that every chunk is there and was made
with the same settings and data, concatenates them into the sidecar arrays (streamed through memory maps:
memory stays at one chunk), writes the keys and the header last and removes the parts. An unsharded run
(``S = 1``) merges by itself, through the same code, so merged shards are byte-for-byte what one process
writes (same software and device type; different BLAS builds or GPUs can differ in the last bits).

A split whose header already matches the teacher, the settings and the data is left as it is.
"""
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections import defaultdict
from contextlib import suppress
from typing import List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from ..data.teacher_sidecar import (
    ARRAYS,
    FORMAT_VERSION,
    TEACHER_FILE,
    TeacherSidecar,
    keys_checksum,
    read_teacher_meta,
    sidecar_path,
    utterance_keys,
)
from ..data.text import TRANSCRIPT_ALPHABET
from ..errors import DataError
from ..io_utils import atomic_write, read_json, sha256_file
from .masked_lm import LONG_TRANSCRIPT_POLICIES, MaskedLmTeacher, fingerprint

logger = logging.getLogger(__name__)

PARAMS_FILE = "params.json"
LIBRISPEECH_GROUPS = r"(?P<group>\d+-\d+)-(?P<index>\d+)"
MERGE_COMMAND = "scripts/merge_teacher_sidecar.py"


def teacher_meta(teacher: MaskedLmTeacher, topk: int, temperature: float, long_transcripts: str = "error",
                 context_utterances: int = 0, context_group_regex: str = LIBRISPEECH_GROUPS,
                 drop_unspeakable: bool = False) -> dict:
    """The teacher header: ``teacher.json`` and the ``teacher`` entry of every split header. Everything that
    changes the stored numbers is in it, so all splits of a directory share it.

    ``drop_unspeakable``: the top-k excludes :meth:`MaskedLmTeacher.unspeakable_ids` (see
    :mod:`fairseq_kd.teacher.masked_lm`); the header then gets ``drop_unspeakable`` = ``{"kept_characters",
    "kept_special_tokens", "num_dropped_ids", "dropped_ids_sha256"}``. Without it the key is absent, so headers
    written before the option existed describe the same settings."""
    if not 1 <= topk <= teacher.vocab_size:
        raise ValueError(f"--topk {topk}: must be in [1, {teacher.vocab_size}] (the teacher vocabulary)")
    if temperature <= 0:
        raise ValueError(f"--temperature {temperature}: must be positive")
    if long_transcripts not in LONG_TRANSCRIPT_POLICIES:
        raise ValueError(f"--long-transcripts {long_transcripts!r}: choose one of {LONG_TRANSCRIPT_POLICIES}")
    if context_utterances < 0:
        raise ValueError(f"--context-utterances {context_utterances}: must be >= 0")
    context = None
    if context_utterances:
        pattern = re.compile(context_group_regex)
        if not {"group", "index"} <= set(pattern.groupindex):
            raise ValueError(f"--context-group-regex {context_group_regex!r}: needs the named groups (?P<group>...) "
                             f"and (?P<index>...)")
        context = {"utterances": context_utterances, "group_regex": context_group_regex}
    meta = {"name": os.path.basename(os.path.normpath(teacher.model_dir)),
            "fingerprint": fingerprint(teacher.model_dir), "vocab_size": teacher.vocab_size,
            "vocab_sha256": teacher.vocab_sha256, "special_ids": teacher.special_ids,
            "max_length": teacher.max_length, "dtype": teacher.dtype, "topk": topk, "temperature": temperature,
            "long_transcripts": long_transcripts, "context": context}
    if drop_unspeakable:
        dropped = teacher.unspeakable_ids()
        if topk > teacher.vocab_size - len(dropped):
            raise ValueError(f"--topk {topk} with --drop-unspeakable: only {teacher.vocab_size - len(dropped)} of the "
                             f"{teacher.vocab_size} teacher ids are speakable; lower --topk")
        meta["drop_unspeakable"] = {"kept_characters": TRANSCRIPT_ALPHABET, "kept_special_tokens": ["unk"],
                                    "num_dropped_ids": len(dropped), "dropped_ids_sha256": _ids_sha256(dropped)}
    return meta


def _ids_sha256(ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def prepare_sidecar_dir(out_dir: str, meta: dict) -> None:
    """Write ``teacher.json``, or check that the one already there describes the same teacher and settings."""
    path = os.path.join(out_dir, TEACHER_FILE)
    if os.path.isfile(path):
        existing = read_teacher_meta(out_dir)
        if existing != meta:
            differ = sorted(key for key in set(meta) | set(existing) if existing.get(key) != meta.get(key))
            raise DataError(f"{path}: this directory holds sidecars of another teacher or settings "
                            f"({', '.join(differ)} differ); write to a new --out directory, or delete this one to "
                            f"replace them")
        return
    with atomic_write(path) as f:
        json.dump(meta, f, indent=1)


def _params_sha256(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def context_neighbours(keys: Sequence[str], manifest_path: str, utterances: int, group_regex: str
                       ) -> List[Tuple[List[int], List[int]]]:
    """For every manifest line: the lines of the (at most) ``utterances`` preceding and following utterances of
    its group, nearest last / first. A file name's stem (no directories, no extension) must fully match
    ``group_regex``; utterances with the same ``group`` are ordered by the integer ``index``."""
    pattern = re.compile(group_regex)
    groups = defaultdict(list)
    for line, key in enumerate(keys):
        stem = os.path.splitext(os.path.basename(key.split("\t", 1)[0]))[0]
        match = pattern.fullmatch(stem)
        if match is None:
            raise DataError(f"{manifest_path}:{line + 2}: utterance {stem!r} does not match the context grouping rule "
                            f"{group_regex!r} (LibriSpeech ids SPEAKER-CHAPTER-NNNN by default), so its neighbours are "
                            f"unknown: give --context-group-regex with named groups (?P<group>...) and "
                            f"(?P<index>...) that fit this corpus' file names, or extract without context")
        groups[match["group"]].append((int(match["index"]), line))
    neighbours: List[Optional[Tuple[List[int], List[int]]]] = [None] * len(keys)
    for group, members in groups.items():
        members.sort()
        for (index, line), (next_index, next_line) in zip(members, members[1:]):
            if index == next_index:
                raise DataError(f"{manifest_path}: lines {line + 2} and {next_line + 2} are both utterance {index} of "
                                f"group {group!r}: the grouping rule {group_regex!r} does not order them")
        lines = [line for _, line in members]
        for position, line in enumerate(lines):
            neighbours[line] = (lines[max(0, position - utterances):position],
                                lines[position + 1:position + 1 + utterances])
    return neighbours


def extract_split(teacher: MaskedLmTeacher, meta: dict, data_dir: str, split: str, out_dir: str,
                  batch_tokens: int = 16384, chunk_size: int = 200, progress: bool = True, shard_id: int = 0,
                  num_shards: int = 1) -> Optional[dict]:
    """Compute the chunks of shard ``shard_id`` of ``split`` (resuming); return the merged header when
    ``num_shards == 1`` (or when the split is up to date), None for a shard of several."""
    if not 0 <= shard_id < num_shards:
        raise ValueError(f"--shard-id {shard_id}: must be in [0, --num-shards {num_shards})")
    keys = utterance_keys(data_dir, split)
    checksum = keys_checksum(keys)
    header_path = sidecar_path(out_dir, split, "json")
    header = read_json(header_path)
    if header and header.get("format") == FORMAT_VERSION and header["teacher"] == meta \
            and header["keys_sha256"] == checksum:
        logger.info(f"{split}: sidecar up to date, skipped")
        return header
    if header:  # stale: without its header a half-replaced sidecar can never be read
        logger.info(f"{header_path}: extracted from other data, by another teacher or format, replacing it")
        with suppress(FileNotFoundError):  # another shard may have removed it
            os.remove(header_path)

    parts_dir = sidecar_path(out_dir, split, "parts")
    params = {"teacher": meta, "keys_sha256": checksum, "chunk_size": chunk_size, "batch_tokens": batch_tokens}
    existing = read_json(os.path.join(parts_dir, PARAMS_FILE))
    if existing is not None and existing != params:
        if num_shards > 1:
            raise DataError(f"{parts_dir}: holds chunks of other settings or data (another shard's run?); start every "
                            f"shard with the same options and data, or delete {parts_dir}")
        logger.info(f"{parts_dir}: unfinished work of other settings or data, starting {split} afresh")
        shutil.rmtree(parts_dir)
    os.makedirs(parts_dir, exist_ok=True)
    if existing != params:
        with atomic_write(os.path.join(parts_dir, PARAMS_FILE)) as f:
            json.dump(params, f, indent=1)

    transcripts = [key.split("\t", 1)[1] for key in keys]
    sequences = teacher.tokenize(transcripts)
    words_path = os.path.join(data_dir, f"{split}.wrd")
    too_long = [line for line, s in enumerate(sequences) if len(s) + 2 > teacher.max_length]
    if too_long and meta["long_transcripts"] == "error":
        line = too_long[0]
        raise DataError(f"{words_path}:{line + 1}: {len(sequences[line])} WordPieces, the teacher reads at most "
                        f"{teacher.max_length - 2} ({len(too_long)} such lines); split or remove these utterances, or "
                        f"extract with --long-transcripts window")
    if too_long:
        logger.info(f"{split}: {len(too_long)} transcripts longer than {teacher.max_length - 2} WordPieces, "
                    f"read in windows")
    neighbours = None
    if meta["context"]:
        neighbours = context_neighbours(keys, os.path.join(data_dir, f"{split}.tsv"), meta["context"]["utterances"],
                                        meta["context"]["group_regex"])

    excluded = teacher.unspeakable_ids() if "drop_unspeakable" in meta else []
    num_chunks = math.ceil(len(keys) / chunk_size)
    mine = list(range(shard_id, num_chunks, num_shards))
    digest = _params_sha256(params)
    desc = f"teacher {split}" + (f" shard {shard_id}/{num_shards}" if num_shards > 1 else "")
    computed, started = 0, time.perf_counter()
    with tqdm(total=sum(min(len(keys), (c + 1) * chunk_size) - c * chunk_size for c in mine), unit="utt",
              desc=desc, disable=not progress) as bar:
        for c in mine:
            lo, hi = c * chunk_size, min(len(keys), (c + 1) * chunk_size)
            part = os.path.join(parts_dir, f"{c:06d}.npz")
            if os.path.isfile(part):
                logger.info(f"{part}: done before, kept")
            else:
                contexts = None
                if neighbours:
                    contexts = [([t for j in neighbours[i][0] for t in sequences[j]],
                                 [t for j in neighbours[i][1] for t in sequences[j]]) for i in range(lo, hi)]
                _extract_chunk(teacher, meta, sequences[lo:hi], contexts, excluded, batch_tokens, digest, part)
                computed += sum(len(s) for s in sequences[lo:hi])
                bar.set_postfix(wordpieces_per_s=f"{computed / (time.perf_counter() - started):.0f}")
            bar.update(hi - lo)
    if num_shards > 1:
        logger.info(f"{split}: shard {shard_id}/{num_shards} done ({len(mine)} of {num_chunks} chunks); when every "
                    f"shard is done, run {MERGE_COMMAND} --data {data_dir} --splits {split} --out {out_dir}")
        return None
    return merge_split(data_dir, split, out_dir)


def _extract_chunk(teacher, meta, sequences, contexts, excluded, batch_tokens, params_sha256, part):
    """One chunk's arrays; with ``drop_unspeakable`` also ``unspeakable_mass`` (float32 per position, ``D_u``)."""
    results = teacher.masked_topk(sequences, meta["topk"], meta["temperature"], batch_tokens, contexts,
                                  excluded_ids=excluded, return_excluded_mass=True)
    k = meta["topk"]
    arrays = {"lengths": np.array([len(s) for s in sequences], dtype=np.int64),
              "tokens": np.array([t for s in sequences for t in s], dtype=np.int32).reshape(-1),
              "topk_ids": np.concatenate([ids for ids, _, _ in results]).reshape(-1, k),
              "topk_probs": np.concatenate([probs for _, probs, _ in results]).reshape(-1, k).astype(np.float16),
              "params_sha256": np.array(params_sha256)}
    if "drop_unspeakable" in meta:
        arrays["unspeakable_mass"] = np.concatenate([mass for _, _, mass in results])
    with atomic_write(part, "wb") as f:
        np.savez(f, **arrays)


def merge_split(data_dir: str, split: str, out_dir: str) -> dict:
    """Check and concatenate the chunks of ``split`` in ``{out_dir}/{split}.kd.parts`` into its sidecar; return
    the header. Refuses missing chunks, chunks of other settings and data that changed since extraction."""
    keys = utterance_keys(data_dir, split)
    parts_dir = sidecar_path(out_dir, split, "parts")
    params = read_json(os.path.join(parts_dir, PARAMS_FILE))
    header_path = sidecar_path(out_dir, split, "json")
    if params is None:
        header = read_json(header_path)
        if header and header.get("format") == FORMAT_VERSION and header["keys_sha256"] == keys_checksum(keys):
            logger.info(f"{split}: already merged")
            return header
        raise DataError(f"{parts_dir}: no extracted chunks of split {split!r}; run scripts/extract_teacher_sidecar.py "
                        f"--splits {split} (every --shard-id) first")
    fix = f"rerun scripts/extract_teacher_sidecar.py --splits {split} with the settings of the other shards"
    if params["keys_sha256"] != keys_checksum(keys):
        raise DataError(f"{data_dir}/{split}.tsv or {split}.wrd changed since the chunks in {parts_dir} were "
                        f"extracted; delete {parts_dir} and extract again")
    if os.path.isfile(os.path.join(out_dir, TEACHER_FILE)) and read_teacher_meta(out_dir) != params["teacher"]:
        raise DataError(f"{parts_dir}: chunks of another teacher or settings than "
                        f"{os.path.join(out_dir, TEACHER_FILE)}; delete one of them and extract again")
    prepare_sidecar_dir(out_dir, params["teacher"])
    chunk_size = params["chunk_size"]
    parts = [os.path.join(parts_dir, f"{c:06d}.npz") for c in range(math.ceil(len(keys) / chunk_size))]
    missing = [c for c, part in enumerate(parts) if not os.path.isfile(part)]
    if missing:
        raise DataError(f"{parts_dir}: {len(missing)} of {len(parts)} chunks missing (first: {missing[:5]}); chunk c "
                        f"belongs to shard c % num_shards: run (or finish) those shards, then merge again")
    digest = _params_sha256(params)
    for c, part in enumerate(parts):
        with np.load(part) as chunk:
            expected = min(len(keys), (c + 1) * chunk_size) - c * chunk_size
            if str(chunk["params_sha256"]) != digest or len(chunk["lengths"]) != expected:
                raise DataError(f"{part}: made with other settings or data than {parts_dir}/{PARAMS_FILE}; delete it "
                                f"and {fix}")

    header = _merge_parts(parts, out_dir, split, params["teacher"])
    header["keys_sha256"] = params["keys_sha256"]
    header["transcripts"] = {"file": f"{split}.wrd", "sha256": sha256_file(os.path.join(data_dir, f"{split}.wrd"))}
    header["extraction"] = {"chunk_size": chunk_size, "batch_tokens": params["batch_tokens"]}
    with atomic_write(sidecar_path(out_dir, split, "keys.txt")) as f:
        f.write("".join(key + "\n" for key in keys))
    with atomic_write(header_path) as f:
        json.dump(header, f, indent=1)
    shutil.rmtree(parts_dir)
    return header


def _merge_parts(parts, out_dir, split, meta) -> dict:
    """Concatenate the chunks into the sidecar arrays; return the header with the teacher's statistics on
    the reference tokens (top-1 accuracy, reference within the top-k, mean top-k mass) and, with
    ``drop_unspeakable``, the mean probability ``D_u`` the teacher put on the dropped ids (before dropping them;
    the top-k mass is then that of ``p'_u``)."""
    lengths = []
    for part in parts:
        with np.load(part) as chunk:
            lengths.append(chunk["lengths"])
    lengths = np.concatenate(lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    num_positions, k = int(offsets[-1]), meta["topk"]
    with atomic_write(sidecar_path(out_dir, split, "offsets"), "wb") as f:
        np.save(f, offsets)
    shapes = {"tokens": ((num_positions,), np.int32), "topk_ids": ((num_positions, k), np.int32),
              "topk_probs": ((num_positions, k), np.float16)}
    tmp = {name: sidecar_path(out_dir, split, name) + ".tmp" for name in shapes}
    arrays = {name: np.lib.format.open_memmap(tmp[name], mode="w+", dtype=dtype, shape=shape)
              for name, (shape, dtype) in shapes.items()}
    position, top1, in_topk, mass, unspeakable_mass = 0, 0, 0, 0.0, 0.0
    for part in parts:
        with np.load(part) as chunk:
            n = len(chunk["tokens"])
            for name in shapes:
                arrays[name][position:position + n] = chunk[name]
            tokens, ids = chunk["tokens"], chunk["topk_ids"]
            top1 += int((ids[:, 0] == tokens).sum())
            in_topk += int((ids == tokens[:, None]).any(axis=1).sum())
            mass += float(chunk["topk_probs"].astype(np.float64).sum())
            if "drop_unspeakable" in meta:
                unspeakable_mass += float(chunk["unspeakable_mass"].astype(np.float64).sum())
        position += n
    for name in shapes:
        arrays[name].flush()
        del arrays[name]
        os.replace(tmp[name], sidecar_path(out_dir, split, name))
    denominator = max(num_positions, 1)
    stats = {"top1_accuracy": top1 / denominator, "reference_in_topk": in_topk / denominator,
             "topk_mass_mean": mass / denominator}
    if "drop_unspeakable" in meta:
        stats["unspeakable_mass_mean"] = unspeakable_mass / denominator
    return {"format": FORMAT_VERSION, "split": split, "num_utterances": len(lengths),
            "num_positions": num_positions, "teacher": meta, "stats": stats}


def copy_split(source_dir: str, data_dir: str, split: str, out_dir: str) -> dict:
    """Copy ``split``'s sidecar, extracted earlier (elsewhere, e.g. on another machine), from ``source_dir`` into
    ``out_dir`` for the corpus in ``data_dir``; return its header. The sidecar is validated in full and its keys
    must match ``data_dir``'s manifest and transcripts line by line (:class:`TeacherSidecar`); ``out_dir`` must
    hold no sidecars of another teacher. The arrays and keys are copied first and the header last, each file
    atomically, so an interrupted copy never looks finished."""
    source = TeacherSidecar(source_dir, split)
    source.check_matches(data_dir)
    prepare_sidecar_dir(out_dir, read_teacher_meta(source_dir))
    header_path = sidecar_path(out_dir, split, "json")
    if read_json(header_path) == source.header:
        logger.info(f"{split}: already copied")
        return source.header
    with suppress(FileNotFoundError):
        os.remove(header_path)  # a sidecar being replaced must not look finished halfway
    for part in [*ARRAYS, "keys.txt", "json"]:
        with open(sidecar_path(source_dir, split, part), "rb") as src, atomic_write(
                sidecar_path(out_dir, split, part), "wb") as dst:
            shutil.copyfileobj(src, dst)
    return source.header
