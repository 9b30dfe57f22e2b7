"""The tagging service under load: posts/s and latency at 1, 8 and 32 concurrent clients on
loopback, beside ``tag_many`` on the same posts in the same run.

    python benchmarks/serve_load.py                      # the demo's text and rgcn runs
    python benchmarks/serve_load.py --run text=runs/demo/text/seed13 --clients 1 8 32 --posts 128

For each run: ``tag_many`` (batch ``--batch-size``) times the posts in this process (on the
main thread, then on one worker thread as the service runs it: under bf16 autocast the two can
differ several-fold, the CPU's denormal handling being set per thread), then
``python -m rgcn serve`` is started as a subprocess (a real uvicorn on a free loopback port,
micro-batching up to ``--batch-size`` posts or ``--batch-wait-ms``) and, for each number of
clients C, C clients each open their connection with one untimed request, then, once all
have, send their share of the same ``--posts`` posts one request after another (``POST /tag``, JSON, the photo by its path in ``--images``); then ``tag_many`` is
timed again on the worker. Each level is also bracketed by a ``tag_many`` just before and
just after it (the machine's load drifts), and its ratio is the service's posts/s over the
mean of those two.

The service runs the model in a process of its own whose allocator keeps the memory a
batch frees for the next (:func:`rgcn.memory.keep_freed_memory`, about 10% faster tagging on
one thread: ``benchmarks/allocator.py``); this process calls it too before timing ``tag_many``, so both tag with the same
allocator settings (``--default-allocator`` leaves this process's as it is).

Targets: at 32 clients the service reaches >= 80% of ``tag_many``'s posts/s; at 1 client
the text head's p95 latency is < 100 ms. The figures are wall-clock: on a machine shared with
other work they are lower than on idle cores (``load_avg`` in the provenance block says how
loaded it was). Writes ``benchmarks/results/serve_load.json`` and ``.md`` through
``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from data.errors import ArgumentParser, command, exit_status  # noqa: E402
from benchmarks.stats import percentile  # noqa: E402

DEMO_RUNS = ["text=runs/demo/text/seed13", "rgcn=runs/demo/rgcn/seed13"]


def read_posts(path: str, n: int) -> list[dict]:
    """The first ``n`` posts of a JSONL split as ``{"text", "image"}`` (the text: the tokens
    joined by spaces when the file has no ``text``), repeated when the file has fewer."""
    rows = [json.loads(line) for line in open(path) if line.strip()]
    posts = [{"text": r.get("text") or " ".join(r["tokens"]), "image": r.get("image")} for r in rows]
    if not posts:
        raise SystemExit(f"error: {path} holds no posts")
    return [dict(posts[i % len(posts)]) for i in range(n)]


def images_inside(posts: list[dict], images: str) -> list[dict]:
    """``posts`` with each image path joined to the ``images`` folder, as the service passes them."""
    return [{**p, "image": str(Path(images).resolve() / p["image"]) if p.get("image") else None} for p in posts]


def time_tag_many(tagger, posts: list[dict], batch_size: int, thread=None) -> dict:
    """``tag_many``'s posts/s on ``posts`` after a warm-up batch, run on ``thread`` (a
    one-worker executor, as the service runs the model) or, when None, on this thread."""
    def timed():
        list(tagger.tag_many(posts[:batch_size], batch_size=batch_size))     # warm-up
        t0 = time.perf_counter()
        n = sum(1 for _ in tagger.tag_many(posts, batch_size=batch_size))
        return n, time.perf_counter() - t0

    n, dt = thread.submit(timed).result() if thread is not None else timed()
    return {"posts": n, "seconds": round(dt, 3), "posts_per_s": round(n / dt, 2)}


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads the answer: a client light
    enough that on a few cores the load it adds stays small beside the server's."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post_json(self, path: str, payload: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(payload).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json"
                          f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
        data = await self.reader.readexactly(int(headers.get("content-length", 0)))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


async def load(url: str, posts: list[dict], clients: int) -> dict:
    """``clients`` clients, each on its own connection, sending its share of ``posts`` one
    after another; latency is from sending a request to having read its whole answer. Each
    client first opens its connection with one untimed request (its share's first post), and
    the clock starts once every client has had its answer, so the level is timed in its
    steady state rather than with the connections' and the first batch's start-up."""
    from urllib.parse import urlsplit

    where = urlsplit(url)
    shares = [posts[i::clients] for i in range(clients)]
    latencies, batch_sizes, model_ms, errors = [], [], [], []
    ready = asyncio.Barrier(sum(1 for s in shares if s) + 1)

    async def client(share):
        conn = Connection(where.hostname, where.port)
        try:
            try:                                                        # untimed: the connection opens
                status, data = await conn.post_json("/tag", share[0])
                if status != 200:
                    errors.append(f"warm-up {status}: {data[:200]!r}")
            except (OSError, asyncio.IncompleteReadError) as e:
                errors.append(f"warm-up: {e!r}")
                await conn.close()
            finally:                                                    # whatever happened, the others go on
                await ready.wait()
            for post in share:
                t0 = time.perf_counter()
                status, data = await conn.post_json("/tag", post)
                latencies.append(1000 * (time.perf_counter() - t0))
                if status != 200:
                    errors.append(f"{status}: {data[:200]!r}")
                    continue
                timings = json.loads(data)["timings"]
                batch_sizes.append(timings["batch_size"])
                model_ms.append(timings["model_ms"] / timings["batch_size"])
        finally:
            await conn.close()

    tasks = [asyncio.create_task(client(s)) for s in shares if s]
    await ready.wait()
    t0 = time.perf_counter()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "error_examples": errors[:3],
            "seconds": round(wall, 3), "posts_per_s": round(len(latencies) / wall, 2),
            "p50_ms": round(percentile(latencies, 50), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "p99_ms": round(percentile(latencies, 99), 1),
            "mean_model_batch": round(sum(batch_sizes) / len(batch_sizes), 2) if batch_sizes else None,
            "model_ms_per_post": round(sum(model_ms) / len(model_ms), 2) if model_ms else None}


def batcher_only(tagger, posts: list[dict], max_batch: int, wait_ms: float) -> dict:
    """The service's micro-batcher without HTTP: every post submitted at once, in this process."""
    from rgcn.serve.batcher import MicroBatcher

    async def go():
        b = MicroBatcher(tagger.tag_many, max_batch, wait_ms)
        await b.start()
        try:
            await asyncio.gather(*(b.submit(p) for p in posts[:max_batch]))            # warm-up
            t0 = time.perf_counter()
            out = await asyncio.gather(*(b.submit(p) for p in posts))
            return len(out), time.perf_counter() - t0
        finally:
            await b.stop()

    n, dt = asyncio.run(go())
    return {"posts": n, "seconds": round(dt, 3), "posts_per_s": round(n / dt, 2)}


def bench_run(name: str, run: str, a) -> dict:
    import httpx

    from benchmarks.serve_process import ServeProcess
    from rgcn import load_tagger

    posts = read_posts(a.posts_file, a.posts)
    t0 = time.perf_counter()
    tagger = load_tagger(run, images=a.images, batch_size=a.batch_size)
    print(f"[{name}] loaded in {time.perf_counter() - t0:.1f} s; tag_many ...", file=sys.stderr, flush=True)
    worker = ThreadPoolExecutor(max_workers=1)
    main_thread = time_tag_many(tagger, posts, a.batch_size)
    before = time_tag_many(tagger, posts, a.batch_size, worker)
    print(f"[{name}] tag_many {before['posts_per_s']} posts/s; starting the server", file=sys.stderr, flush=True)
    levels = []
    with tempfile.TemporaryDirectory() as tmp, \
            ServeProcess(["--run", run, "--images", a.images, "--batch-size", a.batch_size,
                          "--batch-wait-ms", a.batch_wait_ms, *(["--threads", a.threads] if a.threads else [])], log=Path(tmp) / "serve.log", imports=tuple(a.imports),
                         start_timeout=a.start_timeout) as server:
        with httpx.Client(base_url=server.url, timeout=600) as http:                # warm-up
            for post in posts[: a.warmup]:
                http.post("/tag", json=post).raise_for_status()
            model_process = http.get("/health").json()["info"].get("model_process")
        for c in a.clients:
            around = [time_tag_many(tagger, posts, a.batch_size, worker)["posts_per_s"]]
            level = asyncio.run(load(server.url, posts, c))
            around.append(time_tag_many(tagger, posts, a.batch_size, worker)["posts_per_s"])
            level["tag_many_around"] = around
            level["vs_tag_many"] = round(level["posts_per_s"] / (sum(around) / 2), 3)
            print(f"[{name}] {c} clients: {level['posts_per_s']} posts/s, p95 {level['p95_ms']} ms",
                  file=sys.stderr, flush=True)
            levels.append(level)
    after = time_tag_many(tagger, posts, a.batch_size, worker)
    alone = batcher_only(tagger, images_inside(posts, a.images), a.batch_size, a.batch_wait_ms)
    worker.shutdown()
    base = (before["posts_per_s"] + after["posts_per_s"]) / 2
    return {"run": run, "head": tagger.heads[0], "tag_many_main_thread": main_thread,
            "tag_many_before": before, "tag_many_after": after, "batcher_without_http": alone,
            "tag_many_posts_per_s": round(base, 2), "model_process": model_process, "levels": levels}


def targets(results: dict) -> dict:
    out = {}
    for name, r in results.items():
        top = max(r["levels"], key=lambda lv: lv["clients"])
        out[f"{name}: {top['clients']} clients >= 80% of tag_many"] = top["vs_tag_many"] >= 0.8
        one = [lv for lv in r["levels"] if lv["clients"] == 1]
        if r["head"] == "text" and one:
            out[f"{name}: 1 client p95 < 100 ms"] = one[0]["p95_ms"] < 100
    return out


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def contended(result: dict) -> str:
    """``": contended, ..."`` when other work loaded the cores (a 1-minute load average above
    their count, before or at the end), else ``""``."""
    cores = result["provenance"]["machine"]["cpu_count"] or 1
    loads = [x[0] for x in (result.get("load_avg_before"), result["provenance"]["machine"].get("load_avg_at_write"))
             if x]
    if loads and max(loads) > cores:
        return ": contended, other jobs shared the cores, so every figure is lower and noisier than on idle cores"
    return ""


def table(result: dict, command: str) -> str:
    lines = [f"`{command}`", "",
             f"Loopback, {result['posts']} posts per level, {result.get('threads', '?')} torch thread(s) in the "
             f"server and for tag_many, server micro-batches of up to {result['batch_size']} "
             f"posts or {result['batch_wait_ms']} ms, the model in a process of its own; tag_many here with the "
             f"{result.get('tag_many_allocator', 'default')} allocator settings (the model process: "
             f"{'keep_freed_memory' if all((r.get('model_process') or {}).get('keeps_freed_memory') for r in result['runs'].values()) else 'default'}); "
             f"load average (1, 5, 15 min) before: "
             f"{result.get('load_avg_before', 'not recorded')}, at the end: "
             f"{result['provenance']['machine'].get('load_avg_at_write')} on {result['provenance']['machine']['cpu_count']} "
             f"cores{contended(result)} (wall-clock figures: a loaded machine lowers them).", "",
             "| run | clients | posts/s | tag_many posts/s (before / after) | vs tag_many | p50 ms | p95 ms | p99 ms | mean model batch "
             "| server model ms/post | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["runs"].items():
        for lv in r["levels"]:
            lines.append(f"| {name} | {lv['clients']} | {lv['posts_per_s']} | "
                         f"{' / '.join(map(str, lv['tag_many_around']))} | "
                         f"{100 * lv['vs_tag_many']:.0f}% | {lv['p50_ms']} | {lv['p95_ms']} | {lv['p99_ms']} | "
                         f"{lv['mean_model_batch']} | {lv['model_ms_per_post']} | {lv['errors']} |")
    lines += ["", "server model ms/post: the model batch's time over its posts, as the server reports it "
              "(the rest of a request's time is HTTP, JSON and waiting).", "",
              "tag_many is timed on one worker thread, as the service runs the model, just before and just after "
              "each level (the ratio uses their mean), and around all the levels (on the main thread: once, first):"]
    for name, r in result["runs"].items():
        lines.append(f"- {name}: {r['tag_many_before']['posts_per_s']} then {r['tag_many_after']['posts_per_s']} "
                     f"posts/s (main thread: {r['tag_many_main_thread']['posts_per_s']}); the service's "
                     f"micro-batcher without HTTP, all posts at once: {r['batcher_without_http']['posts_per_s']} posts/s")
    lines += ["", "Targets:"] + [f"- {k}: {'met' if v else 'NOT met'}" for k, v in result["targets"].items()]
    return "\n".join(lines) + "\n"


@command
def main(argv=None) -> dict:
    from benchmarks.provenance import RESULTS, command_line, write_rendering, write_result

    p = ArgumentParser(prog="python benchmarks/serve_load.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs="+", default=DEMO_RUNS, metavar="NAME=RUN", help="runs to serve, one at a time")
    p.add_argument("--posts-file", default="data/demo/test.jsonl")
    p.add_argument("--images", default="data/demo/images")
    p.add_argument("--posts", type=int, default=1024, help="posts sent at each level (split among the clients; "
                   "enough that the first requests' start-up does not weigh on the figures)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--batch-size", type=int, default=32, help="tag_many's batch and the server's largest")
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--warmup", type=int, default=4, help="requests sent before measuring")
    p.add_argument("--threads", type=int, help="CPU threads of the model, in the server (its --threads) and for "
                   "tag_many here alike (default: torch's)")
    p.add_argument("--start-timeout", type=float, default=600.0)
    p.add_argument("--default-allocator", action="store_true",
                   help="time tag_many with this process's allocator as it is, not as the service's model process "
                        "sets it (rgcn.memory.keep_freed_memory)")
    p.add_argument("--output", default=str(RESULTS / "serve_load.json"))
    p.add_argument("--import", dest="imports", action="append", default=[], help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    runs = dict(item.split("=", 1) if "=" in item else (Path(item).parent.name, item) for item in a.run)
    from rgcn.serve.cli import set_threads

    set_threads(a.threads)
    from rgcn.memory import keep_freed_memory

    allocator = "default" if a.default_allocator else ("keep_freed_memory" if keep_freed_memory() else "default")
    load_before = [round(x, 2) for x in os.getloadavg()]
    results = {name: bench_run(name, run, a) for name, run in runs.items()}
    payload = {"posts_file": a.posts_file, "posts": a.posts, "clients": a.clients, "batch_size": a.batch_size,
               "batch_wait_ms": a.batch_wait_ms, "threads": torch_threads(), "load_avg_before": load_before,
               "tag_many_allocator": allocator,
               "runs": results,
               "targets": targets(results)}
    result = write_result(a.output, payload, __file__, argv)
    text = table(result, command_line(__file__, argv))
    write_rendering(Path(a.output).with_suffix(".md"), result, text)
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
