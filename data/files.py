"""Reading the files of an artifact (index, graph cache, checkpoint) someone may have damaged,
writing a file so that no reader ever sees half of it, and the sha256 that manifests record
of the files an artifact was made from.

    meta = read_or_damaged(path / "checkpoint.json", lambda f: json.loads(f.read_text()),
                           CheckpointDamaged, "train it again with ...")
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, TypeVar

T = TypeVar("T")


def read_or_damaged(path: Path, read: Callable[[Path], T], error: type[Exception], remedy: str) -> T:
    """``read(path)``; any failure (a truncated zip, numpy or safetensors file, broken JSON,
    an OS error) becomes ``error("PATH cannot be read (Kind: why): REMEDY")``."""
    try:
        return read(path)
    except Exception as e:  # noqa: BLE001 -- every reader's own error means the same: a damaged file
        why = (str(e).splitlines() or [""])[0][:200]
        raise error(f"{path} cannot be read ({type(e).__name__}: {why}): {remedy}") from None


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """``write(binary file)`` into a temporary sibling of ``path``, flushed to disk, then renamed
    onto ``path`` (readable by all, as a plain file would be); a failure leaves ``path`` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)                                 # mkstemp makes it 0600
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 hex digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
