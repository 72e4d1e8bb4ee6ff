"""The real CLIs without the optional LM libraries (flashlight-text, kenlm: setup.py extra ``lm``): a
``sitecustomize`` on PYTHONPATH makes them unimportable in every process, then fairseq-hydra-train trains,
fairseq-generate decodes greedily, and ``--ctc-decoder beam_lm`` stops with the install command."""
import os
import subprocess

import pytest

from cli_runs import CONFIG_DIR, TINY_MODEL
from conftest import BIN, HIDE_LM_LIBRARIES, USER_DIR

pytestmark = pytest.mark.cli



def run_hidden(cmd, env):
    return subprocess.run([os.path.join(BIN, cmd[0]), *cmd[1:]], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)


def test_training_and_greedy_decoding_with_the_lm_libraries_hidden(corpus, tmp_path):
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE_LM_LIBRARIES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "hide"), os.environ.get("PYTHONPATH", "")])}
    save_dir = tmp_path / "ckpt"
    train = run_hidden(["fairseq-hydra-train", "--config-dir", CONFIG_DIR, "--config-name", "xs_ctc",
                        f"task.data={corpus}", f"common.user_dir={USER_DIR}", f"checkpoint.save_dir={save_dir}",
                        "optimization.max_update=3", "dataset.validate_interval_updates=0",
                        "checkpoint.save_interval_updates=0", *TINY_MODEL], env)
    assert train.returncode == 0 and "LM libraries hidden" in train.stdout, train.stdout[-4000:]
    assert "num_updates 3" in train.stdout
    decode = ["fairseq-generate", corpus, "--user-dir", USER_DIR, "--task", "audio_kd", "--path",
              str(save_dir / "checkpoint_last.pt"), "--gen-subset", "test", "--scoring", "wer", "--post-process",
              "letter", "--max-tokens", "320000", "--cpu", "--results-path"]
    greedy = run_hidden([*decode, str(tmp_path / "greedy")], env)
    assert greedy.returncode == 0 and "LM libraries hidden" in greedy.stdout, greedy.stdout[-4000:]
    assert "WER" in (tmp_path / "greedy" / "generate-test.txt").read_text().splitlines()[-1]
    beam_lm = run_hidden([*decode, str(tmp_path / "beam_lm"), "--ctc-decoder", "beam_lm", "--kenlm-model", "lm.bin",
                          "--lexicon", "lexicon.txt"], env)
    assert beam_lm.returncode != 0 and "pip install" in beam_lm.stdout and "fairseq_kd[lm]" in beam_lm.stdout
