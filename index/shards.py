"""Sharded builds: several processes embed one collection, one merge makes the artifact.

Shard ``i`` of ``n`` embeds the contiguous range of the image list
:meth:`ShardSpec.bounds` gives (the list in the order a build takes it: sorted file names,
or the data files' first-occurrence order) into the shard folder
``<out>.shard-<i>-of-<n>`` (:func:`shard_path`), with the same resumable embedding as a
build (:func:`index.embedding.embed_resumable`) and the same files as an artifact but
no ``index.faiss``; its manifest has ``"kind": "shard"`` and a ``shard`` block (which
range, of how many images, the image list's sha256).

:func:`merge_shards` checks that the shards form one whole set (each of ``0..n-1`` once,
same image list, embedder, visual-context extractors, regions, data files and requested
index) and writes the artifact a single process would have written: the shards' rows in
shard order (so the same ids in the same order and the same vectors), the index trained
on the same sample rows and filled in the same order (:mod:`index.streaming`: the vectors
are read from the shards' files a block at a time, never all held), the visual context
and problems carried through, and a ``shards`` block in the manifest.

    python -m index build --images DIR --out IDX --shard 0/2     # on one machine or process
    python -m index build --images DIR --out IDX --shard 1/2     # on another
    python -m index merge --out IDX                               # IDX.shard-*-of-* by default
    torchrun --nproc_per_node 2 -m index build --images DIR --out IDX   # both steps, rank 0 merges
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .artifact import IndexArtifact, load_index
from .embedding import EmbedResult, EmptyCollectionError, context_rows, embed_resumable
from .factory import choose_factory, default_search_params, set_search_params, wants_on_disk
from .folder import publish, remove_stale_temp_folders, tmp_sibling, work_dir, write_and_publish
from .manifest import ShardSetError, context_block, context_info, embedding_precision, make_manifest, rebuild_command

log = logging.getLogger(__name__)

SHARD_FIELDS = ("embedder", "tag", "embedder_config", "dim")
"""Manifest fields every shard of a set must share (the embedder that made its vectors)."""
SAME_FIELDS = {"visual_context": "visual-context extractors (--no-tags, --tags-k, --ocr, --captions)",
               "data_files": "data files (--data)", "factory": "index type (--factory)",
               "search_params": "search parameters (--nprobe)", "metric": "metric", "normalisation": "normalisation"}
"""Further manifest fields the shards must share, with the options that set them."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (0-based)."""

    index: int
    count: int

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: expected i/n with 0 <= i < n")

    @classmethod
    def parse(cls, text: str | ShardSpec) -> ShardSpec:
        """``"1/4"`` -> ``ShardSpec(1, 4)``."""
        if isinstance(text, ShardSpec):
            return text
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not m:
            raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4 (shard 0 of 4)")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_env(cls, env=None) -> ShardSpec | None:
        """The shard of a ``torchrun`` worker (``RANK`` of ``WORLD_SIZE``); ``None`` outside
        one or when it runs a single process."""
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env or int(env["WORLD_SIZE"]) <= 1:
            return None
        return cls(int(env.get("RANK", 0)), int(env["WORLD_SIZE"]))

    def bounds(self, n: int) -> tuple[int, int]:
        """``(start, stop)`` of this shard's contiguous share of ``n`` items: the shares of
        ``0..count-1`` cover ``0..n`` once, in order, their sizes differing by at most one."""
        return n * self.index // self.count, n * (self.index + 1) // self.count

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_path(out, spec: ShardSpec) -> Path:
    """The folder shard ``spec`` of the artifact ``out`` is written to."""
    out = Path(out)
    return out.with_name(f"{out.name}.shard-{spec.index:03d}-of-{spec.count:03d}")


def find_shards(out) -> list[Path]:
    """The shard folders beside ``out`` (``<out>.shard-*-of-*``), sorted."""
    out = Path(out)
    return sorted(p for p in out.parent.glob(f"{out.name}.shard-*-of-*") if p.is_dir())


def collection_sha256(images: Sequence[tuple[str, str | None]]) -> str:
    """sha256 of the image list (ids and paths, in order): shards of one build share it."""
    return hashlib.sha256(json.dumps([[i, p] for i, p in images]).encode("utf-8")).hexdigest()


def shard_command(manifest: dict, spec: ShardSpec | None = None) -> str:
    """The ``python -m index build ... --shard i/n`` command that makes a shard again."""
    s = manifest.get("shard") or {}
    spec = spec or ShardSpec(s.get("index", 0), s.get("count", 1))
    cmd = rebuild_command(s.get("out", "OUT"), manifest).replace(" --overwrite", "")
    return f"{cmd} --shard {spec} --overwrite"


