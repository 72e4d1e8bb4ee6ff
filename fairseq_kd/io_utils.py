"""Small file helpers: every output of fairseq_kd is written atomically; JSON headers and file hashes are read
here and nowhere else."""
import contextlib
import hashlib
import io
import json
import os
import tempfile
from typing import Optional

from .errors import DataError


def current_umask() -> int:
    """The process umask (read by setting and restoring it: POSIX has no read-only call)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str = "utf-8"):
    """Write ``path`` through a temporary file in the same directory, renamed into place on success.

    A crash or an exception leaves either the previous file or no file, never a half-written one. The file
    gets the permissions ``open()`` would give a new file (``0o666`` minus the umask), not the private
    ``0o600`` of :func:`tempfile.mkstemp`.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def hash_file(digest, path: str):
    """Feed a file's bytes into ``digest`` (a :mod:`hashlib` object), read in 1 MiB blocks; return ``digest``."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def sha256_file(path: str) -> str:
    """sha256 of a file's bytes."""
    return hash_file(hashlib.sha256(), path).hexdigest()


class _HashingReader(io.RawIOBase):
    """A binary file whose bytes also go into ``digest`` as they are read (in the reader's blocks)."""

    def __init__(self, raw, digest):
        self.raw, self.digest = raw, digest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
        return n


@contextlib.contextmanager
def open_text_hashed(path: str, digest, encoding: str = "utf-8"):
    """``path`` opened for reading text like ``open(path, encoding=encoding)``, its bytes fed into ``digest`` as
    they are read: reading the file to its end gives its hash without a second pass over a large file (the LM
    text of scripts/build_lm.py: 4.4 GB for librispeech-lm-norm.txt)."""
    with open(path, "rb", buffering=0) as raw:
        with io.TextIOWrapper(io.BufferedReader(_HashingReader(raw, digest), 1 << 20), encoding=encoding) as text:
            yield text


def read_json(path: str, fix: str = "delete it and run the step that wrote it again") -> Optional[dict]:
    """The JSON object in ``path`` (a header, a parameter record), or None when there is no such file.

    A file that is not a JSON object (truncated, not JSON, a list) raises :class:`~fairseq_kd.errors.DataError`
    naming the file and ``fix``.
    """
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # json.JSONDecodeError is a ValueError
        raise DataError(f"{path}: not a valid JSON header ({e}); {fix}") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: not a valid JSON header (a {type(content).__name__}); {fix}")
    return content
