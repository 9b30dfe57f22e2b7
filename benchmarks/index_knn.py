"""Self-kNN benchmark: every vector's k=10 neighbours with exact Flat, IVF, HNSW, NumPy.

Vectors: clustered 512-d unit vectors (benchmarks/index_synthetic.py: a few thousand
Gaussian centres grouped under super-centres, low intrinsic dimension), and the real
EfficientNet-Lite0 embeddings of the photos shipped in scikit-image (with crops/flips).
Recall@10 is measured against exact search on a fixed sample of queries (all rows when
N <= sample). Times are wall-clock seconds for the whole graph (train + add + search);
rows marked "est" extrapolate the sample's search time to all N.

    .venv/bin/python benchmarks/index_knn.py --sizes 10000 100000 1000000
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402
from benchmarks.index_synthetic import clustered_unit_vectors  # noqa: E402
from benchmarks.provenance import write_result  # noqa: E402
from index.factory import (choose_factory, drop_self, make_index, recall_at_k,  # noqa: E402
                           search, self_knn, set_search_params)

K = 10


def numpy_knn(x: np.ndarray, rows: np.ndarray, k: int, chunk: int = 512) -> np.ndarray:
    """Brute force: top-k other rows by inner product for ``x[rows]``. Shapes -> (len(rows), k)."""
    out = np.empty((len(rows), k), np.int64)
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        S = x[r] @ x.T                                             # (c, N)
        S[np.arange(len(r)), r] = -np.inf                          # not itself
        part = np.argpartition(-S, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, part, 1), axis=1)
        out[s:s + chunk] = np.take_along_axis(part, order, 1)
    return out


def run_size(x: np.ndarray, label: str, sample: int, hnsw_max: int, flat_full_max: int, numpy_full_max: int):
    n, d = x.shape
    rows = np.arange(n) if n <= sample else np.sort(np.random.default_rng(1).choice(n, sample, replace=False))
    t = time.perf_counter()
    I_ref = numpy_knn(x, rows, K)
    t_np = time.perf_counter() - t
    results = [{"set": label, "n": n, "method": "numpy brute force",
                "seconds": t_np if len(rows) == n else t_np * n / len(rows),
                "estimated": len(rows) != n, "recall@10": 1.0}]
    print(f"  numpy: {results[-1]['seconds']:.1f}s{' (est)' if len(rows) != n else ''}", flush=True)

    # exact FAISS Flat
    idx = make_index("Flat", d)
    idx.add(x)
    t = time.perf_counter()
    if n <= flat_full_max:
        _, I = self_knn(idx, x, K)
        sec, est, I_s = time.perf_counter() - t, False, I[rows]
    else:
        D, I_s = search(idx, x[rows], K + 1)
        _, I_s = drop_self(D, I_s, rows, K)
        sec, est = (time.perf_counter() - t) * n / len(rows), True
    results.append({"set": label, "n": n, "method": "Flat (exact)", "factory": "Flat", "seconds": sec,
                    "estimated": est, "recall@10": recall_at_k(I_s, I_ref)})
    print(f"  Flat: {sec:.1f}s{' (est)' if est else ''} recall {results[-1]['recall@10']:.4f}", flush=True)
    del idx

    nlist = max(4, 2 ** int(round(np.log2(np.sqrt(n)))))
    configs = [("IVF-PQfs+refine", f"IVF{nlist},PQ{d // 8}x4fs,RFlat", {"nprobe": 8, "k_factor": 8.0}),
               ("IVF-Flat", f"IVF{nlist},Flat", {"nprobe": 8})]
    if n <= hnsw_max:
        configs.append(("HNSW", "HNSW32,Flat", {"efSearch": 64}))
    auto = choose_factory(n, d)
    for name, fac, params in configs:
        if name == "IVF-Flat" and n > flat_full_max:
            continue  # scanning full vectors is as slow as Flat at this size
        t = time.perf_counter()
        idx = make_index(fac, d, x)
        idx.add(x)
        set_search_params(idx, params)
        t_build = time.perf_counter() - t
        _, I = self_knn(idx, x, K)
        sec = time.perf_counter() - t
        results.append({"set": label, "n": n, "method": name + (" [auto]" if fac == auto else ""),
                        "factory": fac, "params": params, "build_seconds": t_build, "seconds": sec,
                        "estimated": False, "recall@10": recall_at_k(I[rows], I_ref)})
        print(f"  {name} {fac} {params}: build {t_build:.1f}s total {sec:.1f}s recall "
              f"{results[-1]['recall@10']:.4f}", flush=True)
        del idx
    return results


def real_embeddings() -> np.ndarray:
    """EfficientNet-Lite0 embeddings of scikit-image's photos, 8 crops/flips each."""
    import warnings

    from PIL import Image, ImageOps
    from skimage import data

    from index.embedders import get_embedder

    emb = get_embedder("efficientnet_lite0", device="cpu")
    names = ["astronaut", "camera", "cat", "chelsea", "coffee", "rocket", "motorcycle_left",
             "motorcycle_right", "horse", "page", "text", "brick", "grass", "gravel", "moon", "cell",
             "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel", "logo", "clock"]
    imgs = []
    rng = np.random.default_rng(0)
    for nm in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                a = getattr(data, nm)()
        except Exception:  # some need a download
            continue
        im = Image.fromarray(a if a.dtype == np.uint8 else (255 * (a / a.max())).astype(np.uint8)).convert("RGB")
        w, h = im.size
        for j in range(8):
            s = rng.uniform(0.6, 1.0)
            cw, ch = int(w * s), int(h * s)
            x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            c = im.crop((x0, y0, x0 + cw, y0 + ch))
            imgs.append(ImageOps.mirror(c) if j % 2 else c)
    return np.concatenate([emb.embed_images(imgs[i:i + 32]) for i in range(0, len(imgs), 32)])


def table(results) -> str:
    lines = [f"{'set':<10} {'N':>9} {'method':<28} {'factory':<26} {'seconds':>9} {'recall@10':>9}"]
    for r in results:
        sec = f"{r['seconds']:.1f}{'*' if r.get('estimated') else ''}"
        lines.append(f"{r['set']:<10} {r['n']:>9} {r['method']:<28} {r.get('factory', '-'):<26} "
                     f"{sec:>9} {r['recall@10']:>9.4f}")
    lines.append("* estimated from the sample queries' time")
    return "\n".join(lines)


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python benchmarks/index_knn.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--sample", type=int, default=2000, help="queries for recall / estimates")
    p.add_argument("--hnsw-max", type=int, default=100_000, help="largest N to build HNSW at")
    p.add_argument("--flat-full-max", type=int, default=100_000)
    p.add_argument("--no-real", action="store_true")
    p.add_argument("--out", default="benchmarks/results/index_knn.json")
    args = p.parse_args(argv)
    import faiss

    results = []
    if not args.no_real:
        x = real_embeddings()
        print(f"real: {x.shape}", flush=True)
        results += run_size(x, "real", args.sample, args.hnsw_max, args.flat_full_max, 10**9)
    for n in args.sizes:
        t = time.perf_counter()
        x = clustered_unit_vectors(n, args.dim)
        print(f"synthetic N={n}: generated in {time.perf_counter() - t:.1f}s", flush=True)
        results += run_size(x, "clustered", args.sample, args.hnsw_max, args.flat_full_max, 10**9)
        del x
    meta = {"cpu_count": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(),
            "faiss": faiss.__version__, "load_avg_end": os.getloadavg(), "k": K}
    write_result(args.out, {"meta": meta, "results": results}, __file__, argv)
    print(table(results))
    print(f"written {args.out}; load average at end {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
