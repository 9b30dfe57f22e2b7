"""Cost growth with collection size: index build, self-kNN and graph build from 10k to 10M posts.

Posts are stood in for by clustered 512-d unit vectors (benchmarks/index_synthetic.py), the
embeddings that the image stage would give; the real embedding throughput is measured by
benchmarks/index_embed.py and quoted from benchmarks/results/index_embed.json. For each size:

* ``vectors``: the vectors, written chunk by chunk to a ``.npy`` file under ``--work-dir``
  (10M x 512 float32 is 20 GB: never held in memory; every stage reads it a chunk at a
  time with ``pread``, not through a memory map, so that its peak memory is its own);
* ``index``: the index package's automatic choice (``index.factory.choose_factory``),
  trained on a sample of :func:`index.factory.n_train` rows and filled chunk by chunk;
* ``knn``: every vector's k=10 nearest other vectors, a chunk of queries at a time
  (grouped by IVF list), written to ``.npy`` files;
* ``graph``: the intra-modal relation graph (``retrieval.graphs.knn_edges`` over each
  post's ``--graph-k`` best neighbours), streamed chunk by chunk into a
  ``retrieval.chunks.ChunkStore``, as the graph cache of ``retrieval.cache`` is built;
* ``recall``: recall@10 of the kNN stage against exact brute-force search over the vectors,
  on a seeded sample of ``--sample`` queries.

Each stage runs in its own process, so its time and peak memory (the child's
``ru_maxrss``) are its own; a finished stage's result is kept in the work folder, so an
interrupted sweep continues where it stopped when the same command is run again. The big
files of a size are deleted once its stages are done, and the work folder at the end,
unless ``--keep``. The time of each stage is fitted as ``t ~ n^b`` over the sizes measured
(least squares on log t against log n) and drawn on a log-log plot.

    nice -n 19 .venv/bin/python benchmarks/scale.py --sizes 10k 100k 1M 10M

Writes ``benchmarks/results/scale.json`` (``--out``) through ``benchmarks/provenance.py``,
and ``scale.md`` and ``scale.png`` beside it; prints the table and whether the targets are
met (only measured figures count; an extrapolation is shown as an estimate).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402
from benchmarks.provenance import RESULTS, ROOT, write_rendering, write_result  # noqa: E402
from data.files import write_atomically  # noqa: E402

STAGES = ("vectors", "index", "knn", "graph", "recall")
PIPELINE = ("index", "knn", "graph")
"""The stages a collection of posts goes through (the targets and exponents are about them)."""
K = 10
GB = 1024 ** 3
TARGETS = {"n_big": 10_000_000, "big_seconds": 30 * 60, "big_recall": 0.9, "big_memory_gb": 8.0,
           "n_knn": 1_000_000, "knn_seconds": 120.0}
EMBED_RESULT = RESULTS / "index_embed.json"


def parse_size(text: str) -> int:
    """``"10k"`` -> 10000, ``"1M"`` -> 1000000, ``"2500"`` -> 2500."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmM]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"a size is a number with an optional k or M suffix (10k, 1M), "
                                         f"found {text!r}")
    n = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if n < 2 or n != int(n):
        raise argparse.ArgumentTypeError(f"a size must be a whole number >= 2, found {text!r}")
    return int(n)


