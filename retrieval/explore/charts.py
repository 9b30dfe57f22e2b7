"""Agreement@k: are the first ``k`` neighbours of a relation better than random pool posts?

For each relation and ``k``, the label agreement of :mod:`retrieval.agreement` (the share of
a post's labelled neighbours that share one of its gold entity types, averaged over the
posts) over the first ``k`` neighbours, against the random baseline of
:func:`retrieval.agreement.random_agreement` (the same share for a uniformly random labelled
pool post, computed exactly). Per entity type ``T`` the question narrows to posts holding
``T``: the share of their neighbours that hold ``T`` too, against random pool posts.

Intervals are percentile bootstrap intervals of the mean over posts. A post's share takes
only a few distinct values (``h / n`` with ``n <= k``), so a bootstrap resample is drawn as a
multinomial count of each distinct value, which has exactly the distribution of drawing the
posts with replacement, at a cost independent of the number of posts.

The sweep reads the graphs built with threshold 0 (a card's "raw" graphs) and recomputes
agreement for every ``k`` up to the built one and every threshold asked for: it can only
drop neighbours, so ``k`` above the built ``k`` needs a rebuild.

Charts are SVG drawn here (:func:`line_chart`), served inline: no chart library, nothing
fetched from elsewhere.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..agreement import random_agreement
from .tables import PostTable, agreement_per_post, pool_rows

N_BOOT = 1000
LEVEL = 0.95


def bootstrap_interval(values: np.ndarray, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0
                       ) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN dropped; ``(nan, nan)``
    when none is left), drawn as multinomial counts of the distinct values. Pure."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan")
    vals, counts = np.unique(v, return_counts=True)
    draws = np.random.default_rng(seed).multinomial(len(v), counts / len(v), size=n_boot)    # (B, J)
    means = draws @ vals / len(v)                                                             # (B,)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class Query:
    """Which posts are asked about: a split (``None``: all) and an entity type (``None``: any)."""

    split: str | None = None
    etype: str | None = None


def query_masks(table: PostTable, q: Query) -> np.ndarray:
    """(n,) the type bits each post is asked about (0: the post is not counted)."""
    mask = table.post_mask.copy() if q.etype is None else np.where(table.post_mask & table.bit(q.etype),
                                                                   table.bit(q.etype), 0)
    if q.split:
        mask[table.splits != q.split] = 0
    return mask


def random_baseline(table: PostTable, graphs, q: Query) -> float:
    """:func:`retrieval.agreement.random_agreement` for the posts and type of ``q``."""
    mask = query_masks(table, q)
    sets = {int(m): frozenset(table.names(int(m))) for m in np.unique(np.r_[mask, table.row_mask])}
    qt = [sets[m] if m and known else None for m, known in zip(mask.tolist(), table.post_known.tolist())]
    row_types = [sets[m] if known else None for m, known in zip(table.row_mask.tolist(), table.row_known.tolist())]
    return random_agreement(qt, table.image_rows, pool_rows(graphs, table), row_types)["agreement"]


def agreement_curve(table: PostTable, graphs, relation: str, ks: Sequence[int], q: Query = Query(),
                    threshold: float | None = None, n_boot: int = N_BOOT, seed: int = 0,
                    random: float | None = None) -> list[dict]:
    """Per ``k`` of ``ks``: agreement over the first ``k`` neighbours of ``relation`` (scoring
    at least ``threshold``), its bootstrap interval, the random baseline, the lift, and how
    many posts were counted and had no neighbour left."""
    nb = graphs.tables[relation]
    mask = query_masks(table, q)
    rnd = random_baseline(table, graphs, q) if random is None else random
    out = []
    for k in ks:
        share = agreement_per_post(table, nb.rows, nb.scores, k=k, threshold=threshold, query_mask=mask)
        lo, hi = bootstrap_interval(share, n_boot, seed=seed)
        counted = ~np.isnan(share)
        kept = nb.rows[:, :k] >= 0
        if threshold is not None:
            kept &= nb.scores[:, :k] >= threshold
        asked = mask != 0
        mean = float(share[counted].mean()) if counted.any() else float("nan")
        out.append({"relation": relation, "k": int(k), "threshold": threshold, "agreement": mean, "lo": lo, "hi": hi,
                    "random": rnd, "lift": mean / rnd if rnd and not math.isnan(mean) else float("nan"),
                    "queries": int(counted.sum()), "neighbours_mean": float(kept[asked].sum(1).mean()) if asked.any()
                    else float("nan"), "without_neighbours": int((~kept.any(1) & asked).sum())})
    return out


def agreement_at_k(table: PostTable, graphs, split: str | None = None, threshold: float | None = None,
                   n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Agreement@k for k = 1..K of every relation, over any type and per entity type:
    ``{"types": [None, "LOC", ...], "curves": {type or "any": {relation: [row per k]}}}``."""
    K = graphs.tables[next(iter(graphs.tables))].rows.shape[1]
    curves = {}
    for etype in [None, *table.type_names]:
        q = Query(split, etype)
        rnd = random_baseline(table, graphs, q)
        curves[etype or "any"] = {rel: agreement_curve(table, graphs, rel, range(1, K + 1), q, threshold, n_boot,
                                                       seed, rnd) for rel in graphs.tables}
    return {"k": K, "types": ["any", *table.type_names], "curves": curves}


