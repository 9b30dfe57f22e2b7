"""The BGA head's training step before and after a change: one forward and backward of the
head alone, the code of ``--before`` (a git revision of ``rgcn/heads/bga.py``) beside this
checkout's, the same weights, on a demo-sized batch (16 posts of 30 words, 49 regions of
1280 features, two posts in eight without an image), the steps alternated so that other
jobs on the cores weigh on both alike.

    python benchmarks/bga_head_speed.py --before b9cbb59^ --steps 8

Records the median CPU and wall seconds of a step for each, under bf16 autocast (training's
default where the CPU has it) with ``--threads`` torch threads. Writes
``benchmarks/results/bga_head_speed.json`` (``--output``) through ``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from data.corpus import Sample  # noqa: E402
from rgcn.heads import build_head  # noqa: E402
from rgcn.heads.blocks import PostRegions  # noqa: E402

SOURCE = "rgcn/heads/bga.py"


def head_class_at(rev: str) -> tuple[type, str]:
    """The BGA head class as ``rev`` wrote it (not registered), and the commit it resolved to."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
        source = subprocess.run(["git", "show", f"{commit}:{SOURCE}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
    except subprocess.CalledProcessError as e:
        raise UserError(f"--before {rev}", f"git cannot show {SOURCE} there ({e.stderr.strip()})",
                        "give a revision of this repository that has the bga head") from None
    module = types.ModuleType("rgcn.heads._bga_before")
    module.__package__ = "rgcn.heads"
    sys.modules[module.__name__] = module                     # for its dataclasses
    exec(compile(source.replace('@register_head("bga")', ""), f"{commit}:{SOURCE}", "exec"), module.__dict__)
    return module.BGAHead, commit


def regions(n: int, R: int, d: int) -> PostRegions:
    ids = [f"p{i}" for i in range(n)]
    rows = np.asarray([-1 if i % 8 in (3, 7) else i for i in range(n)])
    feats = np.random.default_rng(0).normal(size=(n, R, d)).astype(np.float16)
    return PostRegions(ids, rows, ["none" if r < 0 else "index" for r in rows], feats,
                       np.zeros((0, R, d), np.float16), d, R)


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/bga_head_speed.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="git revision whose rgcn/heads/bga.py is the old code")
    p.add_argument("--steps", type=int, default=8, help="timed steps of each (after one untimed)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--words", type=int, default=30)
    p.add_argument("--width", type=int, default=400, help="the head's width (MiniLM's 384 + casing 16)")
    p.add_argument("--output", default=str(RESULTS / "bga_head_speed.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    Before, commit = head_class_at(a.before)
    ctx = {"regions": regions(a.batch, 49, 1280)}
    torch.manual_seed(0)
    after = build_head("bga", a.width, {}, ctx).train()
    before = Before(a.width, {}, ctx).train()
    before.load_state_dict(after.state_dict())
    samples = [Sample(f"p{i}", ["w"] * a.words) for i in range(a.batch)]
    inputs = after.prepare(samples, training=True)
    states = torch.randn(a.batch, a.words, a.width, requires_grad=True)
    mask = torch.ones(a.batch, a.words, dtype=torch.bool)
    mask[::3, 2 * a.words // 3:] = False

    def step(head) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = head(states, mask, inputs)
        (out.states.float().sum() + out.aux_loss).backward()
        return time.process_time() - cpu, time.perf_counter() - wall

    times = {"before": [], "after": []}
    for name, head in (("before", before), ("after", after)):
        step(head)
    for _ in range(a.steps):
        for name, head in (("before", before), ("after", after)):
            times[name].append(step(head))
    out = {"before": {"revision": a.before, "commit": commit}, "threads": a.threads, "batch": a.batch,
           "words": a.words, "width": a.width, "steps": a.steps, "load_avg_before": list(os.getloadavg())}
    for name, t in times.items():
        out[name] = {**out.get(name, {}), "cpu_seconds_per_step": round(statistics.median(c for c, _ in t), 3),
                     "wall_seconds_per_step": round(statistics.median(w for _, w in t), 3)}
    out["cpu_after_over_before"] = round(out["after"]["cpu_seconds_per_step"] / out["before"]["cpu_seconds_per_step"], 3)
    write_result(a.output, out, __file__, argv)
    print(f"bga head step, median CPU s: before ({commit[:7]}) {out['before']['cpu_seconds_per_step']}, "
          f"after {out['after']['cpu_seconds_per_step']} (x{out['cpu_after_over_before']})")
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
