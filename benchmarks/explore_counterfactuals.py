"""Did the neighbours decide the type? Counterfactual re-tagging of the image-decided posts.

For every post of a split whose ``kind`` is ``image_decided`` (the demo's posts whose name
only the photo types; its span in ``image_decided``), the rgcn run re-tags the post with
its graphs as built, with its intra-modal neighbours left out (the other relations and the
post's own photo kept), with oracle neighbours in every relation (pool images of posts
holding all of the query's gold entity types, the explorer's oracle;
:mod:`retrieval.explore.counterfactual`), with "oracle by name" neighbours (photos of the
training split's image-decided posts whose name has the query's name's type: the photos
that carry that type), and with ``k`` random pool images. It reports:

* how often leaving out the intra neighbours flips the name's type (the name typed as
  built and typed otherwise without them), and how often it changes the name's tags at all;
* entity-level micro-F1 over those posts (the project's scorer, :func:`rgcn.compare.score_with_subset`)
  with each of these graphs: overall, and on the image-decided names alone.

    python benchmarks/explore_counterfactuals.py --run runs/demo/rgcn/seed13 --index .cache/demo/index \\
        --data train=data/demo/train.jsonl valid=data/demo/valid.jsonl test=data/demo/test.jsonl \\
        --images data/demo/images --cache .cache/demo/graphs
"""
from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from data.errors import ArgumentParser, UserError, command, exit_status, existing_dir, positive_int  # noqa: E402

from benchmarks.provenance import write_rendering, write_result  # noqa: E402

KIND = "image_decided"
VARIANTS = ("built", "intra_left_out", "oracle", "oracle_by_name", "random")
"""The graphs each post is re-tagged with (see the module docstring)."""


def name_pool(explorer, train_split: str) -> list[tuple[str, frozenset]]:
    """The photos of the training split's image-decided posts, each with its name's gold
    type (the photos that carry the type of an image-decided name)."""
    out = []
    for s in explorer.splits.get(train_split, []):
        key = explorer.image_key(s.id)
        if s.meta.get("kind") == KIND and s.meta.get(KIND) and key is not None and s.tags:
            t = name_type(s.tags, s.meta[KIND][0])
            if t is not None:
                out.append((key, frozenset({t})))
    return out


def name_type(tags: list[str], span: tuple[int, int]) -> str | None:
    """The type the tags give the name at ``span`` (an entity with exactly that span), or ``None``."""
    from data.spans import get_spans

    return next((t for t, s, e in get_spans(tags) if (s, e) == tuple(span)), None)


def flips(built: list[list[str]], other: list[list[str]], spans: list[tuple[int, int]]) -> dict:
    """How the name's type moved from ``built`` to ``other`` tags, post by post."""
    typed = flipped = changed = lost = 0
    for b, o, sp in zip(built, other, spans):
        tb, to = name_type(b, sp), name_type(o, sp)
        changed += b[sp[0]:sp[1]] != o[sp[0]:sp[1]]
        if tb is not None:
            typed += 1
            flipped += to is not None and to != tb
            lost += to is None
    n = len(spans)
    return {"posts": n, "typed_as_built": typed, "type_flipped": flipped, "name_lost": lost, "name_tags_changed": changed,
            "type_flipped_share": flipped / typed if typed else None,
            "name_tags_changed_share": changed / n if n else None}


LABELS = {"built": "as built", "intra_left_out": "intra neighbours left out",
          "oracle": "oracle: pool posts with the query's gold types",
          "oracle_by_name": "oracle by name: image-decided training posts whose name has the query name's type",
          "random": "k random pool images"}


