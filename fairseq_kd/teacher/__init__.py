"""The masked-LM teacher (transformers): its top-k predictions and their extraction into sidecars.

Not imported by the plugin (``--user-dir fairseq_kd``): ASR training reads the sidecars only
(:mod:`fairseq_kd.data.teacher_sidecar`) and never loads the teacher.
"""
