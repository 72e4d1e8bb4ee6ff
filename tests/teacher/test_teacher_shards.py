"""Sharded sidecar extraction: shards + merge == one unsharded run, byte for byte; refusals of unmergeable shards;
sidecars copied to a corpus built again (scripts/copy_teacher_sidecar.py), refused for another corpus."""
import os
import shutil
import sys

import pytest

from conftest import ROOT, run
from fairseq_kd.data.teacher_sidecar import TeacherSidecar, sidecar_path
from fairseq_kd.errors import DataError
from fairseq_kd.teacher.extract import copy_split, extract_split, merge_split, prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import MaskedLmTeacher
from tiny_bert import corpus_teacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MERGE = os.path.join(ROOT, "scripts", "merge_teacher_sidecar.py")
COPY = os.path.join(ROOT, "scripts", "copy_teacher_sidecar.py")
K = 4
SETTINGS = dict(batch_tokens=200, chunk_size=8, progress=False)  # train: 40 utterances = 5 chunks


@pytest.fixture(scope="module")
def teacher(corpus, tmp_path_factory):
    return MaskedLmTeacher(corpus_teacher(corpus, tmp_path_factory.mktemp("teacher")))


@pytest.fixture(scope="module")
def unsharded(corpus, teacher, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("unsharded"))
    meta = teacher_meta(teacher, K, 1.0)
    prepare_sidecar_dir(out, meta)
    extract_split(teacher, meta, corpus, "train", out, **SETTINGS)
    return out


def shard(teacher, corpus, out, shard_id, num_shards=3, **overrides):
    meta = teacher_meta(teacher, K, 1.0)
    prepare_sidecar_dir(out, meta)
    return extract_split(teacher, meta, corpus, "train", out, shard_id=shard_id, num_shards=num_shards,
                         **{**SETTINGS, **overrides})


@pytest.mark.cli
def test_merged_shards_equal_an_unsharded_run_byte_for_byte(corpus, teacher, unsharded, tmp_path):
    out = str(tmp_path)
    for shard_id in (2, 0, 1):  # any order, each writing its own chunk files
        assert shard(teacher, corpus, out, shard_id) is None
        assert not os.path.exists(sidecar_path(out, "train", "json"))
    parts = sorted(os.listdir(sidecar_path(out, "train", "parts")))
    assert parts == [f"{c:06d}.npz" for c in range(5)] + ["params.json"]
    proc = run([sys.executable, MERGE, "--data", corpus, "--splits", "train", "--out", out])
    assert "train: 40 utterances" in proc.stdout
    names = sorted(os.listdir(unsharded))
    assert names == sorted(os.listdir(out)) and len(names) == 7  # teacher.json, header, keys, 4 arrays
    for name in names:
        with open(os.path.join(unsharded, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
            assert a.read() == b.read(), name
    assert len(TeacherSidecar(out, "train")) == 40
    assert merge_split(corpus, "train", out)["num_utterances"] == 40  # merging again: nothing to do


def test_merge_names_the_missing_chunks(corpus, teacher, tmp_path):
    out = str(tmp_path)
    shard(teacher, corpus, out, 0)
    shard(teacher, corpus, out, 2)
    with pytest.raises(DataError, match=r"train\.kd\.parts: 2 of 5 chunks missing \(first: \[1, 4\]\); chunk c "
                                        r"belongs to shard c % num_shards"):
        merge_split(corpus, "train", out)


def test_a_shard_with_other_settings_is_refused_not_mixed_in(corpus, teacher, tmp_path):
    out = str(tmp_path)
    shard(teacher, corpus, out, 0)
    with pytest.raises(DataError, match=r"train\.kd\.parts: holds chunks of other settings or data"):
        shard(teacher, corpus, out, 1, batch_tokens=300)
    assert len(os.listdir(sidecar_path(out, "train", "parts"))) == 3  # shard 0's two chunks are kept


def test_merge_refuses_a_chunk_of_other_settings(corpus, teacher, tmp_path):
    out, other = str(tmp_path / "out"), str(tmp_path / "other")
    for shard_id in range(3):
        shard(teacher, corpus, out, shard_id)
    shard(teacher, corpus, other, 1, batch_tokens=300)
    shutil.copy(os.path.join(sidecar_path(other, "train", "parts"), "000001.npz"),
                os.path.join(sidecar_path(out, "train", "parts"), "000001.npz"))
    with pytest.raises(DataError, match=r"000001\.npz: made with other settings or data"):
        merge_split(corpus, "train", out)


def test_merge_refuses_data_changed_after_extraction(corpus, teacher, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(corpus, data, ignore=shutil.ignore_patterns("audio"))
    out = str(tmp_path / "out")
    for shard_id in range(3):
        shard(teacher, str(data), out, shard_id)
    lines = (data / "train.wrd").read_text().split("\n")
    lines[4] = "A CHANGED LINE"
    (data / "train.wrd").write_text("\n".join(lines))
    with pytest.raises(DataError, match=r"train\.tsv or train\.wrd changed since the chunks .* were extracted"):
        merge_split(str(data), "train", out)


def test_copied_sidecars_are_the_extracted_ones_and_a_second_copy_does_nothing(corpus, unsharded, tmp_path):
    out = str(tmp_path / "copy")
    proc = run([sys.executable, COPY, "--from", unsharded, "--data", corpus, "--splits", "train", "--out", out])
    assert "train: 40 utterances" in proc.stdout
    assert sorted(os.listdir(out)) == sorted(os.listdir(unsharded))
    for name in os.listdir(out):
        with open(os.path.join(unsharded, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
            assert a.read() == b.read(), name
    before = {name: os.stat(os.path.join(out, name)).st_mtime_ns for name in os.listdir(out)}
    assert copy_split(unsharded, corpus, "train", out)["num_utterances"] == 40
    assert before == {name: os.stat(os.path.join(out, name)).st_mtime_ns for name in os.listdir(out)}


def test_copy_refuses_sidecars_of_another_corpus_naming_the_line(corpus, unsharded, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(corpus, data, ignore=shutil.ignore_patterns("audio"))
    lines = (data / "train.wrd").read_text().split("\n")
    lines[4] = "A CHANGED LINE"
    (data / "train.wrd").write_text("\n".join(lines))
    out = tmp_path / "copy"
    with pytest.raises(DataError, match=r"train\.tsv/\.wrd line 5 is .*A CHANGED LINE.* but .*train\.kd\.keys\.txt:5 "
                                        r"was extracted for"):
        copy_split(unsharded, str(data), "train", str(out))
    assert not out.exists()  # nothing copied
