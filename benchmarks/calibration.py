"""Does the tagging API's confidence mean something? A reliability table per run.

Every run tags a labelled split through :mod:`rgcn.api`; each predicted entity comes with its
confidence, the CRF's probability of exactly that labelled span. The predicted spans are
put in ``--bins`` equal-width confidence bins, and each bin gives its mean confidence beside
the share of its spans that are correct (an exact ``(type, start, end)`` match with a gold
entity). A calibrated confidence has the two equal; the expected calibration error,

    ECE = sum_b (n_b / N) * | share correct_b - mean confidence_b |,

says by how much they differ on average, weighted by the spans in each bin. The split's
entity-level micro F1 is given beside it. Result: ``benchmarks/results/calibration_demo.json``
and its tables as Markdown (``.md`` beside it), stamped by ``benchmarks/provenance.py``.

    python benchmarks/calibration.py --runs runs/demo/*/seed13 --split data/demo/test.jsonl
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import RESULTS, write_rendering, write_result  # noqa: E402
from data.errors import ArgumentParser, command, exit_status  # noqa: E402


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/calibration.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="run folders, each scored alone")
    p.add_argument("--split", required=True, help="a labelled split (JSONL or CoNLL)")
    p.add_argument("--images", help="the split's image folder (default: the first run's data.images)")
    p.add_argument("--bins", type=int, default=10, help="equal-width confidence bins (default 10)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--output", default=str(RESULTS / "calibration_demo.json"),
                   help="result JSON (the Markdown goes beside it, .md)")
    a = p.parse_args(argv)
    if a.bins < 1:
        p.error(f"--bins must be at least 1, found {a.bins}")
    return a


def reliability(confidences, correct, bins: int = 10) -> dict:
    """The reliability table and expected calibration error of predictions with
    ``confidences`` in [0, 1], ``correct`` telling which were right. Bin ``b`` holds the
    confidences in ``[b / bins, (b + 1) / bins)`` (the last one includes 1).

    Returns ``{"n", "ece", "mean_confidence", "share_correct", "bins": [{"low", "high", "n",
    "mean_confidence", "share_correct"}, ...]}`` (a bin's means are ``None`` when it is empty).
    """
    confidences, correct = [float(c) for c in confidences], [bool(x) for x in correct]
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} correct flags")
    if any(not 0.0 <= c <= 1.0 for c in confidences):
        raise ValueError("confidences must lie in [0, 1]")
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, c in enumerate(confidences):
        members[min(int(c * bins), bins - 1)].append(i)
    n, ece, rows = len(confidences), 0.0, []
    for b, idx in enumerate(members):
        conf = sum(confidences[i] for i in idx) / len(idx) if idx else None
        share = sum(correct[i] for i in idx) / len(idx) if idx else None
        if idx:
            ece += len(idx) / n * abs(share - conf)
        rows.append({"low": b / bins, "high": (b + 1) / bins, "n": len(idx), "mean_confidence": conf,
                     "share_correct": share})
    return {"n": n, "ece": ece if n else None, "mean_confidence": sum(confidences) / n if n else None,
            "share_correct": sum(correct) / n if n else None, "bins": rows}


def score_run(run: str, corpus, batch_size: int, device: str, bins: int) -> dict:
    """Tag ``corpus`` with ``run`` and return its reliability table, ECE and micro F1."""
    from data.spans import get_spans
    from rgcn import load_tagger
    from rgcn.metrics import score

    tagger = load_tagger(run, device, batch_size=batch_size)
    results, _, seconds = tagger.tag_samples(corpus.samples, batch_size)
    confidences, correct = [], []
    for s, r in zip(corpus.samples, results):
        gold = set(get_spans(s.tags))
        for e in r.entities:
            confidences.append(e["confidence"])
            correct.append((e["type"], e["token_start"], e["token_end"]) in gold)
    table = reliability(confidences, correct, bins)
    return {"run": run, "head": tagger.heads[0], "f1": score([s.tags for s in corpus.samples],
                                                             [r.tags for r in results]).f1,
            "posts": len(results), "seconds": round(seconds, 1), **table}


def markdown(result: dict) -> str:
    lines = [f"`{result['provenance']['command']}`", "",
             f"Confidence of each predicted entity (the CRF's probability of its labelled span) against the share "
             f"of predicted entities that are correct, in {result['bins']} equal-width bins, on `{result['split']}`.",
             "", "| head | run | F1 (%) | predicted spans | mean confidence | share correct | ECE |",
             "|---|---|---:|---:|---:|---:|---:|"]
    fmt = lambda x, d=3: "" if x is None else f"{x:.{d}f}"   # noqa: E731
    for r in result["runs"]:
        lines.append(f"| {r['head']} | `{r['run']}` | {100 * r['f1']:.2f} | {r['n']} | {fmt(r['mean_confidence'])} | "
                     f"{fmt(r['share_correct'])} | {fmt(r['ece'], 4)} |")
    for r in result["runs"]:
        lines += ["", f"### {r['head']} (`{r['run']}`)", "", "| confidence | spans | mean confidence | share correct |",
                  "|---|---:|---:|---:|"]
        for b in r["bins"]:
            lines.append(f"| [{b['low']:.1f}, {b['high']:.1f}{']' if b['high'] == 1 else ')'} | {b['n']} | "
                         f"{fmt(b['mean_confidence'])} | {fmt(b['share_correct'])} |")
    return "\n".join(lines) + "\n"


@command
def main(argv=None) -> dict:
    args = parse_args(argv)
    from data.corpus import read_corpus
    from rgcn.checkpoint import read_meta

    images = args.images
    if images is None:
        first = Path(args.runs[0])
        meta = read_meta(first / "best" if (first / "best" / "checkpoint.json").exists() else first)
        images = meta["config"]["data"].get("images")
    corpus = read_corpus(args.split, images, require_tags=True)
    rows = []
    for run in args.runs:
        row = score_run(run, corpus, args.batch_size, args.device, args.bins)
        print(f"{row['head']:>5} {run}: F1 {100 * row['f1']:.2f}, {row['n']} predicted spans, mean confidence "
              f"{row['mean_confidence'] or 0:.3f}, share correct {row['share_correct'] or 0:.3f}, "
              f"ECE {row['ece'] or 0:.4f}", flush=True)
        rows.append(row)
    result = write_result(args.output, {"split": args.split, "images": images, "bins": args.bins, "runs": rows},
                          __file__, argv)
    md = Path(args.output).with_suffix(".md")
    write_rendering(md, result, markdown(result))
    print(f"-> {args.output}, {md}")
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
