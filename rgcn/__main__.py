"""Command line: score a predictions file, tag new posts.

    python -m rgcn score GOLD PRED [--json]
    python -m rgcn predict --run RUN_DIR [RUN_DIR...] --input FILE [--output FILE] [--format conll|jsonl] [--view text]
    python -m rgcn evaluate --run RUN_DIR [RUN_DIR...] --split FILE [--drop-images] [--head-option KEY=VALUE]
                            [--constrained | --no-constrained]
    python -m rgcn compare RUN... --gold TEST [--subset-field image_decided]
    python -m rgcn serve --run RUN [RUN...] [--images DIR] [--host 127.0.0.1] [--port 8000] [--max-upload-mb 20]

``compare`` scores each kind of post apart (F1 on its target names) whenever the gold
posts carry a ``kind`` field, as the demo's do. ``predict`` and ``evaluate`` take
``--head-option KEY=VALUE`` for the options a trained head lets change (its
``inference_options``, e.g. the ita head's ``view``); ``--view NAME`` is short for
``--head-option view=NAME``.

Several runs after ``--run`` tag as an ensemble: each post's emission scores are the mean of
the runs' (each run reads the post with its own head), decoded once by the first run's CRF
(its transitions, and its ``crf.constrained``). The runs must share the label set and the
encoder tokenizer; the command says which run differs when they do not.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from data.errors import (ArgumentParser, UserError, command, existing_dir, existing_file, nonnegative_int,
                         output_file, positive_int)
from data.logs import setup_logging


def _score(args) -> int:
    from data.corpus import read_corpus, read_predictions
    from .metrics import score

    gold = read_corpus(args.gold, require_tags=True, encoding=args.encoding)
    pred_tags, pred_gold = read_predictions(args.pred, args.encoding)
    gold_tags = [s.tags for s in gold.samples]
    if len(gold_tags) != len(pred_tags):
        raise UserError(args.pred, f"{len(pred_tags)} posts, but {args.gold} has {len(gold_tags)}",
                        "the predictions file must hold the same posts in the same order")
    for i, (g, p) in enumerate(zip(gold.samples, pred_tags)):
        if len(g.tags) != len(p):
            raise UserError(args.pred, f"post {i + 1} ({g.id}) has {len(p)} tokens, but {len(g.tags)} in "
                            f"{args.gold}", "the predictions file must hold the gold posts' tokens")
    result = score(gold_tags, pred_tags)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.table())
    return 0


def _load_run(args, path, drop: bool = False, **read):
    """The posts at ``path`` and the taggers of ``args.run`` set up to tag them (one run, or
    an ensemble: :func:`load_runs`)."""
    from data.corpus import drop_images, read_corpus

    corpus = read_corpus(path, args.images, encoding=args.encoding, **read)
    if drop:
        drop_images(corpus.samples)
    models, meta = load_runs(args, corpus)
    if meta.get("image_summary"):
        print(meta["image_summary"], file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return corpus, models


def _predict(args) -> int:
    """Tag the posts of a file with :mod:`rgcn.api` (one run or an ensemble); the JSONL output
    gives each post's ``entities`` (offsets into its tokens joined by spaces, confidences)."""
    from dataclasses import replace

    from data.corpus import read_corpus, write_conll, write_jsonl
    from .api import load_tagger

    corpus = read_corpus(args.input, args.images, encoding=args.encoding, fmt=args.input_format)
    tagger = load_tagger(args.run, args.device, head_options=head_options(args),
                         constrained=getattr(args, "constrained", None), batch_size=args.batch_size)
    if len(args.run) > 1:
        print(f"ensemble of {len(args.run)} runs: mean emissions, decoded by the CRF of {args.run[0]}",
              file=sys.stderr)
    results, summary, seconds = tagger.tag_samples(corpus.samples, args.batch_size, progress=True)
    if summary:
        print(summary)
    tags = [r.tags for r in results]
    fmt = args.format or ("jsonl" if str(args.output).endswith(".jsonl") else "conll")
    out = Path(args.output or Path(args.input).with_suffix(f".pred.{fmt}"))
    if fmt == "jsonl":
        samples = [replace(s, meta={**s.meta, "entities": r.entities}) for s, r in zip(corpus.samples, results)]
        write_jsonl(out, samples, tags)
    else:
        write_conll(out, corpus.samples, tags)
    n_ent = sum(sum(1 for t in t_ if t.startswith("B-") or t.startswith("I-")) for t_ in tags)
    rate = len(results) / seconds if seconds else float("inf")
    print(f"tagged {len(corpus)} posts ({rate:.0f} posts/s), {n_ent} entity words -> {out}")
    for s, t_ in list(zip(corpus.samples, tags))[:args.show]:
        print(f"  {s.id}: {marked_text(s.tokens, t_)}")
    if corpus.skipped_empty:
        print(f"skipped {corpus.skipped_empty} empty post(s)")
    return 0


