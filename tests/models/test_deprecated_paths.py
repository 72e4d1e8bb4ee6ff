"""Former names keep working for one release, with a warning naming the new one."""
import importlib
import sys

import pytest

import fairseq_kd.models.conformer_kd as conformer_kd


def test_the_former_model_module_path_warns_and_gives_the_new_module():
    sys.modules.pop("fairseq_kd.models.ctc_kd", None)
    with pytest.warns(FutureWarning, match=r"fairseq_kd\.models\.ctc_kd is now fairseq_kd\.models\.conformer_kd"):
        former = importlib.import_module("fairseq_kd.models.ctc_kd")
    assert former is conformer_kd and former.CtcKdModel is conformer_kd.CtcKdModel
    from fairseq_kd.models.ctc_kd import inference_state_dict  # the names of the old path still import

    assert inference_state_dict is conformer_kd.inference_state_dict
