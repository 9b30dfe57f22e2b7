"""Triage lists: the posts (and images) of a collection a researcher should look at first.

Each list is a pure function of the relation graphs, a :class:`~retrieval.explore.tables.PostTable`
and (for the last one) a run's predictions, registered in :data:`LISTS`:

==================  ==========================================================================
``no_neighbours``   posts with no neighbour left above the threshold, per relation
``low_agreement``   posts whose neighbours share the fewest entity types with them
``hubs``            images retrieved for the most posts, with the count
``duplicates``      near-duplicate groups: the same image, the same file bytes, or a cosine
                    at or above 0.98 between a post's image and one of its intra neighbours
``wrong``           wrong predictions whose neighbours also disagree with the gold types
==================  ==========================================================================

Every list is filtered by split, relation, entity type and kind (:func:`triage_list`) and
sorted on any of its columns. For ``hubs`` the filters select the posts that retrieve the
images (the hubs of the test posts of one kind); for ``duplicates`` a group is kept when
one of its posts matches.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .tables import PostTable, agreement_per_post, neighbour_hits, post_f1

DUPLICATE_COSINE = 0.98
"""Two images at or above this cosine count as near-duplicates."""
MEMO_LISTS = 8
"""Filtered lists an explorer keeps (the oldest is dropped first): at 100,000 posts a list of every
post and relation is about 20 MB of columns."""


@dataclass(frozen=True)
class Filters:
    """What a list is narrowed to; ``None`` (or ``""``) keeps everything."""

    split: str | None = None
    relation: str | None = None
    etype: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class ListSpec:
    """One triage list: its title, what it shows, its columns, default order and builder
    ``(ctx, filters) -> rows``."""

    title: str
    about: str
    columns: tuple[str, ...]
    sort: str
    descending: bool
    build: Callable


@dataclass
class TriageContext:
    """What the lists read: the graphs, their post table, and optionally predictions
    (post id -> predicted BIO tags), gold tags (post id -> BIO tags) and file hashes
    (post id -> sha256 of its image file)."""

    graphs: object
    table: PostTable
    predictions: dict | None = None
    gold: dict | None = None
    hashes: dict | None = None


def _relations(graphs, filters: Filters) -> list[str]:
    if filters.relation:
        if filters.relation not in graphs.tables:
            raise KeyError(f"relation {filters.relation!r} was not built: these graphs have {', '.join(graphs.tables)}")
        return [filters.relation]
    return list(graphs.tables)


Columns = dict
"""A list's rows as columns: column name -> (m,) array (object arrays for text; NaN, or
``None`` in an object array, for a missing value). Large lists stay arrays until a page of
rows is cut from them (:func:`triage_list`)."""


def _post_columns(t: PostTable, idx: np.ndarray) -> Columns:
    """The post, split, kind and gold types columns of the posts at ``idx``."""
    return {"post": _ids(t)[idx], "split": t.splits[idx], "kind": t.kinds[idx], "types": _type_text(t)[idx]}


def _ids(t: PostTable) -> np.ndarray:
    if not hasattr(t, "_id_array"):
        t._id_array = np.asarray(t.post_ids, dtype=object)
    return t._id_array


def _type_text(t: PostTable) -> np.ndarray:
    """(n,) each post's gold types as text (``"LOC PER"``; ``""`` for none)."""
    if not hasattr(t, "_type_text"):
        names = {m: " ".join(sorted(t.names(int(m)))) for m in np.unique(t.post_mask)}
        t._type_text = np.asarray([names[m] for m in t.post_mask.tolist()], dtype=object)
    return t._type_text


def _concat(parts: list[Columns], columns: Sequence[str]) -> Columns:
    """Column-wise concatenation of ``parts`` (each holding ``columns``)."""
    if not parts:
        return {c: np.zeros(0, dtype=object) for c in columns}
    return {c: np.concatenate([p[c] for p in parts]) for c in columns}


def _full(m: int, value) -> np.ndarray:
    out = np.empty(m, dtype=object)
    out[:] = value
    return out