def default_thresholds(graphs, relation: str, n: int = 4) -> list[float]:
    """0 and the quartiles of the relation's neighbour scores (rounded to 0.01)."""
    nb = graphs.tables[relation]
    s = nb.scores[(nb.rows >= 0) & np.isfinite(nb.scores)]
    qs = np.quantile(s, np.linspace(0, 1, n + 1)[1:-1]) if len(s) else np.zeros(0)
    return sorted({0.0, *(round(float(x), 2) for x in qs)})


def sweep(table: PostTable, graphs, relation: str, thresholds: Sequence[float] | None = None, q: Query = Query(),
          n_boot: int = N_BOOT, seed: int = 0) -> list[dict]:
    """Agreement@k of ``relation`` for every k up to the built one and every threshold."""
    K = graphs.tables[relation].rows.shape[1]
    thresholds = default_thresholds(graphs, relation) if thresholds is None else list(thresholds)
    rnd = random_baseline(table, graphs, q)
    out = []
    for t in thresholds:
        out += agreement_curve(table, graphs, relation, range(1, K + 1), q, float(t), n_boot, seed, rnd)
    return out


# --------------------------------------------------------------------------- SVG
PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb", "#000000")


def line_chart(series: Sequence[dict], title: str, xlabel: str, ylabel: str, width: int = 440, height: int = 260,
               ymin: float = 0.0, ymax: float = 1.0, chart_id: str = "") -> str:
    """An SVG line chart. ``series``: ``{"name", "points": [(x, y, lo, hi), ...], "dashed"?,
    "colour"?}`` (``lo``/``hi`` draw an interval bar; ``None`` or NaN values are skipped).
    Each point carries ``data-series``, ``data-x``, ``data-y`` and a ``<title>`` tooltip."""
    left, right, top, bottom = 46, 120, 24, 36
    pw, ph = width - left - right, height - top - bottom
    xs = sorted({p[0] for s in series for p in s["points"]})
    x0, x1 = (xs[0], xs[-1]) if xs else (0, 1)
    if x0 == x1:
        x0, x1 = x0 - 1, x1 + 1

    def X(x):
        return left + (x - x0) / (x1 - x0) * pw

    def Y(y):
        return top + (1 - (min(max(y, ymin), ymax) - ymin) / (ymax - ymin)) * ph

    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}"{f" id={chr(34)}{e(chart_id)}{chr(34)}" if chart_id else ""}>',
           f"<title>{e(title)}</title>", f'<text x="{left}" y="14" font-weight="bold">{e(title)}</text>']
    for i in range(6):                                                     # y grid and labels
        y = ymin + (ymax - ymin) * i / 5
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{Y(y):.1f}" y2="{Y(y):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{Y(y) + 4:.1f}" text-anchor="end">{y:.1f}</text>')
    for x in xs:
        out.append(f'<text x="{X(x):.1f}" y="{top + ph + 14}" text-anchor="middle">{e(_num(x))}</text>')
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#888"/>'
               f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" stroke="#888"/>'
               f'<text x="{left + pw / 2:.1f}" y="{height - 6}" text-anchor="middle">{e(xlabel)}</text>'
               f'<text x="12" y="{top + ph / 2:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 12 {top + ph / 2:.1f})">{e(ylabel)}</text>')
    for j, s in enumerate(series):
        colour = s.get("colour") or PALETTE[j % len(PALETTE)]
        pts = [p for p in s["points"] if p[1] is not None and not math.isnan(p[1])]
        dash = ' stroke-dasharray="5 4"' if s.get("dashed") else ""
        if pts:
            d = " ".join(f"{'M' if i == 0 else 'L'}{X(p[0]):.1f},{Y(p[1]):.1f}" for i, p in enumerate(pts))
            out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for p in pts:
            lo, hi = (p[2], p[3]) if len(p) > 3 else (None, None)
            if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
                out.append(f'<line class="ci" x1="{X(p[0]):.1f}" x2="{X(p[0]):.1f}" y1="{Y(lo):.1f}" y2="{Y(hi):.1f}" '
                           f'stroke="{colour}" stroke-width="1.2"/>')
            tip = f"{s['name']}: {_num(p[0])} -> {p[1]:.3f}" + (
                f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None and not math.isnan(lo) else "")
            out.append(f'<circle cx="{X(p[0]):.1f}" cy="{Y(p[1]):.1f}" r="{2 if s.get("dashed") else 3.2}" '
                       f'fill="{colour}" data-series="{e(s["name"])}" data-x="{_num(p[0])}" data-y="{p[1]:.4f}">'
                       f"<title>{e(tip)}</title></circle>")
        ly = top + 6 + 16 * j
        out.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 28}" y1="{ly}" y2="{ly}" stroke="{colour}" '
                   f'stroke-width="2"{dash}/><text x="{left + pw + 32}" y="{ly + 4}">{e(s["name"])}</text>')
    out.append("</svg>")
    return "".join(out)


