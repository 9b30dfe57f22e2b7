"""Per-post arrays that the explorer's list pages compute on (triage, A/B, agreement, map).

A :class:`PostTable` lines up, in the order of ``graphs.post_ids``, each post's split, kind
(the ``kind`` field of a JSONL post, as the demo writes it) and gold entity types, and, in
the order of ``graphs.ids`` (the rows neighbours point at), the gold types of the post that
owns each image. Entity types are also held as bit masks so that a whole relation's label
agreement is a few array operations:

    table = post_table(graphs, samples)
    hits, labelled = neighbour_hits(table, graphs.tables["intra"].rows)
    share = hits / labelled                # per post, as retrieval.agreement.label_agreement

A neighbour's types are those of the first post (in split order) that uses the image, as in
:mod:`retrieval.stats`. Nothing here reads a file.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..agreement import entity_types

NO_KIND = ""


@dataclass
class PostTable:
    """Attributes (``n`` posts, ``N`` graph rows):
        post_ids: (n,) in the graphs' order; ``index`` maps an id to its position.
        splits, kinds: (n,) str arrays (``""`` for a post without a kind).
        types: (n,) gold entity types (``None``: unlabelled post).
        type_names: the entity types in bit order (bit ``i`` is ``type_names[i]``).
        post_mask: (n,) int64 bits of each post's types (0: none or unlabelled).
        post_known: (n,) bool, the post is labelled.
        image_rows: (n,) each post's own image row (-1: none).
        row_mask, row_known: (N,) the types of the post owning each row's image.
        row_owner: (N,) position of the first post that uses each row's image (-1: none).
    """

    post_ids: list[str]
    splits: np.ndarray
    kinds: np.ndarray
    types: list
    type_names: tuple[str, ...]
    post_mask: np.ndarray
    post_known: np.ndarray
    image_rows: np.ndarray
    row_mask: np.ndarray
    row_known: np.ndarray
    row_owner: np.ndarray

    def __post_init__(self):
        self.index = {p: i for i, p in enumerate(self.post_ids)}

    def __len__(self) -> int:
        return len(self.post_ids)

    def bit(self, etype: str) -> int:
        """The mask bit of one entity type (0 for a type no post has)."""
        return 1 << self.type_names.index(etype) if etype in self.type_names else 0

    def names(self, mask: int) -> list[str]:
        """The entity types of a mask, in bit order."""
        return [t for i, t in enumerate(self.type_names) if mask >> i & 1]

    @property
    def kind_names(self) -> list[str]:
        return sorted(set(self.kinds.tolist()) - {NO_KIND})

    @property
    def split_names(self) -> list[str]:
        return list(dict.fromkeys(self.splits.tolist()))

    def select(self, split: str | None = None, etype: str | None = None, kind: str | None = None) -> np.ndarray:
        """(n,) bool: the posts of ``split`` whose gold types hold ``etype`` and whose kind is
        ``kind`` (a filter left as ``None`` or ``""`` selects every post)."""
        sel = np.ones(len(self), bool)
        if split:
            sel &= self.splits == split
        if etype:
            sel &= (self.post_mask & self.bit(etype)) != 0
        if kind:
            sel &= self.kinds == kind
        return sel


def build_table(graphs, samples: Sequence, types: dict | None = None) -> PostTable:
    """The :class:`PostTable` of ``graphs`` with the gold labels of ``samples`` (every post
    of the graphs, any order; objects with ``id``, ``tags`` and ``meta``). ``types``: post id
    -> :func:`retrieval.agreement.entity_types` of its tags, when already known."""
    by_id = {s.id: s for s in samples}
    missing = [p for p in graphs.post_ids if p not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} post(s) of the graphs are not among the samples, e.g. {missing[:3]}")
    ordered = [by_id[p] for p in graphs.post_ids]
    types = [types[s.id] if types is not None and s.id in types else entity_types(s.tags) for s in ordered]
    names = tuple(sorted({t for ts in types if ts for t in ts}))
    bits = {t: 1 << i for i, t in enumerate(names)}
    post_mask = np.asarray([sum(bits[t] for t in ts) if ts else 0 for ts in types], dtype=np.int64)
    post_known = np.asarray([ts is not None for ts in types], dtype=bool)
    kinds = np.asarray([str((s.meta or {}).get("kind") or NO_KIND) for s in ordered], dtype=object)
    splits = np.asarray([graphs.split_of[p] for p in graphs.post_ids], dtype=object)
    image_rows = np.asarray(graphs.image_rows, dtype=np.int64)
    n_rows = len(graphs.ids)
    row_owner = np.full(n_rows, -1, np.int64)
    with_image = np.nonzero(image_rows >= 0)[0]
    # the first post (in split order) using each row: assign in reverse so the first one wins
    row_owner[image_rows[with_image[::-1]]] = with_image[::-1]
    owned = row_owner >= 0
    row_mask = np.zeros(n_rows, np.int64)
    row_known = np.zeros(n_rows, bool)
    row_mask[owned] = post_mask[row_owner[owned]]
    row_known[owned] = post_known[row_owner[owned]]
    return PostTable(list(graphs.post_ids), splits, kinds, types, names, post_mask, post_known, image_rows,
                     row_mask, row_known, row_owner)


_TABLES: dict[int, tuple] = {}
"""id(graphs) -> (weak reference to the graphs, their table); graphs compare by value, so
they cannot key a WeakKeyDictionary."""


def post_table(graphs, samples: Sequence, types: dict | None = None) -> PostTable:
    """:func:`build_table`, computed once per graphs object (forgotten with the graphs)."""
    hit = _TABLES.get(id(graphs))
    if hit is not None and hit[0]() is graphs:
        return hit[1]
    t = build_table(graphs, samples, types)
    key = id(graphs)
    _TABLES[key] = (weakref.ref(graphs, lambda _ref: _TABLES.pop(key, None)), t)
    return t


def neighbour_hits(table: PostTable, rows: np.ndarray, scores: np.ndarray | None = None, k: int | None = None,
                   threshold: float | None = None, query_mask: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per post, how many of its labelled neighbours share a type with it, and how many
    labelled neighbours it has. Pure.

    Args:
        rows: (n, K) neighbour rows, best first (-1 = none).
        scores: (n, K) their scores (needed with ``threshold``).
        k: look at the first ``k`` columns only (default all).
        threshold: count only neighbours scoring at least this.
        query_mask: (n,) the types each query is asked about (default its gold types):
            a single type's bit gives that type's agreement.

    Returns:
        ``hits`` (n,) and ``labelled`` (n,) int arrays.
    """
    r = np.asarray(rows)[:, :k] if k is not None else np.asarray(rows)
    valid = r >= 0
    if threshold is not None:
        s = np.asarray(scores)[:, :r.shape[1]]
        valid &= s >= threshold
    rr = np.where(valid, r, 0)
    labelled = valid & table.row_known[rr]
    qm = table.post_mask if query_mask is None else np.asarray(query_mask, np.int64)
    hit = labelled & ((table.row_mask[rr] & qm[:, None]) != 0)
    return hit.sum(1), labelled.sum(1)


