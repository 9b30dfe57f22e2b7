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


def _post_cells(t: PostTable, i: int) -> dict:
    ts = t.types[i]
    return {"post": t.post_ids[i], "split": t.splits[i], "kind": t.kinds[i],
            "types": " ".join(sorted(ts)) if ts else ""}


# --------------------------------------------------------------------------- the lists
def no_neighbours(ctx: TriageContext, filters: Filters) -> list[dict]:
    """Posts with no neighbour in a relation (none above the threshold, or, for ``intra``
    and ``tags``, no image to search with)."""
    t, g = ctx.table, ctx.graphs
    sel = t.select(filters.split, filters.etype, filters.kind)
    out = []
    for rel in _relations(g, filters):
        empty = ~(g.tables[rel].rows >= 0).any(1)
        for i in np.nonzero(empty & sel)[0]:
            reason = "no image" if rel != "inter" and t.image_rows[i] < 0 else "none above the threshold"
            out.append({**_post_cells(t, i), "relation": rel, "reason": reason})
    return out


def low_agreement(ctx: TriageContext, filters: Filters) -> list[dict]:
    """Posts (with an entity and a labelled neighbour) and the share of their neighbours
    sharing one of their entity types, lowest first."""
    t, g = ctx.table, ctx.graphs
    sel = t.select(filters.split, filters.etype, filters.kind)
    out = []
    for rel in _relations(g, filters):
        rows = g.tables[rel].rows
        hits, labelled = neighbour_hits(t, rows)
        share = agreement_per_post(t, rows)
        for i in np.nonzero(sel & ~np.isnan(share))[0]:
            out.append({**_post_cells(t, i), "relation": rel, "agreement": round(float(share[i]), 4),
                        "sharing": int(hits[i]), "neighbours": int(labelled[i])})
    return out


def hubs(ctx: TriageContext, filters: Filters) -> list[dict]:
    """Images and how many of the selected posts retrieved them, per relation; ``agreement``
    is the share of those posts that share an entity type with the image's post."""
    t, g = ctx.table, ctx.graphs
    sel = t.select(filters.split, filters.etype, filters.kind)
    out = []
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
        for row in np.nonzero(count)[0]:
            owner = t.row_owner[row]
            out.append({"image": g.ids[row], "relation": rel, "retrieved_by": int(count[row]),
                        "post": t.post_ids[owner] if owner >= 0 else "",
                        "types": " ".join(t.names(int(t.row_mask[row]))),
                        "agreement": round(float(agree[row] / n_lab[row]), 4) if n_lab[row] else None})
    return out


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


def duplicates(ctx: TriageContext, filters: Filters) -> list[dict]:
    """:func:`duplicate_groups` holding at least one post that matches the filters."""
    sel = ctx.table.select(filters.split, filters.etype, filters.kind)
    return [{k: v for k, v in g.items() if k != "_members"} for g in duplicate_groups(ctx)
            if sel[g["_members"]].any()]


def wrong_predictions(ctx: TriageContext, filters: Filters, max_agreement: float = 0.5) -> list[dict]:
    """Posts whose predicted entities differ from the gold ones while at most
    ``max_agreement`` of their labelled neighbours share a gold type with them;
    ``back_the_error`` counts the neighbours sharing a predicted type the gold lacks."""
    if ctx.predictions is None or ctx.gold is None:
        raise ValueError("this list needs a run's predictions (start the explorer with --run)")
    from ..agreement import entity_types

    t, g = ctx.table, ctx.graphs
    sel = t.select(filters.split, filters.etype, filters.kind)
    out = []
    for rel in _relations(g, filters):
        rows = g.tables[rel].rows
        share = agreement_per_post(t, rows)
        for i in np.nonzero(sel & ~np.isnan(share) & (np.nan_to_num(share, nan=1.0) <= max_agreement))[0]:
            p = t.post_ids[i]
            pred, gold = ctx.predictions.get(p), ctx.gold.get(p)
            f1 = post_f1(gold, pred)
            if math.isnan(f1) or f1 == 1.0:
                continue
            wrong_types = (entity_types(pred) or frozenset()) - (t.types[i] or frozenset())
            mask = sum(t.bit(x) for x in wrong_types)
            backing = 0
            if mask:
                hits, _ = neighbour_hits(t, rows[i:i + 1], query_mask=np.asarray([mask]))
                backing = int(hits[0])
            out.append({**_post_cells(t, i), "relation": rel, "predicted": " ".join(sorted(entity_types(pred) or ())),
                        "f1": round(f1, 4), "agreement": round(float(share[i]), 4), "back_the_error": backing})
    return out


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


