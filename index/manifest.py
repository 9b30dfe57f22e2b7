"""An index artifact's ``manifest.json``: what made the artifact, written, read and checked.

The manifest names the embedder (model, tag, config, dimension, precision), the metric and
normalisation, the FAISS factory and search parameters, the counts and problems of the
build, the visual-context extractors (:mod:`index.visual_context`), the data files with
their sha256 and the library versions. Loaders check it against what they expect and
refuse a mismatch (:class:`ManifestMismatch`); a folder without one is
:class:`NotAnArtifact`; a part that cannot be read is :class:`ArtifactDamaged`, whose
message gives the command that rebuilds the artifact. A shard of a sharded build
(:mod:`index.shards`) has a manifest of ``"kind": "shard"``.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from data.errors import UserError
from data.files import read_or_damaged, sha256_file

from .factory import METRIC
from .ocr import DEFAULT_OCR_ENGINE
from .visual_context import MIN_TAG_SCORE

if TYPE_CHECKING:
    from .captions import Captioner
    from .embedders import Embedder
    from .embedding import EmbedResult
    from .ocr import OcrEngine


FORMAT_VERSION = 1


class ManifestMismatch(UserError, ValueError):
    """An artifact was made by another embedder / dimension than the caller expects."""


class NotAnArtifact(UserError, FileNotFoundError):
    """A folder given as an index artifact that holds none."""


class ArtifactDamaged(UserError, ValueError):
    """A file of an artifact cannot be read (truncated, overwritten); the message names the
    file and the command that rebuilds the artifact."""


class ShardSetError(UserError, ValueError):
    """A shard folder given where an index is read, or shard folders (:mod:`index.shards`)
    that do not form one whole set; the message names the folder and the fix."""


def rebuild_command(path, manifest: dict | None) -> str:
    """The ``python -m index build`` command that makes the artifact at ``path`` again."""
    m = manifest or {}
    parts = ["python -m index build", f"--images {m.get('image_dir') or 'IMAGE_DIR'}"]
    files = [f["path"] for f in m.get("data_files") or []]
    if files:
        parts.append("--data " + " ".join(files))
    if m.get("embedder"):
        parts.append(f"--embedder {m['embedder']}")
    return " ".join(parts + [f"--out {path}", "--overwrite"])


def merge_command(manifest: dict) -> str:
    """The ``python -m index merge`` command that makes the artifact a shard's manifest belongs to."""
    return f"python -m index merge --out {(manifest.get('shard') or {}).get('out', 'OUT')}"


def read_part(path: Path, name: str, read, manifest: dict | None):
    """``read(path / name)``, any failure turned into :class:`ArtifactDamaged`."""
    return read_or_damaged(path / name, read, ArtifactDamaged,
                           f"the index at {path} is damaged; rebuild it with `{rebuild_command(path, manifest)}`")


def library_versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("numpy", "faiss", "torch", "torchvision", "timm", "open_clip", "transformers", "PIL"):
        m = sys.modules.get(mod)
        if m is None:
            try:
                m = __import__(mod)
            except ImportError:
                continue
        out[mod] = getattr(m, "__version__", "?")
    return out


def context_info(manifest: dict) -> dict:
    """The manifest's ``visual_context`` block: ``{"tags", "ocr", "captions"}``, each the
    extractor's description or ``None`` when it is off. Artifacts made before the block
    existed recorded only ``tags: {k, vocabulary, ocr}``; they read as the same settings."""
    info = manifest.get("visual_context")
    if info is not None:
        return info
    old = manifest.get("tags") or {}
    return {"tags": {"k": int(old["k"]), "vocabulary": old.get("vocabulary"), "min_score": MIN_TAG_SCORE}
            if old.get("k") else None,
            "ocr": {"engine": DEFAULT_OCR_ENGINE, "config": {}} if old.get("ocr") else None,
            "captions": None}


def tags_info(embedder: Embedder, tags_k: int, min_tag_score: float) -> dict | None:
    """The ``visual_context.tags`` block: which labels, scored how, by which weights."""
    if not (tags_k and embedder.tag_labels):
        return None
    import hashlib

    labels = [str(lab) for lab in embedder.tag_labels]
    return {"extractor": embedder.name, "method": embedder.tag_method, "weights": embedder.tag,
            "library": embedder.library, "version": library_versions().get(embedder.library, "?"),
            "vocabulary": embedder.describe().get("tag_vocabulary"), "labels": len(labels),
            "labels_sha256": hashlib.sha256("\n".join(labels).encode("utf-8")).hexdigest(),
            "k": int(tags_k), "min_score": float(min_tag_score)}


def context_block(embedder: Embedder, tags_k: int, min_tag_score: float, engine: OcrEngine | None,
                  captioner: Captioner | None) -> dict:
    """The manifest's ``visual_context`` block: each extractor's description, or ``None``."""
    return {"tags": tags_info(embedder, tags_k, min_tag_score),
            "ocr": engine.describe() if engine is not None else None,
            "captions": captioner.describe() if captioner is not None else None}


