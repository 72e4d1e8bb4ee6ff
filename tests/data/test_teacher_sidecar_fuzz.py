"""The sidecar reader against corrupted files: every damage is a DataError naming the file, the place and the fix."""
import json
import os
import re
import shutil

import numpy as np
import pytest
from omegaconf import OmegaConf

from tiny_bert import corpus_teacher
from fairseq_kd.errors import DataError
from fairseq_kd.data.teacher_sidecar import TEACHER_FILE, TeacherSidecar, sidecar_path
from fairseq_kd.tasks.audio_kd import AudioKdConfig, AudioKdTask
from fairseq_kd.teacher.extract import extract_split, prepare_sidecar_dir, teacher_meta
from fairseq_kd.teacher.masked_lm import MaskedLmTeacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K = 4
FIX = "re-extract with scripts/extract_teacher_sidecar.py --splits valid"


@pytest.fixture(scope="module")
def clean(corpus, tmp_path_factory):
    """A valid sidecar of the corpus' valid split (6 utterances)."""
    teacher = MaskedLmTeacher(corpus_teacher(corpus, tmp_path_factory.mktemp("teacher")))
    out = str(tmp_path_factory.mktemp("clean"))
    meta = teacher_meta(teacher, K, 1.0)
    prepare_sidecar_dir(out, meta)
    extract_split(teacher, meta, corpus, "valid", out, progress=False)
    return out


def load_array(out, name):
    return np.load(sidecar_path(out, "valid", name))


def save_array(out, name, array):
    np.save(sidecar_path(out, "valid", name), array)


def edit_array(name, edit):
    def corrupt(out):
        array = load_array(out, name).copy()
        edit(array)
        save_array(out, name, array)
    return corrupt


def edit_header(edit):
    def corrupt(out):
        path = sidecar_path(out, "valid", "json")
        with open(path) as f:
            header = json.load(f)
        edit(header)
        with open(path, "w") as f:
            json.dump(header, f)
    return corrupt


def truncate(name, keep_bytes):
    """Cut the file to its first ``keep_bytes`` bytes (negative: drop that many from the end)."""
    def corrupt(out):
        path = sidecar_path(out, "valid", name)
        os.truncate(path, keep_bytes if keep_bytes >= 0 else os.path.getsize(path) + keep_bytes)
    return corrupt


def second_utterance_row(out, offset=0):
    return int(load_array(out, "offsets")[1]) + offset  # first position of utterance 1 (manifest line 3)


def set_prob(value, column=0):
    def corrupt(out):
        probs = load_array(out, "topk_probs").copy()
        probs[second_utterance_row(out), column] = value
        save_array(out, "topk_probs", probs)
    return corrupt


def swap_offsets(offsets):
    offsets[2], offsets[3] = offsets[3], offsets[2]


def unordered(probs):
    probs[:, [0, 1]] = probs[:, [1, 0]]


UTTERANCE_1 = r" at utterance 1 \(manifest line 3\), position \d+; "
CORRUPTIONS = {
    "header is not JSON": (lambda out: open(sidecar_path(out, "valid", "json"), "w").write("{\"format\": 2,"),
                           "json", r": not a valid JSON header \(.*\); "),
    "header of an old format": (edit_header(lambda h: h.update(format=1)), "json", r": sidecar format 1, this code "
                                                                                   r"reads 2; "),
    "header without counts": (edit_header(lambda h: h.pop("num_positions")), "json",
                              r": header lacks \['num_positions'\]"),
    "array file missing": (lambda out: os.remove(sidecar_path(out, "valid", "topk_ids")), "topk_ids",
                           r": missing \(an interrupted or partial copy\); "),
    "truncated .npy data": (truncate("topk_probs", -10), "topk_probs", r": unreadable or truncated \(.*\); "),
    "truncated .npy header": (truncate("tokens", 20), "tokens", r": unreadable or truncated \(.*\); "),
    "probabilities stored as float32": (lambda out: save_array(out, "topk_probs", load_array(out, "topk_probs")
                                                               .astype(np.float32)), "topk_probs",
                                        r": dtype float32, the format stores float16; "),
    "ids stored as int64": (lambda out: save_array(out, "topk_ids", load_array(out, "topk_ids").astype(np.int64)),
                            "topk_ids", r": dtype int64, the format stores int32; "),
    "a token missing": (lambda out: save_array(out, "tokens", load_array(out, "tokens")[:-1]), "tokens",
                        r": shape \(\d+,\), header says \(\d+,\) \(an interrupted or mixed write\); "),
    "k smaller than the header": (lambda out: save_array(out, "topk_ids", load_array(out, "topk_ids")[:, :2]),
                                  "topk_ids", r": shape \(\d+, 2\), header says \(\d+, 4\)"),
    "offsets not monotone": (edit_array("offsets", swap_offsets), "offsets",
                             r": offsets decrease at utterance [12] \(manifest line [34]\); "),
    "offsets not ending at the positions": (edit_array("offsets", lambda o: o.__setitem__(-1, o[-1] - 1)), "offsets",
                                            r": offsets run from 0 to \d+, not over the \d+ positions; "),
    "id outside the vocabulary": (edit_array("topk_ids", lambda ids: ids.__setitem__((-1, 3), 250)), "topk_ids",
                                  r": id outside the teacher vocabulary \[0, 250\) at utterance 5 \(manifest line 7\)"),
    "negative token id": (edit_array("tokens", lambda t: t.__setitem__(0, -3)), "tokens",
                          r": id outside the teacher vocabulary .* at utterance 0 \(manifest line 2\), position 0; "),
    "NaN probability": (set_prob(np.nan, 2), "topk_probs", r": a probability that is NaN or infinite" + UTTERANCE_1),
    "infinite probability": (set_prob(np.inf, 3), "topk_probs", r": a probability that is NaN or infinite"),
    "negative probability": (set_prob(-0.01, 3), "topk_probs", r": a negative probability" + UTTERANCE_1),
    "probability above 1": (set_prob(1.5), "topk_probs", r": a probability above 1" + UTTERANCE_1),
    "probabilities not descending": (edit_array("topk_probs", unordered), "topk_probs",
                                     r": top-k probabilities not in descending order at utterance 0"),
    "probabilities summing to more than 1": (edit_array("topk_probs", lambda p: p.__setitem__((0, slice(None)), 0.3)),
                                             "topk_probs", r": top-k probabilities summing to 0 or to more than 1"),
    "a row of zeros": (edit_array("topk_probs", lambda p: p.__setitem__((-1, slice(None)), 0)), "topk_probs",
                       r": top-k probabilities summing to 0 .* at utterance 5 \(manifest line 7\)"),
}


