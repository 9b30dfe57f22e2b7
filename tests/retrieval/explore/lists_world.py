"""Eight hand-placed posts and their relation graphs (no index, no file), for the list pages'
computations: every expectation in test_triage/test_ab/test_charts/test_atlas is counted by
hand from the tables below.

    post  split  gold        kind           image row
    t0    train  PER         image_decided  0
    t1    train  LOC         text_decided   1
    t2    train  PER ORG     image_decided  2
    t3    train  (none)      text_decided   3
    q0    test   PER         image_decided  4   (cosine 0.99 to t0's image)
    q1    test   LOC         image_decided  5
    q2    test   ORG         text_decided   2   (t2's image)
    q3    test   PER         image_decided  -1  (no image)
"""
from __future__ import annotations

import numpy as np
import torch

from data.corpus import Sample
from retrieval.cache import GraphSettings, RelationGraphs
from retrieval.relations import Neighbours

POSTS = [("t0", "train", ["Ann", "B-PER"], "image_decided", 0), ("t1", "train", ["Rome", "B-LOC"], "text_decided", 1),
         ("t2", "train", ["Ann", "B-PER", "Acme", "B-ORG"], "image_decided", 2),
         ("t3", "train", ["hello", "O"], "text_decided", 3), ("q0", "test", ["Ann", "B-PER"], "image_decided", 4),
         ("q1", "test", ["Rome", "B-LOC"], "image_decided", 5), ("q2", "test", ["Acme", "B-ORG"], "text_decided", 2),
         ("q3", "test", ["Bob", "B-PER"], "image_decided", -1)]
IDS = ["i0", "i1", "i2", "i3", "i4", "i5"]

# (rows, scores) per post, best first, k = 2
INTRA = {"t0": [(2, .9), (1, .5)], "t1": [(3, .7)], "t2": [(0, .9)], "t3": [(1, .7)],
         "q0": [(0, .99), (2, .6)], "q1": [(0, .4), (2, .3)], "q2": [(0, .9)], "q3": []}
INTER = {"t0": [(1, .3), (3, .2)], "t1": [(0, .3)], "t2": [], "t3": [(0, .2)],
         "q0": [(2, .5), (0, .4)], "q1": [(1, .6)], "q2": [], "q3": [(0, .3), (1, .1)]}


def samples() -> list[Sample]:
    out = []
    for pid, _, toks, kind, _ in POSTS:
        out.append(Sample(pid, toks[0::2], toks[1::2], meta={"kind": kind}))
    return out


def neighbours(lists: dict, k: int = 2) -> Neighbours:
    nb = Neighbours.empty(len(POSTS), k)
    for i, (pid, *_rest) in enumerate(POSTS):
        for j, (r, s) in enumerate(lists[pid]):
            nb.rows[i, j], nb.scores[i, j] = r, s
    return nb


def graphs(intra: dict = INTRA, inter: dict = INTER, k: int = 2, threshold: float = 0.0, ids=IDS) -> RelationGraphs:
    x = np.random.default_rng(0).normal(size=(len(ids), 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return RelationGraphs([p[0] for p in POSTS], {p[0]: p[1] for p in POSTS}, np.asarray([p[4] for p in POSTS]),
                          {"inter": neighbours(inter, k), "intra": neighbours(intra, k)}, list(ids),
                          torch.from_numpy(x), GraphSettings(k=k, threshold=threshold, relations=("inter", "intra")))


def reversed_graphs() -> RelationGraphs:
    """The same graphs with the image rows in reverse order (row r becomes 5 - r), so that no
    image row equals the position of the post that owns it."""
    last = len(IDS) - 1

    def flip(lists):
        return {p: [(last - r, s) for r, s in v] for p, v in lists.items()}
    g = graphs(intra=flip(INTRA), inter=flip(INTER), ids=IDS[::-1])
    g.image_rows = np.where(g.image_rows >= 0, last - g.image_rows, -1)
    return g