def rows_to_columns(rows: list[dict], columns: Sequence[str]) -> Columns:
    """Row dicts as :data:`Columns` (object arrays)."""
    out = {}
    for c in columns:
        col = np.empty(len(rows), dtype=object)
        col[:] = [r.get(c) for r in rows]
        out[c] = col
    return out


# --------------------------------------------------------------------------- the lists
def no_neighbours(ctx: TriageContext, filters: Filters) -> Columns:
    """Posts with no neighbour in a relation (none above the threshold, or, for ``intra``
    and ``tags``, no image to search with)."""
    t, g = ctx.table, ctx.graphs
    sel = t.select(filters.split, filters.etype, filters.kind)
    parts = []
    for rel in _relations(g, filters):
        idx = np.nonzero(~(g.tables[rel].rows >= 0).any(1) & sel)[0]
        no_image = (t.image_rows[idx] < 0) & (rel != "inter")
        parts.append({**_post_columns(t, idx), "relation": _full(len(idx), rel),
                      "reason": np.where(no_image, "no image", "none above the threshold").astype(object)})
    return _concat(parts, LISTS["no_neighbours"].columns)


def low_agreement(ctx: TriageContext, filters: Filters) -> Columns:
    """Posts (with an entity and a labelled neighbour) and the share of their neighbours
    sharing one of their entity types, lowest first."""
    t, g = ctx.table, ctx.graphs
    sel = t.select(filters.split, filters.etype, filters.kind)
    parts = []
    for rel in _relations(g, filters):
        rows = g.tables[rel].rows
        hits, labelled = neighbour_hits(t, rows)
        share = agreement_per_post(t, rows)
        idx = np.nonzero(sel & ~np.isnan(share))[0]
        parts.append({**_post_columns(t, idx), "relation": _full(len(idx), rel),
                      "agreement": np.round(share[idx], 4), "sharing": hits[idx], "neighbours": labelled[idx]})
    return _concat(parts, LISTS["low_agreement"].columns)


def hubs(ctx: TriageContext, filters: Filters) -> Columns:
    """Images and how many of the selected posts retrieved them, per relation; ``agreement``
    is the share of those posts that share an entity type with the image's post."""
    t, g = ctx.table, ctx.graphs
    sel = t.select(filters.split, filters.etype, filters.kind)
    ids = np.asarray(g.ids, dtype=object)
    names = {m: " ".join(t.names(int(m))) for m in np.unique(t.row_mask)}
    parts = []
    for rel in _relations(g, filters):
        rows = g.tables[rel].rows[sel]                                         # (m, k)
        q = np.repeat(np.nonzero(sel)[0], rows.shape[1])
        r = rows.reshape(-1)
        ok = r >= 0
        q, r = q[ok], r[ok]
        count = np.bincount(r, minlength=len(g.ids))
        labelled = t.post_known[q] & (t.post_mask[q] != 0) & t.row_known[r]
        agree = np.bincount(r[labelled], weights=((t.post_mask[q] & t.row_mask[r]) != 0)[labelled],
                            minlength=len(g.ids))
        n_lab = np.bincount(r[labelled], minlength=len(g.ids))
        hit = np.nonzero(count)[0]
        owner = t.row_owner[hit]
        share = np.full(len(hit), np.nan)
        has = n_lab[hit] > 0
        share[has] = np.round(agree[hit][has] / n_lab[hit][has], 4)
        parts.append({"image": ids[hit], "relation": _full(len(hit), rel), "retrieved_by": count[hit],
                      "post": np.where(owner >= 0, _ids(t)[np.maximum(owner, 0)], ""),
                      "types": np.asarray([names[m] for m in t.row_mask[hit].tolist()], dtype=object),
                      "agreement": share})
    return _concat(parts, LISTS["hubs"].columns)


