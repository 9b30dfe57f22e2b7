"""Training: AdamW with linear warm-up and a decay schedule (``train.schedule``), dev evaluation
every epoch (optionally of the mean weights of the last epochs, ``train.average_last``),
best-dev checkpoint, one test evaluation at the end, resumable from the last epoch.

A run folder holds::

    config.json            the resolved run config
    metrics.jsonl / .csv   one row per epoch (loss, dev P/R/F1, wall and CPU seconds)
    curve.png              training loss and dev F1 per epoch
    best/  last/           checkpoints (last/ also holds the optimizer state)
    valid_predictions.conll, test_predictions.conll, results.json

Under ``torchrun`` (see :mod:`rgcn.distributed`) every process trains on its slice of each
batch with the gradients all-reduced; the first process alone evaluates dev and writes the
run folder while the others wait.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .averaging import swapped_weights, update_average
from .batching import BucketSampler, TaggingDataset
from .checkpoint import build_tagger, load_checkpoint, save_checkpoint
from .config import RunConfig
from . import distributed
from .distributed import SINGLE, Dist
from data.corpus import Corpus, check_entity_types, drop_images, read_corpus, write_conll
from .heads import head_class
from .schedules import make_scheduler
from .tagger import Tagger, label_set, resolve_precision

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def read_splits(cfg: RunConfig) -> dict[str, Corpus]:
    """The run's labelled splits; every entity type must be one of ``data.entity_types``."""
    d = cfg.data
    names = {"train": d.train, "valid": d.valid, **({"test": d.test} if d.test else {})}
    splits = {name: read_corpus(path, d.images, d.format, require_tags=True, encoding=d.encoding)
              for name, path in names.items()}
    for corpus in splits.values():
        check_entity_types(corpus, d.entity_types)
    if d.test and d.drop_test_images:
        drop_images(splits["test"])
    return splits


# Layers whose every parameter (scale and shift) is exempt from weight decay.
NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def is_no_decay(module: nn.Module, param_name: str) -> bool:
    """Whether ``module``'s own parameter ``param_name`` is left out of weight decay: every
    bias (``bias``, ``in_proj_bias``...) and every parameter of a normalisation layer
    (:data:`NORM_LAYERS`). The choice is by module type, not by the name the model gives
    the layer, so a LayerNorm called ``ln_f`` or ``norm1`` is caught like BERT's ``LayerNorm``."""
    return isinstance(module, NORM_LAYERS) or param_name == "bias" or param_name.endswith("_bias")


def param_groups(model: Tagger, cfg: RunConfig) -> list[dict]:
    """AdamW parameter groups: the backbone at ``train.lr``, everything else at
    ``train.head_lr``; each split again into decayed (``train.weight_decay``) and
    undecayed parameters (see :func:`is_no_decay`). Frozen parameters are left out."""
    groups = {(True, True): [], (True, False): [], (False, True): [], (False, False): []}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_backbone = f"{mod_name}.".startswith("encoder.backbone.")
            groups[(is_backbone, not is_no_decay(module, p_name))].append(p)
    t = cfg.train
    return [{"params": ps, "lr": t.lr if bb else t.head_lr, "weight_decay": t.weight_decay if dec else 0.0}
            for (bb, dec), ps in groups.items() if ps]


