"""Deprecated module path of :mod:`fairseq_kd.models.conformer_kd` (the ``ctc_kd`` model), renamed so that
``ctc_kd.py`` names one file only, the criterion. Importing this module warns and gives the new module; it goes
away in the next release. Registered names (model ``ctc_kd``, archs ``ctc_kd_conformer_*``) did not change."""
import sys
import warnings

from . import conformer_kd

warnings.warn("fairseq_kd.models.ctc_kd is now fairseq_kd.models.conformer_kd; import it from there (the old path "
              "goes away in the next release)", FutureWarning, stacklevel=2)
sys.modules[__name__] = conformer_kd
