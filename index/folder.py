"""An artifact's folder on disk: written to a temporary sibling, then moved into place.

A build writes every file of the artifact into ``.<out>.tmp-<pid>-<ns>`` and renames it to
``<out>`` (:func:`publish`), so an interrupted build leaves nothing half-written; the
embedding's progress waits in ``.<out>.partial`` (:func:`work_dir`) until the artifact is
published. What builds that were killed left behind is cleared by the next one
(:func:`remove_stale_temp_folders`).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from .factory import as_float32, is_gpu
from .visual_context import write_context_jsonl


def work_dir(out: Path) -> Path:
    """Where a build of ``out`` keeps its progress until the artifact is published."""
    return out.with_name(f".{out.name}.partial")


def remove_stale_temp_folders(out: Path) -> None:
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


def tmp_sibling(out: Path) -> Path:
    return out.with_name(f".{out.name}.tmp-{os.getpid()}-{time.time_ns()}")


def publish(tmp: Path, out: Path, overwrite: bool) -> None:
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
    nothing half-written (see :func:`write_folder` for the parts)."""
    tmp = tmp_sibling(out)
    try:
        write_folder(tmp, manifest, ids, emb, index, regions, rows, posts)
        publish(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_folder(tmp: Path, manifest: dict, ids: list[str], emb: np.ndarray, index,
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
