"""A/B of two graph settings: what changing k, the threshold, the pool, the inter-modal
strategy or the index does to each post's neighbours, their label agreement and, given a run
for each, the post's F1.

The two graphs hold the same posts; neighbours are compared by image id, so graphs over two
different indexes compare too. Per post and relation, the overlap of the two neighbour sets
is their Jaccard index ``|A & B| / |A | B|`` (1.0 when both are empty). A post's label
agreement pools its relations (shared-type neighbours over labelled neighbours, as
:func:`retrieval.explore.tables.neighbour_hits` counts them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .tables import PostTable, micro_f1, neighbour_hits, post_f1
from .triage import Filters, sort_rows


def same_id_codes(ids_a: list[str], ids_b: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of two id lists such that equal ids get equal codes:
    ``(codes of ids_a, codes of ids_b)``."""
    if ids_a is ids_b or ids_a == ids_b:
        r = np.arange(len(ids_a), dtype=np.int64)
        return r, r
    pos = {i: r for r, i in enumerate(ids_a)}
    extra: dict[str, int] = {}
    cb = np.asarray([pos[i] if i in pos else len(ids_a) + extra.setdefault(i, len(extra)) for i in ids_b],
                    dtype=np.int64)
    return np.arange(len(ids_a), dtype=np.int64), cb


