"""bfloat16 autocast only where the CPU multiplies bfloat16 natively (fairseq_kd/precision.py), for the student
(``model.autocast_bf16``) and the teacher's fine-tuning (``--bf16``)."""
import warnings

import pytest
import torch

from fairseq_kd import precision
from tiny_models import make_batch, make_model


@pytest.mark.parametrize("native", [True, False])
def test_auto_uses_bf16_only_on_cpus_that_multiply_it_natively(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_bf16_instructions", lambda: native)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        assert precision.use_bf16(None, "cpu", "x") is native
        assert precision.use_bf16(None, "cuda", "x") is False  # GPUs: the configs' common.fp16 decides
        assert precision.use_bf16(False, "cpu", "x") is False


def test_forcing_bf16_on_a_cpu_without_the_instructions_warns_with_the_setting(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_bf16_instructions", lambda: False)
    with pytest.warns(RuntimeWarning, match="model.autocast_bf16=true"):
        assert precision.use_bf16(True, "cpu", "model.autocast_bf16=true") is True


@pytest.mark.parametrize("native", [True, False])
def test_model_with_auto_precision_runs_in_the_machines_precision(task, monkeypatch, native):
    """``autocast_bf16: null`` (the xs configs): the encoder's matrix products run in bfloat16 exactly when the
    CPU has the instructions; the CTC emissions are float32 either way."""
    monkeypatch.setattr(precision, "cpu_has_bf16_instructions", lambda: native)
    model = make_model(task, autocast_bf16=None).eval()
    sample = make_batch(task)
    dtypes = []
    hook = model.ctc_proj.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    with torch.no_grad():
        emissions, _ = model.ctc_emissions(**sample["net_input"])
    hook.remove()
    assert dtypes == [torch.bfloat16 if native else torch.float32]
    assert emissions.dtype == torch.float32
