"""R-GCN against the text-only tagger on the embedded demo, with the paper's ablations,
over several seeds.

For every seed, trains ``text``, ``rgcn`` (inter + intra), ``rgcn`` without inter and
``rgcn`` without intra with the same encoder and budget; scores each on the demo test
split overall and on the entities whose type only the photo decides; scores ``rgcn`` again
with every test image removed (the modality-missing setting); records seconds per epoch
and tagging posts/s. Reports, per variant, the mean over seeds and the spread (sample
standard deviation, min and max) of every score column the scorer returns (F1, precision,
recall, F1 inside and outside the image-decided spans) and of the timings, and the ratios
rgcn/text.

    python benchmarks/demo_rgcn.py --threads 1     # needs data/demo and .cache/demo/index (make demo makes both)
    python benchmarks/demo_rgcn.py --seeds 13 --variants text rgcn --epochs 2 --output /tmp/demo.json

Writes ``benchmarks/results/demo_rgcn.json`` (``--output``) through
``benchmarks/provenance.py``, every seed's rows kept; run folders go under
``--out-dir``/seed<N>/<variant> (both paths read from where the command runs).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import train  # noqa: E402
from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from data.corpus import drop_images, read_corpus  # noqa: E402
from rgcn.__main__ import compare_runs, score_with_subset  # noqa: E402
from rgcn.training import load_for_corpus  # noqa: E402

VARIANTS = {
    "text": ["--config", "configs/demo_text.yaml"],
    "rgcn": ["--config", "configs/demo_rgcn.yaml"],
    "rgcn_no_inter": ["--config", "configs/demo_rgcn.yaml", "head.options.relations=[intra]"],
    "rgcn_no_intra": ["--config", "configs/demo_rgcn.yaml", "head.options.relations=[inter]"],
}
DROPPED = "rgcn (test images removed)"
TIMING = ("seconds_per_epoch", "tagging_posts_per_second")
GOLD, IMAGES, SUBSET = "data/demo/test.jsonl", "data/demo/images", "image_decided"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15], help="train every variant once per seed")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out-dir", default="runs/demo_bench", help="run folders: OUT_DIR/seed<N>/<variant>")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--output", default=str(RESULTS / "demo_rgcn.json"), help="result JSON")
    return p.parse_args(argv)


def metric_keys(row: dict) -> list[str]:
    """The score columns of a ``compare_runs`` row, in its order: ``f1``, ``precision``,
    ``recall`` and every key ending in ``_f1`` (counts such as ``*_gold`` are not scores)."""
    return [k for k in row if k in ("f1", "precision", "recall") or k.endswith("_f1")]


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value), min and max of ``values``."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "n": len(values)}


def summarise(per_seed: dict) -> dict:
    """``{variant: {column: spread}}`` over seeds, for every score column and timing a
    variant has in every seed (``per_seed``: ``{seed: {"rows": ..., "timing": ...}}``)."""
    seeds = list(per_seed.values())
    out = {}
    for name in seeds[0]["rows"]:
        rows = [s["rows"][name] for s in seeds]
        cols = {k: [r[k] for r in rows] for k in metric_keys(rows[0]) if all(k in r for r in rows)}
        times = [s["timing"].get(name, {}) for s in seeds]
        cols.update({k: [t[k] for t in times] for k in TIMING if all(t.get(k) is not None for t in times)})
        out[name] = {k: spread(v) for k, v in cols.items()}
    return out


def ratios(per_seed: dict) -> dict:
    """rgcn/text epoch time and tagging speed, per seed and as a spread over seeds."""
    per = {}
    for seed, s in per_seed.items():
        t = s["timing"]
        if "text" in t and "rgcn" in t:
            per[seed] = {"epoch_time": t["rgcn"]["seconds_per_epoch"] / t["text"]["seconds_per_epoch"],
                         "tagging_speed": t["rgcn"]["tagging_posts_per_second"] /
                         t["text"]["tagging_posts_per_second"]}
    if not per:
        return {}
    return {"per_seed": per, **{k: spread([r[k] for r in per.values()]) for k in ("epoch_time", "tagging_speed")}}


def run_seed(a, seed: int) -> dict:
    """Train every variant with ``seed``; score them (and rgcn without test images)."""
    out_dir = Path(a.out_dir) / f"seed{seed}"
    common = ["--no-progress", f"out_dir={out_dir}", f"train.epochs={a.epochs}", f"train.seed={seed}",
              f"train.threads={a.threads}"]
    runs, timing = {}, {}
    for name in a.variants:
        res = train.main([*VARIANTS[name], *common, f"name={name}"])
        runs[name] = out_dir / name
        hist = res["history"]
        timing[name] = {"seconds_per_epoch": round(sum(h["train_seconds"] for h in hist) / len(hist), 2),
                        "tagging_posts_per_second": res.get("test_posts_per_second")}
    rows = {Path(r["run"]).name: r for r in compare_runs(list(runs.values()), GOLD, SUBSET)}
    if "rgcn" in runs:
        corpus = read_corpus(GOLD, IMAGES, require_tags=True)
        drop_images(corpus.samples)
        model, _, _ = load_for_corpus(runs["rgcn"], corpus)
        pred = model.predict(corpus.samples).tags
        rows[DROPPED] = {"run": DROPPED, **score_with_subset(corpus.samples, pred, SUBSET, GOLD)}
    return {"rows": rows, "timing": timing}


def table(summary: dict) -> str:
    """Mean ± sample sd over seeds: F1 columns in percent, then the timings."""
    f1_cols = [k for k in next(iter(summary.values())) if k == "f1" or k.endswith("_f1")]
    cols = f1_cols + list(TIMING)
    heads = {"seconds_per_epoch": "s/epoch", "tagging_posts_per_second": "tagging posts/s"}

    def cell(s: dict | None, scale: float) -> str:
        if s is None:
            return ""
        mean = f"{scale * s['mean']:.2f}"
        return mean if s["sd"] is None else f"{mean} ± {scale * s['sd']:.2f}"

    width = max(len(n) for n in [*summary, "variant"])
    cw = {c: max(15, len(heads.get(c, c))) for c in cols}
    lines = ["variant".ljust(width) + "".join(f"  {heads.get(c, c):>{cw[c]}}" for c in cols)]
    for name, s in summary.items():
        lines.append(name.ljust(width) + "".join(
            f"  {cell(s.get(c), 100 if c in f1_cols else 1):>{cw[c]}}" for c in cols))
    n = next(iter(next(iter(summary.values())).values()))["n"]
    lines.append(f"mean ± sample standard deviation over {n} seed(s); F1 in percent")
    return "\n".join(lines)


def main(argv=None) -> dict:
    a = parse_args(argv)
    cwd = Path.cwd()
    output = Path(a.output).resolve()                               # paths given are read from here,
    out_dir = Path(a.out_dir).resolve()                             # but configs and data from the root
    a.out_dir = str(out_dir.relative_to(ROOT) if out_dir.is_relative_to(ROOT) else out_dir)
    print(f"seeds {a.seeds}, variants {a.variants}, {a.epochs} epochs, threads {a.threads}", flush=True)
    os.chdir(ROOT)
    try:
        per_seed = {str(seed): run_seed(a, seed) for seed in a.seeds}
    finally:
        os.chdir(cwd)
    summary = summarise(per_seed)
    out = {"epochs": a.epochs, "seeds": a.seeds, "threads": a.threads, "variants": a.variants,
           "summary": summary, "rgcn_over_text": ratios(per_seed), "per_seed": per_seed}
    write_result(output, out, __file__, argv)
    print("\n" + table(summary))
    print(f"written {output}")
    return out


if __name__ == "__main__":
    main()