def _num(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) else str(x)


def curve_chart(curves: dict, title: str, chart_id: str = "") -> str:
    """Agreement@k of each relation (solid, with intervals) and the random baseline (dashed)."""
    series = [{"name": rel, "points": [(r["k"], r["agreement"], r["lo"], r["hi"]) for r in rows]}
              for rel, rows in curves.items()]
    first = next(iter(curves.values()), [])
    if first:
        series.append({"name": "random", "dashed": True, "colour": "#999999",
                       "points": [(r["k"], r["random"]) for r in first]})
    return line_chart(series, title, "k (first neighbours)", "agreement", chart_id=chart_id)


def sweep_chart(rows: list[dict], relation: str, chart_id: str = "") -> str:
    """Agreement@k of one relation, one line per threshold (and the random baseline)."""
    by: dict = {}
    for r in rows:
        by.setdefault(r["threshold"], []).append(r)
    series = [{"name": f"threshold {t:g}", "points": [(r["k"], r["agreement"], r["lo"], r["hi"]) for r in rs]}
              for t, rs in by.items()]
    if rows:
        series.append({"name": "random", "dashed": True, "colour": "#999999",
                       "points": [(r["k"], r["random"]) for r in next(iter(by.values()))]})
    return line_chart(series, f"{relation}: agreement@k by threshold", "k (first neighbours)", "agreement",
                      chart_id=chart_id)


# --------------------------------------------------------------------------- the page
def agreement_page_data(explorer, split: str | None = None, relation: str | None = None,
                        thresholds: Sequence[float] | None = None, n_boot: int = N_BOOT) -> dict:
    """Agreement@k of the explorer's graphs (A) per relation and entity type, and the sweep
    of ``relation`` (default the first built) over k and ``thresholds`` on the graphs built
    with threshold 0."""
    from .predictions import table_of
    from .tables import post_table

    graphs = explorer.graphs
    table = table_of(explorer)
    if split and split not in table.split_names:
        raise KeyError(f"no split {split!r}: the splits are {', '.join(table.split_names)}")
    relation = relation or next(iter(graphs.tables))
    if relation not in graphs.tables:
        raise KeyError(f"relation {relation!r} was not built: these graphs have {', '.join(graphs.tables)}")
    if thresholds is not None and any(not 0.0 <= t <= 1.0 for t in thresholds):
        raise ValueError(f"thresholds lie in [0, 1], found {list(thresholds)}")
    memo = explorer.__dict__.setdefault("_agreement", {})
    key = (split, relation, tuple(thresholds) if thresholds is not None else None, n_boot)
    if key not in memo:
        at_k = agreement_at_k(table, graphs, split, n_boot=n_boot)
        raw = explorer.raw or graphs
        raw_table = post_table(raw, list(explorer.samples.values()), explorer.gold_types)
        rows = sweep(raw_table, raw, relation, thresholds, Query(split), n_boot)
        memo[key] = {"split": split or "", "relation": relation, "settings": graphs.settings.as_dict(),
                     "n_boot": n_boot, "level": LEVEL, **at_k, "sweep": rows,
                     "thresholds": sorted({r["threshold"] for r in rows}),
                     "choices": {"split": table.split_names, "relation": list(graphs.tables)}}
    return memo[key]


from fastapi import APIRouter, Request  # noqa: E402

router = APIRouter()


@router.get("/agreement")
def agreement_page(request: Request, split: str = "", relation: str = "", thresholds: str = "",
                   n_boot: int = N_BOOT):
    """Agreement@k charts and the k x threshold sweep: ``?split=&relation=&thresholds=0,0.2,0.4
    &n_boot=1000&format=json``."""
    from .pagekit import BadParameter, checked, respond

    try:
        ts = [float(x) for x in thresholds.split(",") if x.strip()] or None
    except ValueError:
        raise BadParameter("thresholds", f"{thresholds!r} is not a comma-separated list of numbers") from None
    if not 10 <= n_boot <= 100_000:
        raise BadParameter("n_boot", f"bootstrap resamples lie in [10, 100000], found {n_boot}")
    data = checked(agreement_page_data, request.app.state.explorer, split or None, relation or None, ts, n_boot,
                   what="agreement")
    if request.query_params.get("format") == "json":
        return respond(request, "agreement.html", data)
    charts = {t: curve_chart(data["curves"][t], f"{t if t != 'any' else 'any entity type'}", f"chart-{t}")
              for t in data["types"]}
    return respond(request, "agreement.html", data, charts=charts,
                   sweep_svg=sweep_chart(data["sweep"], data["relation"], "chart-sweep"))