def duplicate_groups(ctx: TriageContext, cosine: float = DUPLICATE_COSINE) -> list[dict]:
    """Groups of posts whose images are the same (one image id, or equal file hashes) or
    near-duplicates (a cosine >= ``cosine`` in a post's intra-modal neighbour list), by
    union-find over those pairs. Each group: its posts, size, splits, why (``same image``,
    ``same file``, ``cosine``) and its highest cosine between two different images."""
    t, g = ctx.table, ctx.graphs
    n = len(t)
    parent = np.arange(n)

    def find(a):
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    edges: list = []                                   # (post, reason, cosine) of every joined pair

    def union(a, b, reason, score=None):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
        edges.append((a, reason, score))

    with_image = np.nonzero(t.image_rows >= 0)[0]
    by_row: dict[int, list[int]] = {}
    for i in with_image:
        by_row.setdefault(int(t.image_rows[i]), []).append(int(i))
    for posts in by_row.values():
        for b in posts[1:]:
            union(posts[0], b, "same image")
    if ctx.hashes:
        by_hash: dict[str, int] = {}
        for i, p in enumerate(t.post_ids):
            h = ctx.hashes.get(p)
            if h is None:
                continue
            first = by_hash.setdefault(h, i)
            if first != i and t.image_rows[first] != t.image_rows[i]:
                union(first, i, "same file")
    if "intra" in g.tables:
        nb = g.tables["intra"]
        qi, col = np.nonzero((nb.rows >= 0) & (nb.scores >= cosine))
        for i, c in zip(qi, col):
            owner = t.row_owner[nb.rows[i, c]]
            if owner >= 0 and t.image_rows[owner] != t.image_rows[i]:
                union(int(i), int(owner), "cosine", float(nb.scores[i, c]))
    groups: dict[int, dict] = {}
    for a, reason, score in edges:
        r = find(a)
        grp = groups.setdefault(r, {"why": set(), "cosine": None})
        grp["why"].add(reason)
        if score is not None:
            grp["cosine"] = max(score, grp["cosine"] or score)
    members: dict[int, list[int]] = {}
    for i in range(n):
        r = find(i)
        if r in groups:
            members.setdefault(r, []).append(i)
    out = []
    for r, grp in groups.items():
        m = members[r]
        splits = list(dict.fromkeys(t.splits[m].tolist()))
        out.append({"group": t.post_ids[m[0]], "size": len(m), "posts": [t.post_ids[i] for i in m],
                    "splits": " ".join(splits), "cross_split": len(splits) > 1,
                    "why": " ".join(sorted(grp["why"])),
                    "cosine": round(grp["cosine"], 4) if grp["cosine"] is not None else None,
                    "_members": m})
    return out


def duplicates(ctx: TriageContext, filters: Filters) -> Columns:
    """:func:`duplicate_groups` holding at least one post that matches the filters."""
    sel = ctx.table.select(filters.split, filters.etype, filters.kind)
    return rows_to_columns([g for g in duplicate_groups(ctx) if sel[g["_members"]].any()],
                           LISTS["duplicates"].columns)


WRONG_MAX_AGREEMENT = 0.5
"""The wrong-predictions list holds posts with at most this share of agreeing labelled neighbours."""


def _low_agreement_posts(t: PostTable, g, filters: Filters, max_agreement: float) -> dict[str, np.ndarray]:
    """Relation -> positions of the selected posts whose share of labelled neighbours sharing
    a gold type with them is at most ``max_agreement`` (posts with no share are left out)."""
    sel = t.select(filters.split, filters.etype, filters.kind)
    out = {}
    for rel in _relations(g, filters):
        share = agreement_per_post(t, g.tables[rel].rows)
        out[rel] = np.nonzero(sel & (np.nan_to_num(share, nan=np.inf) <= max_agreement))[0]
    return out