EMBEDDER_FIELDS = ("embedder", "tag", "embedder_config", "embedder_info", "dim")
"""The manifest fields that name the embedder (a shard's must equal its siblings')."""


def embedder_fields(embedder: Embedder | dict) -> dict:
    """The manifest's :data:`EMBEDDER_FIELDS` of ``embedder`` (or of a manifest)."""
    if isinstance(embedder, dict):
        return {k: embedder.get(k) for k in EMBEDDER_FIELDS}
    return {"embedder": embedder.name, "tag": embedder.tag, "embedder_config": embedder.config(),
            "embedder_info": embedder.describe(), "dim": embedder.dim}


def make_manifest(embedder: Embedder | dict, fac, params, res: EmbedResult, n_requested, with_regions,
              context: dict, data_files, image_dir, index_seconds, created=None) -> dict:
    """The manifest of ``res``; ``embedder`` may be an :class:`Embedder` or the
    :func:`embedder_fields` of one (a merge of shards has no model loaded)."""
    missing = sum(p["problem"] == "missing file" for p in res.problems)
    fields = embedder_fields(embedder)
    region_kind = (fields["embedder_info"] or {}).get("region_kind")
    return {
        "format_version": FORMAT_VERSION,
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **fields,
        "metric": METRIC,
        "normalisation": "l2",
        "factory": fac,
        "search_params": params,
        "counts": {"requested": n_requested, "embedded": len(res.ids), "missing": missing,
                   "unreadable": len(res.problems) - missing},
        "problems": res.problems,
        "regions": ({"shape": list(res.regions.shape), "dtype": str(res.regions.dtype),
                     "kind": region_kind} if with_regions and res.regions is not None else None),
        "visual_context": context,
        "data_files": [{"path": str(f), "sha256": sha256_file(f)} for f in data_files],
        "image_dir": None if image_dir is None else str(image_dir),
        "timing": {"embed_seconds": round(res.seconds, 3),                 # OCR and captions included
                   "images_per_second": round(len(res.ids) / res.seconds, 2) if res.seconds else None,
                   "index_seconds": round(index_seconds, 3)},
        "versions": library_versions(),
    }


def read_manifest(path) -> dict:
    f = Path(path) / "manifest.json"
    if not f.is_file():
        raise NotAnArtifact(str(path), "not an index artifact (" + ("no manifest.json in it" if Path(path).is_dir()
                            else "a file" if Path(path).exists() else "no such folder") + ")",
                            "give a folder made by `python -m index build`")
    return read_part(Path(path), "manifest.json", lambda p: json.loads(p.read_text(encoding="utf-8")), None)


def check_manifest(manifest: dict, expect_embedder: str | None = None, expect_dim: int | None = None,
                   expect_tag: str | None = None, where: str = "index") -> None:
    """Raise :class:`ManifestMismatch` naming every field that differs."""
    diffs = []
    if expect_embedder is not None and manifest.get("embedder") != expect_embedder:
        diffs.append(f"embedder: artifact has {manifest.get('embedder')!r}, expected {expect_embedder!r}")
    if expect_dim is not None and int(manifest.get("dim", -1)) != int(expect_dim):
        diffs.append(f"dim: artifact has {manifest.get('dim')}, expected {expect_dim}")
    if expect_tag is not None and manifest.get("tag") != expect_tag:
        diffs.append(f"tag: artifact has {manifest.get('tag')!r}, expected {expect_tag!r}")
    if manifest.get("metric") not in (None, METRIC):
        diffs.append(f"metric: artifact has {manifest.get('metric')!r}, expected {METRIC!r}")
    if diffs:
        raise ManifestMismatch(f"{where} does not match: " + "; ".join(diffs)
                               + ". Rebuild it with the embedder you use, or load it with that embedder.")


def embedding_precision(manifest: dict) -> str:
    """The precision the artifact's vectors were computed at (``fp32``, ``fp16``, ``bf16``:
    ``embedder_info.precision``); a manifest that does not say was written at fp32."""
    return str((manifest.get("embedder_info") or {}).get("precision") or "fp32")


def manifest_table(manifest: dict) -> str:
    """The manifest as a two-column text table (nested fields flattened with dots)."""
    rows = []

    def walk(prefix, v):
        if isinstance(v, dict) and v:
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else k, x)
        elif prefix == "problems" and isinstance(v, list):
            rows.append((prefix, f"{len(v)}"))
            for p in v:
                rows.append(("  " + str(p.get("id")), f"{p.get('problem')}  {p.get('path')}"))
        elif prefix == "data_files" and isinstance(v, list):
            for f in v:
                rows.append(("data_file", f"{f['path']}  sha256:{f['sha256'][:12]}"))
        elif isinstance(v, list) and len(v) > 8:               # a tag vocabulary: its size and first labels
            rows.append((prefix, f"{len(v)} items: {json.dumps(v[:3], ensure_ascii=False)[:-1]}, ...]"))
        else:
            rows.append((prefix, json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else str(v)))

    walk("", manifest)
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
