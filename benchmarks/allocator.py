"""What :func:`rgcn.memory.keep_freed_memory` buys: ``tag_many`` with glibc's default allocator
settings and with the ones the service's model process uses, each in a fresh process.

    python benchmarks/allocator.py                         # the demo's text run, one thread
    python benchmarks/allocator.py --run runs/demo/rgcn/seed13 --rounds 3 --posts 512

An allocator setting holds for a whole process, so every timing is a process of its own
(``--child``): it loads the run, tags a warm-up batch, then times ``tag_many`` over
``--posts`` posts of ``--posts-file`` in batches of ``--batch-size`` on ``--threads`` torch
threads. The two settings alternate for ``--rounds`` rounds, so a drift of the machine's
load falls on both. Writes ``benchmarks/results/allocator.json`` and ``.md`` through
``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from data.errors import ArgumentParser, command, exit_status, positive_int  # noqa: E402

SETTINGS = ("default", "keep_freed_memory")


def child(a) -> dict:
    """One timing in this process: ms per post of ``tag_many`` under ``a.setting``."""
    from benchmarks.serve_load import read_posts
    from rgcn.memory import keep_freed_memory
    from rgcn.serve.cli import set_threads

    set_threads(a.threads)
    took = keep_freed_memory() if a.setting == "keep_freed_memory" else False
    from rgcn import load_tagger

    posts = read_posts(a.posts_file, a.posts)
    tagger = load_tagger(a.run, images=a.images, batch_size=a.batch_size)
    list(tagger.tag_many(posts[: a.batch_size]))                          # warm-up
    t0 = time.perf_counter()
    n = sum(1 for _ in tagger.tag_many(posts))
    seconds = time.perf_counter() - t0
    return {"setting": a.setting, "allocator_set": took, "posts": n, "ms_per_post": round(1000 * seconds / n, 3)}


def table(result: dict, command_line: str) -> str:
    s = result["summary"]
    lines = [f"`{command_line}`", "",
             f"`tag_many` of {result['run']} on {result['posts']} posts, batches of {result['batch_size']}, "
             f"{result['threads']} torch thread(s); each timing a fresh process, the settings alternating over "
             f"{result['rounds']} rounds; load average at the start {result['load_avg_before']}.", "",
             "| allocator | ms/post, each round | median | posts/s (median) |", "|---|---|---|---|"]
    for name in SETTINGS:
        ms = [t["ms_per_post"] for t in result["timings"] if t["setting"] == name]
        lines.append(f"| {name} | {', '.join(map(str, ms))} | {s[name]['median_ms']} | {s[name]['posts_per_s']} |")
    lines += ["", f"keep_freed_memory: {s['faster_pct']}% less time per post than the default (medians)."]
    return "\n".join(lines) + "\n"


@command
def main(argv=None):
    p = ArgumentParser(prog="python benchmarks/allocator.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default="runs/demo/text/seed13")
    p.add_argument("--posts-file", default="data/demo/test.jsonl")
    p.add_argument("--images", default="data/demo/images")
    p.add_argument("--posts", type=positive_int, default=1024, help="posts timed in each process")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads in each process")
    p.add_argument("--rounds", type=positive_int, default=3, help="processes per setting, alternating")
    p.add_argument("--output", default=None, help="result JSON (default benchmarks/results/allocator.json)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--setting", choices=SETTINGS, default="default", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a)))
        return 0

    from benchmarks.provenance import RESULTS, command_line, write_rendering, write_result

    load_before = [round(x, 2) for x in os.getloadavg()]
    shared = ["--run", a.run, "--posts-file", a.posts_file, "--images", a.images, "--posts", str(a.posts),
              "--batch-size", str(a.batch_size), "--threads", str(a.threads)]
    timings = []
    for r in range(a.rounds):
        for name in SETTINGS:
            out = subprocess.run([sys.executable, __file__, "--child", "--setting", name, *shared],
                                 capture_output=True, text=True, check=False, cwd=ROOT)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return out.returncode
            timings.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}: {name} {timings[-1]['ms_per_post']} ms/post", file=sys.stderr, flush=True)
    summary = {}
    for name in SETTINGS:
        med = statistics.median(t["ms_per_post"] for t in timings if t["setting"] == name)
        summary[name] = {"median_ms": round(med, 3), "posts_per_s": round(1000 / med, 1)}
    summary["faster_pct"] = round(100 * (1 - summary["keep_freed_memory"]["median_ms"] / summary["default"]["median_ms"]), 1)
    payload = {"run": a.run, "posts": a.posts, "batch_size": a.batch_size, "threads": a.threads, "rounds": a.rounds,
               "load_avg_before": load_before, "timings": timings, "summary": summary}
    output = a.output or str(RESULTS / "allocator.json")
    result = write_result(output, payload, __file__, argv)
    text = table(result, command_line(__file__, argv))
    write_rendering(Path(output).with_suffix(".md"), result, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
