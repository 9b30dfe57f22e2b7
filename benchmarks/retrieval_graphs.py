"""Graph build time on clustered synthetic vectors.

* Twitter-2015 size (8,257 posts, 4,000 of them training): the full ``build_graphs`` with
  all three relations (image vectors 1280-d as EfficientNet-Lite0's, sentence vectors 384-d
  as MiniLM's, five object tags per image; the default inter-modal relation matches each
  sentence with the pool images' visual text). A synthetic encoder gives the sentence and
  visual-text vectors, so the time is the graph build alone; ``--real-text`` also times
  MiniLM over the real Twitter-2015 sentences.
* 1M posts (512-d, a mixture of a few thousand Gaussian centres): the index package's
  automatic factory choice is built, then each relation is timed on a random sample of
  query posts (``--queries``, default 20,000) and extrapolated to all 1M; ``--full`` runs
  every query. Recall@k of the intra-modal relation against exact search is measured on
  500 queries. The sampled inter-modal time includes building its sentence index, so its
  extrapolation overstates; ``--full`` measures what a build really takes.

    .venv/bin/python benchmarks/retrieval_graphs.py [--sizes 8257 1000000] [--full] [--real-text FILE]
    nice -n 10 .venv/bin/python benchmarks/retrieval_graphs.py --sizes 8257 1000000 --full

Writes ``benchmarks/results/retrieval_graphs.json`` (``--out``) through
``benchmarks/provenance.py``. The numbers depend on the machine and on what else runs on
it: the file records the command, the machine, and the load average at start and end.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402
from benchmarks.provenance import write_result  # noqa: E402


def clustered(n: int, dim: int, n_centres: int, rng, spread: float = 0.6, chunk: int = 100_000):
    """``n`` L2-normalised vectors around ``n_centres`` Gaussian centres, and each one's centre."""
    centres = rng.standard_normal((n_centres, dim)).astype(np.float32)
    assign = rng.integers(0, n_centres, n)
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        a = assign[s:s + chunk]
        v = centres[a] + spread * rng.standard_normal((len(a), dim)).astype(np.float32)
        x[s:s + chunk] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return x, assign


def synthetic_world(n: int, dim: int, rng, n_train: int | None = None):
    from index.artifact import IndexArtifact
    from index.factory import choose_factory, default_search_params, make_index, set_search_params

    n_centres = max(50, min(4000, n // 250))
    img, assign = clustered(n, dim, n_centres, rng)
    # a sentence space (384-d) in which each object label has a vector: sentences cluster
    # with their images' labels, with their own noise; an image's visual text ("label3,
    # label17, ...") is the normalised sum of its labels' vectors (see text_encoder)
    vocab = [f"label{i}" for i in range(1000)]
    label_vectors = rng.standard_normal((1000, 384)).astype(np.float32)
    cluster_labels = rng.integers(0, 1000, (n_centres, 6))
    proj = label_vectors[cluster_labels].sum(1)
    proj /= np.linalg.norm(proj, axis=1, keepdims=True)
    text = proj[assign] + 0.9 * rng.standard_normal((n, 384)).astype(np.float32) / np.sqrt(384)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    ids = [str(i) for i in range(n)]
    picks = rng.integers(0, 6, (n, 4))
    noise = rng.integers(0, 1000, n)
    tags = {ids[i]: [(vocab[cluster_labels[assign[i], p]], 0.5) for p in picks[i]] + [(vocab[noise[i]], 0.1)]
            for i in range(n)}
    t0 = time.perf_counter()
    factory = choose_factory(n, dim)
    index = make_index(factory, dim, img)
    index.add(img)
    set_search_params(index, default_search_params(factory, n))
    index_s = time.perf_counter() - t0
    manifest = {"embedder": "synthetic", "dim": dim, "metric": "inner_product", "factory": factory,
                "search_params": default_search_params(factory, n), "embedder_info": {"has_text": False}}
    art = IndexArtifact("<synthetic>", manifest, ids, img, index, None, tags, {})
    n_train = n_train or int(round(n * 4000 / 8257))
    return art, text_encoder(text, label_vectors), n_train, {"factory": factory, "index_build_s": round(index_s, 2),
                                                            "centres": n_centres}


def text_encoder(sentences: np.ndarray, label_vectors: np.ndarray):
    """The synthetic sentence encoder: a post's text is its id (-> its sentence vector), an
    image's visual text is a comma-separated list of labels (-> their normalised sum)."""
    def encode(texts):
        out = np.empty((len(texts), sentences.shape[1]), np.float32)
        for j, t in enumerate(texts):
            if t.isdigit():
                out[j] = sentences[int(t)]
            else:
                v = label_vectors[[int(lab.strip()[5:]) for lab in t.split(",")]].sum(0)
                out[j] = v / np.linalg.norm(v)
        return out
    encode.sentences = sentences
    return encode


def bench_full(n: int, dim: int, k: int, rng) -> dict:
    from data.corpus import Corpus, Sample
    from retrieval.cache import GraphSettings, build_graphs

    art, text, n_train, info = synthetic_world(n, dim, rng)
    samples = [Sample(i, [i], None) for i in art.ids]
    # Twitter-2015's split sizes, scaled; a few posts without an image, as in the real data
    n_valid = int(round(n * 1000 / 8257))
    splits = {"train": Corpus("train", samples[:n_train]), "valid": Corpus("valid", samples[n_train:n_train + n_valid]),
              "test": Corpus("test", samples[n_train + n_valid:])}
    t0 = time.perf_counter()
    g = build_graphs(splits, art, GraphSettings(k=k), text_encoder=text, progress=False)
    total = time.perf_counter() - t0
    out = {"posts": n, "dim": dim, "k": k, "pool": "train", "pool_images": n_train, **info,
           "graph_build_s": round(total, 2), "per_relation_s": g.manifest["build_seconds"]}
    if info["factory"] != "Flat":
        out.update(_checks(art, g, n_train, k, rng))
    return out


def _checks(art, g, n_train: int, k: int, rng, n_check: int = 500) -> dict:
    """On a sample of posts: recall@k of the intra-modal relation against exact search over
    the pool, and whether the object-type relation equals scoring every pool image one
    query at a time (the reference implementation)."""
    from retrieval.relations import _jaccard_topk_loop, tag_sets
    from retrieval.search import exact_search

    mask = np.zeros(len(art.ids), bool)
    mask[:n_train] = True
    q = np.sort(rng.choice(len(art.ids), n_check, replace=False))
    _, Ix = exact_search(art.embeddings, art.embeddings[q], k, mask, q)
    Ia = g.tables["intra"].rows[q]
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(Ia, Ix)]))
    sets = tag_sets(art.tags, art.ids)
    D0, I0 = _jaccard_topk_loop(sets, q, k, mask, tiebreak=art.embeddings)
    same = np.all(I0 == g.tables["tags"].rows[q], axis=1) & np.all(D0 == g.tables["tags"].scores[q], axis=1)
    return {"intra_recall_at_k": round(recall, 4), "checked_posts": n_check,
            "tags_equal_reference": round(float(same.mean()), 4)}


