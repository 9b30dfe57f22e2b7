"""A long build cut into numbered chunks, each stored as it completes, so a killed build resumes.

A :class:`ChunkStore` is one folder::

    progress.json      {"key", "n_items", "chunk_size", "done": {"0": info, ...}, "extras": {...}}
    chunk-00000.npz    the arrays of items [0, chunk_size)
    chunk-00001.npz    the arrays of items [chunk_size, 2 * chunk_size)
    extra-NAME.npz     arrays computed once before the chunks (e.g. embedded new images)

Every file is written to a temporary sibling and renamed. A chunk counts as done only once
``progress.json`` names it, which is rewritten after the chunk's file is in place: a kill
between the two redoes that one chunk and never reads half of one. The store belongs to
one ``key`` (a hash of the build's inputs): opening it with another key is refused, and
opening it with another chunk size starts over (the chunks would not line up).

    store = ChunkStore.open(folder, key, n_items=len(posts), chunk_size=50_000)
    for i in store.todo():
        store.write(i, {"rows": compute(store.bounds(i))})
    rows = np.concatenate([store.read(i)["rows"] for i in range(store.n_chunks)])
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.files import read_or_damaged, write_atomically

from .search import RetrievalError

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"


class ChunkStoreMismatch(RetrievalError):
    """A chunk folder started for other inputs (another key or item count) than asked for."""


class ChunkStoreDamaged(ChunkStoreMismatch):
    """A file of a chunk folder cannot be read."""


def chunk_bounds(n_items: int, chunk_size: int) -> list[slice]:
    """The item ranges of the chunks: ``[0, c), [c, 2c), ..., [.., n)``; one empty chunk
    when ``n_items`` is 0 (so that a build always runs its chunk code once)."""
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, found {chunk_size!r}")
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, found {n_items}")
    starts = range(0, max(n_items, 1), int(chunk_size))
    return [slice(s, min(s + int(chunk_size), n_items)) for s in starts]


@dataclass
class ChunkStore:
    """Numbered chunk files and a progress record in ``folder`` (see the module doc).

    Attributes:
        folder: where the files live.
        key: the hash of the inputs the chunks were computed from.
        n_items, chunk_size: what is cut, and how.
        done: chunk number -> the info stored with it (e.g. its timings).
        extras: name -> info of the arrays stored with :meth:`write_extra`.
    """

    folder: Path
    key: str
    n_items: int
    chunk_size: int
    done: dict[int, dict] = field(default_factory=dict)
    extras: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def open(cls, folder: str | os.PathLike, key: str, n_items: int, chunk_size: int) -> "ChunkStore":
        """The store in ``folder``, resumed when it holds chunks of the same ``key``.

        Raises:
            ChunkStoreMismatch: the folder holds chunks of another key or item count.
            ChunkStoreDamaged: its progress record cannot be read.
        """
        folder = Path(folder)
        chunk_bounds(n_items, chunk_size)                                # validates
        store = cls(folder, str(key), int(n_items), int(chunk_size))
        record = folder / PROGRESS_FILE
        if not record.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            store._write_progress()
            return store
        p = read_or_damaged(record, lambda f: json.loads(f.read_text()), ChunkStoreDamaged,
                            f"delete the folder (`rm -r {folder}`) and the build starts over")
        if p.get("key") != store.key or p.get("n_items") != store.n_items:
            raise ChunkStoreMismatch(
                f"{folder} holds chunks of another build (key {p.get('key')!r}, {p.get('n_items')} items) than "
                f"this one (key {store.key!r}, {store.n_items} items): delete it (`rm -r {folder}`)")
        store.extras = dict(p.get("extras", {}))
        if p.get("chunk_size") != store.chunk_size:
            log.info("%s was cut into chunks of %s, not %d: starting its chunks over", folder,
                     p.get("chunk_size"), store.chunk_size)
            store._write_progress()                                      # first: no chunk is done
            for f in folder.glob("chunk-*.npz"):
                f.unlink()
            return store
        store.done = {int(i): info for i, info in p.get("done", {}).items()}
        return store

    # ------------------------------------------------------------------ layout
    @property
    def n_chunks(self) -> int:
        return len(chunk_bounds(self.n_items, self.chunk_size))

    def bounds(self, i: int) -> slice:
        """The items of chunk ``i``."""
        return chunk_bounds(self.n_items, self.chunk_size)[i]

    def todo(self) -> list[int]:
        """The chunks not done yet, in order."""
        return [i for i in range(self.n_chunks) if i not in self.done]

    @property
    def complete(self) -> bool:
        return not self.todo()

    def _chunk_file(self, i: int) -> Path:
        return self.folder / f"chunk-{i:05d}.npz"

    # ------------------------------------------------------------------ writing
    def write(self, i: int, arrays: dict[str, np.ndarray], info: dict | None = None) -> None:
        """Store chunk ``i``'s arrays, then record it as done (each step atomic)."""
        if not 0 <= i < self.n_chunks:
            raise IndexError(f"chunk {i} out of range: the store has {self.n_chunks} chunks")
        _save_npz(self._chunk_file(i), arrays)
        self.done[i] = dict(info or {})
        self._write_progress()

    def write_extra(self, name: str, arrays: dict[str, np.ndarray], info: dict | None = None) -> None:
        """Store arrays computed once for the whole build (before or beside the chunks)."""
        _save_npz(self.folder / f"extra-{name}.npz", arrays)
        self.extras[name] = dict(info or {})
        self._write_progress()

    def _write_progress(self) -> None:
        record = {"key": self.key, "n_items": self.n_items, "chunk_size": self.chunk_size,
                  "done": {str(i): info for i, info in sorted(self.done.items())}, "extras": self.extras}
        write_atomically(self.folder / PROGRESS_FILE, lambda f: f.write(json.dumps(record, indent=1).encode()))

    # ------------------------------------------------------------------ reading
    def read(self, i: int) -> dict[str, np.ndarray]:
        """Chunk ``i``'s arrays; it must be done."""
        if i not in self.done:
            raise KeyError(f"chunk {i} of {self.folder} is not done yet (done: {sorted(self.done)})")
        return self._load(self._chunk_file(i))

    def read_extra(self, name: str) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(arrays, info)`` stored by :meth:`write_extra`, or ``None``."""
        if name not in self.extras:
            return None
        return self._load(self.folder / f"extra-{name}.npz"), self.extras[name]

    def _load(self, f: Path) -> dict[str, np.ndarray]:
        return read_or_damaged(f, lambda p: dict(np.load(p)), ChunkStoreDamaged,
                               f"delete the folder (`rm -r {self.folder}`) and the build starts over")

    def remove(self) -> None:
        """Delete the folder (once its chunks are assembled and published elsewhere). It is
        renamed away first, so a kill during the deletion never leaves a progress record
        naming chunks that are gone."""
        if not self.folder.exists():
            return
        trash = Path(tempfile.mkdtemp(prefix=f"{self.folder.name}.trash-", dir=self.folder.parent))
        os.replace(self.folder, trash / "chunks")
        shutil.rmtree(trash, ignore_errors=True)


def remove_trash(folder: str | os.PathLike) -> None:
    """Delete what :meth:`ChunkStore.remove` left half deleted in ``folder`` when it was killed."""
    for t in Path(folder).glob("*.trash-*"):
        shutil.rmtree(t, ignore_errors=True)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomically(path, lambda f: np.savez(f, **arrays))
