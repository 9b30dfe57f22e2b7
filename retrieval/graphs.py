"""Relation graphs as pure functions of search results.

Nothing here reads a file or a global: every function maps arrays to arrays (or to a PyG
``Data``), so each can be checked by hand on six points.

Relations and their ids (``edge_type``):

======  ===  ==========================================================================
name    id   neighbours of a post
======  ===  ==========================================================================
inter   0    images that match the post's sentence (inter-modal)
intra   1    images similar to the post's own image (intra-modal)
tags    2    images showing the same kinds of objects (Jaccard overlap of object tags)
======  ===  ==========================================================================
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

RELATIONS: dict[str, int] = {"inter": 0, "intra": 1, "tags": 2}
"""Relation name -> ``edge_type`` id."""


def relation_id(name: str) -> int:
    """The ``edge_type`` id of a relation name; an unknown name lists the valid ones."""
    try:
        return RELATIONS[name]
    except KeyError:
        raise KeyError(f"unknown relation {name!r}: valid names are {', '.join(RELATIONS)}") from None


def knn_edges(D: np.ndarray, I: np.ndarray, threshold: float | None = None, relation: int = 0,
              centers: np.ndarray | None = None, symmetric: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Edges ``neighbour -> center`` from a kNN search result.

    Query ``q``'s node is ``centers[q]`` (default ``q``); its neighbours are the nodes
    ``I[q, j]``. Padding (``I == -1``, non-finite ``D``) and scores below ``threshold`` are
    dropped. Edges come out query by query, best neighbour first.

    Args:
        D: (nq, k) similarities.
        I: (nq, k) neighbour node ids, -1 = none.
        threshold: keep ``D >= threshold``; ``None`` keeps every finite score.
        relation: the ``edge_type`` of every edge.
        centers: (nq,) node id of each query; default ``arange(nq)``.
        symmetric: also add the reverse edge ``center -> neighbour`` (same weight, same type),
            after all forward edges.

    Returns:
        ``edge_index`` (2, E) long (row 0 = source, row 1 = target, PyG's ``flow="source_to_target"``),
        ``edge_weight`` (E,) float, ``edge_type`` (E,) long.
    """
    D = np.asarray(D, dtype=np.float32)
    I = np.asarray(I, dtype=np.int64)
    if D.shape != I.shape or D.ndim != 2:
        raise ValueError(f"D and I must both be (nq, k), got {D.shape} and {I.shape}")
    nq = I.shape[0]
    centers = np.arange(nq, dtype=np.int64) if centers is None else np.asarray(centers, dtype=np.int64)
    if centers.shape != (nq,):
        raise ValueError(f"centers must be ({nq},), got {centers.shape}")
    keep = (I >= 0) & np.isfinite(D)
    if threshold is not None:
        keep &= D >= threshold
    q, j = np.nonzero(keep)                                            # row-major: query by query
    src, dst, w = I[q, j], centers[q], D[q, j]
    if symmetric:
        src, dst, w = np.concatenate([src, dst]), np.concatenate([dst, src]), np.concatenate([w, w])
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64)).reshape(2, -1)   # (2, E)
    edge_weight = torch.from_numpy(w.astype(np.float32))                                # (E,)
    edge_type = torch.full((edge_index.shape[1],), int(relation), dtype=torch.long)     # (E,)
    return edge_index, edge_weight, edge_type


