"""The index artifact: build, load (with manifest checks), add, search.

Layout of an artifact folder::

    manifest.json   what made it (embedder, tag, dims, metric, factory, counts, problems,
                    data-file hashes, library versions)
    index.faiss     the FAISS index; row i <-> ids[i]
    ids.json        image ids (file-name stems), row order
    posts.json      which post uses which image: post id -> image id (from the data files)
    embeddings.npy  float32 (N, dim), L2-normalised, row order
    regions.npy     float16 (N, R, dim_r) region/patch features (when the embedder has them)
    tags.jsonl      per image: its visual context, object tags, OCR text and caption
                    (:mod:`index.visual_context`)
    index.ivfdata   the inverted lists, when they are kept on disk (:mod:`index.streaming`)

A sharded build (:mod:`index.shards`) writes shard folders of the same layout without
``index.faiss``; merging them makes the artifact.

Written to a temporary sibling folder and renamed, so an interrupted build leaves nothing.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from data.errors import UserError
from data.files import read_or_damaged, sha256_file

from .captions import Captioner, FileCaptioner, get_captioner
from .embedders import Embedder, get_embedder
from .embedders.base import top_k_labels
from .factory import (METRIC, as_float32, choose_factory, default_search_params, make_index,
                      search as faiss_search, is_gpu, set_search_params, to_gpu)
from .ocr import DEFAULT_OCR_ENGINE, OcrEngine, get_ocr_engine
from .visual_context import (MIN_TAG_SCORE, VisualContext, context_from_record, context_record,
                             read_context_jsonl, write_context_jsonl)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
REGIONS_AUTO_MAX = 50_000  # above this many images, regions are off unless asked for
MMAP_EMBEDDINGS_BYTES = 2 * 2**30  # larger embeddings.npy files are memory-mapped (read-only), not read


class EmptyCollectionError(UserError, ValueError):
    """No image could be embedded: an empty index is not built."""


class ManifestMismatch(UserError, ValueError):
    """An artifact was made by another embedder / dimension than the caller expects."""


class NotAnArtifact(UserError, FileNotFoundError):
    """A folder given as an index artifact that holds none."""


class NotAddable(UserError, ValueError):
    """An artifact ``index add`` cannot grow; the message says how to make the larger one."""


class ArtifactDamaged(UserError, ValueError):
    """A file of an artifact cannot be read (truncated, overwritten); the message names the
    file and the command that rebuilds the artifact."""


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


def _read_part(path: Path, name: str, read, manifest: dict | None):
    """``read(path / name)``, any failure turned into :class:`ArtifactDamaged`."""
    return read_or_damaged(path / name, read, ArtifactDamaged,
                           f"the index at {path} is damaged; rebuild it with `{rebuild_command(path, manifest)}`")


# --------------------------------------------------------------------------- embedding
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


def _work_dir(out: Path) -> Path:
    """Where a build of ``out`` keeps its progress until the artifact is published."""
    return out.with_name(f".{out.name}.partial")


def _remove_stale_temp_folders(out: Path) -> None:
    """Clear what builds of ``out`` that were killed left behind: their temporary siblings,
    and a previous artifact moved aside for an update (put back when ``out`` is missing)."""
    for d in list(out.parent.glob(f".{out.name}.tmp-*")) + list(out.parent.glob(f".{out.name}.old-*")):
        try:
            os.kill(int(d.name.rsplit("-", 2 if ".tmp-" in d.name else 1)[1]), 0)
            continue                                       # its process still runs
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        if ".old-" in d.name and not out.exists() and (d / "manifest.json").is_file():
            os.replace(d, out)
        else:
            shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------- artifact
@dataclass
class IndexArtifact:
    """A loaded index folder. ``search`` follows FAISS conventions: ``(D, I)`` of shape (nq, k),
    ``D`` = cosine similarity, ``I`` = rows of :attr:`ids` (-1 where none)."""

    path: str
    manifest: dict
    ids: list[str]
    embeddings: np.ndarray
    faiss_index: object
    regions: np.ndarray | None = None
    tags: dict = field(default_factory=dict)        # image id -> [(label, score)], all k stored
    ocr: dict = field(default_factory=dict)         # image id -> OCR text
    posts: dict = field(default_factory=dict)
    captions: dict = field(default_factory=dict)    # image id -> caption

    def __post_init__(self):
        self.id_to_row = {i: r for r, i in enumerate(self.ids)}

    def image_of(self, post_id: str) -> str:
        """The image id a post of the indexed data files uses (the post id itself when the
        artifact does not record it: the ``<id>.jpg`` convention)."""
        return self.posts.get(post_id, post_id)

    @property
    def min_tag_score(self) -> float:
        """The score a stored tag needs to be part of an image's visual context."""
        return float((context_info(self.manifest)["tags"] or {}).get("min_score", MIN_TAG_SCORE))

    def visual_context(self, image_id: str, min_tag_score: float | None = None,
                       max_tags: int | None = None) -> VisualContext:
        """The visual context stored for ``image_id``: its tags scoring at least
        ``min_tag_score`` (default :attr:`min_tag_score`, the build's ``--tag-min-score``),
        at most ``max_tags`` of them, its OCR text and its caption.

        Raises ``KeyError`` for an image the index does not hold; extract one with
        :func:`visual_context_like_index`.
        """
        if image_id not in self.id_to_row:
            raise KeyError(f"image {image_id!r} is not in the index {self.path}: extract its visual context "
                           "with index.artifact.visual_context_like_index(artifact, [(id, path)])")
        record = {"tags": self.tags.get(image_id, ()), "ocr": self.ocr.get(image_id, ""),
                  "caption": self.captions.get(image_id, "")}
        return context_from_record(record, self.min_tag_score if min_tag_score is None else min_tag_score,
                                   max_tags)

    def post_visual_context(self, post_id: str, min_tag_score: float | None = None,
                            max_tags: int | None = None) -> VisualContext:
        """:meth:`visual_context` of the image the post ``post_id`` uses (:meth:`image_of`)."""
        return self.visual_context(self.image_of(post_id), min_tag_score, max_tags)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return faiss_search(self.faiss_index, queries, k)

    def vector(self, image_id: str) -> np.ndarray:
        return self.embeddings[self.id_to_row[image_id]]


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