def size_label(n: int) -> str:
    for unit, v in (("M", 10 ** 6), ("k", 10 ** 3)):
        if n >= v and n % v == 0:
            return f"{n // v}{unit}"
    return str(n)


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="python benchmarks/scale.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=parse_size, default=[10_000, 100_000],
                   help="collection sizes, e.g. 10k 100k 1M 10M")
    p.add_argument("--dim", type=int, default=512, help="vector width")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk", type=int, default=100_000, help="rows per chunk of every stage")
    p.add_argument("--graph-k", type=int, default=5, help="neighbours per post in the graph (paper: 5; <= 10)")
    p.add_argument("--sample", type=int, default=1000, help="queries for recall@10 against exact search")
    p.add_argument("--factory", default="auto",
                   help="FAISS factory string; auto = index.factory.choose_factory by size")
    p.add_argument("--nprobe", type=int, default=None, help="override the factory's default nprobe")
    p.add_argument("--work-dir", default=".cache/scale", help="vectors, indexes and kNN results (~20 GB at 10M)")
    p.add_argument("--keep", action="store_true", help="keep the work folder's files at the end")
    p.add_argument("--out", default=str(RESULTS / "scale.json"), help="result JSON (.md and .png beside it)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--run-stage", choices=STAGES, default=None, help=argparse.SUPPRESS)
    p.add_argument("--stage-size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not 1 <= args.graph_k <= K:
        p.error(f"--graph-k must be in [1, {K}], found {args.graph_k}")
    if args.chunk < 1 or args.sample < 1 or args.dim < 1:
        p.error("--chunk, --sample and --dim must be positive")
    args.sizes = sorted(set(args.sizes))
    args.work_dir = str(Path(args.work_dir).resolve())
    return args


# --------------------------------------------------------------------------- one size's folder
def size_dir(args, n: int) -> Path:
    return Path(args.work_dir) / f"n{n}"


def size_config(args, n: int) -> dict:
    """What a size's files depend on: a folder made with another one is refused."""
    return {"n": n, "dim": args.dim, "seed": args.seed, "chunk": args.chunk, "k": K, "graph_k": args.graph_k,
            "sample": args.sample, "factory": args.factory, "nprobe": args.nprobe}


def factory_for(args, n: int) -> tuple[str, dict]:
    """The factory string and its search parameters for ``n`` vectors."""
    from index.factory import choose_factory, default_search_params

    factory = choose_factory(n, args.dim) if args.factory == "auto" else args.factory
    params = default_search_params(factory, n)
    if args.nprobe is not None and "IVF" in factory:
        params["nprobe"] = args.nprobe
    return factory, params


def _bar(total: int, desc: str, quiet: bool, unit: str = "rows"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, disable=quiet)


def _publish(tmp: Path, final: Path) -> None:
    os.replace(tmp, final)


class NpyRows:
    """Rows of a 2-d ``.npy`` file read and written with ``pread``/``pwrite``, never mapped.

    A memory map would count every page a stage touched in its resident memory (the whole
    20 GB file at 10M), so the peak memory measured would be the file's, not the stage's;
    rows read here are copies the stage holds only while it uses them.

    Shapes: ``read(start, stop)`` -> (stop - start, cols); ``read_rows(rows)`` -> (len(rows), cols).
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int] | None = None, dtype=np.float32):
        path = Path(path)
        self.writable = shape is not None
        if self.writable:                                                # a new file, sparse until written
            header_only = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=tuple(shape))
            del header_only
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            self.shape, fortran, self.dtype = read_header(f)
            self.offset = f.tell()
        if fortran or len(self.shape) != 2:
            raise ValueError(f"{path}: expected a 2-d C-order array, found shape {self.shape}")
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self.fd = os.open(path, os.O_RDWR if self.writable else os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.shape[0])
        out = np.empty((max(stop - start, 0), self.shape[1]), self.dtype)
        view, pos, done = memoryview(out).cast("B"), self.offset + start * self.row_bytes, 0
        while done < len(view):
            got = os.preadv(self.fd, [view[done:]], pos + done)
            if got <= 0:
                raise OSError(f"short read at row {start} of {self.shape[0]}")
            done += got
        return out

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.shape[1]), self.dtype)
        for j, r in enumerate(rows):
            out[j] = self.read(int(r), int(r) + 1)[0]
        return out

    def write(self, start: int, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype)
        view, pos, done = memoryview(data).cast("B"), self.offset + start * self.row_bytes, 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], pos + done)

    def write_rows(self, rows: np.ndarray, block: np.ndarray) -> None:
        """Scattered rows, written in runs of consecutive ones."""
        order = np.argsort(rows)
        rows, block = np.asarray(rows)[order], np.asarray(block)[order]
        cuts = np.nonzero(np.diff(rows) != 1)[0] + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(rows)]):
            self.write(int(rows[a]), block[a:b])

    def close(self) -> None:
        if self.writable:
            os.fsync(self.fd)
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- the stages (in a child)
def stage_vectors(args, n: int, d: Path) -> dict:
    from benchmarks.index_synthetic import write_clustered_unit_vectors

    tmp = d / "vectors.tmp.npy"
    t0 = time.perf_counter()
    with NpyRows(tmp, (n, args.dim)) as out, _bar(n, f"vectors {size_label(n)}", args.quiet) as bar:
        write_clustered_unit_vectors(_RowSink(out), chunk=args.chunk, seed=args.seed, progress=bar.update)
    _publish(tmp, d / "vectors.npy")
    return {"seconds": time.perf_counter() - t0, "bytes": (d / "vectors.npy").stat().st_size}


class _RowSink:
    """``out[s:e] = block`` onto an :class:`NpyRows` (what write_clustered_unit_vectors does)."""

    def __init__(self, rows: NpyRows):
        self.rows, self.shape = rows, rows.shape

    def __setitem__(self, sl: slice, block: np.ndarray) -> None:
        self.rows.write(sl.start, block)


def stage_index(args, n: int, d: Path) -> dict:
    import faiss

    from index.factory import make_index, n_train, set_search_params

    x = NpyRows(d / "vectors.npy")
    factory, params = factory_for(args, n)
    t0 = time.perf_counter()
    train = None
    m = n_train(factory, n)
    if factory != "Flat":
        rows = np.sort(np.random.default_rng(args.seed + 1).choice(n, m, replace=False))
        train = x.read_rows(rows)                                        # (m, dim)
    index = make_index(factory, args.dim, train, seed=args.seed)
    del train
    t_train = time.perf_counter() - t0
    with _bar(n, f"index {size_label(n)} ({factory})", args.quiet) as bar:
        for s in range(0, n, args.chunk):
            index.add(x.read(s, s + args.chunk))
            bar.update(min(args.chunk, n - s))
    set_search_params(index, params)
    seconds = time.perf_counter() - t0
    tmp = d / "index.tmp.faiss"
    faiss.write_index(index, str(tmp))
    _publish(tmp, d / "index.faiss")
    return {"seconds": seconds, "train_seconds": t_train, "factory": factory, "search_params": params,
            "n_train": m if factory != "Flat" else 0, "index_bytes": (d / "index.faiss").stat().st_size}


def stage_knn(args, n: int, d: Path) -> dict:
    import faiss

    from index.factory import drop_self, list_order, search, set_search_params

    x = NpyRows(d / "vectors.npy")
    factory, params = factory_for(args, n)
    t0 = time.perf_counter()
    index = faiss.read_index(str(d / "index.faiss"))
    set_search_params(index, params)
    t_load = time.perf_counter() - t0
    D_out = NpyRows(d / "knn_D.tmp.npy", (n, K), np.float32)
    I_out = NpyRows(d / "knn_I.tmp.npy", (n, K), np.int64)
    t0 = time.perf_counter()
    with _bar(n, f"self-kNN {size_label(n)}", args.quiet) as bar:
        for s in range(0, n, args.chunk):
            q = x.read(s, s + args.chunk)                                # (c, dim)
            perm = list_order(index, q)                                  # queries grouped by IVF list
            D, I = search(index, q[perm], K + 1)                         # (c, K + 1)
            D, I = drop_self(D, I, s + perm, K)                          # (c, K)
            D_out.write_rows(s + perm, D)
            I_out.write_rows(s + perm, I)
            bar.update(len(q))
    seconds = time.perf_counter() - t0
    D_out.close(), I_out.close()
    _publish(d / "knn_D.tmp.npy", d / "knn_D.npy")
    _publish(d / "knn_I.tmp.npy", d / "knn_I.npy")
    return {"seconds": seconds, "load_seconds": t_load, "k": K}


def stage_graph(args, n: int, d: Path) -> dict:
    from retrieval.chunks import ChunkStore
    from retrieval.graphs import RELATIONS, knn_edges

    D, I = NpyRows(d / "knn_D.npy"), NpyRows(d / "knn_I.npy")
    t0 = time.perf_counter()
    store = ChunkStore.open(d / "graph", f"scale-n{n}-k{args.graph_k}", n, args.chunk)
    with _bar(store.n_chunks, f"graph {size_label(n)}", args.quiet, "chunks") as bar:
        bar.update(store.n_chunks - len(store.todo()))
        for i in store.todo():
            sl = store.bounds(i)
            ei, ew, _ = knn_edges(D.read(sl.start, sl.stop)[:, :args.graph_k], I.read(sl.start, sl.stop)[:, :args.graph_k],
                                  relation=RELATIONS["intra"], centers=np.arange(sl.start, sl.stop))  # (2, E), (E,)
            store.write(i, {"edge_index": ei.numpy(), "edge_weight": ew.numpy()}, {"edges": int(ei.shape[1])})
            bar.update(1)
    edges = sum(info["edges"] for info in store.done.values())
    return {"seconds": time.perf_counter() - t0, "edges": edges, "graph_k": args.graph_k,
            "relation": "intra", "chunks": store.n_chunks}


def exact_topk(x: np.ndarray, rows: np.ndarray, k: int, chunk: int = 16_384) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force inner-product top-``k`` other rows of ``x`` for the rows ``rows``, reading
    ``x`` a chunk of rows at a time: an array, or a file reader with ``read(start, stop)``
    (an :class:`NpyRows`, or :class:`index.streaming.VectorFiles` over several files).

    Shapes: ``x`` (N, d), ``rows`` (nq,) -> ``D`` (nq, k) float32, ``I`` (nq, k) int64, best first.
    """
    rows = np.asarray(rows, dtype=np.int64)
    read = x.read if hasattr(x, "read") else (lambda a, b: np.ascontiguousarray(x[a:b], dtype=np.float32))
    Q = x.read_rows(rows) if isinstance(x, NpyRows) else np.ascontiguousarray(x[rows], dtype=np.float32)  # (nq, d)
    nq = len(rows)
    bestD = np.full((nq, k), -np.inf, np.float32)
    bestI = np.full((nq, k), -1, np.int64)
    for s in range(0, len(x), chunk):
        block = read(s, s + chunk)
        S = Q @ block.T                                                  # (nq, c)
        own = (rows >= s) & (rows < s + len(block))
        S[np.nonzero(own)[0], rows[own] - s] = -np.inf                   # never the query itself
        kk = min(k, S.shape[1])
        part = np.argpartition(-S, kk - 1, axis=1)[:, :kk]               # (nq, kk) the block's best
        candD = np.concatenate([bestD, np.take_along_axis(S, part, 1)], 1)   # (nq, k + kk)
        candI = np.concatenate([bestI, part + s], 1)
        top = np.argpartition(-candD, k - 1, axis=1)[:, :k]
        bestD, bestI = np.take_along_axis(candD, top, 1), np.take_along_axis(candI, top, 1)
    order = np.argsort(-bestD, axis=1, kind="stable")
    return np.take_along_axis(bestD, order, 1), np.take_along_axis(bestI, order, 1)


def stage_recall(args, n: int, d: Path) -> dict:
    from index.factory import recall_at_k

    x, I = NpyRows(d / "vectors.npy"), NpyRows(d / "knn_I.npy")
    rows = np.sort(np.random.default_rng(args.seed + 2).choice(n, min(args.sample, n), replace=False))
    t0 = time.perf_counter()
    _, I_exact = exact_topk(x, rows, K, chunk=min(args.chunk, 16_384))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "recall@10": recall_at_k(I.read_rows(rows), I_exact, K), "queries": len(rows)}


