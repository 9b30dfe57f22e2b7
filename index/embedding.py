"""Embedding a collection of images: vectors, region features, object tags, OCR text and
captions, in one pass through a DataLoader.

:func:`embed_collection` embeds ``(id, path)`` pairs, a missing or unreadable file becoming a
problem instead of an error; :func:`embed_resumable` does the same in chunks saved as they
are done, so a build that is killed resumes where it stopped. Both return an
:class:`EmbedResult`, the rows in input order with the bad ones left out.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from data.errors import UserError

from .captions import Captioner
from .embedders import Embedder
from .embedders.base import top_k_labels
from .ocr import OcrEngine
from .visual_context import context_record

log = logging.getLogger(__name__)


class EmptyCollectionError(UserError, ValueError):
    """No image could be embedded: an empty index is not built."""


@dataclass
class EmbedResult:
    """Output of :func:`embed_collection`, rows in input order with the bad ones left out."""

    ids: list[str]
    embeddings: np.ndarray                       # (n, dim) float32
    regions: np.ndarray | None                   # (n, R, dim_r) float16
    tags: list[list[tuple[str, float]]]          # per row, may be empty lists
    problems: list[dict] = field(default_factory=list)   # {"id", "path", "problem"}
    seconds: float = 0.0
    ocr: list[str] = field(default_factory=list)         # per row when OCR ran, else empty
    captions: list[str] = field(default_factory=list)    # per row when a captioner ran, else empty


def embed_collection(images: Sequence[tuple[str, str | None]], embedder: Embedder,
                     batch_size: int = 32, num_workers: int = 0, with_regions: bool = False,
                     tags_k: int = 0, progress: bool = True, ocr: OcrEngine | None = None,
                     captioner: Captioner | None = None) -> EmbedResult:
    """Embed ``(id, path)`` pairs through a DataLoader; bad or missing files become problems.
    With ``ocr`` and ``captioner``, each embedded image is also read and captioned (in the
    main process, batch by batch)."""
    import torch
    from tqdm.auto import tqdm

    from .images import ImageDataset, collate

    if not embedder.has_images:
        raise TypeError(f"embedder {embedder.name!r} has no image tower: pick efficientnet_lite0, clip or timm")
    ids = [i for i, _ in images]
    paths = [p for _, p in images]
    loader = torch.utils.data.DataLoader(
        ImageDataset(paths, embedder.transform), batch_size=batch_size, num_workers=num_workers,
        collate_fn=collate, pin_memory=embedder.device.type == "cuda",
        persistent_workers=False)
    rows_all, embs, regs, tags, problems, texts, captions = [], [], [], [], [], [], []
    want_logits = tags_k > 0 and bool(embedder.tag_labels)
    t0 = time.perf_counter()
    bar = tqdm(total=len(paths), unit="img", desc=_bar_label(embedder, ocr, captioner), disable=not progress,
               dynamic_ncols=True)
    try:
        for rows, pixels, bad in loader:
            for r, why in bad:
                problems.append({"id": ids[r], "path": paths[r], "problem": why})
            if pixels is not None:
                out = embedder.encode(pixels, regions=with_regions, logits=want_logits)
                rows_all.append(rows.numpy())
                embs.append(out.embeddings)
                if with_regions:
                    regs.append(out.regions.astype(np.float16))
                if want_logits:
                    tags += top_k_labels(out.logits, embedder.tag_labels, tags_k)
                if ocr is not None or captioner is not None:
                    for r in rows.tolist():
                        o, c = _read_and_caption(ids[r], paths[r], ocr, captioner)
                        texts.append(o)
                        captions.append(c)
            bar.update(len(rows) + len(bad))
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    if not rows_all:
        return EmbedResult([], np.zeros((0, embedder.dim), np.float32), None, [], problems, seconds)
    rows = np.concatenate(rows_all)
    emb = np.concatenate(embs)
    reg = np.concatenate(regs) if with_regions else None
    if not want_logits:
        tags = [[] for _ in range(len(rows))]
    return EmbedResult([ids[r] for r in rows], emb, reg, tags, problems, seconds,
                       texts if ocr is not None else [], captions if captioner is not None else [])


def _bar_label(embedder: Embedder, ocr: OcrEngine | None, captioner: Captioner | None) -> str:
    """``embed efficientnet_lite0 + ocr + captions``: what a progress bar's images go through."""
    return " + ".join([f"embed {embedder.name}"] + ["ocr"] * (ocr is not None) + ["captions"] * (captioner is not None))


