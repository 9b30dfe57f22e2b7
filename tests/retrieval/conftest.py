"""Six hand-placed points and a stand-in index artifact with the attributes of
``index.artifact.IndexArtifact`` (the pure parts of retrieval/ need nothing more)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

# unit vectors at these angles (degrees): cosine similarity = cos(angle difference)
ANGLES = [0, 10, 30, 90, 100, 180]
IDS = ["p0", "p1", "p2", "p3", "p4", "p5"]


def six_points() -> np.ndarray:
    a = np.deg2rad(ANGLES)
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)  # (6, 2)


@dataclass
class FakeArtifact:
    ids: list
    embeddings: np.ndarray
    faiss_index: object
    manifest: dict
    tags: dict = field(default_factory=dict)
    ocr: dict = field(default_factory=dict)
    regions: object = None
    path: str = "<fake>"

    def __post_init__(self):
        self.id_to_row = {i: r for r, i in enumerate(self.ids)}

    def search(self, queries, k):
        return self.faiss_index.search(np.ascontiguousarray(queries, np.float32), k)


def make_artifact(x, ids=None, tags=None, factory="Flat", embedder="fake", nprobe=1, has_text=False):
    import faiss

    x = np.ascontiguousarray(x, np.float32)
    ids = ids or [f"i{r}" for r in range(len(x))]
    index = faiss.index_factory(x.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(x)
    index.add(x)
    if "IVF" in factory:
        faiss.extract_index_ivf(index).nprobe = nprobe
    manifest = {"embedder": embedder, "dim": x.shape[1], "metric": "inner_product", "n": len(x),
                "has_text": has_text}
    return FakeArtifact(list(ids), x, index, manifest, tags or {})


@pytest.fixture
def six():
    tags = {"p0": [("dog", .9), ("ball", .1)], "p1": [("dog", .8), ("cat", .2)], "p2": [("cat", .7)],
            "p3": [("car", .6), ("road", .3)], "p4": [("car", .9)], "p5": [("dog", .5), ("ball", .4)]}
    return make_artifact(six_points(), IDS, tags)
