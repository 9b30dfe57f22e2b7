"""Checkpoints: a folder with the weights (safetensors), the run config, the label set and
the encoder's own config and tokenizer, so a checkpoint loads anywhere without the
original encoder files. Written to a temporary sibling and renamed into place.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from data.errors import UserError
from data.files import read_or_damaged

from .config import ConfigError, RunConfig, config_from_dict, replace
from .encoder import WordEncoder, WordTokenizer, load_backbone
from .heads import build_head, head_class
from .tagger import Tagger, resolve_precision

FORMAT = "rgcn-mner-checkpoint/1"


def atomic_dir(final: Path):
    """Context manager: yields a temporary sibling folder, renamed onto ``final`` on success."""
    class _Ctx:
        def __enter__(self_inner):
            final.parent.mkdir(parents=True, exist_ok=True)
            self_inner.tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
            return self_inner.tmp

        def __exit__(self_inner, exc_type, exc, tb):
            if exc_type is not None:
                shutil.rmtree(self_inner.tmp, ignore_errors=True)
                return False
            old = None
            if final.exists():
                old = final.with_name(f".{final.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(final, old)
            os.replace(self_inner.tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            return False
    return _Ctx()


POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "mpnet": 2, "longformer": 2}
"""Position ids these encoders reserve below the first token (their padding index and one)."""


def check_window(max_subwords: int, backbone_config, name: str) -> None:
    """A window row holds ``max_subwords`` sub-words and two separators (a context read
    behind the post, as ITA's, fills the same room): the encoder must have that many positions."""
    positions = getattr(backbone_config, "max_position_embeddings", None)
    if positions is None:
        return
    usable = positions - POSITION_OFFSET.get(getattr(backbone_config, "model_type", ""), 0)
    if max_subwords + 2 > usable:
        raise ConfigError(f"encoder.max_subwords={max_subwords}",
                          f"a window holds it plus 2 separators, but {name} reads at most {usable} positions",
                          f"set encoder.max_subwords={usable - 2} or less")


def build_tagger(cfg: RunConfig, labels, context: dict | None = None, pretrained: bool = True,
                 encoder_dir: str | None = None) -> Tagger:
    backbone, tok = load_backbone(encoder_dir or cfg.encoder.name, from_config_only=not pretrained)
    e = cfg.encoder
    check_window(e.max_subwords, backbone.config, e.name)
    encoder = WordEncoder(backbone, e.casing_dim, e.dropout, e.pooling, e.layer_mix)
    head = build_head(cfg.head.name, encoder.out_dim, cfg.head.options, context)
    return Tagger(encoder, WordTokenizer(tok, cfg.encoder.max_subwords), head, labels, cfg.crf.constrained)


def save_checkpoint(path: str | Path, model: Tagger, cfg: RunConfig, extra: dict | None = None,
                    trainer_state: dict | None = None) -> None:
    path = Path(path)
    with atomic_dir(path) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        meta = {"format": FORMAT, "config": cfg.to_dict(), "labels": model.labels,
                "head_state": model.head.extra_state(), **(extra or {})}
        (tmp / "checkpoint.json").write_text(json.dumps(meta, indent=2))
        model.encoder.backbone.config.save_pretrained(tmp / "encoder")
        model.tokenizer.tok.save_pretrained(tmp / "encoder")
        if trainer_state is not None:
            torch.save(trainer_state, tmp / "trainer_state.pt")


class CheckpointDamaged(UserError, RuntimeError):
    """A checkpoint file cannot be read; the message names it and the command that remakes it."""


class NotACheckpoint(UserError, FileNotFoundError):
    """A folder given as a run or checkpoint holds none."""


class CheckpointMismatch(UserError, ValueError):
    """A checkpoint of another format, or an option its head does not let change."""


def _read_checkpoint_file(f: Path, read):
    return read_or_damaged(f, read, CheckpointDamaged, f"the checkpoint {f.parent} is damaged; train it again "
                           f"with `python train.py --config {f.parent.parent / 'config.json'}` (--resume continues "
                           "from last/ when that one is intact)")


def read_meta(path: str | Path) -> dict:
    path = Path(path)
    meta_file = path / "checkpoint.json"
    if not meta_file.is_file():
        why = "no such folder" if not path.exists() else "no checkpoint.json in it"
        raise NotACheckpoint(str(path), f"not a checkpoint ({why})", "give a run folder (it holds best/) or its "
                             "best/ or last/ checkpoint folder, as written by `python train.py`")
    meta = _read_checkpoint_file(meta_file, lambda f: json.loads(f.read_text()))
    if meta.get("format") != FORMAT:
        raise CheckpointMismatch(f"{meta_file}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta


def with_head_options(cfg: RunConfig, head_options: dict | None) -> RunConfig:
    """``cfg`` with ``head.options`` updated by ``head_options``, which may only name the
    head's :attr:`~rgcn.heads.FusionHead.inference_options` (the others shape the weights or
    what the head was trained on)."""
    if not head_options:
        return cfg
    allowed = head_class(cfg.head.name).inference_options
    bad = sorted(set(head_options) - set(allowed))
    if bad:
        raise CheckpointMismatch(f"head option(s) {', '.join(bad)} cannot be changed for a trained {cfg.head.name!r} head; "
                         f"it allows: {', '.join(allowed) or 'none'}")
    return replace(cfg, head=replace(cfg.head, options={**cfg.head.options, **head_options}))


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu",
                    context: dict | None = None, head_options: dict | None = None) -> tuple[Tagger, RunConfig, dict]:
    """Rebuild a tagger from a checkpoint folder (or a run folder: its ``best/``), with the
    head's inference options changed by ``head_options`` (see :func:`with_head_options`)."""
    path = Path(path)
    if not (path / "checkpoint.json").exists() and (path / "best" / "checkpoint.json").exists():
        path = path / "best"
    meta = read_meta(path)
    cfg = with_head_options(config_from_dict(meta["config"], str(path / "checkpoint.json")), head_options)
    ctx = dict(context or {})
    ctx["head_state"] = meta.get("head_state", {})
    model = build_tagger(cfg, meta["labels"], ctx, pretrained=False, encoder_dir=str(path / "encoder"))
    _read_checkpoint_file(path / "model.safetensors", lambda f: load_model(model, str(f), device=str(device)))
    model.to(device)
    model.autocast_dtype = resolve_precision(cfg.train.precision, torch.device(device))
    return model, cfg, meta
