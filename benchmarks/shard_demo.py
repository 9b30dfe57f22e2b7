"""A sharded build of the demo's index equals the single-process build.

Builds the demo's image index twice, once in one process and once under ``torchrun`` with
``--nproc N`` processes (each embeds a shard, the first merges), then compares the two
artifacts: ids and their order, the largest difference between vectors, and every image's
10 nearest neighbours (ids and scores) searched in each artifact.

    python benchmarks/shard_demo.py                      # 2 processes, data/demo
    python benchmarks/shard_demo.py --nproc 4 --work /tmp/shards

Needs the demo (``python -m data.demo generate --out data/demo``). Writes
``benchmarks/results/shard_demo.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402

from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from index.artifact import load_index  # noqa: E402


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/shard_demo.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", default=str(ROOT / "data" / "demo"))
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--work", default=str(ROOT / ".cache" / "shard_demo"))
    p.add_argument("--output", default=str(RESULTS / "shard_demo.json"))
    return p.parse_args(argv)


def build(args: list[str], out: Path, nproc: int = 1) -> float:
    """Build an index with ``python -m index build`` (under torchrun when ``nproc > 1``);
    its wall time in seconds."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                 "-m", "index"] if nproc > 1 else [sys.executable, "-m", "index"])
    t0 = time.perf_counter()
    subprocess.run([*launcher, "build", "--quiet", "--overwrite", *args, "--out", str(out)], check=True, cwd=ROOT)
    return time.perf_counter() - t0


@command
def main(argv=None) -> dict:
    a = parse_args(argv)
    demo, work = Path(a.demo), Path(a.work)
    if not (demo / "manifest.json").exists():
        raise UserError(f"no demo in {demo}: make it with `python -m data.demo generate --out {demo}`")
    shutil.rmtree(work, ignore_errors=True)
    args = ["--images", str(demo / "images"), "--data", *(str(demo / f"{s}.jsonl") for s in ("train", "valid", "test"))]
    seconds = {"single": build(args, work / "single"), "sharded": build(args, work / "sharded", a.nproc)}
    one, many = load_index(work / "single"), load_index(work / "sharded")
    same_ids = list(one.ids) == list(many.ids)
    D1, I1 = one.search(one.embeddings, a.k)
    D2, I2 = many.search(many.embeddings, a.k)
    out = {"demo": str(demo), "nproc": a.nproc, "images": len(one), "k": a.k,
           "same_ids_in_order": same_ids,
           "max_abs_vector_difference": float(np.abs(one.embeddings - many.embeddings).max()) if same_ids else None,
           "same_neighbour_ids": float((I1 == I2).mean()),
           "max_abs_score_difference": float(np.abs(D1 - D2).max()),
           "factory": [one.manifest["factory"], many.manifest["factory"]],
           "sharded_manifest_shards": many.manifest.get("shards"),
           "build_seconds": {k: round(v, 1) for k, v in seconds.items()}}
    write_result(a.output, out, __file__, argv)
    print(json.dumps({k: v for k, v in out.items() if k != "sharded_manifest_shards"}, indent=2))
    return out


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(exit_status(main()))
