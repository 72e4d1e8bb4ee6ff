"""Teacher sidecars: the masked-LM teacher's top-k token probabilities for every utterance, memory-mapped.

``scripts/extract_teacher_sidecar.py`` writes them once per split (the teacher never runs during ASR
training); :class:`TeacherSidecarDataset` adds them to the batches of the ``audio_kd`` task.

What is stored
--------------
A transcript (``{split}.wrd`` line) is tokenised into the teacher's WordPieces ``t_1 .. t_n`` (no specials).
For every position ``u`` the teacher reads ``[CLS] t_1 .. t_{u-1} [MASK] t_{u+1} .. t_n [SEP]`` (with optional
context, or in a window when the transcript is too long: :mod:`fairseq_kd.teacher.masked_lm`) and the sidecar
keeps the ``K`` most probable ids ``v_{u,1..K}`` of ``p_u = softmax(z_u / tau)``, in descending order, with their
probabilities ``p_u(v_{u,k})`` (not renormalised: their sum is the top-k mass, at most 1). With
``drop_unspeakable``, ``p_u`` is the teacher's distribution without the unspeakable ids, renormalised
(:mod:`fairseq_kd.teacher.masked_lm`).

Files in the sidecar directory (``task.kd_sidecar_dir``)::

    teacher.json             the teacher header, shared by every split (``AudioKdTask.teacher_header``):
                             ``name`` (directory name), ``fingerprint`` (sha256 of config, vocabulary, weights),
                             ``vocab_size``, ``vocab_sha256`` (of the id-ordered vocabulary), ``special_ids`` (pad,
                             cls, sep, mask, unk), ``max_length``, ``dtype``, ``topk`` K, ``temperature`` tau,
                             ``long_transcripts`` ("error": refused, "window": windows), ``context`` (None, or
                             ``{"utterances": N, "group_regex": ...}``) and, only in sidecars extracted with
                             ``--drop-unspeakable``, ``drop_unspeakable`` (the ids left out of the top-k:
                             :func:`fairseq_kd.teacher.extract.teacher_meta`)
    {split}.kd.json          header, written last: ``format``, ``split``, ``num_utterances``, ``num_positions``,
                             ``teacher`` (= teacher.json), ``keys_sha256`` (of the keys file), ``transcripts``
                             (``{split}.wrd`` and its sha256), ``extraction`` (chunk size, batch tokens) and
                             ``stats`` (teacher top-1 accuracy on the transcripts, reference in top-k, top-k mass;
                             with ``drop_unspeakable`` the mean probability the dropped ids held)
    {split}.kd.keys.txt      ``relative/audio/path<TAB>TRANSCRIPT`` per manifest line: what the row belongs to
    {split}.kd.offsets.npy   int64  [N + 1]  utterance i owns positions offsets[i] .. offsets[i + 1] - 1
    {split}.kd.tokens.npy    int32  [P]      t_u, teacher vocabulary ids
    {split}.kd.topk_ids.npy  int32  [P, K]   v_{u,k}
    {split}.kd.topk_probs.npy float16 [P, K] p_u(v_{u,k})

Row ``i`` belongs to manifest line ``i`` (0-based, after the root line), *before* fairseq skips short
utterances; the wrapper maps dataset indices to rows through ``skipped_indices`` and matches batch rows by
``id``, and the keys are checked against the manifest and ``{split}.wrd`` at load time, so a sidecar can never
silently drift from the audio it belongs to.

``sample["teacher"]``, added by :meth:`TeacherSidecarDataset.collater` (``L = max(n) + 1``, rows in the order
of ``sample["id"]``)::

    prev_output_tokens  B x L      long   [CLS] t_1 .. t_n, padded with [PAD]
    target              B x L      long   t_1 .. t_n [SEP], padded with [PAD]
    topk_ids            B x L x K  long   teacher ids v_{u,k}; [PAD] on padded positions and unused columns
    topk_probs          B x L x K  float  q_{u,k} = p_u(v_{u,k}) / sum_j p_u(v_{u,j}) (each row sums to 1); the
                                          [SEP] position is one-hot on [SEP]; 0 on padding
    padding_mask        B x L      bool   True on padded positions
    ntokens             int               sum of (n + 1) over the batch
"""
import hashlib
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq.data import BaseWrapperDataset

from ..errors import DataError
from ..io_utils import read_json
from .manifest import check_split, read_manifest

FORMAT_VERSION = 2
TEACHER_FILE = "teacher.json"
ARRAYS = ("offsets", "tokens", "topk_ids", "topk_probs")
ARRAY_DTYPES = {"offsets": np.int64, "tokens": np.int32, "topk_ids": np.int32, "topk_probs": np.float16}
HEADER_KEYS = ("format", "split", "num_utterances", "num_positions", "teacher", "keys_sha256")
VALIDATION_BLOCK = 1 << 18  # positions per vectorised validation step (bounds the temporary memory)
PROB_SUM_TOLERANCE = 2e-3  # float16 rounds each probability by at most 2^-11 of itself


