"""What a CUDA machine gives this project, measured in one go.

    python benchmarks/gpu_check.py [--encoder .cache/mpnet/all-mpnet-base-v2] [--parts tests train knn ddp]
                                   [--knn-n 1000000] [--no-cpu-baseline] [--output FILE]

Parts (all by default):

* ``tests``: the GPU-only tests (``pytest -m gpu``: tagger forward on cuda, faiss-gpu search,
  averaging on cuda ...), their pass / fail / skip counts;
* ``train``: one Twitter-2015 epoch of the text and the rgcn head (no images) with MPNet on the
  GPU: minutes per epoch, tagging posts/s on test, peak GPU memory, and dev F1 beside the same
  config's run on the CPU (``--no-cpu-baseline`` leaves that out);
* ``knn``: faiss-gpu self-kNN (k=10) on 1M clustered 512-d unit vectors against the CPU index
  the project would choose: seconds and recall@10 of each against exact search on a sample;
* ``ddp``: a 2-process DDP epoch (``torchrun --nproc_per_node 2 train.py``) when two GPUs exist.

The result goes through :mod:`benchmarks.provenance` (``benchmarks/results/gpu_check.json`` by
default). Without CUDA it says so and exits with status 2.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402

PARTS = ("tests", "train", "knn", "ddp")
K = 10
SHARED = ROOT.parent / "shared" / "data" / "twitter2015"
DEFAULT_ENCODER = ".cache/mpnet/all-mpnet-base-v2"
HEAD_CONFIGS = {"text": "configs/twitter2015_mpnet.yaml", "rgcn": "configs/twitter2015_rgcn_noimage.yaml"}


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to run (default: all)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER,
                   help=f"text encoder for the training part (default {DEFAULT_ENCODER}: bash benchmarks/fetch_mpnet.sh)")
    p.add_argument("--data", default=str(SHARED), help="folder with train.txt, valid.txt, test.txt (Twitter-2015)")
    p.add_argument("--heads", nargs="+", default=list(HEAD_CONFIGS), choices=list(HEAD_CONFIGS))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--no-cpu-baseline", action="store_true", help="train on the GPU only (no CPU run to compare)")
    p.add_argument("--knn-n", type=int, default=1_000_000, help="vectors for the kNN part (default 1M)")
    p.add_argument("--knn-dim", type=int, default=512)
    p.add_argument("--knn-sample", type=int, default=2000, help="queries whose exact neighbours score recall@10")
    p.add_argument("--out-dir", default="runs/gpu_check", help="run folders of the training parts")
    p.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    a = p.parse_args(argv)
    if a.epochs < 1 or a.knn_n < K + 1 or not 1 <= a.knn_sample <= a.knn_n:
        raise UserError("--epochs / --knn-n / --knn-sample", f"found {a.epochs} / {a.knn_n} / {a.knn_sample}",
                        f"give epochs >= 1, knn-n > {K} and 1 <= knn-sample <= knn-n")
    return a


def require_cuda() -> int:
    """The number of CUDA devices; a :class:`UserError` when torch sees none."""
    import torch

    if not torch.cuda.is_available():
        raise UserError("CUDA", "torch sees no CUDA device (torch.cuda.is_available() is False)",
                        "run this check on a machine with an NVIDIA GPU and a CUDA build of torch; the CPU "
                        "benchmarks are the other scripts in benchmarks/")
    return torch.cuda.device_count()


# ---- the GPU tests ---------------------------------------------------------------------------------

def pytest_counts(output: str) -> dict:
    """``{"passed": n, "failed": n, "skipped": n, "error": n}`` from pytest's last summary line."""
    import re

    last = [line for line in output.splitlines() if re.search(r"\b(passed|failed|skipped|error|deselected)", line)]
    counts = {"passed": 0, "failed": 0, "skipped": 0, "error": 0}
    for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last[-1] if last else ""):
        counts["error" if what.startswith("error") else what] = int(n)
    return counts


def run_gpu_tests() -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], cwd=ROOT,
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    return {"returncode": proc.returncode, **pytest_counts(out), "seconds": round(time.perf_counter() - t, 1),
            "tail": out.strip().splitlines()[-15:]}


# ---- one training epoch, GPU and CPU ----------------------------------------------------------------

def train_once(head: str, device: str, a) -> dict:
    import torch

    from rgcn.config import load_config
    from rgcn.training import Trainer

    name = f"{head}_{device.replace(':', '')}"
    overrides = [f"data.train={Path(a.data) / 'train.txt'}", f"data.valid={Path(a.data) / 'valid.txt'}",
                 f"data.test={Path(a.data) / 'test.txt'}", f"encoder.name={a.encoder}", f"train.epochs={a.epochs}",
                 f"train.device={device}", "train.precision=fp32", f"name={name}", f"out_dir={a.out_dir}"]
    cfg = load_config(ROOT / HEAD_CONFIGS[head], overrides)
    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    results = Trainer(cfg, progress=False).fit()
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    out = {"device": device, "dev_f1": round(results["valid"]["micro"]["f1"], 2),
           "minutes_per_epoch": round(float(np.mean([r["train_seconds"] for r in rows])) / 60, 2),
           "train_posts_per_second": rows[-1]["train_posts_per_second"],
           "tagging_posts_per_second": results.get("test_posts_per_second")}
    if gpu:
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 2)
    return out


def run_training(a) -> dict:
    import torch

    out = {}
    for head in a.heads:
        gpu = train_once(head, "cuda", a)
        row = {"gpu": gpu, "gpu_name": torch.cuda.get_device_name(0)}
        if not a.no_cpu_baseline:
            cpu = train_once(head, "cpu", a)
            row["cpu"] = cpu
            row["dev_f1_gpu_minus_cpu"] = round(gpu["dev_f1"] - cpu["dev_f1"], 2)
            row["speedup_train"] = round(cpu["minutes_per_epoch"] / max(gpu["minutes_per_epoch"], 1e-9), 1)
        print(head, json.dumps(row), flush=True)
        out[head] = row
    return out