@pytest.mark.parametrize("damage", sorted(CORRUPTIONS))
def test_corrupted_sidecars_are_refused_naming_file_place_and_fix(clean, tmp_path, damage):
    corrupt, part, message = CORRUPTIONS[damage]
    out = shutil.copytree(clean, tmp_path / "sidecar")
    corrupt(str(out))
    path = sidecar_path(str(out), "valid", part)
    with pytest.raises(DataError) as error:
        TeacherSidecar(str(out), "valid")
    assert str(error.value).startswith(path), str(error.value)
    assert re.search(message, str(error.value)), str(error.value)
    assert str(error.value).endswith(FIX), str(error.value)


def test_an_intact_copy_opens(clean, tmp_path):
    out = shutil.copytree(clean, tmp_path / "sidecar")
    assert len(TeacherSidecar(str(out), "valid")) == 6


def load(data, **cfg):
    task = AudioKdTask.setup_task(OmegaConf.structured(AudioKdConfig(data=str(data), tpu=False, seed=1, **cfg)))
    task.load_dataset("valid")
    return task.datasets["valid"]


def test_a_header_of_another_teacher_is_refused(corpus, clean, tmp_path):
    out = shutil.copytree(clean, tmp_path / "sidecar")
    edit_header(lambda h: h["teacher"].update(fingerprint="0" * 64))(str(out))
    with pytest.raises(DataError, match=r"valid\.kd\.json: extracted by another teacher or settings than "
                                        r".*teacher\.json describes \(fingerprint differ\); re-extract"):
        load(corpus, kd_sidecar_dir=str(out))


def test_a_corrupted_teacher_header_is_refused(corpus, clean, tmp_path):
    out = shutil.copytree(clean, tmp_path / "sidecar")
    (out / TEACHER_FILE).write_text("[1, 2]")
    with pytest.raises(DataError, match=r"teacher\.json: not a valid JSON header \(a list\); delete .* and extract "
                                        r"again"):
        load(corpus, kd_sidecar_dir=str(out))


def test_k_smaller_than_kd_topk_names_the_sidecar(corpus, clean):
    with pytest.raises(DataError, match=r"task\.kd_topk=5: .*valid\.kd\.json stores 4 ids per position; choose "
                                        r"task\.kd_topk in 1\.\.4 or re-extract with --topk 5 or more"):
        load(corpus, kd_sidecar_dir=clean, kd_topk=5)


def test_keys_of_other_transcripts_name_the_line(corpus, clean, tmp_path):
    out = shutil.copytree(clean, tmp_path / "sidecar")
    keys = sidecar_path(str(out), "valid", "keys.txt")
    lines = open(keys).read().split("\n")
    lines[3] = lines[3].split("\t")[0] + "\tANOTHER SENTENCE"
    open(keys, "w").write("\n".join(lines))
    edit_header(lambda h: h.update(keys_sha256="0" * 64))(str(out))  # keys and checksum of other transcripts
    with pytest.raises(DataError, match=r"valid\.tsv/\.wrd line 4 is .* but .*valid\.kd\.keys\.txt:4 was extracted "
                                        r"for .*ANOTHER SENTENCE.*re-extract"):
        load(corpus, kd_sidecar_dir=str(out))
    os.remove(keys)
    with pytest.raises(DataError, match=r"differ from what the sidecar was extracted for, and .*keys\.txt cannot be "
                                        r"read"):
        load(corpus, kd_sidecar_dir=str(out))
