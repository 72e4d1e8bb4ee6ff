"""A decoding counts as done only when fairseq-generate finished: its decoding_summary.json (the file run.sh's
generate() takes for a finished decoding) is written once, after the last batch, so a fairseq-generate killed
midway leaves none and the next run decodes again."""
import json
import os
import signal
import subprocess
import textwrap
import time

import pytest

from cli_runs import generate, hydra_train
from conftest import BIN, USER_DIR

pytestmark = pytest.mark.cli

# sitecustomize of the killed fairseq-generate: the first batch is decoded, recorded and written to
# generate-test.txt as usual; the second holds still (and says so in a file) until the test kills the process
HOLD_SECOND_BATCH = textwrap.dedent("""
    import os, time
    from fairseq.tasks.fairseq_task import FairseqTask

    decode_batch = FairseqTask.inference_step
    batches = []

    def hold_second_batch(self, *args, **kwargs):
        batches.append(None)
        if len(batches) == 2:
            open(os.environ["HELD_MARKER"], "w").close()
            time.sleep(600)
        return decode_batch(self, *args, **kwargs)

    FairseqTask.inference_step = hold_second_batch
""")


@pytest.fixture(scope="module")
def checkpoint(corpus, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("ctc")
    hydra_train("xs_ctc", corpus, save_dir, 2)
    return str(save_dir / "checkpoint_last.pt")


def test_a_decoding_killed_after_its_first_batch_leaves_no_summary_and_a_rerun_writes_it(corpus, checkpoint,
                                                                                         tmp_path):
    out, hook = tmp_path / "decode", tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOLD_SECOND_BATCH)
    summary, held = out / "decoding_summary.json", tmp_path / "second_batch_held"
    options = ["--gen-subset", "test", "--results-path", str(out), "--decoding-summary", str(summary),
               "--scoring", "wer", "--post-process", "letter", "--batch-size", "1", "--num-workers", "0", "--cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "HELD_MARKER": str(held)}
    with open(tmp_path / "generate.log", "w") as log:
        proc = subprocess.Popen([os.path.join(BIN, "fairseq-generate"), corpus, "--user-dir", USER_DIR, "--task",
                                 "audio_kd", "--path", checkpoint, *options], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        try:
            deadline = time.monotonic() + 120
            while not held.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert held.exists(), (tmp_path / "generate.log").read_text()[-3000:]
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    decoded = [line for line in (out / "generate-test.txt").read_text().splitlines() if line.startswith("H-")]
    assert len(decoded) == 1  # killed midway: one of the 13 test utterances decoded
    assert not summary.exists()

    generate(corpus, checkpoint, str(out), "test", "--decoding-summary", str(summary), "--batch-size", "1")
    record = json.loads(summary.read_text())
    assert record["utterances"] == 13 and [u["id"] for u in record["per_utterance"]] == list(range(13))
