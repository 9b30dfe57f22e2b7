"""Relation graphs of new posts against a training pool prepared once.

Tagging new posts a batch at a time needs only the new posts' neighbours: the training
split is the pool they are retrieved from, never a query. :func:`retrieval.cache.build_graphs`
over ``{"train": train, "predict": posts}`` answers the training posts too, each time;
:class:`GraphPool` does the pool's side once (the training posts' images, the pool, each
relation's search structure, the embedder of new photos) and then answers each batch of
posts alone::

    pool = GraphPool(train, artifact, GraphSettings(k=5, relations=("inter", "intra")))
    graphs = pool.graphs_for(posts)              # a RelationGraphs over ``posts`` only
    graphs.graph(posts[0].id, "intra")

The graphs are those of ``build_graphs({"train": train, "predict": posts}, ...)`` for the
posts: the same neighbour rows, scores, node features and row numbering (new photos come
after the index's rows and the training posts' own new photos, in the same order).
``tests/retrieval/test_pool.py`` checks it, bit for bit, relation by relation and strategy
by strategy. On a real index a score may differ in its last float32 bits (about 1e-7),
as ``build_graphs``'s own do between two ``chunk_size``: FAISS and BLAS round an inner
product according to the batch of queries it is computed in.

Each search answers its queries independently, so a post's neighbours do not depend on the
other posts asked with it, with one exception kept as ``build_graphs`` has it: the ``posts``
inter-modal strategy retrieves through the posts whose own photo is in the pool, and a new
post whose photo is a pool image (a training photo, or any indexed photo with ``pool="all"``)
joins those candidates for the batch it is in.
"""
from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from index.artifact import embed_like_index, embedder_of

from .cache import (GraphSettings, RelationGraphs, _encode_unique, _inter_strategy, _with_new_rows, resolve_pool,
                    visual_text_candidates)
from .post_images import PostImages, resolve_post_images
from .relations import (KnnSearch, Neighbours, TextEncoder, index_text_encoder, inter_direct, inter_via_posts_of,
                        inter_visual_text, intra_modal, sentence_encoder, tag_sets, via_posts_candidates)
from .search import RetrievalError, pool_mask

log = logging.getLogger(__name__)

PREDICT = "predict"
"""The split name the posts' graphs give them (``RelationGraphs.split_of``)."""


