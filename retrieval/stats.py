"""Graph statistics a user reads before training on a graph: degrees, similarities and
label agreement against a random baseline (per relation, per query split)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from .agreement import entity_types, label_agreement, random_agreement


def graph_stats(graphs, splits: dict) -> dict:
    """Per relation: edge counts, degree and score summaries, and label agreement.

    ``splits`` gives the labels: a neighbour's entity types are those of the post that uses
    the image (``graphs.post_images``). Neighbours only ever come from the pool, whose posts
    are labelled (training split) in the default setting.
    """
    types_of = {s.id: entity_types(s.tags) for c in splits.values() for s in c}
    post_types = [types_of.get(p) for p in graphs.post_ids]
    image_types: dict = {}
    for p, key in zip(graphs.post_ids, graphs.post_images.keys):
        if key is not None:
            image_types.setdefault(key, types_of.get(p))
    row_types = [image_types.get(i) for i in graphs.ids]
    post_split = np.asarray([graphs.split_of[p] for p in graphs.post_ids])
    pool = graphs.settings.pool
    if pool == "train":
        train_posts = {s.id for s in splits[graphs.settings.train_split]}
        pool_ids = {k for p, k in zip(graphs.post_ids, graphs.post_images.keys) if p in train_posts}
        pool_rows = np.asarray([r for r, i in enumerate(graphs.ids[:graphs.n_index]) if i in pool_ids],
                               dtype=np.int64)                   # new images are never retrieved
    else:
        pool_rows = np.arange(len(graphs.ids))
    out = {"n_posts": len(graphs.post_ids), "n_images": len(graphs.ids), "pool": pool,
           "pool_images": int(len(pool_rows)), "k": graphs.settings.k, "relations": {}}
    for rel, nb in graphs.tables.items():
        valid = nb.rows >= 0
        deg_out = valid.sum(1)
        deg_in = np.bincount(nb.rows[valid], minlength=len(graphs.ids))[pool_rows] if len(pool_rows) else np.zeros(0)
        r = {"edges": int(valid.sum()), "posts_without_neighbours": int((deg_out == 0).sum()),
             "out_degree_mean": float(deg_out.mean()) if len(deg_out) else 0.0,
             "in_degree_max": int(deg_in.max()) if len(deg_in) else 0,
             "pool_images_never_retrieved": int((deg_in == 0).sum()),
             "score_mean": float(nb.scores[valid].mean()) if valid.any() else float("nan"),
             "agreement": {}}
        for split in ["all", *dict.fromkeys(post_split.tolist())]:
            sel = np.ones(len(post_split), bool) if split == "all" else post_split == split
            qt = [t if s else None for t, s in zip(post_types, sel)]
            a = label_agreement(qt, nb.rows, row_types)
            b = random_agreement(qt, graphs.image_rows, pool_rows, row_types)
            r["agreement"][split] = {**a, "random": b["agreement"],
                                     "lift": a["agreement"] / b["agreement"] if b["agreement"] else float("nan")}
        out["relations"][rel] = r
    return out


def agreement_table(stats: dict) -> list[list]:
    rows = []
    for rel, r in stats["relations"].items():
        for split, a in r["agreement"].items():
            rows.append([rel, split, a["queries"], a["pairs"], _pct(a["agreement"]), _pct(a["random"]),
                         "-" if math.isnan(a["lift"]) else f"{a['lift']:.2f}x"])
    return rows


AGREEMENT_HEADER = ["relation", "query split", "queries", "pairs", "agreement", "random", "lift"]


def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def write_figures(graphs, stats: dict, out_dir: str | os.PathLike) -> list[str]:
    """Degree, similarity and agreement figures as PNG; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rels = list(graphs.tables)
    written = []

    fig, axes = plt.subplots(1, len(rels), figsize=(4.2 * len(rels), 3.4), squeeze=False)
    for ax, rel in zip(axes[0], rels):
        nb = graphs.tables[rel]
        s = nb.scores[nb.rows >= 0]
        ax.hist(s, bins=40, color="#4477aa")
        ax.set_title(f"{rel}: neighbour scores (n={len(s)})", fontsize=10)
        ax.set_xlabel("Jaccard overlap" if rel == "tags" else "cosine similarity")
        ax.set_ylabel("edges")
    fig.tight_layout()
    written.append(str(out_dir / "similarity_hist.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(rels), figsize=(4.2 * len(rels), 3.4), squeeze=False)
    for ax, rel in zip(axes[0], rels):
        nb = graphs.tables[rel]
        valid = nb.rows >= 0
        deg_in = np.bincount(nb.rows[valid], minlength=len(graphs.ids))
        retrieved = deg_in[deg_in > 0]
        ax.hist(retrieved, bins=np.arange(1, max(2, retrieved.max() if len(retrieved) else 1) + 2) - 0.5,
                color="#aa7744", log=True)
        ax.set_title(f"{rel}: times each image is retrieved", fontsize=10)
        ax.set_xlabel("in-degree (images retrieved at least once)")
        ax.set_ylabel("images (log)")
    fig.tight_layout()
    written.append(str(out_dir / "degree_hist.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(1.6 + 1.6 * len(rels), 3.4))
    x = np.arange(len(rels))
    ag = [stats["relations"][r]["agreement"]["all"]["agreement"] for r in rels]
    rb = [stats["relations"][r]["agreement"]["all"]["random"] for r in rels]
    ax.bar(x - 0.2, ag, 0.4, label="neighbours", color="#4477aa")
    ax.bar(x + 0.2, rb, 0.4, label="random pool post", color="#bbbbbb")
    ax.set_xticks(x, rels)
    ax.set_ylabel("share an entity type with the post")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("label agreement", fontsize=10)
    fig.tight_layout()
    written.append(str(out_dir / "label_agreement.png"))
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    (out_dir / "label_agreement.json").write_text(json.dumps(_no_nan(stats), indent=2, default=_json_num))
    written.append(str(out_dir / "label_agreement.json"))
    return written


def _json_num(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    raise TypeError(type(x))


def _no_nan(x):
    """NaN is not JSON: write null."""
    if isinstance(x, dict):
        return {k: _no_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_nan(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return None
    return x