def wrong_candidates(t: PostTable, g, filters: Filters, max_agreement: float = WRONG_MAX_AGREEMENT) -> np.ndarray:
    """(m,) positions of the posts that may enter the wrong-predictions list, in table order:
    those the filters select whose neighbours agree with them at most ``max_agreement`` in
    one of the relations. Only these need a prediction (:func:`explorer_context`)."""
    parts = list(_low_agreement_posts(t, g, filters, max_agreement).values())
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def wrong_predictions(ctx: TriageContext, filters: Filters, max_agreement: float = WRONG_MAX_AGREEMENT) -> Columns:
    """Posts whose predicted entities differ from the gold ones while at most
    ``max_agreement`` of their labelled neighbours share a gold type with them;
    ``back_the_error`` counts the neighbours sharing a predicted type the gold lacks.
    Only the predictions of :func:`wrong_candidates` are read."""
    if ctx.predictions is None or ctx.gold is None:
        raise ValueError("this list needs a run's predictions (start the explorer with --run)")
    from ..agreement import entity_types

    t, g = ctx.table, ctx.graphs
    low = _low_agreement_posts(t, g, filters, max_agreement)
    # each candidate post once: its F1, predicted types and the bits of the types the gold lacks
    wrong, predicted, f1s = np.zeros(len(t), bool), {}, {}
    error_mask = np.zeros(len(t), np.int64)
    for i in (np.unique(np.concatenate(list(low.values()))) if low else []).tolist():
        p = t.post_ids[i]
        pred = ctx.predictions.get(p)
        f1 = post_f1(ctx.gold.get(p), pred)
        if math.isnan(f1) or f1 == 1.0:
            continue
        types = entity_types(pred) or frozenset()
        wrong[i], f1s[i], predicted[i] = True, round(f1, 4), " ".join(sorted(types))
        error_mask[i] = sum(t.bit(x) for x in types - (t.types[i] or frozenset()))
    parts = []
    for rel, idx in low.items():
        idx = idx[wrong[idx]]
        rows = g.tables[rel].rows[idx]
        share = agreement_per_post(t, g.tables[rel].rows)[idx]
        backing, _ = neighbour_hits(t, rows, query_mask=error_mask[idx])
        parts.append({**_post_columns(t, idx), "relation": _full(len(idx), rel),
                      "predicted": np.asarray([predicted[i] for i in idx.tolist()], dtype=object),
                      "f1": np.asarray([f1s[i] for i in idx.tolist()], dtype=float),
                      "agreement": np.round(share, 4), "back_the_error": backing.astype(np.int64)})
    return _concat(parts, LISTS["wrong"].columns)


LISTS: dict[str, ListSpec] = {
    "no_neighbours": ListSpec("No neighbour above the threshold",
                              "Posts left with no neighbour in a relation: none scored at or above the threshold, "
                              "or (intra, tags) the post has no image to search with.",
                              ("post", "split", "kind", "types", "relation", "reason"), "post", False, no_neighbours),
    "low_agreement": ListSpec("Lowest label agreement",
                              "Posts with an entity, and the share of their labelled neighbours that share one of "
                              "their gold entity types, lowest first.",
                              ("post", "split", "kind", "types", "relation", "agreement", "sharing", "neighbours"),
                              "agreement", False, low_agreement),
    "hubs": ListSpec("Hub images",
                     "Images by how many of the selected posts retrieved them; agreement is the share of those posts "
                     "that share an entity type with the image's post.",
                     ("image", "relation", "retrieved_by", "post", "types", "agreement"), "retrieved_by", True, hubs),
    "duplicates": ListSpec("Near-duplicate groups",
                           f"Posts with the same image, the same file bytes, or a cosine of at least "
                           f"{DUPLICATE_COSINE} between a post's image and one of its intra-modal neighbours.",
                           ("group", "size", "posts", "splits", "cross_split", "why", "cosine"), "size", True,
                           duplicates),
    "wrong": ListSpec("Wrong predictions whose neighbours disagree",
                      "Posts the run tags wrongly while at most half of their labelled neighbours share a gold type "
                      "with them; back the error counts the neighbours sharing a wrongly predicted type.",
                      ("post", "split", "kind", "types", "predicted", "relation", "f1", "agreement", "back_the_error"),
                      "agreement", False, wrong_predictions),
}
"""Triage list name -> its :class:`ListSpec`."""


def list_spec(name: str) -> ListSpec:
    try:
        return LISTS[name]
    except KeyError:
        raise KeyError(f"unknown triage list {name!r}: the lists are {', '.join(LISTS)}") from None


