"""A FAISS index built from vectors on disk: trained on a sample, filled a block at a time.

The vectors live in ``.npy`` files (the shards of a sharded build, :mod:`index.shards`),
read as one matrix without ever holding it: the training sample (:func:`index.factory.train_rows`,
the same rows a build in RAM trains on) is gathered from them, and the index is filled a
block of :data:`BLOCK_ROWS` rows at a time, in row order, so the result is the index a
build in RAM makes of the same vectors. Peak memory is the index's own
(:func:`index.factory.index_ram_bytes`) plus the sample and one block.

On-disk inverted lists (``on_disk_dir``): the vectors are added, part by part, to empty
copies of the trained index, each part written to a temporary file, and FAISS's
``faiss.contrib.ondisk.merge_ondisk`` joins their lists into one ``index.ivfdata`` file
(``OnDiskInvertedLists``), list by list in part order, so a list's entries come in the
order a build in RAM adds them. The index file names that data file; :func:`read_index`
opens it from the index's own folder, so the folder can be moved. RAM then holds the
coarse quantiser only; the operating system caches the lists that searches read. Only an
inverted file with plain codes can go on disk (``IVF...,Flat``, ``,SQ8``, ``,PQ16``):
fast-scan codes are packed in blocks of 32 vectors and a re-ranking wrapper keeps its
copies outside the inverted lists.

An HNSW graph filled a block at a time can differ from one built in a single call (the
order vertices are linked in changes); inverted files and ``Flat`` do not.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .factory import as_float32, make_index

log = logging.getLogger(__name__)

BLOCK_ROWS = 65_536
"""Rows read and added at a time (256 MB of 1024-d float32)."""
PART_ROWS = 1_048_576
"""Rows per temporary part of an on-disk build (its codes are held in RAM while it is added)."""
IVFDATA = "index.ivfdata"


def npy_info(path: str | os.PathLike) -> tuple[tuple, np.dtype, int]:
    """``(shape, dtype, header bytes)`` of a C-ordered ``.npy`` file, read from its header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f"{path}: .npy format version {version} is not read here (1.0 and 2.0 are)")
        shape, fortran, dtype = read(f)
        if fortran:
            raise ValueError(f"{path}: a Fortran-ordered array; expected C order")
        return tuple(shape), dtype, f.tell()


