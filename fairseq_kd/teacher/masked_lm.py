"""A BERT masked-LM teacher (a transformers ``BertForMaskedLM`` directory) and its per-position top-k predictions.

For a transcript tokenised as ``t_1 .. t_n`` (WordPieces, no specials), position ``u`` gets::

    p_u = softmax(z_u / tau),   z_u = MLM logits at u of
                                      [CLS] l_1 .. l_a t_1 .. t_{u-1} [MASK] t_{u+1} .. t_n r_1 .. r_b [SEP]

so a transcript costs ``n`` forward passes (as in Futami et al. 2020, "Distilling the knowledge of BERT for
sequence-to-sequence ASR"). ``l`` and ``r`` are optional context (the WordPieces of neighbouring utterances,
Futami et al.'s "full-length" context; none by default), one segment with the transcript. At most
``W = max_length - 2`` WordPieces fit between ``[CLS]`` and ``[SEP]``:

* context is cut to the ``W - n`` WordPieces nearest the transcript, half on each side (a side that has
  less leaves the rest to the other), so the transcript itself is always seen whole when ``n <= W``;
* a transcript with ``n > W`` is refused (``long_transcripts="error"``, the default) or read in windows
  (``"window"``): position ``u`` sees ``t_s .. t_{s+W-1}`` without context, ``s = clip(u - floor(W/2), 0, n - W)``,
  the window of ``W`` WordPieces most nearly centred on ``u``.

Unspeakable tokens (``drop_unspeakable`` in the sidecar header, off by default): with a set ``E`` of excluded
ids (:meth:`MaskedLmTeacher.unspeakable_ids`), the top-k is taken from the teacher's distribution over the other
ids, renormalised::

    p'_u(v) = p_u(v) / (1 - D_u)  for v not in E,  0 for v in E;    D_u = sum_{v in E} p_u(v)

computed as ``softmax(z_u / tau)`` with ``-inf`` at ``E``; ``D_u``, the probability the teacher put on ``E``, is
returned with it.

The masked copies of many transcripts are batched, sorted by width so that little is padded, at most
``batch_tokens`` (padded) positions per forward pass; the MLM head (``V`` logits) runs at the masked position
of each copy only, not at all positions. The copies of a transcript are built with tensor operations (no
Python loop per token).
"""
import hashlib
import logging
import os
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from transformers import AutoTokenizer, BertForMaskedLM

from ..data.text import TRANSCRIPT_ALPHABET
from ..errors import DataError
from ..io_utils import hash_file

FINGERPRINT_FILES = ("config.json", "vocab.txt", "tokenizer.json", "model.safetensors", "pytorch_model.bin")
LONG_TRANSCRIPT_POLICIES = ("error", "window")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
WORDPIECE_CONTINUATION = "##"  # BERT's prefix of a WordPiece that continues a word
SPEAKABLE_WORDPIECE = re.compile(f"[{re.escape(TRANSCRIPT_ALPHABET)}]+", re.IGNORECASE)


def fingerprint(model_dir: str) -> str:
    """sha256 of the teacher's configuration, vocabulary and weights: which teacher produced a sidecar."""
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            digest.update(name.encode())
            hash_file(digest, path)
    return digest.hexdigest()


def special_ids_of(tokenizer) -> dict:
    """The teacher's special token ids by role: ``pad``, ``cls``, ``sep``, ``mask``, ``unk`` (as stored in
    ``teacher.json``'s ``special_ids``)."""
    return {"pad": tokenizer.pad_token_id, "cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id,
            "mask": tokenizer.mask_token_id, "unk": tokenizer.unk_token_id}


MLM_HEAD_PREFIX = "cls.predictions."
SENTENCE_POOLER_PREFIX = "pooler."  # BertModel's [CLS] pooler, which BertForMaskedLM has not
logger = logging.getLogger(__name__)


def load_masked_lm(model_dir: str, model_class=BertForMaskedLM):
    """``model_class.from_pretrained(model_dir)`` offline, with its loading info.

    transformers' loading warnings are shown as they are, except in the one case this project meets by design:
    an encoder-only checkpoint (e.g. the raw all-MiniLM-L6-v2) lacks only the MLM head, ``cls.predictions.*``,
    which the MLM fine-tuning trains, and holds only the sentence pooler beyond it. transformers then says "This
    checkpoint seem corrupted" and prints a table of MISSING and UNEXPECTED weights; those become one line saying
    that the head is initialised here and trained by scripts/finetune_teacher.py."""
    held = []

    def hold(record):
        held.append(record)
        return False

    # held at the loggers that create them, whatever handlers (transformers' own, or the root's) show them
    loggers = [logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict)
               if name == "transformers" or name.startswith("transformers.")]
    for source in loggers:
        source.addFilter(hold)
    try:
        model, info = model_class.from_pretrained(model_dir, local_files_only=True, output_loading_info=True)
    finally:
        for source in loggers:
            source.removeFilter(hold)
    missing = sorted(info["missing_keys"])
    encoder_only = missing and all(k.startswith(MLM_HEAD_PREFIX) for k in missing) and not info["mismatched_keys"] \
        and all(k.startswith(SENTENCE_POOLER_PREFIX) for k in info["unexpected_keys"])
    if encoder_only:
        logger.info(f"{model_dir}: an encoder without MLM head ({len(missing)} weights {MLM_HEAD_PREFIX}* initialised "
                    f"here, trained by the MLM fine-tuning, scripts/finetune_teacher.py; its sentence pooler unused)")
    else:
        for record in held:
            logging.getLogger(record.name).handle(record)
    return model, info


