"""A 2-D map of the collection: each post with an image is a point placed by a projection of
its image vector (PCA by default; UMAP when the ``umap`` extra is installed), coloured by
entity type, kind, split or, given a run, whether its prediction is right; a click opens its
card. The edges are the real neighbour lists of one relation (post -> the post owning each
neighbour image), never distances in the projection, so a long edge is a neighbour the
projection puts far away.

Large collections are drawn as a seeded sample of posts plus the posts their neighbours
belong to, so that the sample's edges are drawn whole (``max_points`` in all).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .tables import PostTable

FIT_ROWS = 20_000
"""At most this many vectors (a seeded sample) fit the projection; every drawn post is projected."""
PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#222222", "#ee8866",
           "#99ddff")


def _one_blas_thread():
    """A context limiting BLAS to one thread (threadpoolctl, installed with scikit-learn), or
    a no-op without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def pca_fit(fit: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """``(mean (d,), axes (d, 2), share of variance of each axis)``: the two principal axes
    of ``fit`` (m, d), each axis's sign fixed so its largest loading is positive. Pure."""
    fit = np.asarray(fit, dtype=np.float64)
    mean = fit.mean(0)
    with _one_blas_thread():                          # a 512 x 512 problem: threads only wait on busy cores
        c = np.atleast_2d(np.cov((fit - mean).T)) if len(fit) > 1 else np.zeros((fit.shape[1], fit.shape[1]))
        w, v = np.linalg.eigh(c)                                        # ascending
    order = np.argsort(w)[::-1][:2]
    axes = v[:, order]                                                  # (d, <=2)
    if axes.shape[1] < 2:
        axes = np.pad(axes, ((0, 0), (0, 2 - axes.shape[1])))
    sign = np.sign(axes[np.abs(axes).argmax(0), np.arange(2)])
    axes = axes * np.where(sign == 0, 1, sign)
    total = float(w.sum())
    explained = [float(w[i] / total) if total > 0 else 0.0 for i in order] + [0.0] * (2 - len(order))
    return mean, axes, explained


def pca_2d(fit: np.ndarray, x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """``x`` (n, d) projected on the two principal axes of ``fit`` -> ((n, 2), explained). Pure."""
    mean, axes, explained = pca_fit(fit)
    return (np.asarray(x, np.float64) - mean) @ axes, explained


def umap_fit(fit: np.ndarray, seed: int = 0):
    """A UMAP model (the ``umap`` extra: ``pip install 'rgcn-mner[umap]'``) fitted on ``fit``."""
    try:
        import umap
    except ImportError:
        raise ValueError("the UMAP projection needs the umap extra: pip install 'rgcn-mner[umap]' "
                         "(or use method=pca)") from None
    return umap.UMAP(n_components=2, random_state=seed, metric="cosine").fit(np.asarray(fit, np.float32))


def umap_2d(fit: np.ndarray, x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """``x`` placed by a UMAP model fitted on ``fit``."""
    return umap_fit(fit, seed).transform(np.asarray(x, np.float32)), []


PROJECTIONS: dict[str, Callable] = {"pca": pca_2d, "umap": umap_2d}
"""Projection name -> ``(fit vectors, vectors, seed) -> ((n, 2) points, explained variance)``."""

COLOURINGS = ("type", "kind", "split", "error")


def available_projections() -> list[str]:
    """The projections that can run here (UMAP only when installed)."""
    import importlib.util

    return [m for m in PROJECTIONS if m != "umap" or importlib.util.find_spec("umap") is not None]


def pick_points(table: PostTable, graphs, relation: str, max_points: int, seed: int = 0,
                eligible: np.ndarray | None = None) -> np.ndarray:
    """Positions of the posts to draw: every eligible post (default: those with an image)
    when they are at most ``max_points``; else a seeded sample and the owners of its
    neighbours in ``relation``, ``max_points`` in all."""
    eligible = np.nonzero(table.image_rows >= 0)[0] if eligible is None else eligible
    if len(eligible) <= max_points:
        return eligible
    rows = graphs.tables[relation].rows
    k = rows.shape[1]
    rng = np.random.default_rng(seed)
    seeds = rng.choice(eligible, size=max(1, max_points // (1 + k)), replace=False)
    ok = np.zeros(len(table), bool)
    ok[eligible] = True
    owners = table.row_owner[np.where(rows[seeds] >= 0, rows[seeds], 0)][rows[seeds] >= 0]
    owners = owners[(owners >= 0) & ok[owners]]
    picked = list(dict.fromkeys([*seeds.tolist(), *owners.tolist()]))[:max_points]
    return np.asarray(sorted(picked), dtype=np.int64)


def knn_edges(table: PostTable, graphs, relation: str, drawn: np.ndarray) -> list[tuple[int, int]]:
    """Edges ``(a, b)`` between drawn positions (indices into ``drawn``): post ``a``'s
    ``relation`` neighbour image belongs to post ``b``. Pure over the graphs' lists."""
    where = {int(p): i for i, p in enumerate(drawn)}
    rows = graphs.tables[relation].rows[drawn]
    out = []
    for a, rr in enumerate(rows):
        for r in rr[rr >= 0]:
            o = int(table.row_owner[r])
            b = where.get(o)
            if b is not None and b != a:
                out.append((a, b))
    return out


def colour_keys(table: PostTable, drawn: np.ndarray, colour: str, predictions: dict | None = None,
                gold: dict | None = None) -> list[str]:
    """The legend key of each drawn post: its entity type (``none``, the type, or
    ``several``), kind, split, or (given predictions) ``right``/``wrong``/``not tagged``."""
    if colour not in COLOURINGS:
        raise KeyError(f"unknown colouring {colour!r}: use one of {', '.join(COLOURINGS)}")
    if colour == "error" and predictions is None:
        raise ValueError("colouring by error needs a run's predictions (start the explorer with --run)")
    from data.spans import get_spans

    out = []
    for i in drawn:
        p = table.post_ids[i]
        if colour == "type":
            ts = table.types[i]
            out.append("unlabelled" if ts is None else "none" if not ts else next(iter(ts)) if len(ts) == 1
                       else "several")
        elif colour == "kind":
            out.append(table.kinds[i] or "(no kind)")
        elif colour == "split":
            out.append(table.splits[i])
        else:
            g, pr = (gold or {}).get(p), predictions.get(p)
            out.append("not tagged" if g is None or pr is None else
                       "right" if set(get_spans(g)) == set(get_spans(pr)) else "wrong")
    return out


def atlas(table: PostTable, graphs, relation: str | None = None, colour: str = "type", method: str = "pca",
          max_points: int = 2000, seed: int = 0, split: str | None = None, predictions: dict | None = None,
          gold: dict | None = None, projected: dict | None = None) -> dict:
    """The map's data: points (``post``, ``x``, ``y`` in [0, 1], ``key``, ``split``, ``kind``,
    ``types``), ``edges`` (pairs of point indices from the ``relation`` lists), the legend,
    and what was left out. ``projected`` memoises the fitted projection per method."""
    relation = relation or ("intra" if "intra" in graphs.tables else next(iter(graphs.tables)))
    if relation not in graphs.tables:
        raise KeyError(f"relation {relation!r} was not built: these graphs have {', '.join(graphs.tables)}")
    if method not in PROJECTIONS:
        raise KeyError(f"unknown projection {method!r}: use one of {', '.join(PROJECTIONS)}")
    if colour not in COLOURINGS:
        raise KeyError(f"unknown colouring {colour!r}: use one of {', '.join(COLOURINGS)}")
    with_image = table.image_rows >= 0
    eligible = np.nonzero(with_image & (table.splits == split if split else True))[0]
    drawn = pick_points(table, graphs, relation, max_points, seed, eligible)
    keys = colour_keys(table, drawn, colour, predictions, gold)
    xy, explained = _project(table, graphs, method, seed, drawn, projected)
    lo, hi = (xy.min(0), xy.max(0)) if len(xy) else (np.zeros(2), np.ones(2))
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    unit = (xy - lo) / span
    legend = {k: PALETTE[j % len(PALETTE)] for j, k in enumerate(sorted(set(keys)))}
    points = []
    for j, i in enumerate(drawn):
        ts = table.types[i]
        points.append({"post": table.post_ids[i], "x": round(float(unit[j, 0]), 5), "y": round(float(unit[j, 1]), 5),
                       "key": keys[j], "split": table.splits[i], "kind": table.kinds[i],
                       "types": " ".join(sorted(ts)) if ts else ""})
    return {"relation": relation, "colour": colour, "method": method, "points": points,
            "edges": [list(e) for e in knn_edges(table, graphs, relation, drawn)], "legend": legend,
            "explained": explained, "eligible": int(len(eligible)), "drawn": int(len(drawn)),
            "without_image": int((~with_image & (table.splits == split if split else True)).sum())}


def _project(table: PostTable, graphs, method: str, seed: int, drawn: np.ndarray, projected: dict | None):
    """The 2-D points of ``drawn``: the projection is fitted once per method and seed on a
    seeded sample (at most :data:`FIT_ROWS`) of the posts' image vectors."""
    memo = projected if projected is not None else {}
    feats = graphs.node_features
    feats = feats.numpy() if hasattr(feats, "numpy") else np.asarray(feats)
    if (method, seed) not in memo:
        rows_all = np.unique(table.image_rows[table.image_rows >= 0])
        rng = np.random.default_rng(seed)
        fit_rows = rows_all if len(rows_all) <= FIT_ROWS else np.sort(rng.choice(rows_all, FIT_ROWS, replace=False))
        fit = feats[fit_rows]
        if method == "pca":
            mean, axes, explained = pca_fit(fit) if len(fit) else (0.0, np.zeros((feats.shape[1], 2)), [0.0, 0.0])
            memo[method, seed] = (lambda x: (np.asarray(x, np.float64) - mean) @ axes, explained)
        else:
            model = umap_fit(fit, seed)
            memo[method, seed] = (lambda x: model.transform(np.asarray(x, np.float32)), [])
    project, explained = memo[method, seed]
    x = feats[table.image_rows[drawn]]
    xy = project(x) if len(x) else np.zeros((0, 2))
    return np.asarray(xy, dtype=np.float64).reshape(-1, 2), explained


def atlas_svg(data: dict, size: int = 640, pad: int = 12, base: str = "") -> str:
    """The map as SVG: edges (``line.edge``, ``data-a``/``data-b`` point indices) under points
    (``circle`` with ``data-i``, ``data-post``, ``data-key`` and a tooltip), each point a link
    to its card (under ``base``, the path the app is mounted under)."""
    from html import escape
    from urllib.parse import quote

    side = size + 2 * pad
    pts = [(pad + p["x"] * size, pad + (1 - p["y"]) * size) for p in data["points"]]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}" viewBox="0 0 {side} {side}" '
           f'role="img"><title>posts placed by {escape(data["method"])}</title><g id="edges">']
    out += [f'<line class="edge" data-a="{a}" data-b="{b}" x1="{pts[a][0]:.1f}" y1="{pts[a][1]:.1f}" '
            f'x2="{pts[b][0]:.1f}" y2="{pts[b][1]:.1f}"/>' for a, b in data["edges"]]
    out.append('</g><g id="points">')
    for i, (p, (x, y)) in enumerate(zip(data["points"], pts)):
        tip = f"{p['post']} ({p['split']}{', ' + p['kind'] if p['kind'] else ''}): {p['types'] or 'no entity'}"
        out.append(f'<a href="{base}/post/{quote(p["post"], safe="")}">'
                   f'<circle data-i="{i}" data-post="{escape(p["post"])}" '
                   f'data-key="{escape(p["key"])}" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{data["legend"][p["key"]]}">'
                   f"<title>{escape(tip)}</title></circle></a>")
    out.append("</g></svg>")
    return "".join(out)


# --------------------------------------------------------------------------- the page
def atlas_page_data(explorer, relation: str | None = None, colour: str = "type", method: str = "pca",
                    max_points: int = 2000, split: str | None = None, seed: int = 0) -> dict:
    from .predictions import gold_of, predictions, table_of

    table = table_of(explorer)
    if split and split not in table.split_names:
        raise KeyError(f"no split {split!r}: the splits are {', '.join(table.split_names)}")
    if method not in available_projections():
        if method in PROJECTIONS:
            raise ValueError("the UMAP projection needs the umap extra: pip install 'rgcn-mner[umap]' (or use pca)")
        raise KeyError(f"unknown projection {method!r}: use one of {', '.join(PROJECTIONS)}")
    preds = gold = None
    if colour == "error":
        if explorer.retagger is None:
            raise ValueError("colouring by error needs a run: start the explorer with --run RUN")
        relation_ = relation or ("intra" if "intra" in explorer.graphs.tables else next(iter(explorer.graphs.tables)))
        eligible = np.nonzero((table.image_rows >= 0) & (table.splits == split if split else True))[0]
        drawn = pick_points(table, explorer.graphs, relation_, max_points, seed, eligible)
        ids = [table.post_ids[i] for i in drawn if table.post_known[i]]
        preds, gold = predictions(explorer, ids), gold_of(explorer)
    memo = explorer.__dict__.setdefault("_projections", {})
    out = atlas(table, explorer.graphs, relation, colour, method, max_points, seed, split, preds, gold, memo)
    out["choices"] = {"relation": list(explorer.graphs.tables), "colour": [c for c in COLOURINGS if c != "error"
                                                                            or explorer.retagger is not None],
                      "method": available_projections(), "split": table.split_names}
    out["split"] = split or ""
    out["max_points"] = max_points
    return out


from fastapi import APIRouter, Request  # noqa: E402

router = APIRouter()


@router.get("/map")
def map_page(request: Request, relation: str = "", colour: str = "type", method: str = "pca", split: str = "",
             max_points: int = 2000, seed: int = 0):
    """The 2-D map: ``?relation=&colour=type|kind|split|error&method=pca|umap&split=&max_points=&format=json``."""
    from .pagekit import BadParameter, base_of, checked, respond

    if not 1 <= max_points <= 20_000:
        raise BadParameter("max_points", f"lies in [1, 20000], found {max_points}")
    data = checked(atlas_page_data, request.app.state.explorer, relation or None, colour, method, max_points,
                   split or None, seed, what="map")
    if request.query_params.get("format") == "json":
        return respond(request, "map.html", data)
    return respond(request, "map.html", data, svg=atlas_svg(data, base=base_of(request)))
