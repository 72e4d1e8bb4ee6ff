"""Bad input fails early, naming the file, the line and the fix; the manifest tool round-trips."""
import os
import shutil
import sys

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from conftest import ROOT, USER_DIR, run
from fairseq_kd.errors import DataError
from fairseq_kd.tasks.audio_kd import AudioKdConfig, AudioKdTask


@pytest.fixture
def data(corpus, tmp_path):
    """A private copy of the corpus' data files (audio shared, read-only)."""
    out = tmp_path / "data"
    out.mkdir()
    for name in os.listdir(corpus):
        if os.path.isfile(os.path.join(corpus, name)):
            shutil.copy(os.path.join(corpus, name), out / name)
    return out


def load(data, split="train", **cfg):
    task = AudioKdTask.setup_task(OmegaConf.structured(AudioKdConfig(data=str(data), tpu=False, seed=1, **cfg)))
    task.load_dataset(split)
    return task.datasets[split]


def edit_line(path, line_no, new):
    lines = path.read_text().split("\n")
    lines[line_no - 1] = new
    path.write_text("\n".join(lines))


def test_clean_corpus_loads_every_utterance(data):
    dataset = load(data, "test")
    assert len(dataset) == 13
    batch = dataset.collater([dataset[i] for i in range(3)])
    assert batch["net_input"]["source"].shape[0] == 3 and batch["net_input"]["source"].shape[2] == 80


def test_missing_audio_file(data):
    edit_line(data / "train.tsv", 3, "no/such/file.wav\t16000")
    with pytest.raises(DataError, match=r"train\.tsv:3: cannot read audio file .*no/such/file\.wav"):
        load(data)


def test_unreadable_audio_file(data, tmp_path):
    root = tmp_path / "audio"
    root.mkdir()
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    lines = (data / "train.tsv").read_text().split("\n")
    lines[0] = str(root)
    lines[1] = "broken.wav\t16000"
    (data / "train.tsv").write_text("\n".join(lines[:2]) + "\n")
    (data / "train.ltr").write_text((data / "train.ltr").read_text().split("\n")[0] + "\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: cannot read audio file .*broken\.wav"):
        load(data)


def test_wrong_sample_rate(data, tmp_path):
    root = tmp_path / "audio8k"
    root.mkdir()
    sf.write(root / "a.wav", np.zeros(8000, dtype=np.float32), 8000)
    (data / "train.tsv").write_text(f"{root}\na.wav\t8000\n")
    (data / "train.ltr").write_text("A |\n")
    with pytest.raises(DataError, match=r"train\.tsv:2: .*a\.wav has sample rate 8000.*sox"):
        load(data)


def test_label_count_differs_from_manifest(data):
    (data / "train.ltr").write_text("\n".join((data / "train.ltr").read_text().split("\n")[:-2]) + "\n")
    with pytest.raises(DataError, match=r"train\.ltr: 39 lines but .*train\.tsv lists 40 utterances"):
        load(data)


def test_label_outside_dictionary(data):
    edit_line(data / "train.ltr", 5, "H @ |")
    with pytest.raises(DataError, match=r"train\.ltr:5: symbol\(s\) \['@'\] not in dict\.ltr\.txt"):
        load(data)


def test_empty_transcript(data):
    edit_line(data / "train.ltr", 2, "   ")
    with pytest.raises(DataError, match=r"train\.ltr:2: empty transcript"):
        load(data)


def test_malformed_manifest_line(data):
    edit_line(data / "train.tsv", 4, "just-a-path.wav")
    with pytest.raises(DataError, match=r"train\.tsv:4: expected 'relative/path<TAB>num_samples'"):
        load(data)


def test_waveform_longer_than_max_sample_size_is_refused(data):
    with pytest.raises(DataError, match="max_sample_size"):
        load(data, features="waveform", max_sample_size=16000)


@pytest.mark.cli
def test_cli_reports_the_bad_line(data, tmp_path):
    edit_line(data / "valid.ltr", 2, "")
    proc = run(["fairseq-hydra-train", "--config-dir", os.path.join(ROOT, "examples", "kd"), "--config-name",
                "xs_ctc", f"task.data={data}", f"common.user_dir={USER_DIR}",
                f"checkpoint.save_dir={tmp_path / 'ckpt'}", "optimization.max_update=1"], check=False)
    assert proc.returncode != 0
    assert "valid.ltr:2: empty transcript" in proc.stdout


@pytest.mark.cli
def test_prepare_manifest_reproduces_the_corpus_files(corpus, tmp_path):
    """scripts/prepare_manifest.py on the corpus' LibriSpeech-style folder gives the same manifest + labels."""
    run([sys.executable, os.path.join(ROOT, "scripts", "prepare_manifest.py"), "--audio-dir",
         os.path.join(corpus, "audio", "train"), "--split", "train", "--out", str(tmp_path), "--write-dict",
         "--spm-model", str(tmp_path / "spm.model"), "--spm-train-vocab", "40"])
    for ext in ("tsv", "wrd", "ltr"):
        assert (tmp_path / f"train.{ext}").read_text() == open(os.path.join(corpus, f"train.{ext}")).read()
    spm_lines = (tmp_path / "train.spm").read_text().splitlines()
    assert len(spm_lines) == 40 and all(spm_lines)
    dict_symbols = {line.split()[0] for line in (tmp_path / "dict.spm.txt").read_text().splitlines()}
    assert {p for line in spm_lines for p in line.split()} <= dict_symbols


@pytest.mark.cli
def test_prepare_manifest_names_the_bad_transcript_line(tmp_path):
    folder = tmp_path / "spk"
    folder.mkdir()
    sf.write(folder / "u1.wav", np.zeros(16000, dtype=np.float32), 16000)
    (folder / "spk.trans.txt").write_text("u1 HELLO\nu2 WORLD\n")
    proc = run([sys.executable, os.path.join(ROOT, "scripts", "prepare_manifest.py"), "--audio-dir", str(tmp_path),
                "--split", "x", "--out", str(tmp_path / "out")], check=False)
    assert proc.returncode != 0 and "spk.trans.txt:2: no audio file u2.flac or u2.wav" in proc.stdout
