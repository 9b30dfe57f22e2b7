"""k-nearest-neighbour search over an index artifact, with exclusions.

FAISS conventions throughout: float32 queries in, ``(D, I)`` of shape ``(nq, k)`` out.
The metric is inner product on L2-normalised vectors (cosine similarity); a larger score
is closer. Rows of ``I`` index ``artifact.ids``; a row with fewer than ``k`` admissible
neighbours is padded with ``I = -1`` and ``D = -inf``.

Two exclusions apply to every query:

* **own image**: ``exclude_ids[q]`` (the post's own image id, or ``None``) is never
  returned for query ``q``;
* **pool**: only images whose id is in ``pool`` may be returned. The default pool used by
  :mod:`retrieval.cache` is the training split's images, so no evaluation image leaks into
  a training graph; ``pool="all"`` is the paper's transductive setting.

The artifact's own FAISS index is searched first (with an ``IDSelectorBitmap`` when the
index type accepts one, otherwise by over-fetching and filtering). Any query that comes
back with fewer admissible neighbours than the pool can give, which happens with an
approximate index or a small pool, is answered again by exact search over the pool, so a
heavily restricted search is never silently short.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from data.errors import UserError

METRIC = "inner_product"
"""The one metric this package searches with: inner product on L2-normalised vectors."""


class RetrievalError(UserError, ValueError):
    """A retrieval request that cannot be answered; the message says what to change."""


class UnknownIdError(RetrievalError, KeyError):
    """An id that the index does not hold."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class EmbedderMismatchError(RetrievalError):
    """Query vectors made by another embedder (or width) than the index's."""


class EmptyPoolError(RetrievalError):
    """No image is left to retrieve once the pool and exclusions are applied."""


# --------------------------------------------------------------------------- checks
def index_embedder(artifact) -> str:
    """The embedder name the artifact's manifest records."""
    m = artifact.manifest
    emb = m.get("embedder")
    if isinstance(emb, dict):
        emb = emb.get("name")
    return str(emb)


def check_embedder(artifact, name: str | None = None, dim: int | None = None) -> None:
    """Refuse an artifact built with another embedder (or width) than the query side.

    Raises:
        EmbedderMismatchError: naming both embedders / widths and how to fix it.
    """
    have_name, have_dim = index_embedder(artifact), int(artifact.manifest.get("dim", artifact.embeddings.shape[1]))
    if name is not None and name != have_name:
        raise EmbedderMismatchError(
            f"the index at {getattr(artifact, 'path', '<artifact>')} was built with embedder "
            f"{have_name!r} but the queries come from {name!r}: rebuild the index with "
            f"--embedder {name} or embed the queries with {have_name!r}")
    if dim is not None and int(dim) != have_dim:
        raise EmbedderMismatchError(
            f"query vectors are {dim}-d but the index at {getattr(artifact, 'path', '<artifact>')} "
            f"holds {have_dim}-d vectors from {have_name!r}: embed the queries with the index's embedder")


def rows_of(artifact, ids: Iterable[str]) -> np.ndarray:
    """Row numbers of ``ids`` in the artifact. Raises :class:`UnknownIdError` for a missing id."""
    out = []
    for i in ids:
        try:
            out.append(artifact.id_to_row[i])
        except KeyError:
            raise UnknownIdError(
                f"id {i!r} is not in the index at {getattr(artifact, 'path', '<artifact>')} "
                f"({len(artifact.ids)} images, e.g. {', '.join(map(repr, artifact.ids[:3]))}): "
                "check the id, or rebuild the index over the folder that holds its image") from None
    return np.asarray(out, dtype=np.int64)


def pool_mask(artifact, pool: set[str] | None) -> np.ndarray:
    """Boolean mask over the artifact's rows: True where a row may be retrieved.

    Ids of ``pool`` that the index does not hold (posts without an image) are ignored.
    ``None`` means every row.
    """
    n = len(artifact.ids)
    if pool is None:
        return np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    rows = [artifact.id_to_row[i] for i in pool if i in artifact.id_to_row]
    mask[np.asarray(rows, dtype=np.int64)] = True
    return mask