def markdown(result: dict) -> str:
    f, s = result["intra_left_out"], result["f1"]
    lines = [f"`{result['provenance']['command']}`", "",
             f"{result['posts']} `{KIND}` posts of split {result['split']}; run {result['run']} "
             f"(relations {', '.join(result['relations'])}, k={result['settings']['k']}, pool {result['settings']['pool']}).",
             "", "| intra neighbours left out | posts |", "|---|---|",
             f"| name typed with the graphs as built | {f['typed_as_built']} |",
             f"| its type flipped | {f['type_flipped']} ({100 * (f['type_flipped_share'] or 0):.1f}%) |",
             f"| name no longer found | {f['name_lost']} |",
             f"| name's tags changed at all | {f['name_tags_changed']} ({100 * (f['name_tags_changed_share'] or 0):.1f}%) |",
             "", "| graphs | F1 (all entities of these posts) | F1 (image-decided names) |", "|---|---|---|"]
    for k in VARIANTS:
        lines.append(f"| {LABELS[k]} | {100 * s[k]['f1']:.2f} | {100 * s[k][KIND + '_f1']:.2f} |")
    d, n = result["oracle_gain"], result["oracle_by_name_gain"]
    lines += ["", f"Oracle neighbours (posts with the query's gold types) change F1 by {100 * d['f1']:+.2f} points on "
              f"all entities of these posts and by {100 * d[KIND + '_f1']:+.2f} on the image-decided names; "
              f"oracle-by-name neighbours by {100 * n['f1']:+.2f} and {100 * n[KIND + '_f1']:+.2f}. "
              f"{result['seconds']:.0f} s on "
              f"{result['provenance']['machine'].get('cpu_count')} cores.", ""]
    return "\n".join(lines)


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python benchmarks/explore_counterfactuals.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=existing_dir, help="an rgcn run (e.g. runs/demo/rgcn/seed13)")
    p.add_argument("--index", required=True, type=existing_dir, help="the index the run reads (.cache/demo/index)")
    p.add_argument("--data", nargs="+", required=True, metavar="SPLIT=FILE", help="train=... valid=... test=...")
    p.add_argument("--images", default=None, type=existing_dir, help="the posts' image folder")
    p.add_argument("--split", default="test", help="the split whose image-decided posts are re-tagged")
    p.add_argument("--cache", default=".cache/graphs",
                   help="graph cache folder (the run's own, e.g. .cache/demo/graphs, is read, not rebuilt)")
    p.add_argument("--limit", type=positive_int, default=None, help="the first N posts only (a quick check)")
    p.add_argument("--seed", type=int, default=0, help="seed of the oracle neighbours' order")
    p.add_argument("--batch", type=positive_int, default=64, help="posts re-tagged per graph build")
    p.add_argument("--out", default="benchmarks/results/explore_counterfactuals.json")
    args = p.parse_args(argv)

    from data.corpus import read_corpus
    from index.artifact import load_index
    from retrieval.explore import Explorer
    from data.corpus import split_args
    from retrieval.explore.counterfactual import (Variant, graph_variants, load_retagger, oracle_images,
                                                  pool_with_types, substitute_scores)
    from rgcn.compare import score_with_subset
    from rgcn.heads.rgcn import graph_settings

    start = time.perf_counter()
    retagger = load_retagger(args.run, images=args.images)
    if "intra" not in retagger.relations:
        raise UserError(f"--run {args.run}", f"its head ({retagger.head}) reads no intra-modal neighbours "
                        f"(relations: {', '.join(retagger.relations) or 'none'})",
                        "give an rgcn run whose head.options.relations hold intra")
    settings = graph_settings(dict(retagger.run.cfg.head.options))     # the run's own graphs
    splits = {n: read_corpus(f, args.images) for n, f in split_args(args.data).items()}
    if args.split not in splits:
        raise UserError(f"--split {args.split}", f"not among the splits given ({', '.join(splits)})",
                        "name one of them, or add it to --data")
    ex = Explorer.build(splits, load_index(args.index), settings, args.cache, images=args.images,
                        retagger=retagger, progress=False)
    posts = [s for s in splits[args.split] if s.meta.get("kind") == KIND and s.meta.get(KIND)]
    if args.limit:
        posts = posts[:args.limit]
    if not posts:
        raise UserError(f"split {args.split}", f"has no post of kind {KIND!r} with its span in {KIND!r}",
                        "give the demo's splits (python -m data.demo) or a split with those fields")
    pool = pool_with_types(ex)
    named = name_pool(ex, settings.train_split)
    tags = {k: [] for k in VARIANTS}
    for at in range(0, len(posts), args.batch):
        chunk = posts[at:at + args.batch]
        jobs = []
        for s, built in zip(chunk, retagger.neighbours_many(chunk)):
            own = ex.image_key(s.id)
            vs = {v.kind: v for v in graph_variants(built, pool, ex.types(s.id), settings.k, own_image=own,
                                                    seed=args.seed)}
            name = name_type(s.tags, s.meta[KIND][0])
            ids = oracle_images(frozenset({name}), [p for p in named if p[0] != own], settings.k,
                                random.Random(args.seed + 2))
            by_name = {r: list(zip(ids, substitute_scores(v, len(ids)))) for r, v in built.items()}
            jobs.append((s, [vs["built"], Variant("intra left out", "leave_out", {**built, "intra": []}),
                             vs["oracle"], Variant("oracle by name", "oracle", by_name), vs["random"]]))
        for results in retagger.retag_many(jobs):
            for k, r in zip(VARIANTS, results):
                tags[k].append(r.tags)
        print(f"{min(at + args.batch, len(posts))}/{len(posts)} posts", file=sys.stderr, flush=True)
    spans = [tuple(s.meta[KIND][0]) for s in posts]
    f1 = {k: score_with_subset(posts, t, KIND) for k, t in tags.items()}
    payload = {"run": args.run, "index": args.index, "split": args.split, "posts": len(posts),
               "relations": list(retagger.relations), "settings": settings.as_dict(), "seed": args.seed,
               "intra_left_out": flips(tags["built"], tags["intra_left_out"], spans),
               "oracle_vs_built": flips(tags["built"], tags["oracle"], spans),
               "f1": {k: {m: v[m] for m in ("f1", "precision", "recall", KIND + "_f1", KIND + "_gold")}
                      for k, v in f1.items()},
               "oracle_gain": {m: f1["oracle"][m] - f1["built"][m] for m in ("f1", KIND + "_f1")},
               "oracle_by_name_gain": {m: f1["oracle_by_name"][m] - f1["built"][m] for m in ("f1", KIND + "_f1")},
               "seconds": time.perf_counter() - start}
    result = write_result(args.out, payload, __file__, argv)
    text = markdown(result)
    write_rendering(Path(args.out).with_suffix(".md"), result, text)
    print(text)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
