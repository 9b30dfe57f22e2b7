"""Large-collection index types, built the way a sharded build builds them: from vectors on disk.

Clustered 512-d unit vectors (benchmarks/index_synthetic.py) are written as ``--shards``
``.npy`` files, as a sharded build's shards hold them; each factory is then built by
:func:`index.streaming.build_streamed` (trained on the sample a build uses, filled a block
at a time from the files) in a process of its own, whose peak resident memory
(``ru_maxrss``) is reported beside the index's own estimate
(:func:`index.factory.index_ram_bytes`) and that estimate at 10M vectors. Recall@10 is
measured against exact search (a streamed brute force) for ``--queries`` rows of the set
(each row's own id left out).

``IVF4096`` at 1M is a stand-in for the 10M choice: with 4x fewer vectors a list, a
vector's neighbours spread over more lists than at 10M, so its recall at 1M is a lower
bound of sorts for the same ``nlist`` and ``nprobe`` at 10M.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/index_large.py --n 1000000 \\
        --factories "IVF1024,PQ64x4fs,Refine(SQ8)" "IVF4096,PQ64x4fs,Refine(SQ8)"
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402
from benchmarks.provenance import write_result  # noqa: E402
from data.files import write_atomically  # noqa: E402

K = 10


def generate(work: Path, n: int, dim: int, shards: int) -> list[Path]:
    from benchmarks.index_synthetic import clustered_unit_vectors

    files = [work / f"shard-{i}.npy" for i in range(shards)]
    meta = work / "vectors.json"
    if meta.is_file() and json.loads(meta.read_text()) == {"n": n, "dim": dim, "shards": shards} \
            and all(f.is_file() for f in files):
        return files
    x = clustered_unit_vectors(n, dim)
    for i, f in enumerate(files):
        np.save(f, x[n * i // shards: n * (i + 1) // shards])
    write_atomically(meta, lambda f: f.write(json.dumps({"n": n, "dim": dim, "shards": shards}).encode()))   # a work file
    return files


def query_rows(n: int, queries: int) -> np.ndarray:
    return np.sort(np.random.default_rng(1).choice(n, min(n, queries), replace=False))


def exact(files: list[Path], rows: np.ndarray, k: int) -> np.ndarray:
    """Top-k other rows by inner product, a block of the set at a time. Shapes -> (len(rows), k)."""
    from benchmarks.scale import exact_topk
    from index.streaming import VectorFiles

    return exact_topk(VectorFiles(files), rows, k, chunk=65_536)[1]


def measure(files: list[Path], factory: str, params: dict, rows: np.ndarray, k: int) -> dict:
    """Build ``factory`` streamed from ``files``, search ``rows``; figures of this process."""
    from index.factory import drop_self, index_ram_bytes, search, set_search_params
    from index.streaming import VectorFiles, build_streamed

    v = VectorFiles(files)
    t = time.perf_counter()
    index = build_streamed(factory, v, progress=False)
    build = time.perf_counter() - t
    set_search_params(index, params)
    q = v[rows]
    t = time.perf_counter()
    D, I = search(index, q, k + 1)
    sec = time.perf_counter() - t
    _, I = drop_self(D, I, rows, k)
    return {"factory": factory, "params": params, "n": len(v), "build_seconds": round(build, 1),
            "search_seconds": round(sec, 2), "queries": len(rows),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
            "index_ram_gb_estimate": round(index_ram_bytes(factory, len(v), v.dim) / 1e9, 3),
            "index_ram_gb_at_10M": round(index_ram_bytes(factory, 10_000_000, v.dim) / 1e9, 3), "I": I.tolist()}


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python benchmarks/index_large.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--shards", type=int, default=4)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--factories", nargs="+", default=["IVF1024,PQ64x4fs,Refine(SQ8)", "IVF4096,PQ64x4fs,Refine(SQ8)"])
    p.add_argument("--work", default="/tmp/index_large", help="scratch folder for the vector files")
    p.add_argument("--out", default="benchmarks/results/index_large.json")
    p.add_argument("--step", choices=["all", "generate", "exact", "measure"], default="all", help=argparse.SUPPRESS)
    p.add_argument("--factory", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    files = [work / f"shard-{i}.npy" for i in range(args.shards)]
    rows = query_rows(args.n, args.queries)
    if args.step == "generate":
        generate(work, args.n, args.dim, args.shards)
        return 0
    if args.step == "exact":
        np.save(work / "exact.npy", exact(files, rows, K))
        return 0
    if args.step == "measure":
        from index.factory import default_search_params

        print(json.dumps(measure(files, args.factory, default_search_params(args.factory), rows, K)))
        return 0

    from index.factory import recall_at_k

    def child(*extra) -> str:                          # each step in a process of its own: its own peak memory
        cmd = [sys.executable, __file__, "--n", str(args.n), "--dim", str(args.dim), "--shards", str(args.shards),
               "--queries", str(args.queries), "--work", str(work), *extra]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    t = time.perf_counter()
    child("--step", "generate")
    print(f"vectors: {args.n} x {args.dim} in {args.shards} files ({time.perf_counter() - t:.0f}s)", flush=True)
    t = time.perf_counter()
    child("--step", "exact")
    I_ref = np.load(work / "exact.npy")
    print(f"exact neighbours of {len(rows)} queries ({time.perf_counter() - t:.0f}s)", flush=True)
    results = []
    for fac in args.factories:
        r = json.loads(child("--step", "measure", "--factory", fac).strip().splitlines()[-1])
        r["recall@10"] = recall_at_k(np.array(r.pop("I")), I_ref)
        results.append(r)
        print(f"  {fac} {r['params']}: build {r['build_seconds']}s, search {r['search_seconds']}s for "
              f"{r['queries']} queries, recall@10 {r['recall@10']:.4f}, peak RSS {r['peak_rss_gb']} GB "
              f"(index estimate {r['index_ram_gb_estimate']} GB; at 10M {r['index_ram_gb_at_10M']} GB)", flush=True)
    import faiss

    meta = {"cpu_count": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(), "faiss": faiss.__version__,
            "load_avg_end": os.getloadavg(), "k": K, "n": args.n, "dim": args.dim, "shards": args.shards}
    write_result(args.out, {"meta": meta, "results": results}, __file__, argv)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