def sidecar_path(sidecar_dir: str, split: str, part: str) -> str:
    """``part``: ``json``, ``keys.txt`` or one of :data:`ARRAYS` (``.npy``)."""
    return os.path.join(sidecar_dir, f"{split}.kd.{part}" + (".npy" if part in ARRAYS else ""))


def read_teacher_meta(sidecar_dir: str) -> dict:
    path = os.path.join(sidecar_dir, TEACHER_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no teacher header; extract sidecars into {sidecar_dir} with "
                        f"scripts/extract_teacher_sidecar.py (or fix task.kd_sidecar_dir)")
    return read_json(path, f"delete {sidecar_dir} and extract again with scripts/extract_teacher_sidecar.py")


def utterance_keys(data_dir: str, split: str) -> List[str]:
    """``relative/path<TAB>TRANSCRIPT`` for every manifest line of ``split``, transcripts from ``{split}.wrd``."""
    words_path = os.path.join(data_dir, f"{split}.wrd")
    if not os.path.isfile(words_path):
        raise DataError(f"{words_path}: word transcripts not found; the teacher reads words, not labels: "
                        f"create it with scripts/prepare_manifest.py")
    check_split(data_dir, split, ["wrd"], {}, sample_rate=0, check_audio=False)  # one non-empty line per utterance
    _, entries = read_manifest(os.path.join(data_dir, f"{split}.tsv"))
    with open(words_path, encoding="utf-8") as f:
        transcripts = f.read().split("\n")[: len(entries)]
    return [f"{relpath}\t{transcript.strip()}" for (relpath, _, _), transcript in zip(entries, transcripts)]


def keys_checksum(keys: Sequence[str]) -> str:
    return hashlib.sha256("".join(k + "\n" for k in keys).encode("utf-8")).hexdigest()