STAGE_FUNCTIONS = {"vectors": stage_vectors, "index": stage_index, "knn": stage_knn, "graph": stage_graph,
                   "recall": stage_recall}


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def run_stage_here(args) -> int:
    """The child's side: run one stage of one size, write its figures for the parent."""
    import faiss  # noqa: F401 -- imported before the baseline, as the stages' libraries
    if args.run_stage == "graph":
        import retrieval.graphs  # noqa: F401 -- torch

    n, d = args.stage_size, size_dir(args, args.stage_size)
    base = _rss_bytes()
    res = STAGE_FUNCTIONS[args.run_stage](args, n, d)
    res["baseline_rss_bytes"] = base                                     # interpreter and imports
    res["child_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _write_json(d / f".{args.run_stage}.child.json", res)
    return 0


# --------------------------------------------------------------------------- the sweep (the parent)
def _write_json(path: Path, obj) -> None:
    write_atomically(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def run_stage(args, argv: list[str], n: int, stage: str) -> tuple[dict, bool]:
    """A stage's figures: kept from an earlier run, or measured now in a child process.
    Returns ``(figures, measured_now)``."""
    d = size_dir(args, n)
    done = d / f"{stage}.json"
    if done.is_file():
        return json.loads(done.read_text()), False
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--work-dir", args.work_dir,
           "--run-stage", stage, "--stage-size", str(n)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)                             # this child's own rusage
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: stage {stage} at n={size_label(n)} failed (exit {proc.returncode}); the "
                         f"stages finished so far are kept in {d}: run the same command again to continue")
    child = d / f".{stage}.child.json"
    res = json.loads(child.read_text())
    child.unlink()
    res["peak_rss_bytes"] = usage.ru_maxrss * 1024
    res["wall_seconds"] = wall
    _write_json(done, res)
    return res, True


