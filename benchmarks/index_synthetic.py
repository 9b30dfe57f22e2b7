"""Unit vectors with neighbour structure like real image embeddings (for benchmarks/index_*).

A mixture of ``n_centres`` Gaussian clusters whose centres are themselves grouped around
``n_super`` super-centres; inside a cluster points vary along a few cluster-specific
directions (low intrinsic dimension) plus small isotropic noise; everything is
L2-normalised. Uniformly random vectors have no neighbour structure and make every index
look bad (or, with IVF, misleadingly uniform), so they are not used.
"""
from __future__ import annotations

import numpy as np


def clustered_unit_vectors(n: int, dim: int = 512, n_centres: int = 2000, n_super: int = 100,
                           intrinsic: int = 16, spread: float = 0.5, noise: float = 0.25,
                           seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors; deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    sup = rng.standard_normal((n_super, dim)).astype(np.float32) / np.sqrt(dim)
    centres = sup[rng.integers(0, n_super, n_centres)] \
        + 0.8 * rng.standard_normal((n_centres, dim)).astype(np.float32) / np.sqrt(dim)
    bases = spread * rng.standard_normal((n_centres, intrinsic, dim)).astype(np.float32) / np.sqrt(intrinsic * dim / 4)
    sizes = rng.dirichlet(np.full(n_centres, 2.0))          # uneven cluster sizes, like real data
    counts = rng.multinomial(n, sizes)
    order = rng.permutation(n)                                # rows of each cluster, scattered
    out = np.empty((n, dim), np.float32)
    start = 0
    for c, m in enumerate(counts):
        if m == 0:
            continue
        z = rng.standard_normal((m, intrinsic), dtype=np.float32)
        x = centres[c] + z @ bases[c]                         # (m, dim)
        x += noise * rng.standard_normal((m, dim), dtype=np.float32) / np.sqrt(dim)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[order[start:start + m]] = x
        start += m
    return out
