"""A restricted-vocabulary model rebuilt from its checkpoint's config next to teacher sidecars whose training split
has another number of ids (e.g. extracted again with a rebuilt teacher, as ``diagnose_kd.py --sidecars`` does):
the decoder keeps the checkpoint's size and id map, and the checkpoint's weights load."""
import json
import logging

import numpy as np
import torch

from fairseq_kd.data.teacher_sidecar import FORMAT_VERSION, TEACHER_FILE, sidecar_path
from tiny_models import CLS, PAD, SEP, TEACHER_VOCAB, kd_model, letter_task

MASK, UNK = 3, 4


def write_training_sidecar(directory, utterances):
    """``directory`` with teacher.json and a top-1 ``train`` sidecar whose utterances are the teacher ids
    ``utterances`` (as WordPieces and top-1 ids, probability 1)."""
    directory.mkdir()
    teacher = {"vocab_size": TEACHER_VOCAB, "vocab_sha256": "test", "topk": 1,
               "special_ids": {"pad": PAD, "cls": CLS, "sep": SEP, "mask": MASK, "unk": UNK}}
    (directory / TEACHER_FILE).write_text(json.dumps(teacher))
    tokens = np.concatenate(utterances).astype(np.int32)
    arrays = {"offsets": np.cumsum([0] + [len(u) for u in utterances]).astype(np.int64), "tokens": tokens,
              "topk_ids": tokens[:, None], "topk_probs": np.ones((len(tokens), 1), dtype=np.float16)}
    for name, array in arrays.items():
        np.save(sidecar_path(str(directory), "train", name), array)
    header = {"format": FORMAT_VERSION, "split": "train", "num_utterances": len(utterances),
              "num_positions": len(tokens), "teacher": teacher, "keys_sha256": "not read here"}
    with open(sidecar_path(str(directory), "train", "json"), "w") as f:
        json.dump(header, f)
    return str(directory)


def test_a_checkpoint_meeting_sidecars_of_another_id_count_keeps_its_id_map_and_loads(tmp_path):
    task = letter_task(tmp_path)
    task.cfg.kd_sidecar_dir = write_training_sidecar(tmp_path / "extracted", [[5, 6, 7], [8, 9]])
    trained = kd_model(task, aed_restrict_vocab=True)
    checkpoint_ids = [PAD, CLS, SEP, MASK, UNK, 5, 6, 7, 8, 9]
    assert trained.aed_decoder.output_ids.tolist() == checkpoint_ids and trained.cfg.aed_output_size == 10

    task.cfg.kd_sidecar_dir = write_training_sidecar(tmp_path / "extracted_again", [[5, 11, 12, 13], [14, 9]])
    warnings = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warnings.append
    logger = logging.getLogger("fairseq_kd.models.conformer_kd")
    logger.addHandler(handler)
    try:  # the checkpoint's config: its aed_output_size
        rebuilt = kd_model(task, aed_restrict_vocab=True, aed_output_size=trained.cfg.aed_output_size)
    finally:
        logger.removeHandler(handler)
    assert any("the checkpoint's id map will be used" in record.getMessage() for record in warnings)
    assert rebuilt.cfg.aed_output_size == 10 and rebuilt.aed_decoder.embed_tokens.num_embeddings == 10

    rebuilt.load_state_dict(trained.state_dict())
    assert rebuilt.aed_decoder.output_ids.tolist() == checkpoint_ids
    assert rebuilt.aed_decoder.decoder_ids(torch.tensor([9, 11])).tolist() == [9, checkpoint_ids.index(UNK)]