def prepare_size(args, n: int) -> Path:
    d = size_dir(args, n)
    d.mkdir(parents=True, exist_ok=True)
    cfg, f = size_config(args, n), d / "config.json"
    if f.is_file():
        old = json.loads(f.read_text())
        if old != cfg:
            diff = {k: (old.get(k), v) for k, v in cfg.items() if old.get(k) != v}
            raise UserError(f"{d} holds a run with other settings (kept, asked): {diff}; use another "
                            f"--work-dir or delete it (`rm -r {d}`)")
    else:
        _write_json(f, cfg)
    return d


def check_room(args, n: int, d: Path) -> None:
    """Refuse a size whose files do not fit the work folder's disk; warn when the index
    alone (with what it keeps for a re-rank) would not fit in memory."""
    from index.factory import index_ram_bytes

    factory, _ = factory_for(args, n)
    raw = n * args.dim * 4
    index_bytes = index_ram_bytes(factory, n, args.dim)
    left = {"vectors": not (d / "vectors.json").is_file(), "index": not (d / "index.json").is_file(),
            "knn": not (d / "knn.json").is_file()}
    need = raw * left["vectors"] + index_bytes * left["index"] + n * K * 12 * left["knn"]
    free = shutil.disk_usage(d).free
    if need > free:
        raise UserError(f"n={size_label(n)} needs about {need / GB:.1f} GB of disk in {d} "
                        f"(vectors, index, kNN) but {free / GB:.1f} GB are free: use another --work-dir")
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if index_bytes > 0.8 * memory:
        print(f"warning: the index {factory} keeps about {index_bytes / GB:.1f} GB in memory at "
              f"n={size_label(n)} and this machine has {memory / GB:.1f} GB: its stages may be killed",
              file=sys.stderr, flush=True)


