"""Deployment outside fairseq: the greedy CTC model as ONNX for ONNX Runtime and sherpa-onnx
(:mod:`fairseq_kd.deploy.onnx_ctc`). Not imported by the plugin: it needs the optional packages onnx, onnxruntime
and sherpa-onnx, which training and fairseq-generate do not."""