def jaccard_against_pool(pool_sets: Sequence[frozenset], pool_rows: np.ndarray, query_sets: Sequence[frozenset],
                         own_rows: np.ndarray, k: int, tiebreak: np.ndarray, max_ties: int = 4096
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` pool rows by Jaccard overlap of tag sets, for query sets given as sets
    (a new photo's tags need no row of the pool's tag tables). Pure.

    The order is :func:`retrieval.relations.jaccard_topk`'s: overlap first, then (among the
    lowest ``max_ties`` rows tied at the ``k``-th overlap and every row above it) similarity
    of ``tiebreak`` rows to the query's own row, then lower row.

    Args:
        pool_sets: (P,) tag set of each pool row.
        pool_rows: (P,) ascending rows of the pool (of ``tiebreak``).
        query_sets: (nq,) tag set of each query.
        own_rows: (nq,) each query's own row (never returned; its ``tiebreak`` vector), -1: none.
        k: neighbours per query.
        tiebreak: (N, d) L2-normalised features by row.

    Returns:
        ``(D, I)`` (nq, k): overlaps (> 0 only) and rows, -inf / -1 padded.
    """
    from scipy import sparse

    pool_rows = np.asarray(pool_rows, dtype=np.int64)
    own_rows = np.asarray(own_rows, dtype=np.int64)
    nq = len(query_sets)
    D = np.full((nq, k), -np.inf, np.float32)
    I = np.full((nq, k), -1, np.int64)
    vocab: dict = {}
    indptr, indices = [0], []
    for s in pool_sets:
        indices += [vocab.setdefault(t, len(vocab)) for t in sorted(s)]
        indptr.append(len(indices))
    P = len(pool_sets)
    M = sparse.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(P, max(len(vocab), 1)))
    pool_size = np.diff(indptr).astype(np.float64)                      # (P,)
    for q, (qs, own) in enumerate(zip(query_sets, own_rows)):
        if own < 0 or not qs or not P:
            continue
        cols = sorted({vocab[t] for t in qs if t in vocab})
        if not cols:
            continue
        inter = np.asarray(M[:, cols].sum(1)).ravel().astype(np.float64)   # (P,) shared tags
        hit = np.nonzero((inter > 0) & (pool_rows != own))[0]
        if not len(hit):
            continue
        rows, n_in = pool_rows[hit], inter[hit]
        jac = n_in / (len(qs) + pool_size[hit] - n_in)
        kk = min(k, len(rows))
        kth = np.sort(jac)[::-1][kk - 1]
        top, tie = np.nonzero(jac > kth)[0], np.nonzero(jac == kth)[0][:max_ties]   # rows ascend: lowest ties
        cand = np.concatenate([top, tie])
        sim = np.einsum("ij,ij->i", tiebreak[rows[cand]], tiebreak[np.full(len(cand), own)])
        order = np.lexsort((rows[cand], -sim, -jac[cand]))[:kk]
        D[q, :len(order)], I[q, :len(order)] = jac[cand[order]], rows[cand[order]]
    return D, I


class GraphPool:
    """The pool side of a graph build over ``{settings.train_split: train, "predict": posts}``,
    made once, answering the posts of each batch (see the module doc).

    Args:
        train: the training split's samples (the pool's posts).
        artifact: the loaded index artifact.
        settings: :class:`retrieval.cache.GraphSettings` (default: the paper's).
        text_encoder: strings -> vectors for the inter-modal relation (default: the index's
            text tower for ``direct``, the sentence encoder otherwise), made once.
        embedder: the embedder of photos that are not in the index (default: the index's own,
            rebuilt from its manifest once, on the first new photo).

    Raises:
        EmptyPoolError, RetrievalError: as :func:`retrieval.cache.build_graphs`.
    """

    def __init__(self, train: Sequence, artifact, settings: GraphSettings | None = None,
                 text_encoder: TextEncoder | None = None, embedder=None, progress: bool = False):
        self.artifact = artifact
        self.settings = settings or GraphSettings()
        self.text_encoder = text_encoder
        self.embedder = embedder
        self.train = list(train)
        self.n_index = len(artifact.ids)
        self.train_ids = {s.id for s in self.train}
        if len(self.train_ids) != len(self.train):
            raise RetrievalError("post ids must be unique across splits: the training split repeats one")
        self.train_images = resolve_post_images(self.train, artifact)
        self.pool = resolve_pool({self.settings.train_split: self.train}, artifact, self.settings,
                                 self.train_images)
        vectors, self.train_new_tags = self._embed(self.train_images, progress)
        self.train_new_position = {key: j for j, key in enumerate(self.train_images.new_ids)}
        self.train_unreadable = {k for k, st in zip(self.train_images.keys, self.train_images.status)
                                 if st == "unreadable"}
        self.vectors = _with_new_rows(artifact.embeddings, vectors)   # (N + m_train, d)
        self.features = torch.as_tensor(self.vectors)
        self.train_texts = [" ".join(s.tokens) for s in self.train]
        self.prepared: dict = {}

    # ------------------------------------------------------------------ pool side, once
    def once(self, name: str, make):
        if name not in self.prepared:
            self.prepared[name] = make()
        return self.prepared[name]

    def image_embedder(self):
        """The embedder of photos that are not in the index, built on first use and kept."""
        if self.embedder is None:
            self.embedder = embedder_of(self.artifact)
        return self.embedder

    def _embed(self, images: PostImages, progress: bool, ids: Sequence[str] | None = None
               ) -> tuple[np.ndarray, dict]:
        """Embed the photos ``ids`` (default ``images.new_ids``) with the index's embedder, as
        :func:`retrieval.cache.build_graphs` does (an unreadable one keeps a zero row and its
        posts lose it). Returns ``(vectors (m, d), tags by id)``."""
        ids = list(images.new_ids if ids is None else ids)
        dim = int(np.asarray(self.artifact.embeddings).shape[1])
        if not ids:
            return np.zeros((0, dim), np.float32), {}
        paths = dict(zip(images.new_ids, images.new_paths))
        res = embed_like_index(self.artifact, [(i, paths[i]) for i in ids], progress=progress,
                               embedder=self.image_embedder())
        got = dict(zip(res.ids, range(len(res.ids))))
        bad = set(ids) - set(got)
        if bad:
            images.mark_unreadable(bad)
        vectors = np.zeros((len(ids), dim), np.float32)
        for j, i in enumerate(ids):
            if i in got:
                vectors[j] = res.embeddings[got[i]]
        return vectors, {i: res.tags[got[i]] for i in ids if i in got}

    def _encoder(self, name: str) -> TextEncoder:
        if name == "direct":
            return self.once("direct_encoder", lambda: self.text_encoder or index_text_encoder(self.artifact))
        return self.once("sentence_encoder",
                         lambda: self.text_encoder or sentence_encoder(self.settings.text_model))

    def warm(self) -> None:
        """Make every search structure the settings need now (the first batch then pays nothing)."""
        rel = self.settings.relations
        if "tags" in rel:
            self._tags_pool()
        if "inter" in rel:
            strategy = _inter_strategy(self.settings, self.artifact)
            if strategy == "direct":
                self._encoder("direct")
            elif strategy == "visual_text":
                enc = self._encoder("sentence")
                self._visual_text(enc)
            else:
                self._posts_pool(self._encoder("sentence"))

    # ------------------------------------------------------------------ a batch of posts
    def _post_images(self, posts: Sequence, progress: bool) -> tuple[PostImages, list[str], np.ndarray, dict]:
        """The posts' images with rows numbered as in a build over the training split and the
        posts, the new ids in that order, the posts' new vectors and their tags."""
        pi = resolve_post_images(posts, self.artifact)
        extra = [key for key in pi.new_ids if key not in self.train_new_position]
        position = {**self.train_new_position, **{key: len(self.train_new_position) + j for j, key in enumerate(extra)}}
        rows = pi.rows.copy()
        for i, (key, st) in enumerate(zip(pi.keys, pi.status)):
            if st == "new":
                rows[i] = self.n_index + position[key]
        pi.rows = rows
        vectors, tags = self._embed(pi, progress, extra)
        pi.mark_unreadable(self.train_unreadable & set(pi.new_ids))
        new_ids = list(self.train_images.new_ids) + extra
        return PostImages(pi.post_ids, pi.keys, pi.rows, pi.status, new_ids), new_ids, vectors, tags

    def graphs_for(self, posts: Sequence, progress: bool = False) -> RelationGraphs:
        """The relation graphs of ``posts`` (a list of samples with ``id``, ``tokens``,
        ``image``, ...), as :class:`retrieval.cache.RelationGraphs` over these posts only."""
        posts = list(posts)
        ids = [s.id for s in posts]
        seen: set = set()
        for i in ids:
            if i in self.train_ids or i in seen:
                raise RetrievalError(f"post id {i!r} occurs twice (split "
                                     f"{self.settings.train_split if i in self.train_ids else PREDICT!r} and "
                                     f"{PREDICT!r}): post ids must be unique across splits")
            seen.add(i)
        if not posts:
            self.warm()
        pi, new_ids, new_vectors, new_tags = self._post_images(posts, progress)
        vectors = _with_new_rows(self.vectors, new_vectors)
        features = self.features if vectors is self.vectors else torch.as_tensor(vectors)
        texts = [" ".join(s.tokens) for s in posts]
        tables, text_queries = {}, None
        for rel in self.settings.relations:
            if not posts:
                nb = Neighbours.empty(0, self.settings.k)
            elif rel == "intra":
                nb = intra_modal(self.artifact, pi.rows, self.settings.k, self.pool, vectors)
            elif rel == "tags":
                nb = self._tags(pi, new_ids, new_tags, vectors)
            else:
                nb, text_queries = self._inter(pi, texts)
            tables[rel] = nb.apply_threshold(self.settings.threshold)
        manifest = {"kind": "retrieval.graphs", "settings": self.settings.as_dict(), "n_posts": len(posts),
                    "pool_posts": len(self.train), "new_images": len(new_ids)}
        return RelationGraphs(ids, {i: PREDICT for i in ids}, pi.rows, tables,
                              list(self.artifact.ids) + new_ids, features, self.settings, text_queries, manifest,
                              post_images=pi)

    def _tags(self, pi: PostImages, new_ids: list[str], new_tags: dict, vectors: np.ndarray) -> Neighbours:
        s = self.settings
        rows, sets = self._tags_pool()
        all_tags = {**self.artifact.tags, **self.train_new_tags, **new_tags}
        ids = list(self.artifact.ids) + new_ids
        query = tag_sets(all_tags, [ids[r] if r >= 0 else "" for r in pi.rows], s.top_tags, s.min_tag_score)
        D, I = jaccard_against_pool(sets, rows, query, pi.rows, s.k, vectors)
        return Neighbours(I, D)

    def _tags_pool(self) -> tuple[np.ndarray, list[frozenset]]:
        """The pool's rows and their tag sets (made once)."""
        s = self.settings

        def pool_side():
            if not self.artifact.tags:
                raise RetrievalError(f"the index at {getattr(self.artifact, 'path', '<artifact>')} has no object "
                                     "tags: rebuild it with tags (with_tags=True) or drop the 'tags' relation")
            rows = np.nonzero(pool_mask(self.artifact, self.pool))[0]
            sets = tag_sets(self.artifact.tags, [self.artifact.ids[r] for r in rows], s.top_tags, s.min_tag_score)
            return rows, sets

        return self.once("tags", pool_side)

    def _inter(self, pi: PostImages, texts: list[str]) -> tuple[Neighbours, np.ndarray | None]:
        strategy = _inter_strategy(self.settings, self.artifact)
        own = np.where(pi.rows < self.n_index, pi.rows, -1)               # new images are never results
        k = self.settings.k
        if strategy == "direct":
            nb, q = inter_direct(self.artifact, texts, own, k, self.pool, self._encoder("direct"))
            return nb, q.astype(np.float32)
        enc = self._encoder("sentence")
        if strategy == "visual_text":
            image_text, cand, knn = self._visual_text(enc)
            return inter_visual_text(_encode_unique(enc, texts), image_text, cand, own, k, knn), None
        return self._inter_posts(pi, texts, own, enc), None

    def _visual_text(self, enc: TextEncoder):
        """The pool's visual-text candidates (:func:`retrieval.cache.visual_text_candidates`), once."""
        return self.once("visual_text", lambda: visual_text_candidates(self.artifact, self.pool,
                                                                       self.settings.top_tags, enc))

    def _candidate_posts(self, images: PostImages) -> tuple[np.ndarray, np.ndarray]:
        """Each post's own index row (-1: none or new) and whether its photo may be retrieved."""
        own = np.where(images.rows < self.n_index, images.rows, -1)
        ok = np.asarray([r >= 0 and (self.pool is None or key in self.pool) for r, key in zip(own, images.keys)],
                        dtype=bool)
        return own, ok

    def _posts_pool(self, enc: TextEncoder):
        """The training posts that the ``posts`` strategy retrieves through: every training
        post's own index row, which may be retrieved, the candidates, their sentence vectors
        and a kNN search over them (made once)."""
        def pool_side():
            train_own, train_ok = self._candidate_posts(self.train_images)
            cand = np.nonzero(train_ok & (train_own >= 0))[0]
            base = np.asarray(enc([self.train_texts[p] for p in cand]), dtype=np.float32) if len(cand) \
                else np.zeros((0, 1), np.float32)
            return train_own, train_ok, cand, base, KnnSearch(base) if len(cand) else None

        return self.once("posts", pool_side)

    def _inter_posts(self, pi: PostImages, texts: list[str], own: np.ndarray, enc: TextEncoder) -> Neighbours:
        train_own, train_ok, cand, base, knn = self._posts_pool(enc)
        post_own, post_ok = self._candidate_posts(pi)
        n_train = len(self.train)
        own_all = np.concatenate([train_own, post_own])
        if post_ok.any() or knn is None:                 # posts of this batch join the candidates
            cand = via_posts_candidates(own_all, np.concatenate([train_ok, post_ok]))
            extra = [p - n_train for p in cand if p >= n_train]
            vecs = np.asarray(enc([texts[p] for p in extra]), dtype=np.float32)
            knn = KnnSearch(np.concatenate([base, vecs]) if len(base) else vecs)
        q = np.asarray(enc(texts), dtype=np.float32)
        return inter_via_posts_of(q, n_train + np.arange(len(texts)), own_all, cand, self.settings.k, knn)
