"""FAISS index types by factory string: automatic choice by size, training, GPU, search.

Conventions (FAISS's own): float32 in, ``(D, I)`` of shape ``(nq, k)`` out, inner product
on L2-normalised vectors (so ``D`` is cosine similarity).

Automatic choice (:func:`choose_factory`), by what the index keeps in RAM:

- up to :data:`FLAT_MAX` vectors, exact ``Flat``;
- while a float32 copy of the vectors fits in :data:`RFLAT_MAX_BYTES` (1M x 512-d), an
  inverted file with ``nlist ~ sqrt(n)`` lists, 4-bit fast-scan product-quantised codes
  (``dim/8`` sub-quantisers) and exact re-ranking of the candidates
  (``IVF{nlist},PQ{m}x4fs,RFlat``), searched with ``nprobe=8, k_factor=8``
  (:func:`default_search_params`); on clustered 512-d vectors recall@10 is about 0.99
  against exact search (``benchmarks/index_knn.py``);
- above that, the same fast-scan codes re-ranked on 8-bit scalar-quantised copies
  (``IVF{nlist},PQ{m}x4fs,Refine(SQ8)``): ``dim + dim/16`` bytes a vector instead of
  ``4 dim``, so 10M x 512-d fits in about 5.5 GB (:func:`index_ram_bytes`);
  ``benchmarks/index_large.py`` measures it;
- when even those codes exceed :data:`CODES_MAX_BYTES`, or when asked (``on_disk``),
  ``IVF{nlist},SQ8`` whose inverted lists live on disk (:mod:`index.streaming`): RAM then
  holds only the coarse quantiser, and the operating system caches the lists searched.
``HNSW32,Flat`` and plain ``IVF...,Flat`` work by name; an HNSW build at 1M does
not fit in minutes on 2 CPU cores.
"""
from __future__ import annotations

import math
import os
import re

import numpy as np

FLAT_MAX = 50_000
RFLAT_MAX_BYTES = 2 * 2**30
"""Above this many bytes of float32 vectors, re-ranking uses 8-bit codes instead of the vectors."""
CODES_MAX_BYTES = 6 * 2**30
"""Above this many bytes of 8-bit codes, the automatic choice keeps the inverted lists on disk."""
METRIC = "inner_product"


def _nlist(n: int) -> int:
    return max(1, min(65_536, 2 ** int(round(math.log2(math.sqrt(n))))))


def wants_on_disk(n: int, dim: int) -> bool:
    """Whether ``n`` vectors of width ``dim`` are too many for in-RAM codes (see module doc)."""
    return n * dim > CODES_MAX_BYTES


def choose_factory(n: int, dim: int, on_disk: bool = False) -> str:
    """FAISS factory string for ``n`` vectors of width ``dim`` (exact when small).

    ``on_disk``: an index whose inverted lists can live on disk (``IVF{nlist},SQ8``), as
    chosen anyway when :func:`wants_on_disk`.
    """
    if n <= 0:
        raise ValueError(f"cannot index {n} vectors: the collection is empty")
    if dim <= 0:
        raise ValueError(f"dim must be positive, found {dim}")
    if on_disk or wants_on_disk(n, dim):
        return f"IVF{_nlist(n)},SQ8"
    if n <= FLAT_MAX:
        return "Flat"
    nlist = _nlist(n)
    if dim % 8:
        return f"IVF{nlist},SQ8"
    if 4 * n * dim <= RFLAT_MAX_BYTES:
        return f"IVF{nlist},PQ{dim // 8}x4fs,RFlat"
    return f"IVF{nlist},PQ{dim // 8}x4fs,Refine(SQ8)"


def index_ram_bytes(factory: str, n: int, dim: int) -> int:
    """Rough bytes an index of ``n`` vectors keeps in RAM (codes, ids, coarse centroids);
    0 for its inverted lists when they are on disk (``on_disk``: pass the factory of an
    on-disk index with ``n=0`` for its RAM, or use the figure as its disk size)."""
    per = 0
    m = re.search(r"PQ(\d+)x4fs", factory)
    if m:
        per += int(m.group(1)) // 2
    elif re.search(r"PQ(\d+)", factory):
        per += int(re.search(r"PQ(\d+)", factory).group(1))
    if "RFlat" in factory or factory.startswith("Flat") or factory.endswith(",Flat") or factory.startswith("HNSW"):
        per += 4 * dim
    if "SQ8" in factory:
        per += dim
    elif "SQ4" in factory:
        per += (dim + 1) // 2
    ivf = re.match(r"IVF(\d+)", factory)
    if ivf:
        per += 8                                                           # the stored id of every vector
    return n * per + (4 * dim * int(ivf.group(1)) if ivf else 0)


