"""What every page of the explorer reads: the posts, the index, the relation graphs (one or
two settings) and, given runs, the taggers that re-tag a post with edited graphs.

    ex = Explorer.build({"train": tr, "valid": va, "test": te}, artifact, GraphSettings(k=5), ".cache/graphs")
    ex.neighbour_rows("test-004", "intra")   # [{rank, image_id, score, kept, margin, posts, ...}, ...]

The graphs are the ones ``retrieval show/report/stats`` and the rgcn head read
(:func:`retrieval.cache.load_or_build`, cached). A neighbour below the threshold is not in
them; when the threshold is above 0 the explorer also loads the graphs built with threshold
0, so a card shows what the threshold dropped, with its margin.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data.errors import UserError

from ..agreement import entity_types
from ..cache import GraphSettings, RelationGraphs, load_or_build
from ..search import UnknownIdError

log = logging.getLogger(__name__)

NEAR_DUPLICATE_COSINE = 0.98
"""A neighbour whose image vector has at least this cosine with the query's is a near-duplicate."""


class UnknownPostError(UnknownIdError):
    """A post id that is in none of the splits."""


@dataclass
class Explorer:
    """The loaded collection behind the explorer's pages (see the module docstring).

    Attributes:
        splits: split name -> :class:`data.corpus.Corpus`.
        samples: post id -> :class:`data.corpus.Sample`, all posts in split order.
        split_of: post id -> split name.
        artifact: the index artifact (:func:`index.artifact.load_index`).
        graphs, graphs_b: the relation graphs of setting A and (for A/B) B, else ``None``.
        settings, settings_b: their :class:`retrieval.cache.GraphSettings`.
        artifact_b: B's index (A's when not given).
        images: the image folder thumbnails are read from (``None``: the index's ``image_dir``).
        retagger, retagger_b: a :class:`retrieval.explore.counterfactual.Retagger` per run, or ``None``.
        cache_dir: the graph cache; counterfactuals are kept under ``<cache_dir>/explore``.
        raw, raw_b: the graphs with threshold 0 (the same object as ``graphs`` when the threshold is 0).
    """

    splits: dict
    artifact: object
    graphs: RelationGraphs
    settings: GraphSettings
    cache_dir: str | None = None
    images: str | None = None
    retagger: object = None
    graphs_b: RelationGraphs | None = None
    settings_b: GraphSettings | None = None
    artifact_b: object = None
    retagger_b: object = None
    raw: RelationGraphs | None = None
    raw_b: RelationGraphs | None = None
    samples: dict = field(init=False)
    split_of: dict = field(init=False)

    def __post_init__(self):
        self.samples = {s.id: s for c in self.splits.values() for s in c}
        self.split_of = {s.id: name for name, c in self.splits.items() for s in c}
        self.raw = self.raw or self.graphs
        if self.graphs_b is not None:
            self.raw_b = self.raw_b or self.graphs_b
            self.artifact_b = self.artifact_b or self.artifact
        self._owners: dict[str, dict[str, list[str]]] = {}
        self._types = {pid: entity_types(s.tags) for pid, s in self.samples.items()}
        self._hashes: dict[str, str | None] = {}
        self._exact: dict = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, splits: dict, artifact, settings: GraphSettings, cache_dir=None, images=None, retagger=None,
              artifact_b=None, settings_b: GraphSettings | None = None, retagger_b=None, progress: bool = False,
              chunk_size: int | None = None) -> "Explorer":
        """Load (or build and cache) the graphs of ``settings`` (and of ``settings_b`` over
        ``artifact_b or artifact``, for A/B) over ``splits``."""
        def graphs_for(art, st):
            g = load_or_build(splits, art, st, cache_dir, progress=progress, chunk_size=chunk_size)
            raw = g if st.threshold <= 0 else load_or_build(splits, art, dataclasses.replace(st, threshold=0.0),
                                                            cache_dir, progress=progress, chunk_size=chunk_size)
            return g, raw

        graphs, raw = graphs_for(artifact, settings)
        graphs_b = raw_b = None
        if settings_b is not None or artifact_b is not None:
            settings_b = settings_b or settings
            graphs_b, raw_b = graphs_for(artifact_b or artifact, settings_b)
        for r, g in ((retagger, graphs), (retagger_b, graphs_b if graphs_b is not None else graphs)):
            if r is not None and hasattr(r, "attach_graphs"):       # re-tag from these graphs: no build
                r.attach_graphs(g)
        return cls(splits, artifact, graphs, settings, str(cache_dir) if cache_dir else None,
                   str(images) if images else None, retagger, graphs_b, settings_b, artifact_b, retagger_b,
                   raw, raw_b)

    @classmethod
    def from_args(cls, args) -> "Explorer":
        """From the options of ``python -m retrieval explore`` (see :mod:`retrieval.__main__`)."""
        from data.corpus import read_corpus, split_args
        from index.artifact import load_index

        splits = {n: read_corpus(p, args.images) for n, p in split_args(args.data).items()}
        artifact = load_index(args.index)
        settings = GraphSettings(k=args.k, pool=args.pool, threshold=args.threshold,
                                 relations=tuple(args.relations), text_model=args.text_model, inter=args.inter)
        b_given = any(getattr(args, f"b_{n}", None) is not None for n in ("index", "k", "threshold", "pool", "inter"))
        settings_b = artifact_b = None
        if b_given:
            settings_b = dataclasses.replace(settings, **{n: getattr(args, f"b_{n}") for n in
                                                          ("k", "threshold", "pool", "inter")
                                                          if getattr(args, f"b_{n}", None) is not None})
            artifact_b = load_index(args.b_index) if getattr(args, "b_index", None) else None
        from .counterfactual import load_retagger

        # a host that loads runs with options of its own (python -m rgcn serve: --device, --view,
        # --head-option, --constrained) hands them on, so the runs tag here as they tag there
        device = getattr(args, "device", None) or "cpu"
        options = dict(getattr(args, "retagger_options", None) or {})
        retagger = load_retagger(args.run, images=args.images, device=device, **options) \
            if getattr(args, "run", None) else None
        retagger_b = load_retagger(args.b_run, images=args.images, device=device, **options) \
            if getattr(args, "b_run", None) else None
        return cls.build(splits, artifact, settings, args.cache, args.images, retagger, artifact_b, settings_b,
                         retagger_b, progress=not getattr(args, "quiet", False),
                         chunk_size=getattr(args, "chunk_size", None))

    # ------------------------------------------------------------------ lookups
    def sample(self, post_id: str):
        try:
            return self.samples[post_id]
        except KeyError:
            raise UnknownPostError(f"post {post_id!r} is in none of the splits ({', '.join(self.splits)}): "
                                   "check the id") from None

    @property
    def gold_types(self) -> dict:
        """Post id -> its gold entity types (``None``: unlabelled), as
        :func:`retrieval.agreement.entity_types` gives them (computed once)."""
        return self._types

    def types(self, post_id: str) -> frozenset:
        """The post's gold entity types (empty when it has none or is unlabelled)."""
        return self._types.get(post_id) or frozenset()

    def pick(self, which: str = "a") -> tuple[RelationGraphs, RelationGraphs, GraphSettings, object]:
        """``(graphs, raw graphs, settings, artifact)`` of setting ``a`` or ``b``."""
        if which == "a":
            return self.graphs, self.raw, self.settings, self.artifact
        if which == "b" and self.graphs_b is not None:
            return self.graphs_b, self.raw_b, self.settings_b, self.artifact_b
        raise UserError(f"graph setting {which!r}", "there is no such setting",
                        "use 'a', or 'b' when the explorer was started with --b-* options")

    def owners(self, image_id: str, which: str = "a") -> list[str]:
        """The posts whose image is ``image_id``, in split order."""
        if which not in self._owners:
            graphs = self.pick(which)[0]
            by: dict[str, list[str]] = {}
            for pid, key, row in zip(graphs.post_ids, graphs.post_images.keys, graphs.image_rows.tolist()):
                if key is not None and row >= 0:                 # graphs.has_image(pid), by position
                    by.setdefault(key, []).append(pid)
            self._owners[which] = by
        return self._owners[which].get(image_id, [])

    def image_key(self, post_id: str, which: str = "a") -> str | None:
        """The id of the post's image in the graphs, or ``None`` when it has none."""
        graphs = self.pick(which)[0]
        if not graphs.has_image(post_id):
            return None
        return graphs.post_images.keys[graphs.post_index[post_id]]

    def image_folders(self) -> list[Path]:
        """Where thumbnails may be read from: ``images`` and the index's ``image_dir``."""
        out = []
        for f in (self.images, (getattr(self.artifact, "manifest", {}) or {}).get("image_dir")):
            if f and Path(f).is_dir() and Path(f).resolve() not in out:
                out.append(Path(f).resolve())
        return out

    def image_path(self, image_id: str) -> Path | None:
        from data.web import BadInput, find_image

        try:
            return find_image(self.image_folders(), image_id)
        except BadInput:
            return None

    def file_hash(self, image_id: str) -> str | None:
        """sha256 of the image's file (``None`` when it is not found)."""
        if image_id not in self._hashes:
            path = self.image_path(image_id)
            self._hashes[image_id] = hashlib.sha256(path.read_bytes()).hexdigest() if path else None
        return self._hashes[image_id]

    # ------------------------------------------------------------------ neighbours
    def _vector(self, graphs: RelationGraphs, image_id: str | None) -> np.ndarray | None:
        if image_id is None:
            return None
        row = self._row(graphs, image_id)
        return None if row is None else graphs.node_features[row].numpy()

    def _row(self, graphs: RelationGraphs, image_id: str) -> int | None:
        key = ("rows", id(graphs))
        if key not in self._exact:
            self._exact[key] = {i: r for r, i in enumerate(graphs.ids)}
        return self._exact[key].get(image_id)

    def exact_neighbours(self, post_id: str, relation: str = "intra", which: str = "a") -> set[str] | None:
        """The image ids an exact search (inner product over the pool, the index's metric)
        returns as the post's ``k`` neighbours of ``relation``, for the relations searched in
        the index (:func:`index_searched`): intra (the post's image vector) and, with the
        ``direct`` strategy, inter (its sentence vector in the image space); the post's own
        image is never one. ``None`` when the index is exact (nothing to compare), for the
        other relations, or when the post has no query vector (no image for intra)."""
        graphs, raw, settings, artifact = self.pick(which)
        if is_exact_index(artifact) or not index_searched(graphs, relation):
            return None
        own = self.image_key(post_id, which)
        if relation == "intra":
            q = self._vector(graphs, own)
        else:
            q = np.asarray(graphs.text_queries[graphs.post_index[post_id]], dtype=np.float32)
        if q is None:
            return None
        pool = self._pool_rows(which)
        sims = (graphs.node_features.numpy() @ q)[pool]          # (P,): no copy of the pool's vectors
        ids = [graphs.ids[r] for r in pool]
        order = np.argsort(-sims, kind="stable")
        out = []
        for j in order:
            if ids[j] == own:
                continue
            out.append(ids[j])
            if len(out) == settings.k:
                break
        return set(out)

    def _pool_rows(self, which: str) -> np.ndarray:
        key = ("pool", which)
        if key not in self._exact:
            graphs, _, settings, _ = self.pick(which)
            if settings.pool == "all":
                rows = np.arange(graphs.n_index)
            else:
                train = {s.id for s in self.splits.get(settings.train_split, [])}
                keys = {k for p, k, row in zip(graphs.post_ids, graphs.post_images.keys, graphs.image_rows.tolist())
                        if k is not None and row >= 0 and p in train}
                self._row(graphs, "")                               # the id -> row map, made once
                row_of = self._exact[("rows", id(graphs))]
                rows = np.unique(np.asarray([row_of[k] for k in keys if k in row_of], dtype=np.int64))
                rows = rows[rows < graphs.n_index]
            self._exact[key] = rows
        return self._exact[key]

    def neighbour_rows(self, post_id: str, relation: str, which: str = "a") -> list[dict]:
        """The post's neighbours of ``relation``, best first, with what a card shows.

        Each row: ``rank`` (1-based), ``image_id``, ``score``, ``kept`` (at or above the
        threshold: an edge of the graph), ``margin`` (score minus threshold), ``posts`` (the
        posts whose image it is, each ``{id, split, text, types, shared}``), ``types`` (the
        union of their gold types), ``shared`` (those also in the query's), ``near_duplicate``
        (same file hash or cosine >= 0.98 with the query's image, with ``why``), and
        ``exact_miss`` (an approximate index returned it but an exact search would not;
        ``None`` when not checked: an exact index, or a relation not searched in the index,
        see :meth:`exact_neighbours`)."""
        self.sample(post_id)
        graphs, raw, settings, _ = self.pick(which)
        query_types = self.types(post_id)
        own = self.image_key(post_id, which)
        qv = self._vector(graphs, own)
        exact = self.exact_neighbours(post_id, relation, which)
        rows = []
        for rank, (image_id, score) in enumerate(raw.neighbours(post_id, relation), 1):
            posts, types = [], set()
            for pid in self.owners(image_id, which):
                s = self.samples[pid]
                t = self.types(pid)
                types |= t
                posts.append({"id": pid, "split": self.split_of[pid], "text": " ".join(s.tokens),
                              "types": sorted(t), "shared": sorted(t & query_types)})
            dup = []
            if own is not None and image_id == own:
                dup.append("same image")
            else:
                h = self.file_hash(image_id) if own is not None else None
                if h is not None and h == self.file_hash(own):
                    dup.append("same file hash")
                nv = self._vector(graphs, image_id)
                if qv is not None and nv is not None:
                    cos = float(nv @ qv / max(np.linalg.norm(nv) * np.linalg.norm(qv), 1e-12))
                    if cos >= NEAR_DUPLICATE_COSINE:
                        dup.append(f"cosine {cos:.3f}")
            rows.append({"rank": rank, "image_id": image_id, "score": score,
                         "kept": score >= settings.threshold, "margin": score - settings.threshold,
                         "posts": posts, "types": sorted(types), "shared": sorted(types & query_types),
                         "near_duplicate": bool(dup), "duplicate_why": ", ".join(dup),
                         "exact_miss": None if exact is None else image_id not in exact})
            if rank >= settings.k:
                break
        return rows