def write_shard(images, embedder, out, spec, *, factory=None, search_params=None, batch_size=32, num_workers=0,
                with_regions=False, tags_k=0, ocr=None, captioner=None, min_tag_score=0.1, data_files=(),
                image_dir=None, posts=None, save_every=512, overwrite=False, progress=True) -> Path:
    """Embed shard ``spec``'s share of ``images`` into :func:`shard_path` ``(out, spec)``.

    Called by :func:`index.build.build_index` with ``shard=``, after it has checked and
    resolved the options (regions by the whole collection's size, the OCR engine, the
    captioner of all the images), so every shard records the same settings. Resumable like
    a build (``.<shard folder>.partial``). Returns the shard folder.
    """
    spec = ShardSpec.parse(spec)
    images = list(images)
    folder = shard_path(out, spec)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists: pass overwrite=True (--overwrite) to embed shard {spec} again")
    start, stop = spec.bounds(len(images))
    share = images[start:stop]
    if folder.parent.is_dir():
        remove_stale_temp_folders(folder)
    work = work_dir(folder)
    log.info("shard %s: images %d..%d of %d", spec, start, stop, len(images))
    res = embed_resumable(share, embedder, work, batch_size, num_workers, with_regions, tags_k, progress,
                          save_every, ocr, captioner)
    if len(set(res.ids)) != len(res.ids):
        dup = sorted({i for i in res.ids if res.ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate image ids {dup}: ids are file-name stems and must be unique")
    context = context_block(embedder, tags_k, min_tag_score, ocr, captioner)
    rows = context_rows(res) if any(context.values()) else None
    manifest = make_manifest(embedder, factory or "auto", search_params, res, len(share), with_regions, context,
                         list(data_files), image_dir, 0.0)
    manifest["posts"] = len(posts or {})
    manifest["kind"] = "shard"
    manifest["shard"] = {"index": spec.index, "count": spec.count, "start": start, "stop": stop,
                         "images": len(images), "collection_sha256": collection_sha256(images),
                         "with_regions": bool(with_regions), "out": str(out)}
    write_and_publish(folder, overwrite, manifest, res.ids, res.embeddings, None, res.regions, rows, posts)
    shutil.rmtree(work, ignore_errors=True)
    return folder


# --------------------------------------------------------------------------- checking a set
def read_shard_set(paths: Sequence[str | os.PathLike]) -> list[tuple[Path, dict]]:
    """``(folder, manifest)`` of each shard, ordered by shard index, after checking that
    they form one whole set. Raises :class:`ShardSetError` naming the folder and the fix."""
    if not paths:
        raise ShardSetError("no shard folders given: pass the folders `python -m index build --shard i/n` wrote "
                            "(<out>.shard-<i>-of-<n>)")
    shards = []
    for p in map(Path, paths):
        f = p / "manifest.json"
        if not f.is_file():
            raise ShardSetError(f"{p} is not a shard folder (no manifest.json): pass the folders "
                                "`python -m index build --shard i/n` wrote, <out>.shard-<i>-of-<n>")
        try:
            m = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ShardSetError(f"{f} cannot be read ({e}): embed that shard again with its "
                                "`python -m index build ... --shard i/n --overwrite`") from None
        if m.get("kind") != "shard":
            raise ShardSetError(f"{p} is an index, not a shard folder: pass the folders "
                                "`python -m index build --shard i/n` wrote, <out>.shard-<i>-of-<n>")
        for name in ("ids.json", "embeddings.npy"):
            if not (p / name).is_file():
                raise ShardSetError(f"shard {p} has no {name}: embed it again with `{shard_command(m)}`")
        shards.append((p, m))
    first_path, first = shards[0]
    n = first["shard"]["count"]
    for p, m in shards[1:]:
        if m["shard"]["count"] != n:
            raise ShardSetError(f"shard {p} is one of {m['shard']['count']}, but {first_path} is one of {n}: a set "
                                f"is made with one --shard i/n count; embed {p} again with `{shard_command(m, ShardSpec(min(m['shard']['index'], n - 1), n))}`")
    by_index: dict[int, Path] = {}
    for p, m in shards:
        i = m["shard"]["index"]
        if i in by_index:
            raise ShardSetError(f"shard {i}/{n} is given twice, as {by_index[i]} and {p}: pass each shard once")
        by_index[i] = p
    missing = [i for i in range(n) if i not in by_index]
    if missing:
        cmds = "; ".join(f"`{shard_command(first, ShardSpec(i, n))}`" for i in missing)
        raise ShardSetError(f"the shard set beside {first_path} is incomplete: shard(s) "
                            f"{', '.join(f'{i}/{n}' for i in missing)} missing (given: "
                            f"{', '.join(str(p) for p, _ in shards)}); embed them with {cmds} and merge again")
    for p, m in shards[1:]:
        diffs = [f"{k}: {m.get(k)!r} here, {first.get(k)!r} in {first_path}" for k in SHARD_FIELDS
                 if m.get(k) != first.get(k)]
        if diffs:
            raise ShardSetError(f"shard {p} was made by another embedder than {first_path} ({'; '.join(diffs)}): "
                                f"embed it again with the set's embedder: `{shard_command({**m, **{k: first.get(k) for k in SHARD_FIELDS}})}`")
        if m["shard"]["collection_sha256"] != first["shard"]["collection_sha256"] \
                or m["shard"]["images"] != first["shard"]["images"]:
            raise ShardSetError(f"shard {p} was made from another image list ({m['shard']['images']} images, "
                                f"{m.get('image_dir')}) than {first_path} ({first['shard']['images']} images, "
                                f"{first.get('image_dir')}): embed it again with the same --images and --data: "
                                f"`{shard_command(m)}`")
        for k, what in SAME_FIELDS.items():
            if m.get(k) != first.get(k):
                raise ShardSetError(f"shard {p} was made with other {what} than {first_path}: {m.get(k)!r} against "
                                    f"{first.get(k)!r}; embed it again with the set's options")
        if m["shard"]["with_regions"] != first["shard"]["with_regions"]:
            raise ShardSetError(f"shard {p} {'has' if m['shard']['with_regions'] else 'has no'} region features, "
                                f"{first_path} {'has' if first['shard']['with_regions'] else 'has none'}: embed it "
                                "again with the same --regions/--no-regions")
    precision = {p: embedding_precision(m) for p, m in shards}
    if len(set(precision.values())) > 1:
        odd = [(p, m) for p, m in shards if precision[p] != precision[first_path]]
        raise ShardSetError(f"shards {', '.join(f'{p} ({precision[p]})' for p, _ in shards)}",
                            "their images were embedded at different precisions (--precision auto is fp16 on a GPU, "
                            "fp32 on a CPU), so one index would mix vectors that differ",
                            "embed " + "; ".join(f"{p} again with `{shard_command(m)} --precision {precision[first_path]}`"
                                                 for p, m in odd))
    ordered = sorted(shards, key=lambda s: s[1]["shard"]["index"])
    stop = 0
    for p, m in ordered:                                       # contiguous ranges that cover the list once
        if m["shard"]["start"] != stop:
            raise ShardSetError(f"shard {p} starts at image {m['shard']['start']}, the one before it ends at {stop}: "
                                f"embed it again with `{shard_command(m)}`")
        stop = m["shard"]["stop"]
    if stop != first["shard"]["images"]:
        raise ShardSetError(f"the shards cover images 0..{stop} of {first['shard']['images']}: embed "
                            f"{ordered[-1][0]} again with `{shard_command(ordered[-1][1])}`")
    return ordered


# --------------------------------------------------------------------------- merging
def merge_shards(paths: Sequence[str | os.PathLike], out, factory: str | None = None,
                 search_params: dict | None = None, on_disk: bool | None = None, overwrite: bool = False,
                 progress: bool = True, remove_shards: bool = False, seed: int = 0,
                 nprobe: int | None = None) -> IndexArtifact:
    """Merge a whole set of shard folders into the artifact ``out``.

    Args:
        paths: the shard folders, in any order (:func:`find_shards` lists them).
        factory: FAISS factory string; default the one the shards were built for (``auto``:
            :func:`index.factory.choose_factory` of the merged size).
        search_params: default the shards' (``--nprobe``), else :func:`default_search_params`.
        on_disk: keep the inverted lists on disk (``index.ivfdata``, :mod:`index.streaming`);
            ``None``: when the automatic choice calls for it (:func:`index.factory.wants_on_disk`).
        remove_shards: delete the shard folders once the artifact is written.
        nprobe: IVF lists searched, instead of the default's.
    Returns the loaded artifact. Raises :class:`ShardSetError` for a set that is not whole.
    """
    from .streaming import VectorFiles, build_streamed, concat_npy

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass overwrite=True (--overwrite) to replace it")
    shards = read_shard_set(paths)
    first = shards[0][1]
    dim = int(first["dim"])
    ids = [i for p, _ in shards for i in json.loads((p / "ids.json").read_text(encoding="utf-8"))]
    if len(set(ids)) != len(ids):
        seen, dup = set(), []
        for i in ids:
            if i in seen:
                dup.append(i)
            seen.add(i)
        raise ShardSetError(f"image ids {sorted(set(dup))[:5]} are in more than one shard of {shards[0][0]}: "
                            "shards must split the image list, not overlap; embed them again with "
                            f"`{shard_command(first)}` for each i")
    if not ids:
        raise EmptyCollectionError(f"none of the {first['shard']['images']} images could be embedded in the shards "
                                   f"of {out}: an empty index is not built")
    n = len(ids)
    requested = factory or first.get("factory") or "auto"
    if on_disk is None:
        on_disk = requested == "auto" and wants_on_disk(n, dim)
    fac = choose_factory(n, dim, on_disk=on_disk) if requested == "auto" else requested
    params = dict(search_params) if search_params is not None else (
        dict(first["search_params"]) if first.get("search_params") is not None else default_search_params(fac, n))
    if nprobe is not None:
        params["nprobe"] = int(nprobe)
    log.info("merge %d shards of %s: %d images, index %s%s", len(shards), out, n, fac, " (lists on disk)" * on_disk)

    remove_stale_temp_folders(out)
    tmp = tmp_sibling(out)
    try:
        tmp.mkdir(parents=True)
        concat_npy([p / "embeddings.npy" for p, _ in shards], tmp / "embeddings.npy")
        region_files = [p / "regions.npy" for p, _ in shards if (p / "regions.npy").is_file()]
        regions_shape = concat_npy(region_files, tmp / "regions.npy") if region_files else None
        t0 = time.perf_counter()
        index = build_streamed(fac, VectorFiles([p / "embeddings.npy" for p, _ in shards]),
                               on_disk_dir=tmp if on_disk else None, seed=seed, progress=progress)
        set_search_params(index, params)
        index_seconds = time.perf_counter() - t0
        problems = [q for _, m in shards for q in m.get("problems", [])]
        seconds = sum((m.get("timing") or {}).get("embed_seconds") or 0.0 for _, m in shards)
        res = EmbedResult(ids, None, None, [], problems, seconds)
        manifest = make_manifest(first, fac, params, res, sum(m["counts"]["requested"] for _, m in shards),
                             regions_shape is not None, context_info(first), [], first.get("image_dir"), index_seconds)
        manifest["data_files"] = first.get("data_files", [])
        if regions_shape is not None:
            manifest["regions"] = {**first["regions"], "shape": list(regions_shape)}
        manifest["posts"] = first.get("posts", 0)
        manifest["shards"] = {"count": len(shards), "folders": [str(p) for p, _ in shards],
                              "ranges": [[m["shard"]["start"], m["shard"]["stop"]] for _, m in shards],
                              "embedded": [m["counts"]["embedded"] for _, m in shards],
                              "collection_sha256": first["shard"]["collection_sha256"],
                              "on_disk": bool(on_disk)}
        _write_folder_rest(tmp, manifest, ids, index, shards)
        del index                                              # not held twice when the artifact is loaded
        publish(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if remove_shards:
        for p, _ in shards:
            shutil.rmtree(p, ignore_errors=True)
    log.debug("index %s: merged %d shards, %d images", out, len(shards), n)
    return load_index(out)


def _write_folder_rest(tmp: Path, manifest: dict, ids: list[str], index, shards) -> None:
    """The files of a merged artifact besides the vectors: index, ids, visual context
    (the shards' ``tags.jsonl`` one after another), posts, the shards' build logs, manifest."""
    from .faiss_module import faiss

    faiss.write_index(index, str(tmp / "index.faiss"))
    (tmp / "ids.json").write_text(json.dumps(ids), encoding="utf-8")
    first_path = shards[0][0]
    if (first_path / "posts.json").is_file():
        shutil.copy2(first_path / "posts.json", tmp / "posts.json")
    if any((p / "tags.jsonl").is_file() for p, _ in shards):
        with open(tmp / "tags.jsonl", "w", encoding="utf-8") as dst:
            for p, _ in shards:
                if (p / "tags.jsonl").is_file():
                    dst.write((p / "tags.jsonl").read_text(encoding="utf-8"))
    logs = [(p, p / "build.log") for p, _ in shards if (p / "build.log").is_file()]
    if logs:
        with open(tmp / "build.log", "w", encoding="utf-8") as dst:
            for p, f in logs:
                dst.write(f"# shard {p}\n{f.read_text(encoding='utf-8')}")
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
