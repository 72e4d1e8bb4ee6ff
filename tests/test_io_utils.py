"""atomic_write: all-or-nothing files with the permissions of an ordinary new file; the one JSON reader and
file hash; DataError still importable from its former home."""
import hashlib
import os
import stat

import pytest

from fairseq_kd.errors import DataError
from fairseq_kd.io_utils import atomic_write, hash_file, read_json, sha256_file


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_get_the_umask_permissions_not_mkstemp_private_ones(tmp_path, umask):
    previous = os.umask(umask)
    try:
        path = tmp_path / "out.txt"
        with atomic_write(str(path)) as f:
            f.write("x")
        assert os.umask(umask) == umask  # atomic_write left the umask as it was
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what open() gives a new file under this umask
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(str(path), "wb") as f:
            f.write(b"new, half")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_read_json_returns_the_object_or_none_and_names_a_broken_file(tmp_path):
    path = tmp_path / "params.json"
    assert read_json(str(path)) is None
    path.write_text('{"a": 1}')
    assert read_json(str(path)) == {"a": 1}
    path.write_text('{"a": ')
    with pytest.raises(DataError, match=r"params\.json: not a valid JSON header .*; extract again"):
        read_json(str(path), "extract again")
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match=r"params\.json: not a valid JSON header \(a list\)"):
        read_json(str(path))


def test_file_hash_is_sha256_of_the_bytes_over_block_boundaries(tmp_path):
    path = tmp_path / "blob.bin"
    content = os.urandom((1 << 20) + 7)
    path.write_bytes(content)
    assert sha256_file(str(path)) == hashlib.sha256(content).hexdigest()
    prefixed = hash_file(hashlib.sha256(b"prefix"), str(path)).hexdigest()
    assert prefixed == hashlib.sha256(b"prefix" + content).hexdigest()


def test_data_error_is_still_importable_from_the_manifest_module():
    from fairseq_kd.data.manifest import DataError as FromManifest

    assert FromManifest is DataError