def make_optimizer(model: Tagger, cfg: RunConfig) -> torch.optim.Optimizer:
    """AdamW, fused where torch supports it (several times faster than the per-tensor loop on CPU)."""
    try:
        return torch.optim.AdamW(param_groups(model, cfg), fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(param_groups(model, cfg))


def plot_curve(history: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax1 = plt.subplots(figsize=(6, 3.6))
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", color="tab:blue", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(epochs, [h["valid_f1"] for h in history], "s-", color="tab:red", label="dev F1")
    ax2.set_ylabel("dev entity F1", color="tab:red")
    ax1.set_title("training curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_trainer_state(path: Path) -> dict:
    """The optimizer, scheduler and RNG states of a run, read with ``weights_only=True``:
    tensors and plain data only, so a run folder from elsewhere cannot run code."""
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise RuntimeError(f"{path} holds objects other than tensors and plain data, so it is not loaded (a "
                           f"file from an untrusted source could run code): {str(e).splitlines()[0]}. "
                           f"Delete {path.parent} to train from the start, or resume from a run you made") from None


class Trainer:
    """Runs one training job described by a :class:`RunConfig`."""

    def __init__(self, cfg: RunConfig, progress: bool = True, dist: Dist = SINGLE,
                 device: torch.device | None = None):
        """``dist``: this process's place in a multi-process run (:func:`rgcn.distributed.init`),
        one process by default; ``device``: the device it trains on (``train.device`` resolved
        by default)."""
        self.cfg = cfg
        self.dist = dist
        self.progress = progress and dist.is_main
        self.run_dir = cfg.run_dir
        self.device = device or resolve_device(cfg.train.device)

    def fit(self, resume: bool = False) -> dict:
        cfg, t, d = self.cfg, self.cfg.train, self.dist
        distributed.check_batch_size(t.batch_size, d)
        if t.threads:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed)
        if d.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        log.info("run %s: seed %d, device %s%s", self.run_dir, t.seed, self.device,
                 f", {d.world} processes ({d.backend}; global batch {t.batch_size})" if d.enabled else "")
        log.debug("resolved config:\n%s", json.dumps(cfg.to_dict(), indent=2))

        splits = read_splits(cfg)
        for name, c in splits.items():
            log.debug("%s: %d posts from %s (%d empty skipped)", name, len(c), c.path, c.skipped_empty)
        labels = label_set(splits["train"].samples)
        context = {"splits": splits, "run_dir": str(self.run_dir), "config": cfg, "device": self.device}
        with distributed.main_first(d):   # what the first process's setup caches, the others load
            context.update(head_class(cfg.head.name).setup(cfg.head.options, splits, str(self.run_dir),
                                                           self.progress))
        for name, line in (context.get("image_summary") or {}).items():
            log.info("%s %s", name, line)
        model = build_tagger(cfg, labels, context).to(self.device)
        model.autocast_dtype = resolve_precision(t.precision, self.device)
        log.debug("precision: %s", model.autocast_dtype or "fp32")
        tok = model.tokenizer
        data = {k: TaggingDataset(v.samples, tok, labels) for k, v in splits.items()}

        sampler = BucketSampler(data["train"].lengths(), t.batch_size, shuffle=True, seed=t.seed)
        steps_per_epoch = len(sampler)
        total = steps_per_epoch * t.epochs
        optimizer = make_optimizer(model, cfg)
        scheduler = make_scheduler(optimizer, t.schedule, int(t.warmup * total), total)

        history: list[dict] = []
        best_f1, start_epoch = -1.0, 1
        # train.average_last > 1: from this epoch on, dev sees (and best/ keeps) the mean weights
        average_from = t.epochs - t.average_last + 1 if t.average_last > 1 else None
        average, n_averaged = None, 0
        own_rng = False
        last_dir = self.run_dir / "last"
        if resume and (last_dir / "trainer_state.pt").exists():
            model, _, meta = load_checkpoint(last_dir, self.device, context)
            model.autocast_dtype = resolve_precision(t.precision, self.device)
            optimizer = make_optimizer(model, cfg)
            scheduler = make_scheduler(optimizer, t.schedule, int(t.warmup * total), total)
            state = load_trainer_state(last_dir / "trainer_state.pt")
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            ranks_rng = state.get("ranks_rng") or []
            own_rng = len(ranks_rng) == d.world                 # saved by as many processes as now run
            distributed.set_rng_state(ranks_rng[d.rank] if own_rng
                                      else (state["torch_rng"], state["py_rng"], state.get("cuda_rng")))
            history, best_f1 = state["history"], state["best_f1"]
            average, n_averaged = state.get("average"), state.get("n_averaged", 0)
            start_epoch = state["epoch"] + 1
            log.info("resuming %s after epoch %d (best dev F1 %.2f)", self.run_dir, state["epoch"], 100 * best_f1)
        elif resume:
            log.info("nothing to resume in %s; starting fresh", self.run_dir)
        if d.rank and not own_rng:
            seed_everything(t.seed + 1_000_003 * d.rank)     # dropout and head augmentation differ per process
        loss_fn = distributed.loss_function(model, d)

        for epoch in range(start_epoch, t.epochs + 1):
            sampler.set_epoch(epoch)
            model.train()
            t0, cpu0 = time.perf_counter(), time.process_time()
            losses = []
            bar = tqdm(sampler.batches(), desc=f"epoch {epoch}/{t.epochs}", unit="batch",
                       disable=not self.progress, leave=False)
            for idx in bar:
                idx, share = distributed.shard(idx, d.rank, d.world)
                batch = model.make_batch(data["train"], idx, training=True).to(self.device)
                loss = loss_fn(batch)
                optimizer.zero_grad(set_to_none=True)
                (loss * distributed.backward_weight(share, d) if d.enabled else loss).backward()
                if t.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item() * share if d.enabled else loss.item())
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            losses = distributed.sum_over_processes(losses, d)     # each step's loss over the global batch
            ranks_rng = distributed.gather(distributed.rng_state(), d) if d.enabled else None
            train_seconds = time.perf_counter() - t0
            train_cpu_seconds = time.process_time() - cpu0       # every thread of this process: moved less by other jobs
            if not d.is_main:
                d.barrier()                                          # the first process evaluates and saves
                continue
            if average_from is not None and epoch >= average_from:
                average = update_average(average, model, n_averaged)
                n_averaged += 1
            with swapped_weights(model, average):
                scores, pred = model.evaluate(data["valid"], t.eval_batch_size)
                row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "train_seconds": round(train_seconds, 2),
                       "train_cpu_seconds": round(train_cpu_seconds, 2),
                       "train_posts_per_second": round(len(data["train"]) / train_seconds, 2),
                       "valid_precision": scores.total.precision, "valid_recall": scores.total.recall,
                       "valid_f1": scores.f1, "valid_seconds": round(pred.seconds, 2)}
                if average_from is not None:
                    row["averaged_epochs"] = n_averaged
                history.append(row)
                improved = scores.f1 > best_f1
                if improved:
                    best_f1 = scores.f1
                    save_checkpoint(self.run_dir / "best", model, cfg, {"epoch": epoch, "valid": scores.as_dict(),
                                    **({"averaged_epochs": n_averaged} if average_from is not None else {})})
                    write_conll(self.run_dir / "valid_predictions.conll", data["valid"].samples, pred.tags)
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "torch_rng": torch.get_rng_state(), "py_rng": random.getstate(),
                     "cuda_rng": distributed.cuda_rng_state(),
                     "history": history, "best_f1": best_f1, "epoch": epoch,
                     **({"average": average, "n_averaged": n_averaged} if average is not None else {}),
                     **({"ranks_rng": ranks_rng} if ranks_rng is not None else {})}
            save_checkpoint(last_dir, model, cfg, {"epoch": epoch}, trainer_state=state)
            self._write_history(history)
            log.info("epoch %d: loss %.4f, dev F1 %.2f%s, %.1f s", epoch, row["train_loss"], 100 * scores.f1,
                     " (best)" if improved else "", train_seconds)
            d.barrier()

        if not d.is_main:                    # the first process scores the test split and writes results.json
            return distributed.from_main(None, d)

        results = {"best_epoch": max(history, key=lambda h: h["valid_f1"])["epoch"] if history else None,
                   "history": history}
        best, _, meta = load_checkpoint(self.run_dir / "best", self.device, context)
        best.autocast_dtype = model.autocast_dtype
        results["valid"] = meta["valid"]
        if "test" in data:
            test_scores, pred = best.evaluate(data["test"], t.eval_batch_size, progress=self.progress)
            write_conll(self.run_dir / "test_predictions.conll", data["test"].samples, pred.tags)
            results["test"] = test_scores.as_dict()
            results["test_posts_per_second"] = round(pred.posts_per_second, 1)
            results["test_table"] = test_scores.table()
            log.debug("test (best dev epoch %s):\n%s", results["best_epoch"], test_scores.table())
        tmp = self.run_dir / "results.json.tmp"
        tmp.write_text(json.dumps(results, indent=2))
        os.replace(tmp, self.run_dir / "results.json")
        return distributed.from_main(results, d)

    def _write_history(self, history: list[dict]) -> None:
        with open(self.run_dir / "metrics.jsonl", "w") as f:
            for h in history:
                f.write(json.dumps(h) + "\n")
        with open(self.run_dir / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)
        plot_curve(history, self.run_dir / "curve.png")