class TeacherSidecar:
    """Memory-mapped reader of one split's sidecar; ``sidecar[i]`` -> ``(tokens [n], topk_ids [n, K],
    topk_probs [n, K])`` as numpy views (int32, int32, float16) of manifest line ``i``.

    Opening validates everything that can be wrong with the files, in full: the header (JSON, format, keys),
    every array (present, readable, not truncated, dtype, shape), the offsets (start at 0, never decrease, end
    at the number of positions), every id (inside the teacher vocabulary) and every probability row (finite,
    in [0, 1], descending, summing to more than 0 and at most 1). Arrays are checked in vectorised blocks of
    :data:`VALIDATION_BLOCK` positions. Any failure is a :class:`DataError` naming the file, the utterance
    where it applies and the fix. Data-loader workers reopen the memory maps without checking again."""

    def __init__(self, sidecar_dir: str, split: str):
        self.sidecar_dir, self.split = sidecar_dir, split
        self.fix = f"re-extract with scripts/extract_teacher_sidecar.py --splits {split}"
        header_path = sidecar_path(sidecar_dir, split, "json")
        if not os.path.isfile(header_path):
            raise DataError(f"{header_path}: no teacher sidecar for split {split!r}; extract it with "
                            f"scripts/extract_teacher_sidecar.py --splits {split}")
        self.header = read_json(header_path, self.fix)
        if self.header.get("format") != FORMAT_VERSION:
            raise DataError(f"{header_path}: sidecar format {self.header.get('format')}, this code reads "
                            f"{FORMAT_VERSION}; {self.fix}")
        missing = [key for key in HEADER_KEYS if key not in self.header]
        if not missing:
            teacher = self.header["teacher"] if isinstance(self.header["teacher"], dict) else {}
            missing = [f"teacher.{key}" for key in ("topk", "vocab_size") if key not in teacher]
        if missing:
            raise DataError(f"{header_path}: header lacks {missing} (an incomplete or foreign file); {self.fix}")
        self.num_utterances = self.header["num_utterances"]
        self.topk = self.header["teacher"]["topk"]
        self._arrays = None
        self._validate()

    def _path(self, name: str) -> str:
        return sidecar_path(self.sidecar_dir, self.split, name)

    def _open(self):
        if self._arrays is None:
            arrays = {}
            for name in ARRAYS:
                try:
                    arrays[name] = np.load(self._path(name), mmap_mode="r")
                except FileNotFoundError:
                    raise DataError(f"{self._path(name)}: missing (an interrupted or partial copy); {self.fix}") \
                        from None
                except (ValueError, OSError, EOFError) as e:  # truncated data or a damaged .npy header
                    raise DataError(f"{self._path(name)}: unreadable or truncated ({e}); {self.fix}") from None
            self._arrays = arrays
        return self._arrays

    def __getstate__(self):  # data-loader workers reopen the memory maps instead of pickling their contents
        return {**self.__dict__, "_arrays": None}

    def _fail(self, name: str, problem: str, position: Optional[int] = None):
        where = ""
        if position is not None:
            utterance = int(np.searchsorted(self._arrays["offsets"], position, side="right")) - 1
            where = f" at utterance {utterance} (manifest line {utterance + 2}), position {position}"
        raise DataError(f"{self._path(name)}: {problem}{where}; {self.fix}")

    def _validate(self):
        arrays = self._open()
        n, p, k = self.num_utterances, self.header["num_positions"], self.topk
        vocab_size = self.header["teacher"].get("vocab_size")
        expected = {"offsets": (n + 1,), "tokens": (p,), "topk_ids": (p, k), "topk_probs": (p, k)}
        for name, shape in expected.items():
            if arrays[name].dtype != ARRAY_DTYPES[name]:
                self._fail(name, f"dtype {arrays[name].dtype}, the format stores {np.dtype(ARRAY_DTYPES[name])}")
            if arrays[name].shape != shape:
                self._fail(name, f"shape {arrays[name].shape}, header says {shape} (an interrupted or mixed write)")
        offsets = np.asarray(arrays["offsets"])
        if offsets[0] != 0 or offsets[-1] != p:
            self._fail("offsets", f"offsets run from {offsets[0]} to {offsets[-1]}, not over the {p} positions")
        decreasing = np.flatnonzero(np.diff(offsets) < 0)
        if len(decreasing):
            raise DataError(f"{self._path('offsets')}: offsets decrease at utterance {decreasing[0]} (manifest line "
                            f"{decreasing[0] + 2}); {self.fix}")
        for start in range(0, p, VALIDATION_BLOCK):
            end = min(p, start + VALIDATION_BLOCK)
            for name in ("tokens", "topk_ids"):
                ids = np.asarray(arrays[name][start:end]).reshape(end - start, -1)
                bad = np.flatnonzero(((ids < 0) | (ids >= vocab_size)).any(axis=1))
                if len(bad):
                    self._fail(name, f"id outside the teacher vocabulary [0, {vocab_size})", start + bad[0])
            probs = np.asarray(arrays["topk_probs"][start:end], dtype=np.float32)
            row_sums = probs.sum(axis=1)
            checks = (("a probability that is NaN or infinite", ~np.isfinite(probs).all(axis=1)),
                      ("a negative probability", (probs < 0).any(axis=1)),
                      ("a probability above 1", (probs > 1).any(axis=1)),
                      ("top-k probabilities not in descending order", (np.diff(probs, axis=1) > 0).any(axis=1)),
                      (f"top-k probabilities summing to 0 or to more than 1 + {PROB_SUM_TOLERANCE}",
                       ~((row_sums > 0) & (row_sums <= 1 + PROB_SUM_TOLERANCE))))
            for problem, bad_rows in checks:
                bad = np.flatnonzero(bad_rows)
                if len(bad):
                    self._fail("topk_probs", problem, start + bad[0])

    def __len__(self):
        return self.num_utterances

    def __getitem__(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        arrays = self._open()
        start, end = arrays["offsets"][i], arrays["offsets"][i + 1]
        return arrays["tokens"][start:end], arrays["topk_ids"][start:end], arrays["topk_probs"][start:end]

    def check_matches(self, data_dir: str) -> None:
        """Raise :class:`DataError` naming the first manifest line whose audio path or transcript differs from
        what the sidecar was extracted for."""
        keys = utterance_keys(data_dir, self.split)
        if keys_checksum(keys) == self.header["keys_sha256"]:
            return
        keys_path = sidecar_path(self.sidecar_dir, self.split, "keys.txt")
        fix = self.fix
        try:
            with open(keys_path, encoding="utf-8") as f:
                stored = f.read().split("\n")[:-1]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"{data_dir}/{self.split}.tsv/.wrd differ from what the sidecar was extracted for, and "
                            f"{keys_path} cannot be read ({e}); {fix}") from None
        for line_no, (old, new) in enumerate(zip(stored, keys), start=1):
            if old != new:
                raise DataError(f"{self.split}.tsv/.wrd line {line_no} is {new!r} but {keys_path}:{line_no} was "
                                f"extracted for {old!r}: the data changed after extraction; {fix}")
        raise DataError(f"{data_dir}/{self.split}.tsv lists {len(keys)} utterances, {keys_path} "
                        f"{len(stored)}: the data changed after extraction; {fix}")


