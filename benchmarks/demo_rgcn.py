"""R-GCN against the text-only tagger on the embedded demo, with the paper's ablations.

Trains ``text``, ``rgcn`` (inter + intra), ``rgcn`` without inter and ``rgcn`` without
intra with the same encoder, seed and budget; scores each on the demo test split overall
and on the entities whose type only the photo decides; scores ``rgcn`` again with every
test image removed (the modality-missing setting); reports seconds per epoch and tagging
posts/s, and the ratio rgcn/text.

    python benchmarks/demo_rgcn.py            # needs data/demo and .cache/demo/index (make demo makes both)

Writes ``benchmarks/results/demo_rgcn.json``.
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
from rgcn.__main__ import compare_runs, score_with_subset  # noqa: E402
from data.corpus import drop_images, read_corpus  # noqa: E402
from rgcn.training import load_for_corpus  # noqa: E402

VARIANTS = {
    "text": ["--config", "configs/demo_text.yaml"],
    "rgcn": ["--config", "configs/demo_rgcn.yaml"],
    "rgcn_no_inter": ["--config", "configs/demo_rgcn.yaml", "head.options.relations=[intra]"],
    "rgcn_no_intra": ["--config", "configs/demo_rgcn.yaml", "head.options.relations=[inter]"],
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out-dir", default="runs/demo_bench")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a = p.parse_args(argv)
    os.chdir(ROOT)
    common = ["--no-progress", f"out_dir={a.out_dir}", f"train.epochs={a.epochs}", f"train.seed={a.seed}",
              f"train.threads={a.threads}"]
    runs, timing = {}, {}
    for name in a.variants:
        res = train.main([*VARIANTS[name], *common, f"name={name}"])
        runs[name] = Path(a.out_dir) / name
        hist = res["history"]
        timing[name] = {"seconds_per_epoch": round(sum(h["train_seconds"] for h in hist) / len(hist), 2),
                        "tagging_posts_per_second": res.get("test_posts_per_second")}
    gold = "data/demo/test.jsonl"
    rows = {Path(r["run"]).name: r for r in compare_runs(list(runs.values()), gold, "image_decided")}
    if "rgcn" in runs:
        corpus = read_corpus(gold, "data/demo/images", require_tags=True)
        drop_images(corpus.samples)
        model, _, _ = load_for_corpus(runs["rgcn"], corpus)
        pred = model.predict(corpus.samples).tags
        rows["rgcn (test images removed)"] = {
            "run": "rgcn (test images removed)", **score_with_subset(corpus.samples, pred, "image_decided", gold)}
    out = {"rows": rows, "timing": timing, "epochs": a.epochs, "seed": a.seed}
    if "text" in timing and "rgcn" in timing:
        out["rgcn_over_text_epoch_time"] = round(timing["rgcn"]["seconds_per_epoch"] /
                                                 timing["text"]["seconds_per_epoch"], 2)
        out["rgcn_over_text_tagging_speed"] = round(timing["rgcn"]["tagging_posts_per_second"] /
                                                    timing["text"]["tagging_posts_per_second"], 2)
    res_dir = ROOT / "benchmarks" / "results"
    res_dir.mkdir(parents=True, exist_ok=True)
    (res_dir / "demo_rgcn.json").write_text(json.dumps(out, indent=2))
    print(f"\n{'variant':28s} {'F1':>7s} {'image-decided F1':>17s} {'other F1':>9s} {'s/epoch':>8s} {'posts/s':>8s}")
    for name, r in rows.items():
        t = timing.get(name, {})
        print(f"{name:28s} {100 * r['f1']:7.2f} {100 * r['image_decided_f1']:17.2f} {100 * r['outside_image_decided_f1']:9.2f} "
              f"{t.get('seconds_per_epoch', ''):>8} {t.get('tagging_posts_per_second', ''):>8}")
    return out


if __name__ == "__main__":
    main()
