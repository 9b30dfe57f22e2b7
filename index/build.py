"""Building an index artifact from a collection of images, and adding images to one.

:func:`build_index` embeds the images (:mod:`index.embedding`), fills the FAISS index
(:mod:`index.factory`), writes the manifest (:mod:`index.manifest`) and publishes the folder
(:mod:`index.folder`); with ``shard=`` it embeds one shard of a sharded build instead
(:mod:`index.shards`). :func:`add_images` grows an artifact with the images it lacks,
extracted as its own were.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from data.errors import UserError

from .artifact import IndexArtifact, captioner_of, embedder_of, load_index, make_captioner, ocr_engine_of
from .captions import FileCaptioner
from .embedders import Embedder, get_embedder
from .embedding import (RESUME_CHUNK, EmbedResult, EmptyCollectionError, context_rows, embed_resumable,
                        problem_summary)
from .factory import as_float32, choose_factory, default_search_params, make_index, set_search_params
from .folder import publish, remove_stale_temp_folders, tmp_sibling, work_dir, write_and_publish, write_folder
from .manifest import context_block, context_info, make_manifest
from .ocr import DEFAULT_OCR_ENGINE, OcrEngine, get_ocr_engine
from .shards import write_shard
from .visual_context import MIN_TAG_SCORE, context_record

log = logging.getLogger(__name__)


REGIONS_AUTO_MAX = 50_000  # above this many images, regions are off unless asked for


class NotAddable(UserError, ValueError):
    """An artifact ``index add`` cannot grow; the message says how to make the larger one."""


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
        return write_shard(images, embedder, out, shard, factory=factory, search_params=search_params,
                           batch_size=batch_size, num_workers=num_workers, with_regions=with_regions, tags_k=tags_k,
                           ocr=engine, captioner=captioner, min_tag_score=min_tag_score, data_files=data_files,
                           image_dir=image_dir, posts=posts, save_every=save_every, overwrite=overwrite,
                           progress=progress)

    if out.parent.is_dir():
        remove_stale_temp_folders(out)
    work = work_dir(out)
    res = embed_resumable(images, embedder, work, batch_size, num_workers, with_regions, tags_k, progress,
                          save_every, engine, captioner)
    if not res.ids:
        raise EmptyCollectionError(f"none of the {len(images)} images could be embedded "
                                   f"({problem_summary(res.problems)}): an empty index is not built")
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
    rows = context_rows(res) if any(context.values()) else None
    manifest = make_manifest(embedder, fac, params, res, len(images), with_regions, context,
                         data_files, image_dir, index_seconds)
    manifest["posts"] = len(posts or {})
    write_and_publish(out, overwrite, manifest, res.ids, res.embeddings, index, res.regions, rows, posts)
    shutil.rmtree(work, ignore_errors=True)
    log.debug("index %s: %d images embedded, %d skipped (%s)", out, len(res.ids), len(res.problems),
             problem_summary(res.problems))
    return load_index(out)


def _ocr_engine(ocr) -> OcrEngine | None:
    if ocr is None or ocr is False:
        return None
    if isinstance(ocr, OcrEngine):
        return ocr
    return get_ocr_engine(DEFAULT_OCR_ENGINE if ocr is True else str(ocr))


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
    remove_stale_temp_folders(path)
    work = work_dir(path)
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
        rows += context_rows(res)
    known_problems = {p["id"] for p in res.problems}
    old_problems = [p for p in m.get("problems", []) if p["id"] not in known_problems and p["id"] not in set(res.ids)]
    merged = EmbedResult(ids, emb, regions, [], old_problems + res.problems, res.seconds)
    manifest = make_manifest(embedder, m["factory"], m.get("search_params") or {}, merged,
                         m["counts"]["requested"] + len(new), with_regions, context,
                         list(data_files), m.get("image_dir"), index_seconds, created=m.get("created"))
    manifest["data_files"] = m.get("data_files", []) + manifest["data_files"]
    manifest["added"] = m.get("added", []) + [{"at": manifest["updated"], "embedded": len(res.ids),
                                               "skipped": len(res.problems)}]
    manifest["posts"] = len(all_posts)
    if m.get("shards"):
        manifest["shards"] = m["shards"]
    tmp = tmp_sibling(path)
    try:
        write_folder(tmp, manifest, ids, emb, index, regions, rows, all_posts)
        if (path / "build.log").is_file():
            shutil.copy2(path / "build.log", tmp / "build.log")
        publish(tmp, path, overwrite=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return load_index(path)


def _merge_captions_info(old: dict | None, new: dict | None) -> dict | None:
    """The captions block after ``index add``: the files of both when both are files."""
    if old is None or new is None or old.get("captioner") != "file" or new.get("captioner") != "file":
        return new or old
    paths = list(old["config"]["paths"]) + [p for p in new["config"]["paths"] if p not in old["config"]["paths"]]
    return {**new, "config": {**new["config"], "paths": paths}, "files": old.get("files", []) + new.get("files", [])}
