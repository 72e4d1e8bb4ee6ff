"""A BERT masked-LM teacher (a transformers ``BertForMaskedLM`` directory) and its per-position top-k predictions.

For a transcript tokenised as ``t_1 .. t_n`` (WordPieces, no specials), position ``u`` gets::

    p_u = softmax(z_u / tau),   z_u = MLM logits at u of  [CLS] t_1 .. t_{u-1} [MASK] t_{u+1} .. t_n [SEP]

so a transcript costs ``n`` forward passes of length ``n + 2`` (as in Futami et al. 2020, "Distilling the
knowledge of BERT for sequence-to-sequence ASR"). The masked copies of many transcripts are batched, sorted by
length so that little is padded, at most ``batch_tokens`` (padded) positions per forward pass; the MLM head
(``V`` logits) runs at the masked position of each copy only, not at all ``n + 2`` positions.
"""
import hashlib
import os
from typing import List, Tuple

import numpy as np
import torch
from transformers import AutoTokenizer, BertForMaskedLM

from ..data.manifest import DataError

FINGERPRINT_FILES = ("config.json", "vocab.txt", "tokenizer.json", "model.safetensors", "pytorch_model.bin")


def fingerprint(model_dir: str) -> str:
    """sha256 of the teacher's configuration, vocabulary and weights: which teacher produced a sidecar."""
    digest = hashlib.sha256()
    for name in FINGERPRINT_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            digest.update(name.encode())
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


class MaskedLmTeacher:
    """Loads ``model_dir`` offline (``local_files_only``); refuses a model whose MLM head was not trained."""

    def __init__(self, model_dir: str, device: str = "cpu"):
        if not os.path.isdir(model_dir):
            raise DataError(f"{model_dir}: teacher directory not found (a transformers BertForMaskedLM saved with "
                            f"save_pretrained, with its tokenizer)")
        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model, info = BertForMaskedLM.from_pretrained(model_dir, local_files_only=True,
                                                           output_loading_info=True)
        if info["missing_keys"]:
            raise DataError(f"{model_dir}: weights {sorted(info['missing_keys'])} are missing and would be random "
                            f"(a BertModel without a trained MLM head, e.g. the raw all-MiniLM-L6-v2 encoder); "
                            f"fine-tune the teacher's masked-LM head first")
        self.model.eval().to(device)
        self.device = device
        tok = self.tokenizer
        self.vocab_size = self.model.config.vocab_size
        vocabulary = tok.convert_ids_to_tokens(list(range(len(tok))))
        self.vocab_sha256 = hashlib.sha256("\n".join(vocabulary).encode("utf-8")).hexdigest()
        self.special_ids = {"pad": tok.pad_token_id, "cls": tok.cls_token_id, "sep": tok.sep_token_id,
                            "mask": tok.mask_token_id}
        self.max_length = self.model.config.max_position_embeddings

    def tokenize(self, transcripts: List[str]) -> List[List[int]]:
        """WordPiece ids without specials (an uncased tokenizer lower-cases the upper-case transcripts)."""
        return self.tokenizer(transcripts, add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def masked_topk(self, sequences: List[List[int]], topk: int, temperature: float = 1.0,
                    batch_tokens: int = 16384) -> List[Tuple[np.ndarray, np.ndarray]]:
        """For each sequence ``t_1 .. t_n``: ``(ids int32 [n, topk], probs float32 [n, topk])``, the ``topk``
        most probable ids of ``p_u`` (descending) and their probabilities, for ``u = 1 .. n``. Every sequence
        must fit the teacher: ``n + 2 <= max_length`` (extract_split checks it, naming the transcript line)."""
        special = self.special_ids
        results = [(np.empty((len(s), topk), np.int32), np.empty((len(s), topk), np.float32)) for s in sequences]
        # one row per masked copy: (sequence, masked position), shortest sequences first
        rows = [(i, u) for i in sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
                for u in range(len(sequences[i]))]
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and (end + 1 - start) * (len(sequences[rows[end][0]]) + 2) <= batch_tokens:
                end += 1
            batch = rows[start:end]
            width = len(sequences[batch[-1][0]]) + 2
            input_ids = torch.full((len(batch), width), special["pad"], dtype=torch.long)
            for r, (i, u) in enumerate(batch):
                input_ids[r, : len(sequences[i]) + 2] = torch.tensor([special["cls"], *sequences[i], special["sep"]])
            lengths = torch.tensor([len(sequences[i]) + 2 for i, _ in batch])
            attention_mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
            positions = torch.tensor([u + 1 for _, u in batch])
            rows_index = torch.arange(len(batch))
            input_ids[rows_index, positions] = special["mask"]
            hidden = self.model.bert(input_ids=input_ids.to(self.device),
                                     attention_mask=attention_mask.to(self.device)).last_hidden_state
            logits = self.model.cls(hidden[rows_index.to(self.device), positions.to(self.device)]).float()
            top_probs, top_ids = torch.softmax(logits / temperature, dim=-1).topk(topk, dim=-1)
            top_probs, top_ids = top_probs.cpu().numpy(), top_ids.cpu().numpy()
            for r, (i, u) in enumerate(batch):
                results[i][0][u], results[i][1][u] = top_ids[r], top_probs[r]
            start = end
        return results