def default_search_params(factory: str, n: int | None = None) -> dict:
    """Search-time parameters that reach recall@10 >= 0.95 on clustered embeddings."""
    m = re.match(r"IVF(\d+)", factory)
    if m:
        nlist = int(m.group(1))
        # finer partitions spread a vector's neighbours over more lists: 8 of up to 1024, 32 of 4096
        nprobe = 8 * max(1, nlist // 1024) if "fs" in factory else 16
        params = {"nprobe": min(nlist, nprobe)}
        if factory.endswith(",RFlat") or ",Refine" in factory:
            params["k_factor"] = 8.0
        return params
    if factory.startswith("HNSW"):
        return {"efSearch": 64}
    return {}


def n_train(factory: str, n: int) -> int:
    """How many vectors to train on: FAISS wants ~39-256 per centroid."""
    m = re.match(r"IVF(\d+)", factory)
    if m:
        return min(n, 40 * int(m.group(1)))
    return min(n, 65_536)


def train_rows(factory: str, n: int, seed: int = 0) -> np.ndarray:
    """The sorted rows of ``n`` vectors an index is trained on (all when few): the same rows
    whether the vectors are in RAM or read from disk. Shapes: -> (min(n, n_train),) int64."""
    k = n_train(factory, n)
    if k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, k, replace=False))


def make_index(factory: str, dim: int, train_vectors: np.ndarray | None = None, seed: int = 0):
    """Build an (empty, trained) inner-product index from a FAISS factory string.

    Args:
        factory: e.g. ``"Flat"``, ``"IVF1024,Flat"``, ``"IVF4096,SQ8"``, ``"HNSW32,Flat"``.
        dim: vector width.
        train_vectors: (m, dim) float32, used when the index type needs training
            (a random sample of at most :func:`n_train` rows is taken, :func:`train_rows`;
            only those rows are read, so a ``np.memmap`` of vectors on disk will do).
    Raises ValueError for a bad factory string or when training vectors are missing or
    too few.
    """
    from .faiss_module import faiss

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise ValueError(f"bad FAISS factory string {factory!r} (examples: Flat, IVF1024,Flat, "
                         f"IVF4096,SQ8, HNSW32,Flat): {str(e).splitlines()[-1] if str(e) else e}") from None
    if not index.is_trained:
        if train_vectors is None or len(train_vectors) == 0:
            raise ValueError(f"index {factory!r} needs training vectors")
        m = re.match(r"IVF(\d+)", factory)
        if m and len(train_vectors) < int(m.group(1)):
            raise ValueError(f"index {factory!r} has {m.group(1)} lists but only {len(train_vectors)} "
                             f"vectors to train on: use fewer lists or 'Flat'")
        rows = train_rows(factory, len(train_vectors), seed)
        whole = isinstance(train_vectors, np.ndarray) and len(rows) == len(train_vectors)
        x = as_float32(train_vectors if whole else train_vectors[rows])
        index.train(x)
    return index


def set_search_params(index, params: dict) -> None:
    """Apply ``{"nprobe": 16}`` / ``{"efSearch": 64}`` to a CPU or GPU index."""
    from .faiss_module import faiss

    params = dict(params or {})
    if "k_factor" in params:
        top = faiss.downcast_index(index)
        if not hasattr(top, "k_factor"):
            raise ValueError(f"k_factor only applies to refined indexes (',RFlat'), not {type(top).__name__}")
        top.k_factor = float(params.pop("k_factor"))
    if not params:
        return
    text = ",".join(f"{k}={v}" for k, v in params.items())
    try:
        faiss.GpuParameterSpace().set_index_parameters(index, text) if is_gpu(index) \
            else faiss.ParameterSpace().set_index_parameters(index, text)
    except RuntimeError as e:
        raise ValueError(f"cannot set {text!r} on {type(index).__name__}: {e}") from None


GPU_MAX_K = 2048
"""The largest ``k`` a FAISS GPU index answers (its k-selection limit); a CPU index has none."""


def max_k(index) -> int:
    """The largest useful ``k`` one search of ``index`` may ask for: its number of vectors,
    at most :data:`GPU_MAX_K` on a GPU."""
    return min(int(index.ntotal), GPU_MAX_K) if is_gpu(index) else int(index.ntotal)


def is_gpu(index) -> bool:
    """A faiss-gpu index, or one spread over several GPUs (``IndexShards`` of GPU indexes)."""
    from .faiss_module import faiss

    if type(index).__name__.startswith("Gpu"):
        return True
    if isinstance(index, (faiss.IndexShards, faiss.IndexReplicas)) and index.count() > 0:
        return is_gpu(index.at(0))
    return False


def to_gpu(index, env=None):
    """Move Flat/IVF indexes to the GPUs faiss-gpu sees; else return ``index``.

    One GPU holds the whole index; several each hold a shard of its vectors (FAISS's
    ``index_cpu_to_all_gpus`` with ``shard=True``), so a collection too large for one GPU's
    memory still fits, and a search asks every shard and merges their top-k. A process
    started by ``torchrun`` (``LOCAL_RANK`` in ``env``, default ``os.environ``) puts the
    whole index on its own GPU only, ``LOCAL_RANK % number of GPUs``, as it trains there:
    every process copying it onto every GPU would hold it once per process on each. Indexes FAISS
    cannot put on a GPU (HNSW, fast-scan, re-ranking wrappers) and indexes whose inverted
    lists are on disk (they are larger than the memory meant for them) stay on the CPU."""
    from .faiss_module import faiss

    n_gpus = getattr(faiss, "get_num_gpus", lambda: 0)()
    if n_gpus <= 0:
        return index
    if "HNSW" in type(index).__name__ or isinstance(index, faiss.IndexHNSW):
        return index  # no GPU HNSW in faiss
    if is_on_disk(index):
        return index
    env = os.environ if env is None else env
    try:
        if "LOCAL_RANK" in env:
            return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), int(env["LOCAL_RANK"]) % n_gpus, index)
        if n_gpus == 1:
            return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
        options = faiss.GpuMultipleClonerOptions()
        options.shard = True
        return faiss.index_cpu_to_all_gpus(index, co=options)
    except RuntimeError as e:                                  # an index type faiss-gpu does not have
        import logging

        logging.getLogger(__name__).info("index %s stays on the CPU: %s", type(index).__name__,
                                         str(e).splitlines()[-1] if str(e) else e)
        return index


