"""Shared fixtures and helpers of every test folder (tests/ is on sys.path, pytest.ini ``pythonpath``): a small
synthetic speech corpus made with the real corpus builder, its teacher sidecars, one trained model of each family
(CTC with InterCTC, interCTC-interAED-KD), the tiny letter task of the unit tests, one torch thread for in-process
teacher work, and running a CLI.

Tests of a real CLI or script run in a subprocess (training, decoding, extraction, the recipe), or that need a
model or sidecars made by one, are marked ``cli``; ``pytest -m "not cli"`` runs the unit tests only.

The suite runs on every core (scripts/run_tests.sh: pytest-xdist, ``-n 2 --dist loadfile``). The expensive
artefacts (corpus, sidecars, trained models) are built once per run by whichever worker asks first, under a file
lock, and shared by all workers (:func:`shared_artifact`); each worker gets ``cores / workers`` torch threads, and
the CLIs it starts as many (``OMP_NUM_THREADS``), so that two workers never oversubscribe two cores."""
import json
import os
import subprocess
import sys

import pytest
import torch
from filelock import FileLock
from omegaconf import OmegaConf

from fairseq_kd.tasks.audio_kd import AudioKdConfig, AudioKdTask
from tiny_models import letter_task

# the threads of this worker and of every CLI it starts: cores / workers
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
USER_DIR = os.path.join(ROOT, "fairseq_kd")
SENTENCES = os.path.join(ROOT, "examples", "kd", "data", "web_sentences.txt")
# fast voices only (flite kal16 and espeak-ng synthesise >1000x real time)
TEST_VOICES = "flite:kal16,espeak:en-us+m3"


# Python source that makes the optional LM libraries (flashlight-text, kenlm) unimportable in its process (used
# as a program's preamble and as a sitecustomize module by the tests of the install without the extra ``lm``)
HIDE_LM_LIBRARIES = """
import importlib.abc, sys

class HideLmLibraries(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("flashlight", "kenlm"):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
        return None

sys.meta_path.insert(0, HideLmLibraries())
print("LM libraries hidden", file=sys.stderr)
"""


def run(cmd, cwd=ROOT, check=True, timeout=600):
    """Run a CLI (first element resolved in the venv's bin/), return the CompletedProcess with merged output."""
    exe = os.path.join(BIN, cmd[0])
    proc = subprocess.run([exe if os.path.exists(exe) else cmd[0], *cmd[1:]], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
    return proc


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def load_split(data, split, **cfg):
    """``(task, dataset)``: an ``audio_kd`` task on ``data`` with ``cfg``, ``split`` loaded."""
    task = AudioKdTask.setup_task(OmegaConf.structured(AudioKdConfig(data=str(data), tpu=False, seed=1, **cfg)))
    task.load_dataset(split)
    return task, task.datasets[split]


def make_corpus(out_dir, num_train, num_valid, num_test, extra=()):
    run([sys.executable, os.path.join(ROOT, "scripts", "make_synthetic_corpus.py"), "--text", SENTENCES,
         "--out", str(out_dir), "--num-train", str(num_train), "--num-valid", str(num_valid),
         "--num-test", str(num_test), "--voices", TEST_VOICES, "--max-words", "10", *extra])
    return str(out_dir)


def shared_artifact(tmp_path_factory, name, build):
    """The folder ``name``, filled once per test run by ``build(folder)`` and shared by every xdist worker.

    The first worker to ask builds it under a file lock in the run's common temporary folder; the others wait
    for the lock and reuse it. ``build`` may return a JSON-able value (e.g. a training log), returned to every
    caller. A build that failed leaves no completion marker, so the next caller builds again (and fails the same
    way, with its own error)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # pytest-of-USER/pytest-N/, common to the workers' popen-gwK/ folders
    folder = base / "shared" / name
    done = folder.with_name(name + ".done.json")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not done.exists():
            folder.mkdir(exist_ok=True)
            done.write_text(json.dumps({"value": build(folder)}))
    return str(folder), json.loads(done.read_text())["value"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """40 training, 6 validation and 13 test utterances (13: not a multiple of fairseq's batch multiple 8)."""
    return shared_artifact(tmp_path_factory, "corpus", lambda out: make_corpus(out, 40, 6, 13))[0]


@pytest.fixture(scope="session")
def kd_sidecars(corpus, tmp_path_factory):
    """Top-10 sidecars of the corpus' train and valid splits from a tiny BERT teacher (the real extractor)."""
    from tiny_bert import corpus_teacher

    def extract(out):
        teacher = corpus_teacher(corpus, out.with_name("kd_sidecars_teacher"))
        run([sys.executable, os.path.join(ROOT, "scripts", "extract_teacher_sidecar.py"), "--teacher", teacher,
             "--data", corpus, "--splits", "train", "valid", "--out", str(out), "--topk", "10"])

    return shared_artifact(tmp_path_factory, "kd_sidecars", extract)[0]


@pytest.fixture(scope="session")
def interctc_run(corpus, tmp_path_factory):
    """``(save_dir, log)`` of the CTC family's model, shared by every test that needs *a* trained CTC model: 6
    updates of xs_interctc through the real fairseq-hydra-train (3 tiny blocks, InterCTC on block 1); its
    ``checkpoint_last.pt`` decodes with fairseq-generate."""
    from cli_runs import hydra_train

    return shared_artifact(tmp_path_factory, "interctc_run", lambda out: hydra_train(
        "xs_interctc", corpus, out, 6, "model.inter_ctc_layers=[1]").stdout)


@pytest.fixture(scope="session")
def kd_run(corpus, kd_sidecars, tmp_path_factory):
    """``(save_dir, log)`` of the distillation family's model, shared by every test that needs *a* trained KD
    model: 2 updates of xs_interctc_interaedkd (6 tiny blocks, InterCTC on 3, the shared decoder on 3 and 6, its
    vocabulary restricted to the training sidecar's ids, the xs default) through the real fairseq-hydra-train."""
    from cli_runs import kd_train

    return shared_artifact(tmp_path_factory, "kd_run", lambda out: kd_train(
        "xs_interctc_interaedkd", corpus, kd_sidecars, out, "model.encoder_layers=6"))


@pytest.fixture
def task(tmp_path):
    """The letter ``audio_kd`` task the tiny models of tiny_models.py run on (no audio)."""
    return letter_task(tmp_path)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine threads wait for each other (a module doing
    in-process teacher work sets ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