# ---- faiss-gpu self-kNN ---------------------------------------------------------------------------

def exact_neighbours(x: np.ndarray, rows: np.ndarray, k: int = K, chunk: int = 1024) -> np.ndarray:
    """The exact top-``k`` other rows of ``x`` by inner product for the rows ``rows``: ``(len(rows), k)``."""
    out = np.empty((len(rows), k), np.int64)
    for s in range(0, len(rows), chunk):
        r = rows[s:s + chunk]
        S = x[r] @ x.T                                            # (c, N)
        S[np.arange(len(r)), r] = -np.inf                         # a vector is not its own neighbour
        part = np.argpartition(-S, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, part, 1), axis=1)
        out[s:s + chunk] = np.take_along_axis(part, order, 1)
    return out


def knn_against_exact(index, x: np.ndarray, rows: np.ndarray, I_ref: np.ndarray, k: int = K) -> dict:
    """Self-kNN of every row with ``index`` (already filled with ``x``): seconds, and recall@k on
    ``rows`` against their exact neighbours ``I_ref``."""
    from index.factory import recall_at_k, self_knn

    t = time.perf_counter()
    _, I = self_knn(index, x, k)
    seconds = time.perf_counter() - t
    return {"seconds": round(seconds, 2), f"recall@{k}": round(recall_at_k(I[rows], I_ref, k), 4)}


def build_index(x: np.ndarray, factory: str, gpu: bool):
    from index.factory import default_search_params, make_index, set_search_params, to_gpu, train_rows

    t = time.perf_counter()
    idx = make_index(factory, x.shape[1], x[train_rows(factory, len(x))])
    idx.add(x)
    set_search_params(idx, default_search_params(factory, len(x)))
    if gpu:
        idx = to_gpu(idx)
        set_search_params(idx, default_search_params(factory, len(x)))
    return idx, time.perf_counter() - t


def run_knn(a) -> dict:
    import faiss

    from benchmarks.index_synthetic import clustered_unit_vectors
    from index.factory import choose_factory, is_gpu

    x = clustered_unit_vectors(a.knn_n, a.knn_dim)
    rows = np.sort(np.random.default_rng(1).choice(len(x), a.knn_sample, replace=False))
    I_ref = exact_neighbours(x, rows)
    out = {"n": len(x), "dim": x.shape[1], "sample": len(rows), "faiss_gpus": faiss.get_num_gpus()
           if hasattr(faiss, "get_num_gpus") else 0}
    cpu_factory = choose_factory(len(x), x.shape[1])
    idx, build = build_index(x, cpu_factory, gpu=False)
    out["cpu"] = {"factory": cpu_factory, "build_seconds": round(build, 2), **knn_against_exact(idx, x, rows, I_ref)}
    print("knn cpu", out["cpu"], flush=True)
    if out["faiss_gpus"] <= 0:
        out["gpu"] = {"skipped": "faiss sees no GPU: pip install faiss-gpu (the project's [gpu] extra)"}
        return out
    for factory in ("Flat", cpu_factory):
        idx, build = build_index(x, factory, gpu=True)
        if not is_gpu(idx):
            out[f"gpu_{factory}"] = {"skipped": f"faiss-gpu has no GPU version of {factory}"}
            continue
        out[f"gpu_{factory}"] = {"build_seconds": round(build, 2), **knn_against_exact(idx, x, rows, I_ref)}
        print("knn gpu", factory, out[f"gpu_{factory}"], flush=True)
    return out


# ---- two processes ---------------------------------------------------------------------------------

def run_ddp(a, n_gpus: int) -> dict:
    if n_gpus < 2:
        return {"skipped": f"{n_gpus} GPU: a 2-process DDP run needs two"}
    name = "text_ddp2"
    cmd = ["torchrun", "--nproc_per_node", "2", "train.py", "--config", HEAD_CONFIGS["text"], "--no-progress",
           f"data.train={Path(a.data) / 'train.txt'}", f"data.valid={Path(a.data) / 'valid.txt'}",
           f"data.test={Path(a.data) / 'test.txt'}", f"encoder.name={a.encoder}", f"train.epochs={a.epochs}",
           "train.device=cuda", "train.precision=fp32", f"name={name}", f"out_dir={a.out_dir}"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    out = {"command": " ".join(cmd), "returncode": proc.returncode, "seconds": round(time.perf_counter() - t, 1)}
    results = Path(ROOT / a.out_dir / name / "results.json")
    if proc.returncode == 0 and results.is_file():
        out["dev_f1"] = round(json.loads(results.read_text())["valid"]["micro"]["f1"], 2)
    else:
        out["tail"] = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    return out


@command
def main(argv=None) -> dict:
    a = parse_args(argv)
    n_gpus = require_cuda()
    from benchmarks.provenance import write_result

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    payload: dict = {"parts": a.parts, "cuda_devices": n_gpus}
    if "tests" in a.parts:
        payload["tests"] = run_gpu_tests()
        print("gpu tests", {k: payload["tests"][k] for k in ("passed", "failed", "skipped", "error")}, flush=True)
    if "train" in a.parts:
        payload["train"] = run_training(a)
    if "knn" in a.parts:
        payload["knn"] = run_knn(a)
    if "ddp" in a.parts:
        payload["ddp"] = run_ddp(a, n_gpus)
    write_result(a.output, payload, __file__, argv)
    print(f"written: {a.output}")
    return payload


if __name__ == "__main__":
    sys.exit(exit_status(main()))
