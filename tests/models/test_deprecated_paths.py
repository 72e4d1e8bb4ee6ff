"""Former names keep working for one release, with a warning naming the new one."""
import importlib
import os
import sys
import warnings

import pytest

import fairseq_kd.models.conformer_kd as conformer_kd


def test_the_former_model_module_path_warns_and_gives_the_new_module():
    sys.modules.pop("fairseq_kd.models.ctc_kd", None)
    with pytest.warns(FutureWarning, match=r"fairseq_kd\.models\.ctc_kd is now fairseq_kd\.models\.conformer_kd"):
        former = importlib.import_module("fairseq_kd.models.ctc_kd")
    assert former is conformer_kd and former.CtcKdModel is conformer_kd.CtcKdModel
    from fairseq_kd.models.ctc_kd import inference_state_dict  # the names of the old path still import

    assert inference_state_dict is conformer_kd.inference_state_dict


def test_fairseqs_user_dir_scan_of_the_models_folder_does_not_warn():
    """``--user-dir`` makes fairseq import every file of ``models/``: nobody imported the old path, so no warning."""
    from fairseq.models import import_models

    sys.modules.pop("fairseq_kd.models.ctc_kd", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import_models(os.path.dirname(conformer_kd.__file__), "fairseq_kd.models")
    assert "fairseq_kd.models.ctc_kd" in sys.modules
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]
