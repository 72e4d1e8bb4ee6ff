"""The ONNX export of fairseq_kd/deploy/onnx_ctc.py on tiny untrained models: ONNX Runtime gives PyTorch's
log-probabilities (batched with padding, any length), the feature normalisation inside the graph is the data
loader's, the attention decoder stays out, tokens.txt is sherpa-onnx's format, and sherpa-onnx computes our
filterbanks with the options :func:`sherpa_recognizer` gives it (seen through a probe graph that spells out the
features it receives)."""
import numpy as np
import pytest
import soundfile as sf
import torch

from fairseq_kd.data.fbank_dataset import compute_fbank, utterance_cmvn
from fairseq_kd.deploy import onnx_ctc
from fairseq_kd.errors import DataError
from tiny_models import kd_model, make_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def export(model, task, path):
    onnx_ctc.export_graph(model.eval(), task.target_dictionary, 16000, str(path), "tiny.pt")
    return str(path)


def test_onnx_runtime_gives_pytorchs_log_probs_with_the_normalisation_in_the_graph(task, tmp_path):
    model = make_model(task).eval()
    session = onnx_ctc.ort_session(export(model, task, tmp_path / "model.onnx"), threads=1)
    torch.manual_seed(2)
    for lengths in ((157, 90, 23), (40,)):  # dynamic batch and length; padding filled with NaN
        raw = [torch.randn(n, 20) * 3 + 7 for n in lengths]
        x = torch.full((len(lengths), max(lengths), 20), float("nan"))
        for i, features in enumerate(raw):
            x[i, : len(features)] = features
        log_probs, out_lengths = session.run(None, {"x": x.numpy(), "x_lens": np.array(lengths, dtype=np.int64)})
        for i, features in enumerate(raw):
            with torch.no_grad():  # the data loader's normalisation, one utterance at a time
                reference, n = model.ctc_emissions(torch.from_numpy(utterance_cmvn(features.numpy()))[None])
            assert out_lengths[i] == n.item() == ((lengths[i] - 1) // 2 - 1) // 2
            assert np.abs(log_probs[i, : n.item()] - reference[0].numpy()).max() < 1e-4


def test_the_attention_decoder_is_not_exported_and_sherpa_metadata_is(task, tmp_path):
    path = export(kd_model(task), task, tmp_path / "model.onnx")
    proto = onnx.load(path)
    assert not [t.name for t in proto.graph.initializer if "aed_decoder" in t.name]
    metadata = onnx_ctc.read_metadata(path)
    assert metadata["vocab_size"] == str(len(task.target_dictionary)) and metadata["subsampling_factor"] == "4"
    assert [i.name for i in proto.graph.input] == ["x", "x_lens"]
    assert [o.name for o in proto.graph.output] == ["log_probs", "log_probs_len"]


def test_int8_keeps_the_metadata_and_stays_close(task, tmp_path):
    model = make_model(task).eval()
    float32 = export(model, task, tmp_path / "model.onnx")
    int8 = str(tmp_path / "model.int8.onnx")
    onnx_ctc.quantize_int8(float32, int8)
    assert onnx_ctc.read_metadata(float32).items() <= onnx_ctc.read_metadata(int8).items()
    assert sorted(p.name for p in tmp_path.glob("model*")) == ["model.int8.onnx", "model.onnx"]  # no temporary left
    x, lengths = np.random.default_rng(0).normal(size=(2, 80, 20)).astype(np.float32), np.array([80, 50])
    a = onnx_ctc.ort_session(float32, 1).run(None, {"x": x, "x_lens": lengths})[0]
    b = onnx_ctc.ort_session(int8, 1).run(None, {"x": x, "x_lens": lengths})[0]
    assert np.abs(a - b).max() < 0.5


def test_tokens_name_the_blank_and_the_word_boundary_as_sherpa_onnx_reads_them(task):
    lines = onnx_ctc.sherpa_tokens(task.target_dictionary)
    d = task.target_dictionary
    assert len(lines) == len(d) and lines[0] == "<blk> 0"  # fairseq's <s> is the CTC blank
    assert lines[d.index("|")] == f"\u2581 {d.index('|')}" and lines[d.index("A")] == f"A {d.index('A')}"


def probe_graph(path, num_mel_bins):
    """A graph of the exported model's contract whose greedy output spells its input: each feature value x becomes
    q = round(1000 x) + 2^23 written as three base-256 digits (labels 1..256), each followed by a blank frame, so
    sherpa-onnx's transcript gives back the filterbanks it computed to 0.001."""
    from onnx import TensorProto, helper

    def const(name, value, dtype=TensorProto.INT64):
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, dtype, [], [value]))

    nodes = [const("scale", 1000.0, TensorProto.FLOAT), helper.make_node("Mul", ["x", "scale"], ["scaled"]),
             helper.make_node("Round", ["scaled"], ["rounded"]),
             helper.make_node("Cast", ["rounded"], ["integer"], to=TensorProto.INT64),
             const("offset", 1 << 23), helper.make_node("Add", ["integer", "offset"], ["q"]),
             const("b1", 256), const("b2", 65536), const("one", 1), const("zero", 0),
             helper.make_node("Div", ["q", "b2"], ["high"]), helper.make_node("Div", ["q", "b1"], ["q256"]),
             helper.make_node("Mod", ["q256", "b1"], ["middle"]), helper.make_node("Mod", ["q", "b1"], ["low"]),
             helper.make_node("Mul", ["q", "zero"], ["blank"])]
    digits = []
    for name in ("high", "middle", "low"):
        nodes += [helper.make_node("Add", [name, "one"], [name + "_label"]),
                  helper.make_node("Unsqueeze", [name + "_label", "last"], [name + "_col"])]
        digits += [name + "_col", "blank_col"]
    nodes += [helper.make_node("Unsqueeze", ["blank", "last"], ["blank_col"]),
              helper.make_node("Concat", digits, ["spelled"], axis=3),
              helper.make_node("Reshape", ["spelled", "flat"], ["labels"]),
              const("depth", 257), helper.make_node("OneHot", ["labels", "depth", "on_off"], ["log_probs"], axis=-1),
              helper.make_node("Shape", ["labels"], ["shape"]),
              helper.make_node("Slice", ["shape", "from1", "to2"], ["log_probs_len"])]
    initializers = [helper.make_tensor("last", TensorProto.INT64, [1], [3]),
                    helper.make_tensor("flat", TensorProto.INT64, [2], [1, -1]),
                    helper.make_tensor("on_off", TensorProto.FLOAT, [2], [0.0, 1.0]),
                    helper.make_tensor("from1", TensorProto.INT64, [1], [1]),
                    helper.make_tensor("to2", TensorProto.INT64, [1], [2])]
    graph = helper.make_graph(
        nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", num_mel_bins]),
                         helper.make_tensor_value_info("x_lens", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, [1, "U", 257]),
         helper.make_tensor_value_info("log_probs_len", TensorProto.INT64, [1])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # sherpa-onnx 2.0's bundled ONNX Runtime reads IR <= 13
    for key, value in {"model_type": "zipformer_ctc", "vocab_size": 257, "subsampling_factor": 1,
                       "sample_rate": 16000, "feature_dim": num_mel_bins}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(model, str(path / "model.onnx"))
    (path / "tokens.txt").write_text("<blk> 0\n" + "".join(f"d{i} {i + 1}\n" for i in range(256)))


def sherpa_features(recognizer, samples, path, num_mel_bins):
    from fairseq_kd.deploy.onnx_ctc import sherpa_transcribe

    result = sherpa_transcribe(recognizer, [samples], 16000, str(path / "tokens.txt"))[0]
    high, middle, low = (np.array(result.tokens).reshape(-1, 3) - 1).T
    return ((high * 65536 + middle * 256 + low - (1 << 23)) / 1000.0).reshape(-1, num_mel_bins)


def test_sherpa_onnx_computes_our_filterbanks(tmp_path):
    sherpa_onnx = pytest.importorskip("sherpa_onnx")
    num_mel_bins = 80
    probe_graph(tmp_path, num_mel_bins)
    t = np.arange(int(1.23 * 16000)) / 16000  # a chirp in noise, then digital silence (as synthetic speech has)
    samples = (0.3 * np.sin(2 * np.pi * (200 + 2500 * t) * t)
               + 0.05 * np.random.default_rng(0).normal(size=t.size)).astype(np.float32)
    samples[len(samples) // 2:] = 0.0
    sf.write(tmp_path / "probe.wav", samples, 16000, subtype="PCM_16")
    samples, _ = sf.read(tmp_path / "probe.wav", dtype="float32")
    ours = compute_fbank(samples, 16000, num_mel_bins)

    recognizer = onnx_ctc.sherpa_recognizer(str(tmp_path / "model.onnx"))
    theirs = sherpa_features(recognizer, samples, tmp_path, num_mel_bins)
    assert theirs.shape == ours.shape  # snip_edges: 1 + (samples - 400) // 160 frames
    assert np.abs(theirs - ours).max() < 0.001  # the probe's resolution: no dither, same mel banks, same floor

    # what from_zipformer_ctc would compute (sherpa-onnx's defaults: no snip_edges, mel banks up to 7600 Hz)
    defaults = sherpa_onnx.OfflineRecognizer.from_zipformer_ctc(str(tmp_path / "model.onnx"),
                                                                str(tmp_path / "tokens.txt"))
    assert sherpa_features(defaults, samples, tmp_path, num_mel_bins).shape[0] != ours.shape[0]


def test_bad_inputs_name_the_file_and_the_fix(task, tmp_path):
    with pytest.raises(DataError, match=r"missing\.onnx: no such ONNX model; export one with scripts/export_onnx"):
        onnx_ctc.read_metadata(str(tmp_path / "missing.onnx"))
    probe = tmp_path / "other.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], [])), str(probe))
    with pytest.raises(DataError, match=r"other\.onnx: not a model written by scripts/export_onnx\.py"):
        onnx_ctc.sherpa_recognizer(str(probe))
    sf.write(tmp_path / "8k.wav", np.zeros(800, dtype=np.float32), 8000)
    with pytest.raises(DataError, match=r"8k\.wav: 8000 Hz, 1 channel\(s\); the model takes mono 16000 Hz"):
        onnx_ctc.read_wav(str(tmp_path / "8k.wav"), 16000)