def agreement_per_post(table: PostTable, rows: np.ndarray, scores: np.ndarray | None = None, k: int | None = None,
                       threshold: float | None = None, query_mask: np.ndarray | None = None) -> np.ndarray:
    """(n,) share of each post's labelled neighbours that share a type with it; NaN where
    :func:`retrieval.agreement.label_agreement` would not count the post (unlabelled, no
    entity of the asked types, or no labelled neighbour)."""
    hits, labelled = neighbour_hits(table, rows, scores, k, threshold, query_mask)
    qm = table.post_mask if query_mask is None else np.asarray(query_mask, np.int64)
    counted = table.post_known & (qm != 0) & (labelled > 0)
    out = np.full(len(table), np.nan)
    out[counted] = hits[counted] / labelled[counted]
    return out


def pool_rows(graphs, table: PostTable) -> np.ndarray:
    """The rows a neighbour may come from (as :func:`retrieval.stats.graph_stats` counts
    them): the training split's posts' index images with ``pool="train"``, else every row."""
    if graphs.settings.pool != "train":
        return np.arange(len(graphs.ids))
    train = table.splits == graphs.settings.train_split
    rows = np.unique(table.image_rows[train & (table.image_rows >= 0)])
    return rows[rows < graphs.n_index]


def post_f1(gold: Sequence[str] | None, pred: Sequence[str] | None) -> float:
    """Entity-level F1 of one post (``2 tp / (|gold| + |pred|)``; 1.0 when both have no
    entity; NaN without gold or prediction)."""
    from data.spans import get_spans

    if gold is None or pred is None:
        return float("nan")
    g, p = set(get_spans(gold)), set(get_spans(pred))
    if not g and not p:
        return 1.0
    return 2 * len(g & p) / (len(g) + len(p))


def micro_f1(pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> float:
    """Entity-level micro F1 over ``(gold, pred)`` tag sequences (NaN with no entity at all)."""
    from data.spans import get_spans

    tp = ng = npred = 0
    for gold, pred in pairs:
        g, p = set(get_spans(gold)), set(get_spans(pred))
        tp, ng, npred = tp + len(g & p), ng + len(g), npred + len(p)
    return 2 * tp / (ng + npred) if ng + npred else float("nan")
