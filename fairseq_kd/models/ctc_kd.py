"""Deprecated module path of :mod:`fairseq_kd.models.conformer_kd` (the ``ctc_kd`` model), renamed so that
``ctc_kd.py`` names one file only, the criterion. Importing this module gives the new module, with a warning
when someone imports the old path (not when fairseq's ``--user-dir`` loader imports every file of ``models/``); it
goes away in the next release. Registered names (model ``ctc_kd``, archs ``ctc_kd_conformer_*``) did not
change."""
import sys
import warnings

from . import conformer_kd


def _imported_by_fairseqs_model_scan():
    """True when the import comes from ``fairseq.models.import_models``, which ``--user-dir`` runs over every
    file of the plugin's ``models/`` folder."""
    frame = sys._getframe(1)
    while frame is not None and ("importlib" in frame.f_code.co_filename
                                 or frame.f_globals.get("__name__") == __name__):
        frame = frame.f_back
    return frame is not None and frame.f_code.co_name == "import_models" and \
        frame.f_globals.get("__name__") == "fairseq.models"


if not _imported_by_fairseqs_model_scan():
    warnings.warn("fairseq_kd.models.ctc_kd is now fairseq_kd.models.conformer_kd; import it from there (the old "
                  "path goes away in the next release)", FutureWarning, stacklevel=2)
sys.modules[__name__] = conformer_kd