def _read_and_caption(image_id: str, path: str, ocr: OcrEngine | None, captioner: Captioner | None
                      ) -> tuple[str, str]:
    """``(OCR text, caption)`` of one image that was embedded (so it decodes). An OCR engine
    that fails on one image gives it no text, with a warning, instead of ending the build."""
    from .images import open_image

    image = open_image(path)
    text = ""
    if ocr is not None:
        try:
            text = ocr.read(image)
        except Exception as e:  # noqa: BLE001 - an engine's own error on one image
            log.warning("OCR (%s) failed on image %s (%s): %s: %s; it gets no OCR text", ocr.name, image_id,
                        path, type(e).__name__, e)
    return text, captioner.caption(image_id, image) if captioner is not None else ""


RESUME_CHUNK = 512  # images embedded between two saves of a build's progress


def embed_resumable(images: Sequence[tuple[str, str | None]], embedder: Embedder, work_dir: Path,
                    batch_size: int = 32, num_workers: int = 0, with_regions: bool = False, tags_k: int = 0,
                    progress: bool = True, chunk: int = RESUME_CHUNK, ocr: OcrEngine | None = None,
                    captioner: Captioner | None = None) -> EmbedResult:
    """:func:`embed_collection` in chunks of ``chunk`` images, each saved to ``work_dir`` as it
    is done (written to a temporary name and renamed), so a build that is killed resumes from
    the chunks already embedded (and read by OCR, and captioned). ``work_dir`` is keyed by the
    images, the embedder and the extractors: a different collection, embedder or extractor
    starts it afresh. The caller removes it once the artifact is published."""
    import hashlib

    from tqdm.auto import tqdm

    images = list(images)
    extractors = [x.describe() if x is not None else None for x in (ocr, captioner)]
    key = hashlib.sha256(json.dumps([embedder.name, embedder.tag, embedder.config(), with_regions, tags_k, chunk,
                                     extractors, images], default=str).encode()).hexdigest()
    key_file = work_dir / "key.txt"
    if work_dir.exists() and (not key_file.is_file() or key_file.read_text() != key):
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key)
    parts: list[EmbedResult] = []
    done = 0
    bar = tqdm(total=len(images), unit="img", desc=_bar_label(embedder, ocr, captioner), disable=not progress,
               dynamic_ncols=True)
    try:
        for c, start in enumerate(range(0, len(images), chunk)):
            f = work_dir / f"chunk-{c:06d}.npz"
            if f.is_file():
                parts.append(_load_chunk(f))
                done += 1
            else:
                res = embed_collection(images[start:start + chunk], embedder, batch_size, num_workers, with_regions,
                                       tags_k, progress=False, ocr=ocr, captioner=captioner)
                _save_chunk(f, res)
                parts.append(res)
            bar.update(len(images[start:start + chunk]))
    finally:
        bar.close()
    if done:
        log.info("resumed: %d of %d chunks were embedded by an earlier, interrupted run", done, len(parts))
    dim = embedder.dim
    kept = [p for p in parts if p.ids]
    return EmbedResult(
        [i for p in parts for i in p.ids],
        np.concatenate([p.embeddings for p in kept]) if kept else np.zeros((0, dim), np.float32),
        np.concatenate([p.regions for p in kept]) if with_regions and kept else None,
        [t for p in parts for t in p.tags], [q for p in parts for q in p.problems],
        sum(p.seconds for p in parts), [t for p in parts for t in p.ocr], [c for p in parts for c in p.captions])


def _save_chunk(f: Path, res: EmbedResult) -> None:
    meta = {"tags": res.tags, "problems": res.problems, "seconds": res.seconds, "ocr": res.ocr,
            "captions": res.captions}
    arrays = {"ids": np.asarray(res.ids, dtype=str), "embeddings": res.embeddings,
              "meta": np.asarray(json.dumps(meta))}
    if res.regions is not None:
        arrays["regions"] = res.regions
    tmp = f.with_name(f".{f.name}.tmp")
    with open(tmp, "wb") as out:
        np.savez(out, **arrays)
    os.replace(tmp, f)


def _load_chunk(f: Path) -> EmbedResult:
    z = np.load(f)
    meta = json.loads(str(z["meta"]))
    return EmbedResult([str(i) for i in z["ids"]], z["embeddings"], z["regions"] if "regions" in z.files else None,
                       [[tuple(t) for t in row] for row in meta["tags"]], meta["problems"], meta["seconds"],
                       meta["ocr"], meta["captions"])


def context_rows(res: EmbedResult) -> list[dict]:
    n = len(res.ids)
    ocr = res.ocr or [""] * n
    captions = res.captions or [""] * n
    return [context_record(i, t, o, c) for i, t, o, c in zip(res.ids, res.tags, ocr, captions)]


def problem_summary(problems: list[dict]) -> str:
    if not problems:
        return "no problems"
    counts: dict[str, int] = {}
    for p in problems:
        key = p["problem"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