def jaccard_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the Jaccard index of two sets of non-negative codes (-1 = padding; the codes
    within one row are distinct). Pure.

    Shapes: ``a`` (n, ka), ``b`` (n, kb) -> (n,) float; 1.0 where both rows are empty."""
    a, b = np.asarray(a), np.asarray(b)
    va, vb = a >= 0, b >= 0
    both = ((a[:, :, None] == b[:, None, :]) & va[:, :, None] & vb[:, None, :]).any(2).sum(1)   # (n,)
    union = va.sum(1) + vb.sum(1) - both
    out = np.ones(len(a))
    ok = union > 0
    out[ok] = both[ok] / union[ok]
    return out


def _codes(rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.where(rows >= 0, codes[np.where(rows >= 0, rows, 0)], -1)


@dataclass
class Side:
    """One setting of an A/B: its graphs, their post table and (optionally) a run's
    predictions (post id -> BIO tags)."""

    graphs: object
    table: PostTable
    predictions: dict | None = None


def settings_diff(a, b) -> dict:
    """The settings (and index) that differ between two graphs: name -> (A, B)."""
    da, db = a.settings.as_dict(), b.settings.as_dict()
    out = {k: (da[k], db[k]) for k in da if da[k] != db.get(k)}
    ia, ib = (a.manifest or {}).get("index_path"), (b.manifest or {}).get("index_path")
    if ia != ib:
        out["index"] = (ia, ib)
    return out


def compare(a: Side, b: Side, gold: dict | None = None) -> dict:
    """Per post (in A's order): the Jaccard overlap of its neighbours per relation built in
    both, its pooled label agreement under A and B and, with both sides' predictions and
    ``gold`` (post id -> tags), its F1 under A and B.

    Returns ``{"relations", "rows": [...], "summary": {...}, "settings": settings_diff}``.
    """
    ga, gb = a.graphs, b.graphs
    missing = [p for p in ga.post_ids if p not in gb.post_index]
    if missing:
        raise ValueError(f"{len(missing)} post(s) of A are not in B's graphs, e.g. {missing[:3]}: "
                         "A/B compares two settings over the same posts")
    order = np.asarray([gb.post_index[p] for p in ga.post_ids], dtype=np.int64)
    rels = [r for r in ga.tables if r in gb.tables]
    ca, cb = same_id_codes(list(ga.ids), list(gb.ids))
    t = a.table
    n = len(t)
    jac, agree = {}, {}
    hits = {"a": np.zeros(n), "b": np.zeros(n)}
    lab = {"a": np.zeros(n), "b": np.zeros(n)}
    for rel in rels:
        ra, rb = ga.tables[rel].rows, gb.tables[rel].rows[order]
        jac[rel] = jaccard_rows(_codes(ra, ca), _codes(rb, cb))
        h, l = neighbour_hits(t, ra)
        hb, lb = neighbour_hits(b.table, gb.tables[rel].rows)
        hb, lb = hb[order], lb[order]
        hits["a"] += h
        lab["a"] += l
        hits["b"] += hb
        lab["b"] += lb
        agree[rel] = (_share(h, l, t), _share(hb, lb, t))
    ag_a, ag_b = _share(hits["a"], lab["a"], t), _share(hits["b"], lab["b"], t)
    with_f1 = a.predictions is not None and b.predictions is not None and gold is not None
    # each column rounded at once (Python's round, as one value at a time would be)
    columns = {**{f"jaccard_{rel}": _rounded(jac[rel]) for rel in rels},
               "jaccard": _rounded(np.mean(np.stack([jac[rel] for rel in rels]), 0) if rels else np.full(n, np.nan)),
               "agreement_a": _rounded(ag_a), "agreement_b": _rounded(ag_b), "delta_agreement": _rounded(ag_b - ag_a)}
    for rel in rels:
        columns[f"agreement_{rel}_a"], columns[f"agreement_{rel}_b"] = _rounded(agree[rel][0]), _rounded(agree[rel][1])
    names = list(columns)
    values = list(zip(*columns.values())) if names else [()] * n
    splits, kinds = t.splits.tolist(), t.kinds.tolist()
    rows = []
    for i, p in enumerate(ga.post_ids):
        ts = t.types[i]
        row = {"post": p, "split": splits[i], "kind": kinds[i], "types": " ".join(sorted(ts)) if ts else "",
               **dict(zip(names, values[i]))}
        if with_f1:
            fa, fb = post_f1(gold.get(p), a.predictions.get(p)), post_f1(gold.get(p), b.predictions.get(p))
            row.update({"f1_a": _r(fa), "f1_b": _r(fb), "delta_f1": _r(fb - fa)})
        rows.append(row)
    summary = {"posts": n, "relations": {}}
    for rel in rels:
        summary["relations"][rel] = {"jaccard": float(np.mean(jac[rel])) if n else float("nan"),
                                     "changed": int((jac[rel] < 1).sum()),
                                     "agreement_a": _mean(agree[rel][0]), "agreement_b": _mean(agree[rel][1])}
    summary["agreement_a"], summary["agreement_b"] = _mean(ag_a), _mean(ag_b)
    if with_f1:
        ids = [p for p in ga.post_ids if gold.get(p) is not None]
        summary["f1_a"] = micro_f1([(gold[p], a.predictions[p]) for p in ids if p in a.predictions])
        summary["f1_b"] = micro_f1([(gold[p], b.predictions[p]) for p in ids if p in b.predictions])
    return {"relations": rels, "rows": rows, "summary": summary, "settings": settings_diff(ga, gb)}


CHANGE_ORDERS = {"jaccard": ("jaccard", False), "agreement": ("abs_delta_agreement", True),
                 "f1": ("abs_delta_f1", True)}
"""How "most changed" is measured -> (row key, descending)."""


def most_changed(result: dict, by: str = "jaccard", filters: Filters = Filters(), limit: int = 50,
                 offset: int = 0) -> dict:
    """The rows of :func:`compare` that changed most: lowest neighbour overlap (``by=
    "jaccard"``; with ``filters.relation``, that relation's), largest change in agreement, or
    in F1. Rows whose measure is unknown (no entity, no run) come last."""
    if by not in CHANGE_ORDERS:
        raise KeyError(f"unknown order {by!r}: use one of {', '.join(CHANGE_ORDERS)}")
    if by == "f1" and result["rows"] and "delta_f1" not in result["rows"][0]:
        raise ValueError("the change in F1 needs a run for each side (--run and --b-run)")
    if filters.relation and filters.relation not in result["relations"]:
        raise KeyError(f"relation {filters.relation!r} is not in both graphs: {', '.join(result['relations'])}")
    key, desc = CHANGE_ORDERS[by]
    rows = []
    for r in result["rows"]:
        if filters.split and r["split"] != filters.split or filters.kind and r["kind"] != filters.kind:
            continue
        if filters.etype and filters.etype not in r["types"].split():
            continue
        r = dict(r)
        if filters.relation:
            r["jaccard"] = r[f"jaccard_{filters.relation}"]
            a, b = r[f"agreement_{filters.relation}_a"], r[f"agreement_{filters.relation}_b"]
            r["delta_agreement"] = None if a is None or b is None else round(b - a, 4)
        r["abs_delta_agreement"] = None if r["delta_agreement"] is None else abs(r["delta_agreement"])
        if "delta_f1" in r:
            r["abs_delta_f1"] = None if r["delta_f1"] is None else abs(r["delta_f1"])
        rows.append(r)
    rows = sort_rows(rows, key, desc, tie="post")
    return {"by": by, "total": len(rows), "offset": offset, "limit": limit, "rows": rows[offset:offset + limit]}


def _share(h, l, t: PostTable) -> np.ndarray:
    out = np.full(len(h), np.nan)
    ok = t.post_known & (t.post_mask != 0) & (l > 0)
    out[ok] = h[ok] / l[ok]
    return out


def _rounded(x: np.ndarray) -> list:
    """:func:`_r` of each value of ``x``."""
    return [None if v != v else round(v, 4) for v in np.asarray(x, dtype=float).tolist()]


def _r(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 4)


def _mean(x: np.ndarray) -> float | None:
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else None


# --------------------------------------------------------------------------- the pages
def explorer_compare(explorer, filters: Filters = Filters()) -> dict:
    """:func:`compare` of the explorer's two settings (kept per set of posts whose
    predictions it holds); with a run for each side, the posts the filters select are
    re-tagged for the F1 (cached, see :mod:`retrieval.explore.predictions`)."""
    from data.errors import UserError

    from .predictions import TooManyToTag, gold_of, predictions, table_of

    if explorer.graphs_b is None:
        raise UserError("A/B", "the explorer was started with one graph setting",
                        "give B's with --b-k, --b-threshold, --b-pool, --b-inter or --b-index")
    runs = explorer.retagger is not None and explorer.retagger_b is not None
    key = (filters.split, filters.etype, filters.kind) if runs else None
    memo = explorer.__dict__.setdefault("_ab", {})
    if key not in memo:
        ta = table_of(explorer, "a")
        pa = pb = gold = None
        note = None
        if runs:
            sel = ta.select(filters.split, filters.etype, filters.kind) & ta.post_known
            ids = [ta.post_ids[i] for i in np.nonzero(sel)[0]]
            try:
                pa, pb, gold = predictions(explorer, ids, "a"), predictions(explorer, ids, "b"), gold_of(explorer)
            except TooManyToTag as e:
                pa = pb = gold = None
                note = f"no F1: {e}"
        memo[key] = compare(Side(explorer.graphs, ta, pa), Side(explorer.graphs_b, table_of(explorer, "b"), pb), gold)
        memo[key]["note"] = note
    return memo[key]


def ab_page_data(explorer, by: str = "jaccard", filters: Filters = Filters(), limit: int = 50, offset: int = 0) -> dict:
    """The A/B page: what differs between the settings, the summary, and the most changed posts."""
    from .predictions import table_of

    res = explorer_compare(explorer, filters)
    changed = most_changed(res, by, filters, limit, offset)
    t = table_of(explorer)
    return {"settings": {k: list(v) for k, v in res["settings"].items()}, "summary": res["summary"],
            "relations": res["relations"], **changed,
            "filters": {"split": filters.split or "", "relation": filters.relation or "", "type": filters.etype or "",
                        "kind": filters.kind or ""},
            "choices": {"split": t.split_names, "relation": res["relations"], "type": list(t.type_names),
                        "kind": t.kind_names},
            "orders": list(CHANGE_ORDERS), "has_f1": "f1_a" in res["summary"], "note": res.get("note")}


def pair_data(explorer, post_id: str) -> dict:
    """One post under both settings: its A/B row and, per side, its card's data
    (:func:`retrieval.explore.card.card_data`)."""
    from .card import card_data

    explorer.sample(post_id)
    res = explorer_compare(explorer)
    row = next(r for r in res["rows"] if r["post"] == post_id)
    return {"post": post_id, "row": row, "settings": {k: list(v) for k, v in res["settings"].items()},
            "sides": {w: card_data(explorer, post_id, which=w) for w in ("a", "b")}}


from fastapi import APIRouter, Request  # noqa: E402

router = APIRouter()


@router.get("/ab")
def ab_page(request: Request, by: str = "jaccard", split: str = "", relation: str = "", type: str = "",
            kind: str = "", limit: int = 50, offset: int = 0):
    """Most changed posts between the two settings: ``?by=jaccard|agreement|f1&split=&relation=&type=&kind=
    &limit=&offset=&format=json``."""
    from .pagekit import BadParameter, base_of, checked, linker, respond

    if limit < 1 or offset < 0:
        raise BadParameter("limit/offset", f"limit must be >= 1 and offset >= 0, found {limit} and {offset}")
    filters = Filters(split or None, relation or None, type or None, kind or None)
    data = checked(ab_page_data, request.app.state.explorer, by, filters, limit, offset, what="A/B")
    params = {"by": by, "split": split, "relation": relation, "type": type, "kind": kind,
              "limit": limit if limit != 50 else "", "offset": offset or ""}
    return respond(request, "ab.html", data, link=linker(base_of(request) + "/ab", params))


@router.get("/ab/{post_id:path}")
def ab_pair(request: Request, post_id: str):
    """One post's card under setting A beside its card under setting B."""
    from urllib.parse import quote

    from .render import post_link
    from .pagekit import base_of, respond

    base = base_of(request)
    return respond(request, "ab_pair.html", pair_data(request.app.state.explorer, post_id), exported=False,
                   thumb=lambda i: base + "/thumb/" + quote(i, safe=""), link_a=lambda p: post_link(p, "a", base),
                   link_b=lambda p: post_link(p, "b", base))