def sort_rows(rows: list[dict], key: str, descending: bool = False, tie: str | None = None) -> list[dict]:
    """Rows ordered by ``key`` (missing or NaN values last either way; a list by its length),
    equal values by ``tie`` ascending, so the order is the same on every call."""
    def missing(r):
        v = r.get(key)
        return v is None or (isinstance(v, float) and math.isnan(v))

    def val(v):
        return (1, len(v)) if isinstance(v, list) else (isinstance(v, str), v)

    present = [r for r in rows if not missing(r)]
    if tie is not None:
        present.sort(key=lambda r: str(r.get(tie, "")))
    present.sort(key=lambda r: val(r[key]), reverse=descending)            # stable: ties keep the tie order
    return present + [r for r in rows if missing(r)]


def _ranks(col: np.ndarray, descending: bool) -> np.ndarray:
    """(m,) integer sort keys of a column: its values' ranks (a list by its length),
    reversed when ``descending``; missing values (None, NaN) rank after every value."""
    col = np.asarray(col)
    if col.dtype == object:
        missing = np.asarray([v is None or (isinstance(v, float) and v != v) for v in col.tolist()], dtype=bool)
        present = [len(v) if isinstance(v, list) else v for v in col[~missing].tolist()]
        values = np.asarray(present) if present else np.zeros(0)
    else:
        missing = np.isnan(col) if col.dtype.kind == "f" else np.zeros(len(col), bool)
        values = col[~missing]
    ranks = np.full(len(col), -1, dtype=np.int64)
    if len(values):
        _, inv = np.unique(values, return_inverse=True)
        inv = inv.reshape(-1)
        ranks[~missing] = inv.max() - inv if descending else inv
    ranks[missing] = ranks.max() + 1 if len(col) else 0
    return ranks


def sort_order(columns: Columns, key: str, descending: bool = False, tie: str | None = None) -> np.ndarray:
    """The row order of ``columns`` by ``key`` (missing values last either way), equal values
    by ``tie`` ascending."""
    keys = [_ranks(columns[key], descending)]
    if tie is not None and tie != key:
        keys.insert(0, _ranks(columns[tie], False))
    return np.lexsort(keys)                                   # the last key is the primary one


def _cell(v):
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def triage_list(ctx: TriageContext, name: str, filters: Filters = Filters(), sort: str | None = None,
                descending: bool | None = None, limit: int = 100, offset: int = 0, memo: dict | None = None) -> dict:
    """One list, filtered, sorted and cut to ``limit`` rows from ``offset``:
    ``{"list", "title", "about", "columns", "sort", "descending", "total", "rows"}``.
    ``memo`` keeps each (list, filters)'s columns, so another order or page of the same list
    only sorts."""
    spec = list_spec(name)
    sort = sort or spec.sort
    if sort not in spec.columns:
        raise KeyError(f"list {name!r} cannot be sorted by {sort!r}: its columns are {', '.join(spec.columns)}")
    descending = spec.descending if descending is None else descending
    if memo is None:
        cols = spec.build(ctx, filters)
    else:
        if (name, filters) not in memo:
            if len(memo) >= MEMO_LISTS:
                memo.pop(next(iter(memo)))
            memo[name, filters] = spec.build(ctx, filters)
        cols = memo[name, filters]
    total = len(cols[spec.columns[0]])
    order = sort_order(cols, sort, descending, tie=spec.columns[0])[offset:offset + limit]
    rows = [{c: _cell(cols[c][i]) for c in spec.columns} for i in order]
    return {"list": name, "title": spec.title, "about": spec.about, "columns": list(spec.columns), "sort": sort,
            "descending": descending, "total": total, "offset": offset, "limit": limit, "rows": rows}