def missing_weights(model_dir: str) -> List[str]:
    """Names of the ``BertForMaskedLM`` weights that ``model_dir`` lacks (all of the MLM head for an encoder-only
    BERT such as the raw all-MiniLM-L6-v2): a teacher needs MLM fine-tuning first when this is not empty."""
    _, info = load_masked_lm(model_dir)
    return sorted(info["missing_keys"])


class MaskedLmTeacher:
    """Loads ``model_dir`` offline (``local_files_only``); refuses a model whose MLM head was not trained."""

    def __init__(self, model_dir: str, device: str = "cpu", dtype: str = "float32"):
        if not os.path.isdir(model_dir):
            raise DataError(f"{model_dir}: teacher directory not found (a transformers BertForMaskedLM saved with "
                            f"save_pretrained, with its tokenizer)")
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model, info = load_masked_lm(model_dir)
        if info["missing_keys"]:
            raise DataError(f"{model_dir}: weights {sorted(info['missing_keys'])} are missing and would be random "
                            f"(a BertModel without a trained MLM head, e.g. the raw all-MiniLM-L6-v2 encoder); "
                            f"train it first with scripts/finetune_teacher.py --base {model_dir}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
        self.model.eval().to(device=device, dtype=DTYPES[dtype])
        self.device, self.dtype = device, dtype
        tok = self.tokenizer
        self.vocab_size = self.model.config.vocab_size
        vocabulary = tok.convert_ids_to_tokens(list(range(len(tok))))
        self.vocab_sha256 = hashlib.sha256("\n".join(vocabulary).encode("utf-8")).hexdigest()
        self.special_ids = special_ids_of(tok)
        self.max_length = self.model.config.max_position_embeddings

    def unspeakable_ids(self) -> List[int]:
        """Teacher ids that the tokenisation of a normalised transcript (:data:`TRANSCRIPT_ALPHABET`: letters and
        the apostrophe) can never produce, ascending: the special tokens (``[CLS]``, ``[SEP]``, ``[PAD]``,
        ``[MASK]`` and any other the tokenizer declares) except ``[UNK]``; every WordPiece with a character outside
        the alphabet in either case once the ``##`` prefix is removed (punctuation but the apostrophe, digits,
        non-ASCII letters, BERT's ``[unusedN]``); ids of the model's vocabulary beyond the tokenizer's.

        ``[UNK]`` is kept: the tokenizer emits it for a word it cannot spell, so it can be a reference WordPiece."""
        tok = self.tokenizer
        specials = set(tok.all_special_ids) - {tok.unk_token_id}
        pieces = tok.convert_ids_to_tokens(list(range(min(len(tok), self.vocab_size))))
        unspeakable = [i for i, piece in enumerate(pieces) if i in specials or (
            i != tok.unk_token_id and not SPEAKABLE_WORDPIECE.fullmatch(piece.removeprefix(WORDPIECE_CONTINUATION)))]
        return unspeakable + list(range(len(pieces), self.vocab_size))

    def tokenize(self, transcripts: List[str]) -> List[List[int]]:
        """WordPiece ids without specials (an uncased tokenizer lower-cases the upper-case transcripts)."""
        return self.tokenizer(transcripts, add_special_tokens=False)["input_ids"]

    def masked_copies(self, sequence: Sequence[int], left: Sequence[int] = (), right: Sequence[int] = ()
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``n`` masked copies of ``sequence`` (see the module doc for context and windows): ``(input_ids
        long [n, width], masked column long [n])``, ``[CLS] .. [SEP]`` included, no padding."""
        special, budget = self.special_ids, self.max_length - 2
        sequence = torch.as_tensor(sequence, dtype=torch.long)
        n = len(sequence)
        positions = torch.arange(n)
        if n > budget:  # windows of `budget` WordPieces, centred on the masked one where possible
            starts = torch.clamp(positions - budget // 2, 0, n - budget)
            body = sequence[starts[:, None] + torch.arange(budget)]
            columns = positions - starts + 1
        else:
            keep_left = min(len(left), max((budget - n) // 2, budget - n - len(right)))
            keep_right = min(len(right), budget - n - keep_left)
            frame = torch.cat([torch.as_tensor(left[len(left) - keep_left:], dtype=torch.long), sequence,
                               torch.as_tensor(right[:keep_right], dtype=torch.long)])
            body = frame.repeat(n, 1)
            columns = positions + keep_left + 1
        rows = torch.cat([torch.full((n, 1), special["cls"]), body, torch.full((n, 1), special["sep"])], dim=1)
        rows[positions, columns] = special["mask"]
        return rows, columns

    @torch.inference_mode()
    def masked_topk(self, sequences: List[List[int]], topk: int, temperature: float = 1.0,
                    batch_tokens: int = 16384, contexts: Optional[Sequence[Tuple[Sequence[int], Sequence[int]]]] = None,
                    excluded_ids: Sequence[int] = (), return_excluded_mass: bool = False) -> List[tuple]:
        """For each sequence ``t_1 .. t_n``: ``(ids int32 [n, topk], probs float32 [n, topk])``, the ``topk``
        most probable ids of ``p_u`` (descending) and their probabilities, for ``u = 1 .. n``.

        ``contexts[i] = (left, right)``: WordPieces read before and after sequence ``i`` (cut to fit). A sequence
        longer than ``max_length - 2`` is read in windows; whoever calls this applies the policy (refusing such
        sequences unless ``long_transcripts="window"``). ``excluded_ids``: take the top-k of ``p'_u`` instead (the
        distribution without them, renormalised; module doc), ``topk`` at most the ids left;
        ``return_excluded_mass``: also return ``excluded_mass float32 [n]``, ``D_u``, as a third array."""
        copies = [self.masked_copies(s, *(contexts[i] if contexts else ((), ()))) for i, s in enumerate(sequences)]
        results = [(np.empty((len(s), topk), np.int32), np.empty((len(s), topk), np.float32),
                    np.empty(len(s), np.float32)) for s in sequences]
        excluded = torch.as_tensor(excluded_ids, dtype=torch.long, device=self.device)
        order = sorted(range(len(sequences)), key=lambda i: copies[i][0].shape[1])
        pieces, rows_in_batch = [], 0  # pieces: (sequence, first copy, end copy) of the next forward pass
        for i in order:
            done, n, width = 0, len(sequences[i]), copies[i][0].shape[1]
            while done < n:
                room = batch_tokens // width - rows_in_batch  # rows are sorted by width: `width` is the batch's
                if room <= 0 and pieces:
                    self._forward(copies, pieces, results, topk, temperature, excluded)
                    pieces, rows_in_batch = [], 0
                    continue
                take = min(n - done, max(room, 1))
                pieces.append((i, done, done + take))
                rows_in_batch += take
                done += take
        if pieces:
            self._forward(copies, pieces, results, topk, temperature, excluded)
        return results if return_excluded_mass else [(ids, probs) for ids, probs, _ in results]

    def _forward(self, copies, pieces, results, topk, temperature, excluded):
        """One padded forward pass over the masked copies ``pieces``; top-k of ``p'_u`` and ``D_u`` written into
        ``results``."""
        width = max(copies[i][0].shape[1] for i, _, _ in pieces)
        num_rows = sum(end - start for _, start, end in pieces)
        input_ids = torch.full((num_rows, width), self.special_ids["pad"], dtype=torch.long)
        attention_mask = torch.zeros((num_rows, width), dtype=torch.long)
        columns = torch.empty(num_rows, dtype=torch.long)
        row = 0
        for i, start, end in pieces:
            rows, masked = copies[i]
            input_ids[row:row + end - start, : rows.shape[1]] = rows[start:end]
            attention_mask[row:row + end - start, : rows.shape[1]] = 1
            columns[row:row + end - start] = masked[start:end]
            row += end - start
        hidden = self.model.bert(input_ids=input_ids.to(self.device),
                                 attention_mask=attention_mask.to(self.device)).last_hidden_state  # R x width x H
        picked = hidden[torch.arange(num_rows, device=self.device), columns.to(self.device)]  # R x H
        scaled = self.model.cls(picked).float() / temperature  # R x V
        excluded_mass = torch.zeros(num_rows)
        if excluded.numel():
            kept = scaled.index_fill(-1, excluded, float("-inf"))
            excluded_mass = -torch.expm1(torch.logsumexp(kept, dim=-1) - torch.logsumexp(scaled, dim=-1))
            scaled = kept
        top_probs, top_ids = torch.softmax(scaled, dim=-1).topk(topk, dim=-1)
        top_probs, top_ids, excluded_mass = top_probs.cpu().numpy(), top_ids.cpu().numpy(), excluded_mass.cpu().numpy()
        row = 0
        for i, start, end in pieces:
            results[i][0][start:end] = top_ids[row:row + end - start]
            results[i][1][start:end] = top_probs[row:row + end - start]
            results[i][2][start:end] = excluded_mass[row:row + end - start]
            row += end - start
