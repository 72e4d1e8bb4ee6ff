"""fairseq_kd: knowledge distillation from a BERT masked LM into CTC speech recognisers, as a fairseq plugin.

Load it with ``--user-dir fairseq_kd``. fairseq itself is deliberately not in ``install_requires``:
the working distribution on Python 3.11 (``fairseq-fixed``) must be built with ``--no-deps`` so that it does
not pull torchaudio (see scripts/setup_env.sh).
"""
from setuptools import find_packages, setup

setup(
    name="fairseq_kd",
    version="0.1.0",
    description="Language-model knowledge distillation (interAED-KD) for CTC ASR, as a fairseq plugin",
    packages=find_packages(include=["fairseq_kd", "fairseq_kd.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.0",
        "transformers",
        "sentencepiece",
        "soundfile",
        "rapidfuzz",  # word-error alignment (fairseq_kd/decoding/scoring.py)
        "editdistance",  # fairseq-generate's wer scorer
        "kaldi-native-fbank",
        "scipy",  # t quantiles of the intervals (fairseq_kd/significance.py)
    ],
    extras_require={"lm": ["flashlight-text", "kenlm"],
                    "deploy": ["onnx", "onnxruntime", "sherpa-onnx"],  # scripts/export_onnx.py, docs/deploy.md
                    "test": ["pytest", "pytest-xdist", "filelock", "tokenizers", "jiwer", "ruff"]},
)