SEARCH_SPACES = {
    "intra": "image vectors, searched in the index",
    "inter_direct": "sentence vectors in the index's image space, searched in the index",
    "inter": "sentence vectors against the pool images' visual text (object tags, OCR) or the pool posts' "
             "sentences, in the sentence encoder's space: not the index",
    "tags": "overlap (Jaccard) of object-tag sets: not the index",
}
"""What each relation's neighbours are searched in (the card says it beside the exact-search flag)."""


def index_searched(graphs, relation: str) -> bool:
    """Whether ``relation``'s neighbours come from a search in the image index (and so may be
    missed by an approximate one): intra always, inter with the ``direct`` strategy (the graphs
    then hold the sentence vectors, ``text_queries``)."""
    return relation == "intra" or (relation == "inter" and getattr(graphs, "text_queries", None) is not None)


def search_space(graphs, relation: str) -> str:
    """:data:`SEARCH_SPACES`'s text for one relation of ``graphs``."""
    key = "inter_direct" if relation == "inter" and index_searched(graphs, relation) else relation
    return SEARCH_SPACES.get(key, "")


def is_exact_index(artifact) -> bool:
    """Whether the artifact's FAISS index is a flat (exact) one."""
    index = getattr(artifact, "faiss_index", None)
    if index is None:
        return True
    try:
        import faiss

        return isinstance(faiss.downcast_index(index), (faiss.IndexFlat, faiss.IndexFlatIP, faiss.IndexFlatL2))
    except (ImportError, RuntimeError, AttributeError):
        return True
