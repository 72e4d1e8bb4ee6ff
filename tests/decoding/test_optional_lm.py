"""The LM libraries are optional (setup.py extra ``lm``): with flashlight and kenlm unimportable, the plugin
imports, a model trains a step and decodes greedily, and ``--ctc-decoder beam / beam_lm`` fail with the
install command."""
import os
import subprocess
import sys
import textwrap

from conftest import HIDE_LM_LIBRARIES, ROOT

BLOCKED_RUN = HIDE_LM_LIBRARIES + textwrap.dedent('''
    import torch
    from fairseq.dataclass.configs import GenerationConfig

    import fairseq_kd  # noqa: F401
    from fairseq_kd.criterions.ctc_kd import CtcKdCriterion, CtcKdCriterionConfig
    from fairseq_kd.models.conformer_kd import CtcKdConfig, CtcKdModel
    from fairseq_kd.tasks.audio_kd import AudioKdConfig, AudioKdTask

    data = sys.argv[1]
    with open(f"{data}/dict.ltr.txt", "w") as f:
        f.write("".join(f"{s} 1\\n" for s in "ABCDE|"))
    task = AudioKdTask.setup_task(AudioKdConfig(data=data, num_mel_bins=20))
    model = CtcKdModel.build_model(CtcKdConfig(encoder_layers=2, encoder_embed_dim=16, encoder_ffn_embed_dim=32,
                                               encoder_attention_heads=2, depthwise_conv_kernel_size=5,
                                               subsampling_channels=8, input_feat_dim=20), task)
    net_input = {"source": torch.randn(2, 40, 20), "padding_mask": torch.zeros(2, 40, dtype=torch.bool)}
    sample = {"id": torch.arange(2), "net_input": net_input, "target": torch.tensor([[4, 5], [6, 7]]),
              "target_lengths": torch.tensor([2, 2]), "ntokens": 4}
    loss, _, _ = CtcKdCriterion(CtcKdCriterionConfig(sentence_avg=False), task)(model, sample)
    loss.backward()
    hypotheses = task.build_generator([model], GenerationConfig()).generate([model.eval()], sample)
    assert len(hypotheses) == 2 and "tokens" in hypotheses[0][0]
    assert not any(m.split(".")[0] in ("flashlight", "kenlm") for m in sys.modules)
    for decoder in ("beam", "beam_lm"):
        task.cfg.ctc_decoder, task.cfg.kenlm_model, task.cfg.lexicon = decoder, "lm.bin", "lexicon.txt"
        try:
            task.build_generator([model], GenerationConfig())
        except ImportError as error:
            print(f"{decoder}: {error}")
        else:
            raise AssertionError(f"--ctc-decoder {decoder} built without flashlight")
''')


def test_training_and_greedy_decoding_need_no_lm_libraries(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, str(tmp_path)], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("beam:", "beam_lm:"))]
    assert len(lines) == 2, proc.stdout[-4000:]
    for line in lines:
        assert "needs flashlight-text" in line and "pip install" in line and "fairseq_kd[lm]" in line
    assert "kenlm" in lines[1]
