"""Loading a teacher directory: an encoder without MLM head (the raw MiniLM) gives one line saying the head is
trained here, instead of transformers' "checkpoint seem corrupted" and its MISSING table; any other loading
problem still shows transformers' own report."""
import logging

import pytest
import torch
from safetensors.torch import load_file, save_file

from fairseq_kd.teacher.masked_lm import load_masked_lm
from tiny_bert import save_tiny_bert

TEXTS = ["the lord is my shepherd", "i shall not want", "he maketh me to lie down in green pastures"]


def test_an_encoder_without_mlm_head_is_one_info_line(tmp_path, transformers_shows, caplog):
    encoder = save_tiny_bert(tmp_path / "encoder", TEXTS, with_mlm_head=False)
    with caplog.at_level(logging.INFO, logger="fairseq_kd.teacher.masked_lm"):
        _, info = load_masked_lm(encoder)
    assert info["missing_keys"] and all(k.startswith("cls.predictions.") for k in info["missing_keys"])
    assert not [m for m in transformers_shows if "seem corrupted" in m or "MISSING" in m or "UNEXPECTED" in m]
    assert [r.getMessage() for r in caplog.records if r.name == "fairseq_kd.teacher.masked_lm"] == [
        f"{encoder}: an encoder without MLM head ({len(info['missing_keys'])} weights cls.predictions.* initialised "
        f"here, trained by the MLM fine-tuning, scripts/finetune_teacher.py; its sentence pooler unused)"]


def test_other_loading_problems_keep_transformers_report(tmp_path, transformers_shows):
    teacher = save_tiny_bert(tmp_path / "teacher", TEXTS)
    weights = load_file(f"{teacher}/model.safetensors")
    weights["bert.encoder.layer.9.output.dense.weight"] = torch.zeros(2, 2)  # a weight no BERT of this size has
    save_file(weights, f"{teacher}/model.safetensors", metadata={"format": "pt"})
    _, info = load_masked_lm(teacher)
    assert info["unexpected_keys"]
    assert any("UNEXPECTED" in message for message in transformers_shows)


@pytest.fixture
def transformers_shows():
    """The messages transformers' logger hands to its handlers (what the console shows), at its default level."""
    from transformers.utils import logging as transformers_logging

    shown = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: shown.append(record.getMessage())
    library_logger = logging.getLogger("transformers")
    level = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_warning()
    library_logger.addHandler(handler)
    yield shown
    library_logger.removeHandler(handler)
    transformers_logging.set_verbosity(level)
