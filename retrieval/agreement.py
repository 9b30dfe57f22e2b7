"""Label agreement: can a relation graph help the tagger at all?

For a query post with at least one entity, the agreement of a relation is the fraction of
its neighbours whose post shares at least one entity type with it. The baseline is the
same fraction for a random pool post, computed exactly (the expectation over the pool, not
a sample). A relation whose agreement is no better than the baseline links posts at random
as far as entity types go.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from data.spans import get_spans


def entity_types(tags: Sequence[str] | None) -> frozenset[str] | None:
    """Entity types of one post's BIO tags; ``None`` when the post is unlabelled."""
    if tags is None:
        return None
    return frozenset(t for t, _, _ in get_spans(tags))


def label_agreement(query_types: Sequence[frozenset | None], rows: np.ndarray,
                    row_types: Sequence[frozenset | None]) -> dict:
    """Agreement of one relation's neighbours. Pure.

    Args:
        query_types: (n,) entity types of each query post (None = unlabelled).
        rows: (n, k) neighbour rows (-1 = none).
        row_types: (N,) entity types of the post that owns each row's image (None = unknown).

    Returns:
        ``{"agreement": mean over queries of the per-query fraction, "micro": over all pairs,
        "queries": counted queries, "pairs": counted neighbour pairs}``. Queries with no
        entity or no labelled neighbour are not counted.
    """
    fracs, hit, pairs = [], 0, 0
    for q, T in enumerate(query_types):
        if not T:
            continue
        nb = [row_types[r] for r in rows[q] if r >= 0 and row_types[r] is not None]
        if not nb:
            continue
        h = sum(bool(T & t) for t in nb)
        fracs.append(h / len(nb))
        hit, pairs = hit + h, pairs + len(nb)
    return {"agreement": float(np.mean(fracs)) if fracs else float("nan"),
            "micro": hit / pairs if pairs else float("nan"), "queries": len(fracs), "pairs": pairs}


def random_agreement(query_types: Sequence[frozenset | None], own_rows: np.ndarray,
                     pool_rows: np.ndarray, row_types: Sequence[frozenset | None]) -> dict:
    """The same fraction for a uniformly random labelled pool post (excluding the query's own
    image), computed exactly. Pure.

    Shapes: ``own_rows`` (n,) (-1 = none), ``pool_rows`` (P,).
    """
    counts = Counter(row_types[r] for r in pool_rows if row_types[r] is not None)
    total = sum(counts.values())
    in_pool = set(int(r) for r in pool_rows)
    fracs = []
    for q, T in enumerate(query_types):
        if not T or total == 0:
            continue
        share = sum(c for t, c in counts.items() if T & t)
        n = total
        r = own_rows[q]
        if r >= 0 and row_types[r] is not None and int(r) in in_pool:
            n -= 1
            share -= bool(T & row_types[r])
        if n > 0:
            fracs.append(share / n)
    return {"agreement": float(np.mean(fracs)) if fracs else float("nan"), "queries": len(fracs)}