class VectorFiles:
    """Several ``(n_i, dim)`` ``.npy`` files read as one ``(sum n_i, dim)`` matrix.

    ``len`` and ``x[rows]`` (sorted int rows) are what :func:`index.factory.make_index`
    needs to train; :meth:`blocks` reads consecutive rows with plain file reads, so the
    pages read are not kept mapped (and not counted) in the process's memory.
    """

    def __init__(self, paths: Sequence[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no vector files given")
        self.lengths, self.header, self.dtype, dims = [], [], None, set()
        for p in self.paths:
            shape, dtype, offset = npy_info(p)
            if len(shape) != 2:
                raise ValueError(f"{p}: expected a 2-d array of vectors, found shape {shape}")
            self.lengths.append(shape[0])
            self.header.append(offset)
            dims.add(shape[1])
            if self.dtype is not None and dtype != self.dtype:
                raise ValueError(f"{p} holds {dtype}, {self.paths[0]} {self.dtype}")
            self.dtype = dtype
        if len(dims) != 1:
            raise ValueError(f"vector files of different widths {sorted(dims)}: {', '.join(map(str, self.paths))}")
        self.dim = dims.pop()
        self.starts = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)   # (files + 1,)

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.dim

    def __getitem__(self, rows) -> np.ndarray:
        """The given rows (an int array), read through a short-lived memory map."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), self.dtype)
        f_of = np.searchsorted(self.starts, rows, side="right") - 1                       # file of each row
        for f in np.unique(f_of):
            sel = f_of == f
            m = np.load(self.paths[f], mmap_mode="r")
            out[sel] = m[rows[sel] - self.starts[f]]
            del m
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` (which may span files). Shapes: -> (stop - start, dim)."""
        parts = []
        for f, p in enumerate(self.paths):
            a, b = max(start, self.starts[f]), min(stop, self.starts[f + 1])
            if a >= b:
                continue
            row_bytes = self.dim * self.dtype.itemsize
            parts.append(np.fromfile(p, self.dtype, count=int(b - a) * self.dim,
                                     offset=self.header[f] + int(a - self.starts[f]) * row_bytes))
        x = np.concatenate(parts) if parts else np.zeros(0, self.dtype)
        return x.reshape(-1, self.dim)

    def blocks(self, rows: int = BLOCK_ROWS, start: int = 0, stop: int | None = None
               ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first row, block)`` for consecutive blocks of at most ``rows`` rows."""
        stop = len(self) if stop is None else stop
        for s in range(start, stop, rows):
            yield s, self.read(s, min(s + rows, stop))


def concat_npy(paths: Sequence[str | os.PathLike], out: str | os.PathLike, rows: int = BLOCK_ROWS) -> tuple:
    """Write the row-wise concatenation of ``.npy`` files (same dtype and row shape) to
    ``out``, a block at a time. Returns the shape written."""
    infos = [npy_info(p) for p in paths]
    shapes = {i[0][1:] for i in infos}
    dtypes = {i[1] for i in infos}
    if len(shapes) != 1 or len(dtypes) != 1:
        raise ValueError(f"cannot concatenate {', '.join(map(str, paths))}: row shapes {sorted(shapes)}, "
                         f"dtypes {sorted(map(str, dtypes))}")
    shape = (sum(i[0][0] for i in infos), *infos[0][0][1:])
    row_items = int(np.prod(shape[1:], dtype=np.int64))
    dtype = infos[0][1]
    header = [i[2] for i in infos]
    lengths = [i[0][0] for i in infos]
    with open(out, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                 "fortran_order": False, "shape": shape})
        for p, off, n in zip(paths, header, lengths):
            for s in range(0, n, rows):
                k = min(rows, n - s)
                np.fromfile(p, dtype, count=k * row_items, offset=off + s * row_items * dtype.itemsize).tofile(f)
    return shape


def write_npy_parts(out: str | os.PathLike, parts: Sequence[np.ndarray], rows: int = BLOCK_ROWS) -> tuple:
    """Write the row-wise concatenation of arrays (memory-mapped ones too: read a block at
    a time) to the ``.npy`` file ``out``. Returns the shape written."""
    dtypes = {p.dtype for p in parts}
    shapes = {p.shape[1:] for p in parts}
    if len(dtypes) != 1 or len(shapes) != 1:
        raise ValueError(f"cannot concatenate arrays of dtypes {sorted(map(str, dtypes))}, row shapes {sorted(shapes)}")
    shape = (sum(len(p) for p in parts), *parts[0].shape[1:])
    with open(out, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": np.lib.format.dtype_to_descr(parts[0].dtype),
                                                 "fortran_order": False, "shape": shape})
        for p in parts:
            for s in range(0, len(p), rows):
                np.ascontiguousarray(p[s:s + rows]).tofile(f)
    return shape


def check_on_disk_factory(index, factory: str) -> None:
    """Raise ``ValueError`` unless ``index`` is an inverted file whose lists can go on disk."""
    from .faiss_module import faiss

    top = faiss.downcast_index(index)
    try:
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        ivf = None
    if ivf is None or isinstance(top, faiss.IndexRefine) or isinstance(ivf, faiss.IndexIVFFastScan) \
            or not isinstance(top, faiss.IndexIVF):
        raise ValueError(f"index {factory!r} cannot keep its inverted lists on disk: only a plain inverted file "
                         "can (IVF4096,SQ8, IVF4096,Flat, IVF4096,PQ64: no fast-scan 'fs' codes, no RFlat/Refine)")


def build_streamed(factory: str, vectors: VectorFiles, on_disk_dir: str | os.PathLike | None = None,
                   seed: int = 0, progress: bool = True, block_rows: int = BLOCK_ROWS,
                   part_rows: int = PART_ROWS):
    """Train ``factory`` on :func:`index.factory.train_rows` of ``vectors`` and add all of
    them in row order, a block at a time.

    Args:
        factory: FAISS factory string (inner product).
        vectors: the rows to index.
        on_disk_dir: when given, the inverted lists are written to ``on_disk_dir/index.ivfdata``
            (see the module doc); the index must then be a plain inverted file.
        seed: of the training sample (as :func:`index.factory.make_index`).
    Returns the filled index (CPU).
    """
    from .faiss_module import faiss
    from tqdm.auto import tqdm

    n = len(vectors)
    index = make_index(factory, vectors.dim, vectors, seed=seed)
    bar = tqdm(total=n, unit="vec", desc="add to index" + (" (on disk)" if on_disk_dir else ""),
               disable=not progress, dynamic_ncols=True)
    try:
        if on_disk_dir is None:
            for _, x in vectors.blocks(block_rows):
                index.add(as_float32(x))
                bar.update(len(x))
            return index
        check_on_disk_factory(index, factory)
        from faiss.contrib.ondisk import merge_ondisk

        on_disk_dir = Path(on_disk_dir)
        parts_dir = on_disk_dir / ".parts"
        parts_dir.mkdir(parents=True, exist_ok=True)
        trained = faiss.serialize_index(index)                       # the empty trained index, copied per part
        part_files = []
        try:
            for p, start in enumerate(range(0, n, part_rows)):
                part = faiss.deserialize_index(trained)
                for s, x in vectors.blocks(block_rows, start, min(start + part_rows, n)):
                    part.add_with_ids(as_float32(x), np.arange(s, s + len(x), dtype=np.int64))
                    bar.update(len(x))
                f = parts_dir / f"part-{p:05d}.faiss"
                faiss.write_index(part, str(f))
                part_files.append(str(f))
                del part
            merge_ondisk(index, part_files, str(on_disk_dir / IVFDATA))
        finally:
            shutil.rmtree(parts_dir, ignore_errors=True)
        return index
    finally:
        bar.close()


def read_index(path: str | os.PathLike):
    """``faiss.read_index``, opening an ``index.ivfdata`` beside the file from that folder."""
    from .faiss_module import faiss

    path = Path(path)
    flags = faiss.IO_FLAG_ONDISK_SAME_DIR if (path.parent / IVFDATA).is_file() else 0
    return faiss.read_index(str(path), flags)