def triage_list(ctx: TriageContext, name: str, filters: Filters = Filters(), sort: str | None = None,
                descending: bool | None = None, limit: int = 100, offset: int = 0) -> dict:
    """One list, filtered, sorted and cut to ``limit`` rows from ``offset``:
    ``{"list", "title", "about", "columns", "sort", "descending", "total", "rows"}``."""
    spec = list_spec(name)
    sort = sort or spec.sort
    if sort not in spec.columns:
        raise KeyError(f"list {name!r} cannot be sorted by {sort!r}: its columns are {', '.join(spec.columns)}")
    descending = spec.descending if descending is None else descending
    rows = sort_rows(spec.build(ctx, filters), sort, descending, tie=spec.columns[0])
    return {"list": name, "title": spec.title, "about": spec.about, "columns": list(spec.columns), "sort": sort,
            "descending": descending, "total": len(rows), "offset": offset, "limit": limit,
            "rows": rows[offset:offset + limit]}


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
    made (and cached) only for the wrong-predictions list, over the posts the filters select."""
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
        sel = table.select(filters.split, filters.etype, filters.kind) & table.post_known
        ids = [table.post_ids[i] for i in np.nonzero(sel)[0]]
        ctx.predictions, ctx.gold = predictions(explorer, ids), gold_of(explorer)
    return ctx


def triage_page_data(explorer, name: str = "low_agreement", filters: Filters = Filters(), sort: str | None = None,
                     descending: bool | None = None, limit: int = 100, offset: int = 0) -> dict:
    """One triage list of the explorer, with the choices its filters offer."""
    ctx = explorer_context(explorer, name, filters)
    out = triage_list(ctx, name, filters, sort, descending, limit, offset)
    out["filters"] = {"split": filters.split or "", "relation": filters.relation or "", "type": filters.etype or "",
                      "kind": filters.kind or ""}
    out["choices"] = {"split": ctx.table.split_names, "relation": list(explorer.graphs.tables),
                      "type": list(ctx.table.type_names), "kind": ctx.table.kind_names}
    out["lists"] = {k: v.title for k, v in LISTS.items()}
    out["has_run"] = explorer.retagger is not None
    return out


from fastapi import APIRouter, Query, Request  # noqa: E402

router = APIRouter()


@router.get("/triage")
def triage_page(request: Request, name: str = Query("low_agreement", alias="list"), split: str = "", relation: str = "",
                type: str = "", kind: str = "", sort: str = "", order: str = "", limit: int = 100,
                offset: int = 0):
    """A triage list: ``?list=NAME&split=&relation=&type=&kind=&sort=COLUMN&order=asc|desc
    &limit=&offset=&format=json``."""
    from .pagekit import BadParameter, checked, linker, respond

    if order not in ("", "asc", "desc"):
        raise BadParameter("order", f"{order!r} is neither asc nor desc")
    if limit < 1 or offset < 0:
        raise BadParameter("limit/offset", f"limit must be >= 1 and offset >= 0, found {limit} and {offset}")
    filters = Filters(split or None, relation or None, type or None, kind or None)
    data = checked(triage_page_data, request.app.state.explorer, name, filters, sort or None,
                   None if not order else order == "desc", limit, offset, what=f"triage list {name!r}")
    params = {"list": name, "split": split, "relation": relation, "type": type, "kind": kind, "sort": sort,
              "order": order, "limit": limit if limit != 100 else "", "offset": offset or ""}
    return respond(request, "triage.html", data, link=linker("/triage", params))