class TeacherSidecarDataset(BaseWrapperDataset):
    """Adds the teacher's targets to every item and batch of a labelled audio dataset (see the module doc).

    Args:
        dataset: fairseq ``AddTargetDataset`` (or any dataset whose collater returns ``id``).
        rows: ``rows[index]`` is the sidecar row (manifest line) of dataset item ``index``.
        special_ids: the teacher's ``pad``, ``cls`` and ``sep`` ids (``teacher.json``).
        topk: keep only the first ``topk`` <= K stored ids per position before renormalising (None: all K).
    """

    def __init__(self, dataset, sidecar: TeacherSidecar, rows: np.ndarray, special_ids: dict,
                 topk: Optional[int] = None):
        super().__init__(dataset)
        if len(rows) != len(dataset):
            raise DataError(f"split {sidecar.split!r}: {len(dataset)} utterances loaded but {len(rows)} sidecar "
                            f"rows selected; the sidecar and the manifest disagree")
        if topk is not None and not 1 <= topk <= sidecar.topk:
            raise DataError(f"task.kd_topk={topk}: {sidecar_path(sidecar.sidecar_dir, sidecar.split, 'json')} stores "
                            f"{sidecar.topk} ids per position; choose task.kd_topk in 1..{sidecar.topk} or re-extract "
                            f"with --topk {topk} or more")
        self.sidecar, self.rows = sidecar, rows
        self.pad, self.bos, self.eos = special_ids["pad"], special_ids["cls"], special_ids["sep"]
        self.topk = topk or sidecar.topk

    def __getitem__(self, index):
        item = self.dataset[index]
        tokens, topk_ids, topk_probs = self.sidecar[int(self.rows[index])]
        k, n = self.topk, len(tokens)
        ids = np.full((n + 1, k), self.pad, dtype=np.int64)
        probs = np.zeros((n + 1, k), dtype=np.float32)
        ids[:n] = topk_ids[:, :k]
        probs[:n] = topk_probs[:, :k]
        probs[:n] /= probs[:n].sum(axis=1, keepdims=True)
        ids[n, 0], probs[n, 0] = self.eos, 1.0
        tokens = torch.from_numpy(tokens.astype(np.int64))
        item["teacher"] = {
            "prev_output_tokens": torch.cat([tokens.new_tensor([self.bos]), tokens]),
            "target": torch.cat([tokens, tokens.new_tensor([self.eos])]),
            "topk_ids": torch.from_numpy(ids),
            "topk_probs": torch.from_numpy(probs),
        }
        return item

    def collater(self, samples):
        collated = self.dataset.collater(samples)
        if not collated:
            return collated
        by_id = {s["id"]: s["teacher"] for s in samples}
        teacher = [by_id[i] for i in collated["id"].tolist()]  # the audio collater may drop samples
        batch, length = len(teacher), max(len(t["target"]) for t in teacher)
        out = {"prev_output_tokens": torch.full((batch, length), self.pad, dtype=torch.long),
               "target": torch.full((batch, length), self.pad, dtype=torch.long),
               "topk_ids": torch.full((batch, length, self.topk), self.pad, dtype=torch.long),
               "topk_probs": torch.zeros(batch, length, self.topk),
               "padding_mask": torch.ones(batch, length, dtype=torch.bool)}
        for b, t in enumerate(teacher):
            n = len(t["target"])
            for name in ("prev_output_tokens", "target", "topk_ids", "topk_probs"):
                out[name][b, :n] = t[name]
            out["padding_mask"][b, :n] = False
        out["ntokens"] = int((~out["padding_mask"]).sum())
        collated["teacher"] = out
        return collated


def attach_teacher_sidecar(dataset, sidecar_dir: str, data_dir: str, split: str, skipped_indices,
                           topk: Optional[int]) -> TeacherSidecarDataset:
    """Open and check ``split``'s sidecar and wrap ``dataset``, whose items are the manifest lines not in
    ``skipped_indices``, in order."""
    sidecar = TeacherSidecar(sidecar_dir, split)
    sidecar.check_matches(data_dir)
    teacher = read_teacher_meta(sidecar_dir)
    if sidecar.header["teacher"] != teacher:
        differ = sorted(key for key in set(teacher) | set(sidecar.header["teacher"])
                        if teacher.get(key) != sidecar.header["teacher"].get(key))
        raise DataError(f"{sidecar_path(sidecar_dir, split, 'json')}: extracted by another teacher or settings than "
                        f"{os.path.join(sidecar_dir, TEACHER_FILE)} describes ({', '.join(differ)} differ); re-extract "
                        f"it with scripts/extract_teacher_sidecar.py --splits {split}")
    rows = np.array([i for i in range(len(sidecar)) if i not in skipped_indices], dtype=np.int64)
    return TeacherSidecarDataset(dataset, sidecar, rows, teacher["special_ids"], topk)