def load_runs(args, corpus):
    """The taggers of ``args.run`` (one run, or an ensemble checked by
    :func:`rgcn.tagger.check_ensemble`) and the first run's checkpoint meta."""
    from .tagger import check_ensemble
    from .training import load_for_corpus

    loaded = [load_for_corpus(run, corpus, args.device, head_options=head_options(args)) for run in args.run]
    models = [m for m, _, _ in loaded]
    if getattr(args, "constrained", None) is not None:
        models[0].constrained = args.constrained     # the decoding CRF is the first run's
    if len(models) > 1:
        check_ensemble(models, args.run)
        print(f"ensemble of {len(models)} runs: mean emissions, decoded by the CRF of {args.run[0]}",
              file=sys.stderr)
    return models, loaded[0][2]


def head_options(args) -> dict:
    """``--head-option KEY=VALUE`` (values read as YAML) and ``--view NAME`` as a dict."""
    import yaml

    out = {}
    for item in args.head_option or ():
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UserError(f"--head-option {item!r}", "expected KEY=VALUE", "e.g. --head-option view=text")
        out[key.strip()] = yaml.safe_load(value) if value else None
    if args.view:
        out["view"] = args.view
    return out


def add_head_option_args(p) -> None:
    p.add_argument("--head-option", action="append", metavar="KEY=VALUE",
                   help="change an option the trained head allows to change (its inference_options), "
                        "e.g. view=text for the ita head; repeatable")
    p.add_argument("--view", help="the view to tag with, for heads with more than one (ita: multimodal "
                   "or text); short for --head-option view=NAME")


def add_decoding_args(p) -> None:
    p.add_argument("--constrained", action=argparse.BooleanOptionalAction, default=None,
                   help="decode valid BIO paths only (--constrained) or any path (--no-constrained); "
                        "default: the run's crf.constrained")


def marked_text(tokens, tags) -> str:
    """A post with its entities bracketed: ``Look at [Zelby PER] today in [Paris LOC]``."""
    from data.spans import get_spans

    words = list(tokens)
    for etype, a, b in reversed(get_spans(tags)):
        words[a:b] = ["[" + " ".join(words[a:b]) + f" {etype}]"]
    return " ".join(words)


def _evaluate(args) -> int:
    from data.corpus import write_conll

    corpus, models = _load_run(args, args.split, drop=args.drop_images, require_tags=True)
    scores, pred = models[0].evaluate(corpus.samples, args.batch_size, progress=True, ensemble=models[1:])
    if args.output:
        write_conll(args.output, corpus.samples, pred.tags)
    print(json.dumps(scores.as_dict(), indent=2) if args.json else scores.table())
    return 0


def _compare(args) -> int:
    from .compare import compare_runs, compare_table

    rows = compare_runs(args.runs, args.gold, args.subset_field)
    print(json.dumps(rows, indent=2) if args.json else compare_table(rows))
    return 0


def _serve(args) -> int:
    from .serve.cli import serve

    return serve(args, head_options(args))