def clean_size(d: Path) -> None:
    """Delete a finished size's big files (vectors, index, kNN, graph chunks), keep its figures."""
    for name in ("vectors.npy", "index.faiss", "knn_D.npy", "knn_I.npy"):
        (d / name).unlink(missing_ok=True)
    shutil.rmtree(d / "graph", ignore_errors=True)


def fit_exponent(ns, values) -> float | None:
    """Slope of log(value) on log(n) by least squares; None with fewer than 2 sizes."""
    pts = [(math.log(n), math.log(v)) for n, v in zip(ns, values) if v is not None and v > 0]
    if len(pts) < 2 or len({p[0] for p in pts}) < 2:
        return None
    a = np.asarray(pts)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def index_family(factory: str) -> str:
    """The kind of index without its sizes: ``IVF1024,PQ64x4fs,RFlat`` -> ``IVF,PQx4fs,RFlat``."""
    return re.sub(r"\d+", "", factory)


def extrapolate(ns, values, n_to: int) -> float | None:
    """``value(n_to)`` from the largest size measured and the fitted exponent."""
    b = fit_exponent(ns, values)
    if b is None:
        return None
    return float(values[-1] * (n_to / ns[-1]) ** b)


def embedding_throughput() -> dict | None:
    """The real embedders' images/s as benchmarks/index_embed.py measured them (not re-measured)."""
    if not EMBED_RESULT.is_file():
        return None
    r = json.loads(EMBED_RESULT.read_text())
    return {"source": EMBED_RESULT.relative_to(ROOT).as_posix(), "command": r["provenance"]["command"],
            "date_utc": r["provenance"]["date_utc"],
            "images_per_second": {x["embedder"]: round(x["images_per_second"], 2) for x in r["results"]}}


