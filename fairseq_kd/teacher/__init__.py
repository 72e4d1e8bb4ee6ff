"""The masked-LM teacher (transformers): MLM fine-tuning (:mod:`.finetune`), its top-k predictions
(:mod:`.masked_lm`) and their extraction into sidecars, sharded and merged (:mod:`.extract`).

Not imported by the plugin (``--user-dir fairseq_kd``): ASR training reads the sidecars only
(:mod:`fairseq_kd.data.teacher_sidecar`) and never loads the teacher. See docs/teacher_sidecar.md.
"""