def cpu_copy(index):
    """A CPU copy of a GPU index (``index`` itself when it is on the CPU)."""
    from .faiss_module import faiss

    return faiss.index_gpu_to_cpu(index) if is_gpu(index) else index


def is_on_disk(index) -> bool:
    """Whether an IVF index's inverted lists are ``OnDiskInvertedLists``."""
    from .faiss_module import faiss

    try:
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        return False
    return ivf is not None and isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)


def as_float32(x: np.ndarray) -> np.ndarray:
    """C-contiguous float32 (what FAISS reads)."""
    return np.ascontiguousarray(x, dtype=np.float32)


def search(index, queries: np.ndarray, k: int, batch_size: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """``(D, I)`` of shape ``(nq, k)``; ``I`` is -1 where fewer than ``k`` were found.

    A GPU index answers at most :data:`GPU_MAX_K` neighbours a search; a larger ``k`` is
    answered by a CPU copy of it (:func:`cpu_copy`)."""
    q = as_float32(queries)
    if q.ndim != 2 or q.shape[1] != index.d:
        raise ValueError(f"queries must be (nq, {index.d}) float32, found shape {q.shape}")
    if k <= 0:
        raise ValueError(f"k must be positive, found {k}")
    if k > GPU_MAX_K and is_gpu(index):                # refused even when it holds fewer vectors
        import logging

        logging.getLogger(__name__).info("k=%d is over the GPU's limit of %d: searching a CPU copy of the index",
                                         k, GPU_MAX_K)
        index = cpu_copy(index)
    Ds, Is = [], []
    for s in range(0, len(q), batch_size):
        D, I = index.search(q[s:s + batch_size], k)
        Ds.append(D)
        Is.append(I)
    if not Ds:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
    return np.concatenate(Ds), np.concatenate(Is)


def drop_self(D: np.ndarray, I: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From a ``k+1`` search of the indexed vectors themselves, remove each row's own id
    (or the last column when it was not found). Shapes: (n, k+1) -> (n, k)."""
    rows = np.asarray(rows).reshape(-1, 1)
    is_self = I == rows
    no_self = ~is_self.any(axis=1)
    is_self[no_self, -1] = True                                      # drop the farthest instead
    keep = ~is_self
    return D[keep].reshape(len(D), -1)[:, :k], I[keep].reshape(len(I), -1)[:, :k]


def list_order(index, queries: np.ndarray) -> np.ndarray:
    """Permutation of the query rows that groups them by their IVF coarse list.

    Searching queries in this order lets consecutive queries scan the same inverted lists
    (cache-friendly: several times faster at 1M than random order). The order is stable
    within a list; for an index without an inverted file it is the identity.

    Shapes: ``queries`` (nq, d) -> (nq,) int64.
    """
    from .faiss_module import faiss

    q = as_float32(queries)
    try:
        ivf = faiss.extract_index_ivf(index)
    except (RuntimeError, TypeError):
        ivf = None
    if ivf is None or len(q) == 0:
        return np.arange(len(q))
    _, assign = ivf.quantizer.search(q, 1)                           # (nq, 1)
    return np.argsort(assign[:, 0], kind="stable")


def self_knn(index, vectors: np.ndarray, k: int, batch_size: int = 16384,
             order_by_list: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every indexed vector's ``k`` nearest other vectors: ``(D, I)`` of shape ``(n, k)``.

    For IVF indexes the queries are processed grouped by their coarse list, so
    consecutive queries scan the same lists (cache-friendly); results come back in
    row order.
    """
    x = as_float32(vectors)
    n = len(x)
    perm = list_order(index, x) if order_by_list else np.arange(n)
    D, I = search(index, x[perm], k + 1, batch_size)
    D, I = drop_self(D, I, perm, k)
    outD, outI = np.empty_like(D), np.empty_like(I)
    outD[perm], outI[perm] = D, I
    return outD, outI


def recall_at_k(I: np.ndarray, I_ref: np.ndarray, k: int | None = None) -> float:
    """Mean fraction of the exact top-``k`` ids found in the approximate top-``k``."""
    k = k or I_ref.shape[1]
    hits = sum(len(set(a[:k]) & set(b[:k])) for a, b in zip(I, I_ref))
    return hits / (len(I_ref) * k)