def relation_graph(center_feature: np.ndarray | torch.Tensor | None, neighbour_features, scores,
                   relation: int, has_image: bool = True, neighbour_ids: Sequence[str] | None = None,
                   dim: int | None = None, symmetric: bool = True):
    """The star graph of ONE post for one relation, as a PyG ``Data``.

    Node 0 is the post: its own image feature, or (for the inter-modal relation with a
    joint text-image embedder) its sentence's query vector; a zero vector when it has
    neither. Nodes ``1..k`` are the neighbour images. Edges go neighbour -> post (and post
    -> neighbour when ``symmetric``), weighted by similarity.

    Args:
        center_feature: (d,) feature of node 0, or ``None`` for a zero vector.
        neighbour_features: (k, d) features of the neighbours (k may be 0).
        scores: (k,) similarity of each neighbour to the post.
        relation: the ``edge_type`` id (see :data:`RELATIONS`).
        has_image: whether the post has an image; stored as ``data.has_image`` so a model
            can tell an empty intra-modal graph from one with no similar images.
        neighbour_ids: optional image ids of the neighbours (kept as ``data.neighbour_ids``).
        dim: feature width, needed only when both ``center_feature`` is None and k == 0.
        symmetric: add the post -> neighbour edges too (default True).

    Returns:
        ``Data(x, edge_index, edge_weight, edge_type, has_image, num_nodes)``.

    Shapes:
        ``x`` (1 + k, d); ``edge_index`` (2, E) with E = k or 2k; ``edge_weight`` (E,);
        ``edge_type`` (E,); ``has_image`` (1,) bool.
    """
    from torch_geometric.data import Data

    nb = torch.as_tensor(np.asarray(neighbour_features, dtype=np.float32)) \
        if not isinstance(neighbour_features, torch.Tensor) else neighbour_features.float()
    sc = torch.as_tensor(np.asarray(scores, dtype=np.float32)).reshape(-1)
    if nb.ndim != 2:
        if nb.numel() == 0:
            nb = nb.reshape(0, dim if dim is not None else (len(center_feature) if center_feature is not None else 0))
        else:
            raise ValueError(f"neighbour_features must be (k, d), got shape {tuple(nb.shape)}")
    k = nb.shape[0]
    if sc.shape[0] != k:
        raise ValueError(f"{k} neighbour features but {sc.shape[0]} scores")
    d = nb.shape[1] if k else (dim if dim is not None else None)
    if center_feature is None:
        if d is None:
            raise ValueError("give center_feature or dim: the feature width is unknown")
        center = torch.zeros(d)
    else:
        center = torch.as_tensor(np.asarray(center_feature, dtype=np.float32)).reshape(-1)
        if d is not None and center.shape[0] != d:
            raise ValueError(f"center feature is {center.shape[0]}-d but neighbours are {d}-d")
    x = torch.cat([center[None], nb], 0)                                # (1 + k, d)
    nbr = torch.arange(1, k + 1, dtype=torch.long)
    zero = torch.zeros(k, dtype=torch.long)
    src, dst, w = nbr, zero, sc
    if symmetric:
        src, dst, w = torch.cat([nbr, zero]), torch.cat([zero, nbr]), torch.cat([sc, sc])
    data = Data(x=x, edge_index=torch.stack([src, dst]),                # (2, E)
                edge_weight=w, edge_type=torch.full((src.shape[0],), int(relation), dtype=torch.long),
                has_image=torch.tensor([bool(has_image)]), num_nodes=1 + k)
    if neighbour_ids is not None:
        data.neighbour_ids = list(neighbour_ids)
    return data


def merge_graphs(graphs: Sequence):
    """Several one-post relation graphs of the SAME post into one multi-relational graph.

    Node 0 is shared (the first graph's center feature is kept); each graph's neighbours
    are appended, so an image retrieved by two relations appears twice, once per relation,
    as in R-GCN's separate relation graphs. ``edge_type`` keeps each edge's relation.
    """
    from torch_geometric.data import Data

    if not graphs:
        raise ValueError("merge_graphs needs at least one graph")
    xs, eis, ews, ets, offset = [graphs[0].x[:1]], [], [], [], 0
    for g in graphs:
        k = g.num_nodes - 1
        xs.append(g.x[1:])
        ei = g.edge_index.clone()
        ei[ei > 0] += offset
        eis.append(ei), ews.append(g.edge_weight), ets.append(g.edge_type)
        offset += k
    return Data(x=torch.cat(xs), edge_index=torch.cat(eis, 1), edge_weight=torch.cat(ews),
                edge_type=torch.cat(ets), has_image=graphs[0].has_image, num_nodes=1 + offset)


def to_networkx(data, names: Sequence[str] | None = None):
    """A ``networkx.DiGraph`` for inspection: nodes carry ``name`` (when given or stored as
    ``data.neighbour_ids``), edges carry ``weight`` and ``relation`` (name)."""
    import networkx as nx

    inv = {v: k for k, v in RELATIONS.items()}
    if names is None:
        ids = getattr(data, "neighbour_ids", None)
        names = ["post", *ids] if ids is not None else [str(i) for i in range(data.num_nodes)]
    g = nx.DiGraph()
    for i in range(data.num_nodes):
        g.add_node(i, name=names[i])
    ei = data.edge_index.tolist()
    for e, (s, t) in enumerate(zip(*ei)):
        r = int(data.edge_type[e])
        g.add_edge(s, t, weight=float(data.edge_weight[e]), relation=inv.get(r, str(r)))
    g.graph["has_image"] = bool(getattr(data, "has_image", torch.tensor([True]))[0])
    return g