def _tmp_sibling(out: Path) -> Path:
    return out.with_name(f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}")


def _publish(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished ``tmp`` folder to ``out`` (replacing it when ``overwrite``)."""
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out} exists: pass overwrite=True (--overwrite) or use `add`")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_and_publish(out: Path, overwrite: bool, manifest: dict, ids, emb, index, regions, rows, posts) -> None:
    """Write an artifact folder beside ``out`` and move it into place; a failure leaves
    nothing half-written (see :func:`_write_folder` for the parts)."""
    tmp = _tmp_sibling(out)
    try:
        _write_folder(tmp, manifest, ids, emb, index, regions, rows, posts)
        _publish(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_folder(tmp: Path, manifest: dict, ids: list[str], emb: np.ndarray, index,
                  regions: np.ndarray | None, context_rows: list[dict] | None, posts: dict | None = None) -> None:
    """Write an artifact's files to ``tmp`` (a shard's: ``index=None``, no ``index.faiss``)."""
    from .faiss_module import faiss

    tmp.mkdir(parents=True)
    if index is not None:
        cpu_index = faiss.index_gpu_to_cpu(index) if is_gpu(index) else index
        faiss.write_index(cpu_index, str(tmp / "index.faiss"))
    (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
    if posts:
        (tmp / "posts.json").write_text(json.dumps(posts), encoding="utf-8")
    if isinstance(emb, list):                          # parts written one after another (a memory-mapped one)
        from .streaming import write_npy_parts

        write_npy_parts(tmp / "embeddings.npy", [as_float32(e) if not isinstance(e, np.memmap) else e for e in emb])
    else:
        np.save(tmp / "embeddings.npy", as_float32(emb))
    if regions is not None:
        np.save(tmp / "regions.npy", regions)
    if context_rows is not None:
        write_context_jsonl(tmp / "tags.jsonl", context_rows)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")


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


def _tags_info(embedder: Embedder, tags_k: int, min_tag_score: float) -> dict | None:
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


def ocr_engine_of(artifact: IndexArtifact) -> OcrEngine | None:
    """The OCR engine that read ``artifact``'s images, rebuilt from its manifest (``None``
    when it was built without OCR); a different installed version is warned about."""
    info = context_info(artifact.manifest)["ocr"]
    if info is None:
        return None
    engine = get_ocr_engine(info["engine"], **(info.get("config") or {}))
    desc = engine.describe()
    now = desc.get("version")
    if info.get("version") and now != info["version"]:
        log.warning("index %s was read by %s %s, this machine has %s: text read now may differ",
                    artifact.path, info["engine"], info["version"], now)
    if ocr_reader(info) != desc.get("reader", 1):
        log.warning("index %s was read by %s's reader %s, this code has reader %s: text read now differs "
                    "(reader 1 glued the words of a line); rebuild the index with --ocr to match",
                    artifact.path, info["engine"], ocr_reader(info), desc.get("reader", 1))
    return engine


def ocr_reader(info: dict | None) -> int | None:
    """The OCR reader version a manifest's ``visual_context.ocr`` block records: ``None``
    without OCR, 1 for an index made before readers were numbered (RapidOCR's own
    pipeline, the words of a line glued)."""
    return None if info is None else int(info.get("reader", 1))


def captioner_of(artifact: IndexArtifact) -> Captioner | None:
    """The captioner of ``artifact``, rebuilt from its manifest (``None`` when it has no
    captions). A file captioner reads its files again: one that is gone raises
    :class:`index.captions.CaptionsFileError` naming it."""
    info = context_info(artifact.manifest)["captions"]
    if info is None:
        return None
    return get_captioner(info["captioner"], **(info.get("config") or {}))


def make_captioner(captions, known_ids=None) -> Captioner | None:
    """``captions`` as a :class:`Captioner`: one already made, or a captions file (or a
    list of them) read with :class:`index.captions.FileCaptioner`, its ids checked against
    ``known_ids``; ``None`` stays ``None``."""
    if captions is None or isinstance(captions, Captioner):
        return captions
    return FileCaptioner(captions, known_ids=None if known_ids is None else set(known_ids))


def _merge_captions_info(old: dict | None, new: dict | None) -> dict | None:
    """The captions block after ``index add``: the files of both when both are files."""
    if old is None or new is None or old.get("captioner") != "file" or new.get("captioner") != "file":
        return new or old
    paths = list(old["config"]["paths"]) + [p for p in new["config"]["paths"] if p not in old["config"]["paths"]]
    return {**new, "config": {**new["config"], "paths": paths}, "files": old.get("files", []) + new.get("files", [])}


def _context_rows(res: EmbedResult) -> list[dict]:
    n = len(res.ids)
    ocr = res.ocr or [""] * n
    captions = res.captions or [""] * n
    return [context_record(i, t, o, c) for i, t, o, c in zip(res.ids, res.tags, ocr, captions)]


def build_index(images: Sequence[tuple[str, str | None]], embedder: Embedder | str, out_dir,
                factory: str | None = None, batch_size: int = 32, num_workers: int = 0,
                device: str | None = None, with_tags: bool = True, ocr: bool = False,
                progress: bool = True, with_regions: bool | None = None, tags_k: int = 5,
                data_files: Sequence[str] = (), image_dir: str | None = None,
                overwrite: bool = False, search_params: dict | None = None,
                posts: dict[str, str] | None = None, save_every: int = RESUME_CHUNK,
                min_tag_score: float = MIN_TAG_SCORE, captions=None, shard=None) -> IndexArtifact | Path:
    """Embed ``images`` and write an index artifact folder at ``out_dir``, with each image's
    visual context (object tags, OCR text, caption: :mod:`index.visual_context`).

    Args:
        images: ``(id, path)`` pairs; ``path=None`` means the file is missing.
        embedder: an :class:`Embedder` or a registry name.
        factory: FAISS factory string, or ``None``/``"auto"`` (:func:`choose_factory`).
        batch_size, num_workers: DataLoader settings (workers decode images in parallel).
        device: move the embedder there first (``None``: leave it where it is).
        with_tags: store top-``tags_k`` object tags when the embedder has a label vocabulary.
        ocr: read the text in every embedded image: ``True`` (the default engine, rapidocr:
            needs rapidocr-onnxruntime), an engine name, or an :class:`index.ocr.OcrEngine`.
        min_tag_score: the score a stored tag needs to be part of the visual context
            (recorded in the manifest; all ``tags_k`` tags are stored).
        captions: a captions JSONL file (or a list of them, or a :class:`index.captions.Captioner`);
            every id in the files must be one of ``images``.
        with_regions: store region features; ``None``: when the embedder has them and the
            collection has at most 50k images.
        data_files, image_dir: recorded in the manifest (data files with their sha256).
        overwrite: replace an existing ``out_dir``.
        search_params: e.g. ``{"nprobe": 16}``; default :func:`default_search_params`.
        posts: post id -> image id for the posts of ``data_files`` (stored as ``posts.json``;
            see :func:`index.images.collection_from_corpora`).
        save_every: images embedded between two saves of the progress (in ``.<out>.partial``,
            removed once the artifact is written): a killed build resumes from there.
        shard: an :class:`index.shards.ShardSpec` (or ``"i/n"``): embed only that shard's
            share of ``images`` into the shard folder :func:`index.shards.shard_path` and
            return its path; :func:`index.shards.merge_shards` makes the artifact.
    Raises:
        EmptyCollectionError when no image could be embedded.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite and shard is None:
        raise FileExistsError(f"{out} exists: pass overwrite=True (--overwrite) or use `add`")
    if isinstance(embedder, str):
        embedder = get_embedder(embedder)
    if device is not None:
        embedder.to(device)
    images = list(images)
    if not images:
        raise EmptyCollectionError("the collection is empty: no images were given "
                                   "(check --images and --data)")
    if with_regions is None:
        with_regions = embedder.has_regions and len(images) <= REGIONS_AUTO_MAX
    with_regions = with_regions and embedder.has_regions
    tags_k = tags_k if with_tags else 0
    if not 0.0 <= min_tag_score <= 1.0:
        raise ValueError(f"min_tag_score must be in [0, 1], found {min_tag_score!r}")
    engine = _ocr_engine(ocr)
    captioner = make_captioner(captions, [i for i, _ in images])
    if shard is not None:
        from .shards import write_shard

        return write_shard(images, embedder, out, shard, factory=factory, search_params=search_params,
                           batch_size=batch_size, num_workers=num_workers, with_regions=with_regions, tags_k=tags_k,
                           ocr=engine, captioner=captioner, min_tag_score=min_tag_score, data_files=data_files,
                           image_dir=image_dir, posts=posts, save_every=save_every, overwrite=overwrite,
                           progress=progress)

    if out.parent.is_dir():
        _remove_stale_temp_folders(out)
    work = _work_dir(out)
    res = embed_resumable(images, embedder, work, batch_size, num_workers, with_regions, tags_k, progress,
                          save_every, engine, captioner)
    if not res.ids:
        raise EmptyCollectionError(f"none of the {len(images)} images could be embedded "
                                   f"({_problem_summary(res.problems)}): an empty index is not built")
    if len(set(res.ids)) != len(res.ids):
        dup = sorted({i for i in res.ids if res.ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate image ids {dup}: ids are file-name stems and must be unique")
    fac = choose_factory(len(res.ids), embedder.dim) if factory in (None, "auto") else factory
    params = default_search_params(fac, len(res.ids)) if search_params is None else dict(search_params)
    t0 = time.perf_counter()
    index = make_index(fac, embedder.dim, res.embeddings)
    index.add(as_float32(res.embeddings))
    set_search_params(index, params)
    index_seconds = time.perf_counter() - t0

    context = context_block(embedder, tags_k, min_tag_score, engine, captioner)
    rows = _context_rows(res) if any(context.values()) else None
    manifest = _manifest(embedder, fac, params, res, len(images), with_regions, context,
                         data_files, image_dir, index_seconds)
    manifest["posts"] = len(posts or {})
    write_and_publish(out, overwrite, manifest, res.ids, res.embeddings, index, res.regions, rows, posts)
    shutil.rmtree(work, ignore_errors=True)
    log.debug("index %s: %d images embedded, %d skipped (%s)", out, len(res.ids), len(res.problems),
             _problem_summary(res.problems))
    return load_index(out)


def context_block(embedder: Embedder, tags_k: int, min_tag_score: float, engine: OcrEngine | None,
                  captioner: Captioner | None) -> dict:
    """The manifest's ``visual_context`` block: each extractor's description, or ``None``."""
    return {"tags": _tags_info(embedder, tags_k, min_tag_score),
            "ocr": engine.describe() if engine is not None else None,
            "captions": captioner.describe() if captioner is not None else None}


def _ocr_engine(ocr) -> OcrEngine | None:
    if ocr is None or ocr is False:
        return None
    if isinstance(ocr, OcrEngine):
        return ocr
    return get_ocr_engine(DEFAULT_OCR_ENGINE if ocr is True else str(ocr))


def _problem_summary(problems: list[dict]) -> str:
    if not problems:
        return "no problems"
    counts: dict[str, int] = {}
    for p in problems:
        key = p["problem"].split(" (")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


EMBEDDER_FIELDS = ("embedder", "tag", "embedder_config", "embedder_info", "dim")
"""The manifest fields that name the embedder (a shard's must equal its siblings')."""


def embedder_fields(embedder: Embedder | dict) -> dict:
    """The manifest's :data:`EMBEDDER_FIELDS` of ``embedder`` (or of a manifest)."""
    if isinstance(embedder, dict):
        return {k: embedder.get(k) for k in EMBEDDER_FIELDS}
    return {"embedder": embedder.name, "tag": embedder.tag, "embedder_config": embedder.config(),
            "embedder_info": embedder.describe(), "dim": embedder.dim}


def _manifest(embedder: Embedder | dict, fac, params, res: EmbedResult, n_requested, with_regions,
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


# --------------------------------------------------------------------------- loading
def read_manifest(path) -> dict:
    f = Path(path) / "manifest.json"
    if not f.is_file():
        raise NotAnArtifact(str(path), "not an index artifact (" + ("no manifest.json in it" if Path(path).is_dir()
                            else "a file" if Path(path).exists() else "no such folder") + ")",
                            "give a folder made by `python -m index build`")
    return _read_part(Path(path), "manifest.json", lambda p: json.loads(p.read_text(encoding="utf-8")), None)


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


def load_index(path, expect_embedder: str | None = None, expect_dim: int | None = None,
               expect_tag: str | None = None, gpu: bool | None = None, mmap_regions: bool = True) -> IndexArtifact:
    """Load an artifact folder, checking its manifest against what the caller expects.

    ``gpu``: move Flat/IVF indexes to the GPU (``None``: when faiss sees one). Inverted
    lists on disk (``index.ivfdata``) are opened from the folder; an ``embeddings.npy`` over
    :data:`MMAP_EMBEDDINGS_BYTES` is memory-mapped read-only. A shard folder is refused
    with the merge command that makes its index.
    """
    from .streaming import read_index

    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("kind") == "shard":
        from .shards import ShardSetError, merge_command

        raise ShardSetError(f"{path} is shard {manifest['shard']['index']}/{manifest['shard']['count']} of a sharded "
                            f"build, not an index: merge the shards with `{merge_command(manifest)}`")
    check_manifest(manifest, expect_embedder, expect_dim, expect_tag, where=f"index {path}")
    ids = _read_part(path, "ids.json", lambda p: json.loads(p.read_text(encoding="utf-8")), manifest)
    big = (path / "embeddings.npy").is_file() and (path / "embeddings.npy").stat().st_size > MMAP_EMBEDDINGS_BYTES
    emb = _read_part(path, "embeddings.npy", lambda p: np.load(p, mmap_mode="r" if big else None), manifest)
    index = _read_part(path, "index.faiss", read_index, manifest)
    problems = []
    if index.ntotal != len(ids):
        problems.append(f"index.faiss has {index.ntotal} vectors, ids.json {len(ids)}")
    if emb.shape != (len(ids), manifest["dim"]):
        problems.append(f"embeddings.npy has shape {emb.shape}, expected ({len(ids)}, {manifest['dim']})")
    if index.d != manifest["dim"]:
        problems.append(f"index.faiss has dim {index.d}, manifest {manifest['dim']}")
    regions = None
    if (path / "regions.npy").is_file():
        regions = _read_part(path, "regions.npy", lambda p: np.load(p, mmap_mode="r" if mmap_regions else None),
                             manifest)
    records = _read_part(path, "tags.jsonl", read_context_jsonl, manifest)
    tags = {i: r["tags"] for i, r in records.items()}
    ocr = {i: r["ocr"] for i, r in records.items()}
    captions = {i: r["caption"] for i, r in records.items() if r["caption"]}
    posts = (_read_part(path, "posts.json", lambda p: json.loads(p.read_text(encoding="utf-8")), manifest)
             if (path / "posts.json").is_file() else {})
    if any(context_info(manifest).values()) and set(records) != set(ids):
        problems.append(f"tags.jsonl has records for {len(set(records) & set(ids))} of the {len(ids)} images")
    if problems:
        raise ArtifactDamaged(f"index {path} is inconsistent: " + "; ".join(problems)
                              + f"; rebuild it with `{rebuild_command(path, manifest)}`")
    set_search_params(index, manifest.get("search_params") or {})
    if gpu is None or gpu:
        index = to_gpu(index)
        set_search_params(index, {k: v for k, v in (manifest.get("search_params") or {}).items()
                                  if k != "k_factor"})
    return IndexArtifact(str(path), manifest, ids, emb, index, regions, tags, ocr, posts, captions)


# --------------------------------------------------------------------------- adding
def embedding_precision(manifest: dict) -> str:
    """The precision the artifact's vectors were computed at (``fp32``, ``fp16``, ``bf16``:
    ``embedder_info.precision``); a manifest that does not say was written at fp32."""
    return str((manifest.get("embedder_info") or {}).get("precision") or "fp32")


def embedder_of(artifact: IndexArtifact, embedder: Embedder | None = None, device: str | None = None) -> Embedder:
    """The embedder that made ``artifact``, rebuilt from its manifest (or ``embedder``,
    checked against it), so new images get the same model, preprocessing and precision
    (:func:`embedding_precision`: an index built at fp32 on a CPU is not joined by fp16
    vectors from a GPU); a given embedder of another precision is used with a warning."""
    m = artifact.manifest
    precision = embedding_precision(m)
    if embedder is None:
        embedder = get_embedder(m["embedder"], **{**(m.get("embedder_config") or {}), "precision": precision})
    elif embedder.precision != precision:
        log.warning("index %s was embedded at %s, the given embedder computes at %s: the new vectors will differ "
                    "slightly from the index's own (give it precision=%r)", artifact.path, precision,
                    embedder.precision, precision)
    check_manifest(m, embedder.name, embedder.dim, embedder.tag, where=f"index {artifact.path}")
    if device is not None:
        embedder.to(device)
    return embedder


def embed_like_index(artifact: IndexArtifact, images: Sequence[tuple[str, str | None]], batch_size: int = 32,
                     progress: bool = True, embedder: Embedder | None = None,
                     with_regions: bool = False) -> EmbedResult:
    """Embed images that are not in ``artifact`` exactly as its own images were (same
    embedder, preprocessing, batching and object tags), without changing the artifact.
    ``with_regions``: also their region features, like the artifact's ``regions.npy``
    (only when the artifact has them)."""
    tags_k = int((context_info(artifact.manifest)["tags"] or {}).get("k") or 0)
    with_regions = with_regions and artifact.regions is not None
    return embed_collection(images, embedder_of(artifact, embedder), batch_size, 0, with_regions, tags_k, progress)


def visual_context_like_index(artifact: IndexArtifact, images: Sequence[tuple[str, str | None]],
                              batch_size: int = 32, progress: bool = True, embedder: Embedder | None = None,
                              ocr: OcrEngine | None = None, captioner=None,
                              min_tag_score: float | None = None, max_tags: int | None = None
                              ) -> dict[str, VisualContext]:
    """The visual context of images that are not in ``artifact`` (a new post's photo),
    extracted as the artifact's own were: the same embedder and ``k`` for the tags, the same
    OCR engine and settings, the same captioner (all rebuilt from the manifest unless given),
    the same tag threshold; :meth:`IndexArtifact.visual_context` of an indexed image and this
    function on the same file agree. The artifact is not changed.

    Args:
        images: ``(id, path)`` pairs (``path=None``: missing).
        embedder, ocr: instead of rebuilding them from the manifest (the embedder is checked
            against it).
        captioner: a :class:`index.captions.Captioner` or captions file(s) for the new images;
            default: the artifact's own (a file captioner reads its files again).
        min_tag_score, max_tags: as for :meth:`IndexArtifact.visual_context`.

    Returns:
        image id -> :class:`VisualContext`, for the images that could be read (missing and
        unreadable ones are left out: compare with the ids asked for).
    """
    info = context_info(artifact.manifest)
    tags_k = int((info["tags"] or {}).get("k") or 0)
    for part, given in (("ocr", ocr), ("captions", captioner)):
        if info[part] is None and given is not None:
            raise ValueError(f"index {artifact.path} was built without {part}: its own images have none, so new "
                             f"ones get none either (rebuild it with --{'ocr' if part == 'ocr' else 'captions FILE'})")
    if info["ocr"] is not None and ocr is None:
        ocr = ocr_engine_of(artifact)
    if info["captions"] is not None:
        captioner = make_captioner(captioner) if captioner is not None else captioner_of(artifact)
    res = embed_collection(images, embedder_of(artifact, embedder), batch_size, 0, False, tags_k, progress,
                           ocr=ocr, captioner=captioner)
    if res.problems:
        log.debug("visual context: %d image(s) could not be read: %s", len(res.problems),
                  _problem_summary(res.problems))
    score = artifact.min_tag_score if min_tag_score is None else min_tag_score
    return {r["id"]: context_from_record(r, score, max_tags) for r in _context_rows(res)}


def add_images(path, images: Sequence[tuple[str, str | None]], embedder: Embedder | None = None,
               batch_size: int = 32, num_workers: int = 0, device: str | None = None,
               progress: bool = True, data_files: Sequence[str] = (), posts: dict[str, str] | None = None,
               save_every: int = RESUME_CHUNK, captions=None) -> IndexArtifact:
    """Add the images whose ids are not yet in the artifact, without re-embedding the others.

    The embedder, the OCR engine and the captioner are rebuilt from the manifest (the
    embedder may be given, and is then checked against it), so the new images' visual
    context is extracted as the others' was. ``captions``: a captions file (or files), added
    to the artifact's captioner's files; its ids must be images of the artifact or of
    ``images``, and images already in the artifact that it names get its caption. Trained indexes (IVF) keep their training; the folder is
    rewritten via a temporary sibling.
    """
    path = Path(path)
    art = load_index(path, gpu=False, mmap_regions=False)
    m = art.manifest
    if (path / "index.ivfdata").is_file():
        shards = m.get("shards") or {}
        raise NotAddable(f"index {path} keeps its inverted lists on disk ({path / 'index.ivfdata'}), which "
                         "`index add` does not grow: build the new images as shards of the whole collection and "
                         f"merge them (`python -m index build --images {m.get('image_dir') or 'IMAGE_DIR'} --out {path} "
                         f"--shard i/{shards.get('count', 'n')}` for each shard, then `python -m index merge --out {path} "
                         "--on-disk --overwrite`), or merge the shards without --on-disk")
    embedder = embedder_of(art, embedder, device)
    new = [(i, p) for i, p in images if i not in art.id_to_row]
    new = list(dict(new).items())
    all_posts = {**art.posts, **(posts or {})}
    info = context_info(m)
    known = set(art.ids) | {p["id"] for p in m.get("problems", [])} | {i for i, _ in images}
    new_captioner = make_captioner(captions, known)
    if not new and all_posts == art.posts and new_captioner is None:
        log.info("index %s: nothing to add (all %d ids present)", path, len(images))
        return art
    with_regions = art.regions is not None
    tags_k = int((info["tags"] or {}).get("k") or 0)
    ocr = ocr_engine_of(art)
    captioner = new_captioner or captioner_of(art)
    _remove_stale_temp_folders(path)
    work = _work_dir(path)
    res = embed_resumable(new, embedder, work, batch_size, num_workers, with_regions, tags_k, progress, save_every,
                          ocr, captioner)
    ids = art.ids + res.ids
    if isinstance(art.embeddings, np.memmap):          # too large to read: the new rows are appended as it is copied
        emb = [art.embeddings, res.embeddings]
    else:
        emb = np.concatenate([art.embeddings, res.embeddings]) if res.ids else art.embeddings
    regions = None
    if with_regions:
        regions = np.concatenate([np.asarray(art.regions), res.regions]) if res.ids else np.asarray(art.regions)
    index = art.faiss_index
    t0 = time.perf_counter()
    if res.ids:
        index.add(as_float32(res.embeddings))
    index_seconds = time.perf_counter() - t0
    context = {"tags": info["tags"], "ocr": info["ocr"],
               "captions": _merge_captions_info(info["captions"], captioner.describe() if new_captioner else None)}
    rows = None
    if any(context.values()):
        recaption = new_captioner.captions if isinstance(new_captioner, FileCaptioner) else {}
        rows = [context_record(i, art.tags.get(i, []), art.ocr.get(i, ""), recaption.get(i, art.captions.get(i, "")))
                for i in art.ids]
        rows += _context_rows(res)
    known_problems = {p["id"] for p in res.problems}
    old_problems = [p for p in m.get("problems", []) if p["id"] not in known_problems and p["id"] not in set(res.ids)]
    merged = EmbedResult(ids, emb, regions, [], old_problems + res.problems, res.seconds)
    manifest = _manifest(embedder, m["factory"], m.get("search_params") or {}, merged,
                         m["counts"]["requested"] + len(new), with_regions, context,
                         list(data_files), m.get("image_dir"), index_seconds, created=m.get("created"))
    manifest["data_files"] = m.get("data_files", []) + manifest["data_files"]
    manifest["added"] = m.get("added", []) + [{"at": manifest["updated"], "embedded": len(res.ids),
                                               "skipped": len(res.problems)}]
    manifest["posts"] = len(all_posts)
    if m.get("shards"):
        manifest["shards"] = m["shards"]
    tmp = _tmp_sibling(path)
    try:
        _write_folder(tmp, manifest, ids, emb, index, regions, rows, all_posts)
        if (path / "build.log").is_file():
            shutil.copy2(path / "build.log", tmp / "build.log")
        _publish(tmp, path, overwrite=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return load_index(path)


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