@command
def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = ArgumentParser(prog="python -m rgcn", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show the full log on the console too (predict and evaluate keep it in RUN/CMD.log)")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="entity-level P/R/F1 of a predictions file against gold")
    s.add_argument("gold", type=existing_file, help="gold split (CoNLL or JSONL)")
    s.add_argument("pred", type=existing_file, help="predictions: CoNLL token<TAB>tag or token<TAB>gold<TAB>pred")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.add_argument("--encoding", default="utf-8", help="text encoding of both files (default utf-8)")
    s.set_defaults(fn=_score)
    e = sub.add_parser("evaluate", help="score a trained run on a labelled split")
    e.add_argument("--run", required=True, nargs="+", type=existing_dir,
                   help="run folder (uses best/) or a checkpoint folder; several: an ensemble (mean emissions, "
                        "the first run's CRF)")
    e.add_argument("--split", required=True, type=existing_file, help="labelled split (CoNLL or JSONL)")
    e.add_argument("--images", type=existing_dir, help="image folder (posts whose image is not in the run's "
                   "index have it embedded by the index's embedder)")
    e.add_argument("--drop-images", action="store_true",
                   help="evaluate as if no post had an image (the modality-missing setting)")
    e.add_argument("--output", type=output_file, help="write predictions (CoNLL: token, gold, prediction)")
    e.add_argument("--batch-size", type=positive_int, default=64)
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true")
    e.add_argument("--encoding", default="utf-8", help="text encoding of the split (default utf-8)")
    add_decoding_args(e)
    add_head_option_args(e)
    e.set_defaults(fn=_evaluate)
    c = sub.add_parser("compare", help="entity F1 of several runs' test predictions: overall, per kind "
                       "on the target names when the gold posts have a 'kind' (and 'target') field, and "
                       "optionally on a subset of listed spans")
    c.add_argument("runs", nargs="+", type=existing_dir, help="run folders (each with test_predictions.conll)")
    c.add_argument("--gold", required=True, type=existing_file, help="the gold test split the runs were scored on")
    c.add_argument("--subset-field", help="JSONL field listing [start, end) word spans to score "
                   "separately (FIELD_f1) and apart (outside_FIELD_f1: entities overlapping none of "
                   "them), e.g. image_decided in the demo data")
    c.add_argument("--json", action="store_true")
    c.set_defaults(fn=_compare)
    t = sub.add_parser("predict", help="tag posts with a trained run")
    t.add_argument("--run", required=True, nargs="+", type=existing_dir,
                   help="run folder (uses best/) or a checkpoint folder; several: an ensemble (mean emissions, "
                        "the first run's CRF)")
    t.add_argument("--input", required=True, type=existing_file, help="CoNLL, JSONL, or raw text with one post a line")
    t.add_argument("--input-format", default="auto", choices=["auto", "conll", "jsonl", "text"])
    t.add_argument("--output", type=output_file, help="output file (default: INPUT.pred.conll)")
    t.add_argument("--format", choices=["conll", "jsonl"], help="output format")
    t.add_argument("--images", type=existing_dir, help="image folder for multimodal heads (posts whose "
                   "image is not in the run's index have it embedded by the index's embedder)")
    t.add_argument("--show", type=nonnegative_int, default=5, help="print the first N tagged posts (default 5)")
    t.add_argument("--batch-size", type=positive_int, default=64)
    t.add_argument("--device", default="auto")
    t.add_argument("--encoding", default="utf-8", help="text encoding of the input (default utf-8)")
    add_decoding_args(t)
    add_head_option_args(t)
    t.set_defaults(fn=_predict)
    v = sub.add_parser("serve", help="serve a page and a JSON API that tag posts (POST /tag, /docs)")
    from .serve.cli import add_arguments as add_serve_arguments

    add_serve_arguments(v)
    add_decoding_args(v)
    add_head_option_args(v)
    v.set_defaults(fn=_serve)
    args = p.parse_args(argv)
    run = getattr(args, "run", None)
    run = run[0] if isinstance(run, list) else run
    setup_logging(Path(run) / f"{args.cmd}.log" if run and Path(run).is_dir() else None, args.verbose)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