def bench_sampled(n: int, dim: int, k: int, n_queries: int, rng) -> dict:
    from retrieval.relations import _knn, intra_modal, jaccard_topk, tag_sets
    from retrieval.search import exact_search, pool_mask

    art, text, n_train, info = synthetic_world(n, dim, rng)
    pool = set(art.ids[:n_train])
    q = np.sort(rng.choice(n, min(n_queries, n), replace=False))
    out = {"posts": n, "dim": dim, "k": k, "pool": "train", "pool_images": n_train, **info, "queries_timed": len(q)}
    t0 = time.perf_counter()
    I = intra_modal(art, q, k, pool).rows
    t_intra = time.perf_counter() - t0
    t0 = time.perf_counter()
    _knn(text.sentences[:n_train], text.sentences[q], k + 1)
    t_inter = time.perf_counter() - t0
    t0 = time.perf_counter()
    sets = tag_sets(art.tags, art.ids)
    t_sets = time.perf_counter() - t0
    t0 = time.perf_counter()
    jaccard_topk(sets, q, k, pool_mask(art, pool), tiebreak=art.embeddings)
    t_tags = time.perf_counter() - t0
    scale = n / len(q)
    out["sampled_s"] = {"intra": round(t_intra, 2), "inter": round(t_inter, 2), "tags": round(t_tags, 2),
                        "tag_sets_once": round(t_sets, 2)}
    out["extrapolated_full_s"] = {"intra": round(t_intra * scale, 1), "inter": round(t_inter * scale, 1),
                                  "tags": round(t_tags * scale + t_sets, 1)}
    out["extrapolated_total_s"] = round(sum(out["extrapolated_full_s"].values()), 1)
    sub = q[:500]
    mask = pool_mask(art, pool)
    _, Ix = exact_search(art.embeddings, art.embeddings[sub], k, mask, sub)
    Ia = I[:500]
    out["intra_recall_at_k"] = round(float(np.mean([len(set(a) & set(b)) / k for a, b in zip(Ia, Ix)])), 4)
    return out


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python benchmarks/retrieval_graphs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", nargs="+", type=int, default=[8257, 1_000_000])
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--queries", type=int, default=20_000, help="query posts timed at sizes above 100k")
    p.add_argument("--full", action="store_true", help="run every query at every size")
    p.add_argument("--real-text", default=None, metavar="FILE",
                   help="also time MiniLM sentence embedding over this corpus file (e.g. Twitter-2015 train)")
    p.add_argument("--out", default="benchmarks/results/retrieval_graphs.json")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    res = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}, "runs": []}
    for n in a.sizes:
        dim = 1280 if n < 100_000 else 512
        print(f"posts={n} dim={dim} ...", flush=True)
        r = bench_full(n, dim, a.k, rng) if (n < 100_000 or a.full) else bench_sampled(n, dim, a.k, a.queries, rng)
        print(json.dumps(r), flush=True)
        res["runs"].append(r)
    if a.real_text:
        from data.corpus import read_corpus
        from retrieval.relations import sentence_encoder

        texts = [" ".join(s.tokens) for s in read_corpus(a.real_text)]
        enc = sentence_encoder()
        t0 = time.perf_counter()
        enc(texts)
        dt = time.perf_counter() - t0
        res["minilm_text_embedding"] = {"file": a.real_text, "posts": len(texts), "seconds": round(dt, 1),
                                        "posts_per_s": round(len(texts) / dt, 1)}
        print(json.dumps(res["minilm_text_embedding"]))
    res["machine"]["loadavg_end"] = os.getloadavg()
    write_result(a.out, res, __file__, argv)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
