"""The index artifact: a folder that holds an image collection's vectors and FAISS index,
loaded with its manifest checked, searched, and used to extract new images as its own were.

Layout of an artifact folder::

    manifest.json   what made it (embedder, tag, dims, metric, factory, counts, problems,
                    data-file hashes, library versions): :mod:`index.manifest`
    index.faiss     the FAISS index; row i <-> ids[i]
    ids.json        image ids (file-name stems), row order
    posts.json      which post uses which image: post id -> image id (from the data files)
    embeddings.npy  float32 (N, dim), L2-normalised, row order
    regions.npy     float16 (N, R, dim_r) region/patch features (when the embedder has them)
    tags.jsonl      per image: its visual context, object tags, OCR text and caption
                    (:mod:`index.visual_context`)
    index.ivfdata   the inverted lists, when they are kept on disk (:mod:`index.streaming`)

Made by :func:`index.build.build_index` (embedding: :mod:`index.embedding`; the folder
written to a temporary sibling and renamed, so an interrupted build leaves nothing:
:mod:`index.folder`), grown by :func:`index.build.add_images`. A sharded build
(:mod:`index.shards`) writes shard folders of the same layout without ``index.faiss``;
merging them makes the artifact.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .captions import Captioner, FileCaptioner, get_captioner
from .embedders import Embedder, get_embedder
from .embedding import EmbedResult, context_rows, embed_collection, problem_summary
from .factory import search as faiss_search, set_search_params, to_gpu
from .manifest import (ArtifactDamaged, ShardSetError, check_manifest, context_info, embedding_precision,
                       merge_command, read_manifest, read_part, rebuild_command)
from .ocr import OcrEngine, get_ocr_engine
from .visual_context import MIN_TAG_SCORE, VisualContext, context_from_record, read_context_jsonl

log = logging.getLogger(__name__)


MMAP_EMBEDDINGS_BYTES = 2 * 2**30  # larger embeddings.npy files are memory-mapped (read-only), not read


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
        raise ShardSetError(f"{path} is shard {manifest['shard']['index']}/{manifest['shard']['count']} of a sharded "
                            f"build, not an index: merge the shards with `{merge_command(manifest)}`")
    check_manifest(manifest, expect_embedder, expect_dim, expect_tag, where=f"index {path}")
    ids = read_part(path, "ids.json", lambda p: json.loads(p.read_text(encoding="utf-8")), manifest)
    big = (path / "embeddings.npy").is_file() and (path / "embeddings.npy").stat().st_size > MMAP_EMBEDDINGS_BYTES
    emb = read_part(path, "embeddings.npy", lambda p: np.load(p, mmap_mode="r" if big else None), manifest)
    index = read_part(path, "index.faiss", read_index, manifest)
    problems = []
    if index.ntotal != len(ids):
        problems.append(f"index.faiss has {index.ntotal} vectors, ids.json {len(ids)}")
    if emb.shape != (len(ids), manifest["dim"]):
        problems.append(f"embeddings.npy has shape {emb.shape}, expected ({len(ids)}, {manifest['dim']})")
    if index.d != manifest["dim"]:
        problems.append(f"index.faiss has dim {index.d}, manifest {manifest['dim']}")
    regions = None
    if (path / "regions.npy").is_file():
        regions = read_part(path, "regions.npy", lambda p: np.load(p, mmap_mode="r" if mmap_regions else None),
                             manifest)
    records = read_part(path, "tags.jsonl", read_context_jsonl, manifest)
    tags = {i: r["tags"] for i, r in records.items()}
    ocr = {i: r["ocr"] for i, r in records.items()}
    captions = {i: r["caption"] for i, r in records.items() if r["caption"]}
    posts = (read_part(path, "posts.json", lambda p: json.loads(p.read_text(encoding="utf-8")), manifest)
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
                  problem_summary(res.problems))
    score = artifact.min_tag_score if min_tag_score is None else min_tag_score
    return {r["id"]: context_from_record(r, score, max_tags) for r in context_rows(res)}


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
