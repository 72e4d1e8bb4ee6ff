"""atomic_write: all-or-nothing files with the permissions of an ordinary new file."""
import os
import stat

import pytest

from fairseq_kd.io_utils import atomic_write


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
