"""MAF against text and R-GCN on the embedded demo, with the paper's ablations, per kind of
post, over several seeds.

For every seed, trains ``text``, ``rgcn``, ``maf`` and MAF without cross-modal alignment
(``maf_no_ca``), without matching (``maf_no_cm``) and without both (``maf_no_ca_cm``)
with the same encoder and budget (``--variants`` picks; ``maf_swap_cm_only`` is MAF whose
swapped pairs train the matcher only); scores each on the demo test split overall and, per
kind of post (``image_decided``, ``conflicting_image``, ``unrelated_image``,
``visual_text``, ``no_image``), on the posts' target names; records seconds per epoch and
tagging posts/s. Reports the mean over seeds and the spread (sample standard deviation,
min, max) of every column, and the ratios of each variant's timings to text's.

    python benchmarks/demo_maf.py                # needs data/demo and .cache/demo/index (make demo)
    python benchmarks/demo_maf.py --seeds 13 --variants text maf --epochs 1 --output /tmp/maf.json
    python benchmarks/demo_maf.py --reuse        # score the run folders already trained

Writes ``benchmarks/results/demo_maf.json`` (``--output``) through
``benchmarks/provenance.py``; run folders go under ``--out-dir``/seed<N>/<variant>.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import train  # noqa: E402
from benchmarks.heads import spread  # noqa: E402
from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from data.corpus import read_corpus, read_predictions  # noqa: E402
from rgcn.metrics import score  # noqa: E402

MAF = ["--config", "configs/demo_maf.yaml"]
VARIANTS = {
    "text": ["--config", "configs/demo_text.yaml"],
    "rgcn": ["--config", "configs/demo_rgcn.yaml"],
    "maf": MAF,
    "maf_no_ca": [*MAF, "head.options.alignment=false"],
    "maf_no_cm": [*MAF, "head.options.matching=false"],
    "maf_no_ca_cm": [*MAF, "head.options.alignment=false", "head.options.matching=false"],
    "maf_swap_cm_only": [*MAF, "head.options.tags_on_swapped=false"],
}
DEFAULT_VARIANTS = ["text", "rgcn", "maf", "maf_no_ca", "maf_no_cm", "maf_no_ca_cm"]
KINDS = ("image_decided", "conflicting_image", "unrelated_image", "visual_text", "no_image")
TIMING = ("seconds_per_epoch", "tagging_posts_per_second")
GOLD = "data/demo/test.jsonl"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15], help="train every variant once per seed")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--out-dir", default="runs/maf_demo", help="run folders: OUT_DIR/seed<N>/<variant>")
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    p.add_argument("--reuse", action="store_true",
                   help="score a run folder that already has results.json instead of training it again")
    p.add_argument("--output", default=str(RESULTS / "demo_maf.json"), help="result JSON")
    return p.parse_args(argv)


def score_by_kind(samples, pred) -> dict:
    """Overall entity F1 and, per kind of post, F1 on the posts' target names
    (``meta["target"]``: ``[start, end)`` word spans), with the gold target count."""
    out = {"f1": score([s.tags for s in samples], pred).f1}
    for kind in KINDS:
        idx = [i for i, s in enumerate(samples) if s.meta.get("kind") == kind]
        targets = [{tuple(t) for t in samples[i].meta["target"]} for i in idx]
        sc = score([samples[i].tags for i in idx], [pred[i] for i in idx],
                   spans_filter=lambda j, sp: (sp[1], sp[2]) in targets[j])
        out[f"{kind}_f1"], out[f"{kind}_gold"] = sc.f1, sc.total.n_gold
    return out


def run_seed(a, seed: int, gold) -> dict:
    out_dir = Path(a.out_dir) / f"seed{seed}"
    common = ["--no-progress", f"out_dir={out_dir}", f"train.epochs={a.epochs}", f"train.seed={seed}",
              f"train.threads={a.threads}"]
    rows, timing = {}, {}
    for name in a.variants:
        run = out_dir / name
        if a.reuse and (run / "results.json").is_file():
            res = json.loads((run / "results.json").read_text())
        else:
            res = train.main([*VARIANTS[name], *common, f"name={name}"])
        hist = res["history"]
        timing[name] = {"seconds_per_epoch": round(sum(h["train_seconds"] for h in hist) / len(hist), 2),
                        "tagging_posts_per_second": res.get("test_posts_per_second")}
        pred, _ = read_predictions(run / "test_predictions.conll")
        rows[name] = score_by_kind(gold.samples, pred)
        print(f"seed {seed} {name}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in rows[name].items()
                                                   if k.endswith("f1")), flush=True)
    return {"rows": rows, "timing": timing}


def summarise(per_seed: dict) -> dict:
    seeds = list(per_seed.values())
    out = {}
    for name in seeds[0]["rows"]:
        rows = [s["rows"][name] for s in seeds if name in s["rows"]]
        cols = {k: [r[k] for r in rows] for k in rows[0] if k.endswith("f1")}
        times = [s["timing"][name] for s in seeds if name in s["timing"]]
        cols.update({k: [t[k] for t in times] for k in TIMING if all(t.get(k) is not None for t in times)})
        out[name] = {k: spread(v) for k, v in cols.items()}
    return out


def over_text(per_seed: dict) -> dict:
    """Each variant's epoch time and tagging speed divided by text's, as a spread over seeds."""
    out = {}
    for name in next(iter(per_seed.values()))["timing"]:
        if name == "text":
            continue
        ratios = [(s["timing"][name]["seconds_per_epoch"] / s["timing"]["text"]["seconds_per_epoch"],
                   s["timing"][name]["tagging_posts_per_second"] / s["timing"]["text"]["tagging_posts_per_second"])
                  for s in per_seed.values() if "text" in s["timing"] and name in s["timing"]]
        if ratios:
            out[name] = {"epoch_time": spread([r[0] for r in ratios]), "tagging_speed": spread([r[1] for r in ratios])}
    return out


def table(summary: dict) -> str:
    """Mean ± sample sd over seeds: F1 on the target names per kind (percent), then timings."""
    cols = ["f1", *(f"{k}_f1" for k in KINDS), *TIMING]
    heads = {"f1": "all", "seconds_per_epoch": "s/epoch", "tagging_posts_per_second": "posts/s",
             **{f"{k}_f1": k for k in KINDS}}

    def cell(s, scale):
        if s is None:
            return ""
        return f"{scale * s['mean']:.1f}" + ("" if s["sd"] is None else f" ± {scale * s['sd']:.1f}")

    width = max(len(n) for n in [*summary, "variant"])
    cw = {c: max(12, len(heads[c])) for c in cols}
    lines = ["variant".ljust(width) + "".join(f"  {heads[c]:>{cw[c]}}" for c in cols)]
    for name, s in summary.items():
        lines.append(name.ljust(width) + "".join(f"  {cell(s.get(c), 1 if c in TIMING else 100):>{cw[c]}}"
                                                 for c in cols))
    lines.append("mean ± sample standard deviation over seeds; F1 in percent (per kind: on the target names)")
    return "\n".join(lines)


def main(argv=None) -> dict:
    a = parse_args(argv)
    cwd = Path.cwd()
    output = Path(a.output).resolve()
    out_dir = Path(a.out_dir).resolve()
    a.out_dir = str(out_dir.relative_to(ROOT) if out_dir.is_relative_to(ROOT) else out_dir)
    print(f"seeds {a.seeds}, variants {a.variants}, {a.epochs} epochs, threads {a.threads}", flush=True)
    os.chdir(ROOT)
    try:
        gold = read_corpus(GOLD, require_tags=True)
        per_seed = {str(seed): run_seed(a, seed, gold) for seed in a.seeds}
    finally:
        os.chdir(cwd)
    summary = summarise(per_seed)
    out = {"epochs": a.epochs, "seeds": a.seeds, "threads": a.threads, "variants": a.variants,
           "gold": GOLD, "kinds": list(KINDS), "summary": summary, "over_text": over_text(per_seed),
           "per_seed": per_seed}
    write_result(output, out, __file__, argv)
    print("\n" + table(summary))
    print(f"written {output}")
    return out


if __name__ == "__main__":
    main()