def check_targets(sizes: list[dict], estimates: dict) -> list[dict]:
    """Each target: measured and met / not met, or not measured (with the estimate beside it)."""
    by_n = {s["n"]: s for s in sizes}
    big, t = by_n.get(TARGETS["n_big"]), TARGETS
    out = []

    def row(name, value, limit, ok, unit, estimate=None):
        status = "not measured" if value is None else ("met" if ok(value) else "not met")
        out.append({"target": name, "measured": value, "limit": limit, "unit": unit, "status": status,
                    "estimate": estimate if value is None else None})

    total = sum(big["stages"][s]["seconds"] for s in PIPELINE) if big else None
    est_total = (sum(estimates[s]["seconds"] for s in PIPELINE)
                 if all(estimates.get(s, {}).get("seconds") is not None for s in PIPELINE) else None)
    row("10M posts: index build + self-kNN + graph build", total, t["big_seconds"], lambda v: v < t["big_seconds"],
        "s", est_total)
    row("10M posts: recall@10 against exact search", big["recall@10"] if big else None, t["big_recall"],
        lambda v: v >= t["big_recall"], "")
    peak = max(big["stages"][s]["peak_rss_bytes"] for s in PIPELINE) / GB if big else None
    est_peak = (max(estimates[s]["peak_gb"] for s in PIPELINE)
                if all(estimates.get(s, {}).get("peak_gb") is not None for s in PIPELINE) else None)
    row("10M posts: peak memory of a stage", peak, t["big_memory_gb"], lambda v: v < t["big_memory_gb"], "GB",
        est_peak)
    knn = by_n.get(t["n_knn"])
    est_knn = estimates.get("knn_1M")
    row("1M posts: self-kNN", knn["stages"]["knn"]["seconds"] if knn else None, t["knn_seconds"],
        lambda v: v < t["knn_seconds"], "s", est_knn)
    return out