# --------------------------------------------------------------------------- file hashes
def file_hashes(samples: Sequence, cache_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """sha256 of each post's image file (post id -> hex digest; posts without a file are left
    out). With ``cache_dir``, digests are kept in ``<cache_dir>/explore/file_hashes.json``
    by path, size and modification time, and only new or changed files are read again."""
    store = Path(cache_dir) / "explore" / "file_hashes.json" if cache_dir else None
    known = {}
    if store is not None and store.is_file():
        try:
            known = json.loads(store.read_text())
        except (OSError, ValueError):
            known = {}
    out, fresh = {}, {}
    for s in samples:
        path = getattr(s, "image", None)
        if not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"
        digest = known.get(key)
        if digest is None:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digest = h.hexdigest()
        fresh[key] = digest
        out[s.id] = digest
    if store is not None and fresh != known:
        from data.files import write_atomically

        store.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(store, lambda f: f.write(json.dumps(fresh).encode()))
    return out


# --------------------------------------------------------------------------- the page
def explorer_context(explorer, name: str, filters: Filters) -> TriageContext:
    """The :class:`TriageContext` of the explorer's graphs (A); the run's predictions are
    made (and cached) only for the wrong-predictions list, and only for the posts that can
    enter it (:func:`wrong_candidates`: the filters' posts whose neighbours disagree)."""
    from .predictions import gold_of, predictions, table_of

    table = table_of(explorer)
    ctx = TriageContext(explorer.graphs, table)
    if name == "duplicates":
        cache = explorer.__dict__.setdefault("_file_hashes", {})
        if "all" not in cache:
            cache["all"] = file_hashes(list(explorer.samples.values()), explorer.cache_dir)
        ctx.hashes = cache["all"]
    if name == "wrong":
        if explorer.retagger is None:
            from data.errors import UserError

            raise UserError("the list of wrong predictions", "the explorer was started without a run",
                            "start it with --run RUN")
        ids = [table.post_ids[i] for i in wrong_candidates(table, explorer.graphs, filters).tolist()]
        ctx.predictions, ctx.gold = predictions(explorer, ids), gold_of(explorer)
    return ctx


def triage_page_data(explorer, name: str = "low_agreement", filters: Filters = Filters(), sort: str | None = None,
                     descending: bool | None = None, limit: int = 100, offset: int = 0) -> dict:
    """One triage list of the explorer, with the choices its filters offer."""
    ctx = explorer_context(explorer, name, filters)
    out = triage_list(ctx, name, filters, sort, descending, limit, offset,
                      memo=explorer.__dict__.setdefault("_triage_lists", {}))
    out["filters"] = {"split": filters.split or "", "relation": filters.relation or "", "type": filters.etype or "",
                      "kind": filters.kind or ""}
    out["choices"] = {"split": ctx.table.split_names, "relation": list(explorer.graphs.tables),
                      "type": list(ctx.table.type_names), "kind": ctx.table.kind_names}
    out["lists"] = {k: v.title for k, v in LISTS.items()}
    out["has_run"] = explorer.retagger is not None
    out["thumbs"] = bool(explorer.image_folders())
    return out


from fastapi import APIRouter, Query, Request  # noqa: E402

router = APIRouter()


@router.get("/triage")
def triage_page(request: Request, name: str = Query("low_agreement", alias="list"), split: str = "", relation: str = "",
                type: str = "", kind: str = "", sort: str = "", order: str = "", limit: int = 100,
                offset: int = 0):
    """A triage list: ``?list=NAME&split=&relation=&type=&kind=&sort=COLUMN&order=asc|desc
    &limit=&offset=&format=json``."""
    from .pagekit import BadParameter, base_of, checked, linker, respond

    if order not in ("", "asc", "desc"):
        raise BadParameter("order", f"{order!r} is neither asc nor desc")
    if limit < 1 or offset < 0:
        raise BadParameter("limit/offset", f"limit must be >= 1 and offset >= 0, found {limit} and {offset}")
    filters = Filters(split or None, relation or None, type or None, kind or None)
    data = checked(triage_page_data, request.app.state.explorer, name, filters, sort or None,
                   None if not order else order == "desc", limit, offset, what=f"triage list {name!r}")
    params = {"list": name, "split": split, "relation": relation, "type": type, "kind": kind, "sort": sort,
              "order": order, "limit": limit if limit != 100 else "", "offset": offset or ""}
    return respond(request, "triage.html", data, link=linker(base_of(request) + "/triage", params))
