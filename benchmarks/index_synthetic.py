"""Unit vectors with neighbour structure like real image embeddings (for benchmarks/index_*).

A mixture of ``n_centres`` Gaussian clusters whose centres are themselves grouped around
``n_super`` super-centres; inside a cluster points vary along a few cluster-specific
directions (low intrinsic dimension) plus small isotropic noise; everything is
L2-normalised. Uniformly random vectors have no neighbour structure and make every index
look bad (or, with IVF, misleadingly uniform), so they are not used.

:func:`clustered_unit_vectors` makes them in memory; :func:`write_clustered_unit_vectors`
writes the same mixture chunk by chunk into an array on disk (10M x 512 float32 is 20 GB),
so its memory does not grow with ``n``.
"""
from __future__ import annotations

import numpy as np


def _mixture(rng, dim: int, n_centres: int, n_super: int, intrinsic: int, spread: float):
    """The clusters: ``(centres (C, dim), bases (C, intrinsic, dim), sizes (C,))``."""
    sup = rng.standard_normal((n_super, dim)).astype(np.float32) / np.sqrt(dim)
    centres = sup[rng.integers(0, n_super, n_centres)] \
        + 0.8 * rng.standard_normal((n_centres, dim)).astype(np.float32) / np.sqrt(dim)
    bases = spread * rng.standard_normal((n_centres, intrinsic, dim)).astype(np.float32) / np.sqrt(intrinsic * dim / 4)
    sizes = rng.dirichlet(np.full(n_centres, 2.0))          # uneven cluster sizes, like real data
    return centres, bases, sizes


def _cluster_points(rng, centre, basis, m: int, noise: float) -> np.ndarray:
    """``m`` unit vectors of one cluster. Shapes: (dim,), (intrinsic, dim) -> (m, dim)."""
    z = rng.standard_normal((m, basis.shape[0]), dtype=np.float32)
    x = centre + z @ basis                                    # (m, dim)
    x += noise * rng.standard_normal((m, len(centre)), dtype=np.float32) / np.sqrt(len(centre))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered_unit_vectors(n: int, dim: int = 512, n_centres: int = 2000, n_super: int = 100,
                           intrinsic: int = 16, spread: float = 0.5, noise: float = 0.25,
                           seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors; deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    centres, bases, sizes = _mixture(rng, dim, n_centres, n_super, intrinsic, spread)
    counts = rng.multinomial(n, sizes)
    order = rng.permutation(n)                                # rows of each cluster, scattered
    out = np.empty((n, dim), np.float32)
    start = 0
    for c, m in enumerate(counts):
        if m == 0:
            continue
        out[order[start:start + m]] = _cluster_points(rng, centres[c], bases[c], m, noise)
        start += m
    return out


def write_clustered_unit_vectors(out: np.ndarray, chunk: int = 100_000, n_centres: int = 2000, n_super: int = 100,
                                 intrinsic: int = 16, spread: float = 0.5, noise: float = 0.25, seed: int = 0,
                                 progress=None) -> None:
    """Fill ``out`` ((n, dim) float32, e.g. a ``np.lib.format.open_memmap``) with the mixture
    of :func:`clustered_unit_vectors`, ``chunk`` rows at a time: each row's cluster is drawn
    with the clusters' sizes as probabilities. Deterministic for a given ``seed`` and
    ``chunk`` (each chunk has its own random stream); not the same rows as
    :func:`clustered_unit_vectors` for the same seed, the same distribution.

    Args:
        progress: called with the number of rows written after each chunk (e.g. ``tqdm.update``).
    """
    n, dim = out.shape
    centres, bases, sizes = _mixture(np.random.default_rng(seed), dim, n_centres, n_super, intrinsic, spread)
    for j, s in enumerate(range(0, n, chunk)):
        m = min(chunk, n - s)
        rng = np.random.default_rng([seed, 1, j])
        assign = rng.choice(n_centres, size=m, p=sizes)       # (m,) cluster of each row
        by_cluster = np.argsort(assign, kind="stable")
        present, first, count = np.unique(assign[by_cluster], return_index=True, return_counts=True)
        block = np.empty((m, dim), np.float32)
        for c, a, k in zip(present, first, count):
            block[by_cluster[a:a + k]] = _cluster_points(rng, centres[c], bases[c], int(k), noise)
        out[s:s + m] = block
        if progress is not None:
            progress(m)