def table(result: dict) -> str:
    """The figures as a Markdown table, the exponents and the targets."""
    lines = ["| n | index | build s | self-kNN s | graph s | recall@10 | peak GB (index / kNN / graph) |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for s in result["sizes"]:
        st = s["stages"]
        lines.append(f"| {size_label(s['n'])} | `{s['factory']}` | {st['index']['seconds']:.2f} | "
                     f"{st['knn']['seconds']:.2f} | {st['graph']['seconds']:.2f} | {s['recall@10']:.4f} | "
                     + " / ".join(f"{st[x]['peak_rss_bytes'] / GB:.2f}" for x in PIPELINE) + " |")
    ex = result["exponents"]
    lines += ["", "Fitted growth exponent b of t ~ n^b (least squares on log-log, over the sizes above): "
              + ", ".join(f"{s} {ex[s]['seconds']:.2f}" if ex[s]["seconds"] is not None else f"{s} -"
                          for s in (*PIPELINE, "vectors", "recall"))]
    factories = list(dict.fromkeys(s["factory"] for s in result["sizes"]))
    if len(factories) > 1:
        lines.append(f"The index type changes across these sizes ({', '.join(factories)}): an exponent fitted "
                     "across the change mixes two index types, and an extrapolation from it is rough.")
    if result["estimates"]:
        used = next(iter(result["estimates"].values()))
        used = used.get("from_sizes", []) if isinstance(used, dict) else []
        lines.append(f"Extrapolated to 10M posts from the largest size and the exponents fitted over the sizes "
                     f"with its kind of index ({', '.join(map(size_label, used))}; estimates, not "
                     "measurements): " + ", ".join(
                         f"{s} {e['seconds']:.3g} s (n^{e['exponent']:.2f}) / {e['peak_gb']:.3g} GB"
                         for s, e in result["estimates"].items()
                         if s in PIPELINE and e.get("seconds") is not None))
    lines += ["", "| target | limit | measured | status |", "|---|---:|---:|---|"]
    for t in result["targets"]:
        m = "-" if t["measured"] is None else f"{t['measured']:.4g} {t['unit']}".strip()
        est = f" (estimate {t['estimate']:.4g} {t['unit']})".rstrip() if t["estimate"] is not None else ""
        lines.append(f"| {t['target']} | {t['limit']} {t['unit']} | {m} | {t['status']}{est} |")
    emb = result.get("embedding_throughput")
    if emb:
        lines += ["", f"Real image embedding throughput ({emb['source']}, `{emb['command']}`): "
                  + ", ".join(f"{k} {v:.1f} images/s ({10_000_000 / v / 3600:.0f} h for 10M images)"
                              for k, v in emb["images_per_second"].items())]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [s["n"] for s in result["sizes"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for stage in (*PIPELINE, "recall"):
        b = result["exponents"][stage]["seconds"]
        label = f"{stage} (n^{b:.2f})" if b is not None else stage
        ax.loglog(ns, [s["stages"][stage]["seconds"] for s in result["sizes"]], "o-", label=label)
    ax.set_xlabel("posts (n)")
    ax.set_ylabel("seconds")
    ax.set_title("cost growth per stage (recall: exact search on a sample)", fontsize=10)
    ax.grid(True, which="both", alpha=.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


@command
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.run_stage is not None:
        return run_stage_here(args)
    import faiss

    sizes = []
    for n in args.sizes:
        d = prepare_size(args, n)
        check_room(args, n, d)
        stages = {}
        for stage in STAGES:
            stages[stage], now = run_stage(args, argv, n, stage)
            r = stages[stage]
            print(f"n={size_label(n):>5} {stage:<8} {r['seconds']:9.2f} s  peak {r['peak_rss_bytes'] / GB:6.2f} GB"
                  + ("" if now else "  (kept from an earlier run)")
                  + (f"  recall@10 {r['recall@10']:.4f}" if stage == "recall" else ""), flush=True)
        if not args.keep:
            clean_size(d)
        idx = stages["index"]
        sizes.append({"n": n, "factory": idx["factory"], "search_params": idx["search_params"],
                      "recall@10": stages["recall"]["recall@10"], "stages": stages})
    ns = [s["n"] for s in sizes]
    exponents = {st: {"seconds": fit_exponent(ns, [s["stages"][st]["seconds"] for s in sizes]),
                      "peak_rss": fit_exponent(ns, [s["stages"][st]["peak_rss_bytes"] for s in sizes])}
                 for st in STAGES}
    # extrapolations use the sizes whose index is of the largest size's kind (IVF lists grow
    # with n; a Flat index at the small sizes scales differently), or all when fewer than 2
    fit = [s for s in sizes if index_family(s["factory"]) == index_family(sizes[-1]["factory"])]
    fit = fit if len(fit) >= 2 else sizes
    fit_ns = [s["n"] for s in fit]
    estimates = {}
    if TARGETS["n_big"] not in ns and len(ns) >= 2:
        for st in PIPELINE:
            sec = extrapolate(fit_ns, [s["stages"][st]["seconds"] for s in fit], TARGETS["n_big"])
            mem = extrapolate(fit_ns, [s["stages"][st]["peak_rss_bytes"] for s in fit], TARGETS["n_big"])
            estimates[st] = {"seconds": sec, "peak_gb": mem / GB if mem is not None else None, "from_sizes": fit_ns,
                             "exponent": fit_exponent(fit_ns, [s["stages"][st]["seconds"] for s in fit])}
    if TARGETS["n_knn"] not in ns and len(ns) >= 2:
        estimates["knn_1M"] = extrapolate(fit_ns, [s["stages"]["knn"]["seconds"] for s in fit], TARGETS["n_knn"])
    payload = {"meta": {"k": K, "graph_k": args.graph_k, "dim": args.dim, "seed": args.seed, "chunk": args.chunk,
                        "sample": args.sample, "factory": args.factory, "nprobe": args.nprobe,
                        "faiss": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
                        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
                        "note": "seconds: the stage's work in its own process (no interpreter start or imports); "
                                "peak_rss_bytes: that process's ru_maxrss (baseline_rss_bytes: after imports)"},
               "sizes": sizes, "exponents": exponents, "estimates": estimates,
               "embedding_throughput": embedding_throughput()}
    payload["targets"] = check_targets(sizes, estimates)
    out = Path(args.out)
    result = write_result(out, payload, __file__, argv)
    text = table(result)
    write_rendering(out.with_suffix(".md"), result, f"`{result['provenance']['command']}`\n\n{text}\n")
    plot(result, out.with_suffix(".png"))
    if not args.keep:
        for s in args.sizes:
            shutil.rmtree(size_dir(args, s), ignore_errors=True)
        try:
            Path(args.work_dir).rmdir()
        except OSError:
            pass
    print()
    print(text)
    print(f"\nwrote {out}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