def load_for_corpus(run_dir: str | Path, corpus: Corpus, device: str = "auto", progress: bool = False,
                    head_options: dict | None = None):
    """Load a run's best checkpoint with whatever its head needs for ``corpus`` (e.g. relation
    graphs over the training split and these posts); ``head_options`` changes the head's
    inference options (e.g. ``{"view": "text"}``, see :func:`rgcn.checkpoint.with_head_options`)."""
    from .checkpoint import read_meta, with_head_options
    from .config import config_from_dict

    path = Path(run_dir)
    ckpt = path / "best" if (path / "best" / "checkpoint.json").exists() else path
    cfg = with_head_options(config_from_dict(read_meta(ckpt)["config"]), head_options)
    splits = {"train": read_corpus(cfg.data.train, cfg.data.images, cfg.data.format, encoding=cfg.data.encoding)}
    name = "train"
    if Path(corpus.path).resolve() != Path(cfg.data.train).resolve():
        name, splits["predict"] = "predict", corpus
    context = head_class(cfg.head.name).setup(cfg.head.options, splits, str(path), progress, training=False)
    model, cfg, meta = load_checkpoint(ckpt, resolve_device(device), context, head_options)
    if context.get("image_summary"):
        meta["image_summary"] = context["image_summary"][name]   # what the head made of the posts' images
    return model, cfg, meta