# --------------------------------------------------------------------------- search
def search(artifact, queries: np.ndarray, k: int, exclude_ids: Sequence[str | None] | None = None,
           pool: set[str] | None = None, batch_size: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` images of the artifact for each query vector.

    Args:
        artifact: an :class:`index.artifact.IndexArtifact` (``ids``, ``id_to_row``,
            ``embeddings``, ``faiss_index``, ``manifest``).
        queries: (nq, dim) float32, L2-normalised, in the artifact's embedding space.
        k: neighbours per query (>= 1).
        exclude_ids: per query, an id never to return (its own image) or ``None``;
            ``None`` for the whole argument excludes nothing.
        pool: ids that may be returned; ``None`` = every image of the index.
        batch_size: queries per FAISS call (bounds the memory of over-fetching and
            re-ranking). Queries are answered in the order given: callers with many
            queries group them by IVF list first (:func:`index.factory.list_order`).

    Returns:
        ``(D, I)``: (nq, k) float32 similarities, best first, and (nq, k) int64 rows of
        ``artifact.ids``; padding is ``-inf`` / ``-1``.

    Raises:
        EmbedderMismatchError: ``queries`` has another width than the index.
        EmptyPoolError: the pool holds no image of the index.
        UnknownIdError: an excluded id is not in the index is NOT an error (a post without an
            image has nothing to exclude); only :func:`rows_of` raises.
    """
    if k < 1:
        raise RetrievalError(f"k must be >= 1, got {k}")
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2:
        raise RetrievalError(f"queries must be (nq, dim), got shape {queries.shape}")
    check_embedder(artifact, dim=queries.shape[1])
    nq = queries.shape[0]
    mask = pool_mask(artifact, pool)
    n_pool = int(mask.sum())
    if n_pool == 0:
        raise EmptyPoolError(
            f"the retrieval pool is empty: none of its {len(pool or ())} ids is in the index at "
            f"{getattr(artifact, 'path', '<artifact>')}: use pool='all', or index the pool's images")
    excl = np.full(nq, -1, dtype=np.int64)
    if exclude_ids is not None:
        if len(exclude_ids) != nq:
            raise RetrievalError(f"exclude_ids has {len(exclude_ids)} entries for {nq} queries")
        excl = np.asarray([artifact.id_to_row.get(i, -1) if i is not None else -1 for i in exclude_ids],
                          dtype=np.int64)
    if nq == 0:
        return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)

    parts = []
    for s in range(0, nq, batch_size):                                # bounded working memory
        b = slice(s, s + batch_size)
        parts.append(_filter(*_faiss_search(artifact, queries[b], k, mask, n_pool, excl[b]), k, mask, excl[b]))
    D, I = (np.concatenate(a) for a in zip(*parts))
    # how many each query can get at most: the pool minus its own image when that is in the pool
    own_in_pool = (excl >= 0) & mask[np.maximum(excl, 0)]
    attainable = np.minimum(k, n_pool - own_in_pool.astype(np.int64))
    if n_pool - 1 < 1 and own_in_pool.all():
        raise EmptyPoolError("the retrieval pool holds only the queries' own image: nothing is left "
                             "to retrieve; widen the pool (pool='all')")
    short = np.nonzero((I >= 0).sum(1) < attainable)[0]
    if len(short):
        Dx, Ix = exact_search(artifact.embeddings, queries[short], k, mask, excl[short])
        D[short], I[short] = Dx, Ix
    return D, I


def _faiss_search(artifact, queries, k, mask, n_pool, excl):
    """Search the artifact's FAISS index, restricted to ``mask`` when the index allows.

    A GPU index takes no ID selector and answers at most :data:`index.factory.GPU_MAX_K`
    neighbours a search: it is over-fetched up to that many, and a query left short of
    admissible neighbours is answered by exact search over the pool (:func:`search`)."""
    from index.faiss_module import faiss

    from index.factory import is_gpu, max_k

    n = len(mask)
    index = artifact.faiss_index
    fetch = k + int((excl >= 0).any())
    if n_pool < n:
        try:
            if is_gpu(index):
                raise TypeError("a GPU index takes no ID selector")
            sel = faiss.IDSelectorBitmap(n, np.packbits(mask, bitorder="little"))
            params = _params_for(index, sel)
            D, I = index.search(queries, min(fetch, n), params=params)
            return D, I
        except (RuntimeError, TypeError, AttributeError):
            # index type without selector support: over-fetch in proportion to the pool
            fetch = int(np.ceil(fetch * n / n_pool * 1.5)) + 8
    return index.search(queries, min(fetch, max_k(index)))


def _params_for(index, sel):
    from index.faiss_module import faiss

    base = faiss.downcast_index(index)
    if isinstance(base, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=sel, nprobe=base.nprobe)
    if isinstance(base, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(sel=sel, efSearch=base.hnsw.efSearch)
    if isinstance(base, (faiss.IndexFlat, faiss.IndexScalarQuantizer, faiss.IndexPQ)):
        return faiss.SearchParameters(sel=sel)
    raise TypeError(f"no selector support assumed for {type(base).__name__}")


def _filter(D, I, k, mask, excl):
    """Drop excluded / out-of-pool hits and keep the first ``k`` admissible ones per row."""
    valid = I >= 0
    safe = np.where(valid, I, 0)
    valid &= mask[safe] & (I != excl[:, None])
    # stable partition: admissible hits first, original (best-first) order kept
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    Dk = np.take_along_axis(D, order, 1).astype(np.float32)
    Ik = np.take_along_axis(I, order, 1).astype(np.int64)
    ok = np.take_along_axis(valid, order, 1)
    Dk[~ok], Ik[~ok] = -np.inf, -1
    if Dk.shape[1] < k:  # index smaller than k
        pad = k - Dk.shape[1]
        Dk = np.pad(Dk, ((0, 0), (0, pad)), constant_values=-np.inf)
        Ik = np.pad(Ik, ((0, 0), (0, pad)), constant_values=-1)
    return Dk, Ik


def exact_search(embeddings: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None,
                 exclude_rows: np.ndarray | None = None, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-``k`` over the rows where ``mask`` is True.

    Pure numpy: the reference every approximate path is checked against, and the fallback
    for queries an approximate or filtered search left short.

    Shapes: ``embeddings`` (N, d), ``queries`` (nq, d), ``mask`` (N,) bool,
    ``exclude_rows`` (nq,) int (-1 = none) -> ``D`` (nq, k) float32, ``I`` (nq, k) int64.
    Ties are broken by the lower row.
    """
    N = embeddings.shape[0]
    rows = np.arange(N) if mask is None else np.nonzero(mask)[0]
    sub = embeddings[rows]                                            # (P, d)
    nq = queries.shape[0]
    D = np.full((nq, k), -np.inf, np.float32)
    I = np.full((nq, k), -1, np.int64)
    excl = np.full(nq, -1, np.int64) if exclude_rows is None else np.asarray(exclude_rows, np.int64)
    kk = min(k, len(rows))
    for s in range(0, nq, chunk):
        sims = queries[s:s + chunk] @ sub.T                           # (c, P)
        sims = sims.astype(np.float32)
        sims[rows[None, :] == excl[s:s + chunk, None]] = -np.inf
        # order by (-score, row): lexsort on the full row is exact and deterministic
        if kk < len(rows):
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]      # (c, kk), unordered
            # a tie at the boundary can pick either row: widen to all rows with the boundary score
            kth = np.take_along_axis(sims, part, 1).min(1, keepdims=True)
            cand = sims >= kth
        else:
            cand = np.ones_like(sims, dtype=bool)
        for j in range(sims.shape[0]):
            c = np.nonzero(cand[j])[0]
            o = c[np.lexsort((c, -sims[j, c]))][:kk]
            sc = sims[j, o]
            good = np.isfinite(sc)
            D[s + j, :good.sum()] = sc[good]
            I[s + j, :good.sum()] = rows[o[good]]
    return D, I
