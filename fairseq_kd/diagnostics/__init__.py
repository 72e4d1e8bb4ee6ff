"""Measurements on trained checkpoints that explain what distillation does (``scripts/diagnose_kd.py``).

Not imported by the plugin (``--user-dir fairseq_kd``): nothing here is needed to train or decode.
"""
