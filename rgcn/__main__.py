"""Command line: score a predictions file, tag new posts.

    python -m rgcn score GOLD PRED [--json]
    python -m rgcn predict --run RUN_DIR --input FILE [--output FILE] [--format conll|jsonl]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path


def _score(args) -> int:
    from .corpus import CorpusError, read_corpus, read_predictions
    from .metrics import score

    try:
        pred_tags, pred_gold = read_predictions(args.pred)
        gold = read_corpus(args.gold, require_tags=True)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    gold_tags = [s.tags for s in gold.samples]
    if len(gold_tags) != len(pred_tags):
        print(f"error: {args.gold} has {len(gold_tags)} posts but {args.pred} has {len(pred_tags)}; "
              "the predictions file must hold the same posts in the same order", file=sys.stderr)
        return 2
    for i, (g, p) in enumerate(zip(gold.samples, pred_tags)):
        if len(g.tags) != len(p):
            print(f"error: post {i + 1} ({g.id}) has {len(g.tags)} tokens in {args.gold} but "
                  f"{len(p)} in {args.pred}", file=sys.stderr)
            return 2
    result = score(gold_tags, pred_tags)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(result.table())
    return 0


def _predict(args) -> int:
    from .corpus import CorpusError, read_corpus, write_conll, write_jsonl
    from .training import load_for_corpus

    try:
        corpus = read_corpus(args.input, args.images, args.input_format)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model, cfg, _ = load_for_corpus(args.run, corpus, args.device)
    pred = model.predict(corpus.samples, args.batch_size, progress=True)
    fmt = args.format or ("jsonl" if str(args.output).endswith(".jsonl") else "conll")
    out = Path(args.output or Path(args.input).with_suffix(f".pred.{fmt}"))
    (write_jsonl if fmt == "jsonl" else write_conll)(out, corpus.samples, pred.tags)
    n_ent = sum(sum(1 for t in tags if t.startswith("B-") or t.startswith("I-")) for tags in pred.tags)
    print(f"tagged {len(corpus)} posts ({pred.posts_per_second:.0f} posts/s), "
          f"{n_ent} entity words -> {out}")
    if corpus.skipped_empty:
        print(f"skipped {corpus.skipped_empty} empty post(s)")
    return 0


def main(argv=None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m rgcn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="entity-level P/R/F1 of a predictions file against gold")
    s.add_argument("gold", help="gold split (CoNLL or JSONL)")
    s.add_argument("pred", help="predictions: CoNLL token<TAB>tag or token<TAB>gold<TAB>pred")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    s.set_defaults(fn=_score)
    t = sub.add_parser("predict", help="tag posts with a trained run")
    t.add_argument("--run", required=True, help="run folder (uses best/) or a checkpoint folder")
    t.add_argument("--input", required=True, help="CoNLL, JSONL, or raw text with one post a line")
    t.add_argument("--input-format", default="auto", choices=["auto", "conll", "jsonl", "text"])
    t.add_argument("--output", help="output file (default: INPUT.pred.conll)")
    t.add_argument("--format", choices=["conll", "jsonl"], help="output format")
    t.add_argument("--images", help="image folder for multimodal heads")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--device", default="auto")
    t.set_defaults(fn=_predict)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
