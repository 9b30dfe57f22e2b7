"""Preparing a collection of posts and their images for indexing and training.

    python -m data prepare --data train.txt valid.txt test.txt --images twitter2015_images --out PREP

Real image folders are not clean. The Twitter-2015/2017 release has posts whose photo is
missing, files that are empty, truncated or not images at all, and one "image not found"
picture saved under many posts' names. :func:`prepare` resolves every post's image and
sorts it into one of

    usable       a file that decodes, not a placeholder
    missing      no file under the post's image name
    unreadable   empty, truncated, not an image, or over Pillow's pixel limit (why is recorded)
    placeholder  the very same bytes (sha256) saved under at least ``placeholder_min``
                 distinct image names: a stand-in, not the post's photo
    none         the post names no image (a JSONL ``"image": null``)

and writes ``PREP/<split>.jsonl`` (every post kept, its ``image`` the file name relative to
the image folder when usable, else ``null``, and ``image_status`` saying which case it is)
and ``PREP/manifest.json``: the counts of each split under ``splits.<name>``, every image's
sha256 and status, the placeholders found, and one digest of the whole image collection
(``images_sha256``) so two people can tell whether they hold the same data.

The prepared splits are ordinary JSONL corpora: ``python -m index build --data PREP/*.jsonl
--images DIR`` indexes the usable images only, and a run config's ``data.train`` / ``valid`` /
``test`` point at them with ``data.images: DIR``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .corpus import CorpusError, Sample, read_corpus
from .errors import UserError
from .files import sha256_file, write_atomically

log = logging.getLogger(__name__)

STATUSES = ("usable", "missing", "unreadable", "placeholder", "none")
"""The image status of a post, in the order the table prints them."""

PLACEHOLDER_MIN = 3
"""Distinct image names that must share one file's bytes for it to count as a placeholder (two
posts may legitimately share a photo; a stand-in picture is saved under many names)."""

MANIFEST_KIND = "prepared-collection"
MANIFEST_VERSION = 1


@dataclass
class ImageCheck:
    """What one image file is: its sha256 (``None`` when it does not exist or is empty) and
    the problem that makes it unreadable (``None`` when it decodes)."""

    sha256: str | None
    problem: str | None


def check_image(path: str | os.PathLike) -> ImageCheck:
    """Hash ``path`` and decode it fully with Pillow; never raises on a bad file."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        return ImageCheck(None, "missing file")
    if p.stat().st_size == 0:
        return ImageCheck(None, "empty file")
    digest = sha256_file(p)
    try:
        with Image.open(p) as im:
            im.load()
    except UnidentifiedImageError:
        return ImageCheck(digest, "not an image")
    except Image.DecompressionBombError:
        return ImageCheck(digest, "too large (over Pillow's pixel limit)")
    except (OSError, SyntaxError, ValueError) as e:
        return ImageCheck(digest, f"unreadable image ({e})")
    return ImageCheck(digest, None)


def split_names(data: Sequence[str]) -> list[tuple[str, Path]]:
    """``NAME=FILE`` or ``FILE`` (named by its stem: ``train.txt`` -> ``train``) for each
    ``--data`` item; two splits of one name are a :class:`UserError`."""
    out: list[tuple[str, Path]] = []
    for item in data:
        name, _, path = item.partition("=") if "=" in item and not Path(item).exists() else ("", "", item)
        path = Path(path)
        name = name or path.stem
        if name in {n for n, _ in out}:
            raise UserError(f"--data {item}", f"two split files are both named {name!r} (the output is "
                            f"{name}.jsonl)", f"name them apart: --data train={path} ...")
        out.append((name, path))
    return out


def _relative(path: str, image_dir: Path) -> str:
    try:
        return Path(path).resolve().relative_to(image_dir.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def _check_all(paths: list[str], workers: int, progress: bool) -> dict[str, ImageCheck]:
    from tqdm import tqdm

    bar = tqdm(total=len(paths), desc="checking images", unit="img", disable=not progress, file=sys.stderr,
               leave=False)
    out: dict[str, ImageCheck] = {}
    try:
        if workers > 1 and len(paths) > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers) as pool:
                for path, res in zip(paths, pool.map(check_image, paths, chunksize=64)):
                    out[path] = res
                    bar.update()
        else:
            for path in paths:
                out[path] = check_image(path)
                bar.update()
    finally:
        bar.close()
    return out


def find_placeholders(files_by_hash: dict[str, set[str]], min_files: int = PLACEHOLDER_MIN) -> dict[str, int]:
    """The hashes saved under at least ``min_files`` distinct image names, with how many."""
    return {h: len(names) for h, names in files_by_hash.items() if len(names) >= min_files}


def prepare(data: Sequence[str], images: str | os.PathLike, out: str | os.PathLike, *,
            keep_placeholders: bool = False, placeholder_min: int = PLACEHOLDER_MIN, workers: int = 1,
            progress: bool = True, overwrite: bool = False, encoding: str = "utf-8") -> dict:
    """Resolve, check and count every post's image; write ``out/<split>.jsonl`` and
    ``out/manifest.json``; return the manifest.

    Args:
        data: split files (CoNLL with ``IMGID`` lines, or JSONL), each ``FILE`` or ``NAME=FILE``.
        images: the folder of the images (``<IMGID>.jpg`` ..., or the JSONL ``image`` names).
        out: the folder to write (refused when it exists and is not empty, unless ``overwrite``).
        keep_placeholders: count placeholder images as usable (they are still listed).
        placeholder_min: see :data:`PLACEHOLDER_MIN`.
        workers: processes that hash and decode the images.
        progress: show a progress bar.
    """
    image_dir, out = Path(images), Path(out)
    if not image_dir.is_dir():
        raise UserError(f"--images {image_dir}", "no such folder",
                        "give the folder that holds the posts' images (e.g. twitter2015_images)")
    if placeholder_min < 2:
        raise UserError(f"--placeholder-min {placeholder_min}", "a placeholder is one file's bytes under several "
                        "names", "give 2 or more")
    if out.resolve() == image_dir.resolve():
        raise UserError(f"--out {out}", "is the image folder", "write the prepared collection to a folder of its own")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise UserError(f"--out {out}", "exists and is not empty", "choose a new folder, or pass --overwrite")
    splits = split_names(data)
    corpora: dict[str, list[Sample]] = {}
    for name, path in splits:
        try:
            corpora[name] = read_corpus(path, image_dir, encoding=encoding).samples
        except CorpusError as e:
            raise UserError(str(e)) from None

    # one check per distinct file, however many posts use it
    paths = sorted({s.image for samples in corpora.values() for s in samples if s.image is not None})
    checks = _check_all(paths, workers, progress)
    names_by_hash: dict[str, set[str]] = defaultdict(set)
    for path, c in checks.items():
        if c.problem is None:
            names_by_hash[c.sha256].add(_relative(path, image_dir))
    placeholders = find_placeholders(names_by_hash, placeholder_min)

    def status(s: Sample) -> tuple[str, str | None]:
        if s.image is None:
            return ("missing", None) if s.image_missing else ("none", None)
        c = checks[s.image]
        if c.problem is not None:
            return "unreadable", c.problem
        if c.sha256 in placeholders and not keep_placeholders:
            return "placeholder", None
        return "usable", None

    image_records: dict[str, dict] = {}
    split_counts: dict[str, dict] = {}
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for (name, path) in splits:
        counts = dict.fromkeys(STATUSES, 0)
        kept_placeholders = 0
        lines = []
        for s in corpora[name]:
            st, problem = status(s)
            counts[st] += 1
            rel = _relative(s.image, image_dir) if s.image is not None else None
            if st == "usable" and checks[s.image].sha256 in placeholders:
                kept_placeholders += 1
            if s.image_key is not None and st != "none":
                rec = {"file": rel, "status": st,
                       "sha256": checks[s.image].sha256 if s.image is not None else None}
                if problem:
                    rec["problem"] = problem
                image_records.setdefault(s.image_key, rec)
            obj = {"id": s.id, "tokens": s.tokens}
            if s.tags is not None:
                obj["tags"] = s.tags
            obj["image"] = rel if st == "usable" else None
            obj["image_key"] = s.image_key
            obj["image_status"] = st
            obj.update({k: v for k, v in s.meta.items() if k not in obj})
            lines.append(json.dumps(obj, ensure_ascii=False))
        (tmp / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        split_counts[name] = {"posts": len(corpora[name]), **counts,
                              "placeholder_kept": kept_placeholders,
                              "source": str(path), "source_sha256": sha256_file(path), "file": f"{name}.jsonl"}
        assert sum(counts.values()) == len(corpora[name])   # every post is counted exactly once

    digest = hashlib.sha256()
    for key in sorted(image_records):
        digest.update(f"{key}\t{image_records[key]['sha256']}\n".encode())
    manifest = {
        "kind": MANIFEST_KIND, "version": MANIFEST_VERSION,
        "images_dir": str(image_dir.resolve()),
        "keep_placeholders": keep_placeholders, "placeholder_min": placeholder_min,
        "splits": split_counts,
        "placeholders": [{"sha256": h, "names": n, "example": sorted(names_by_hash[h])[0]}
                         for h, n in sorted(placeholders.items(), key=lambda kv: -kv[1])],
        "images_sha256": digest.hexdigest(),
        "images": dict(sorted(image_records.items())),
    }
    write_atomically(tmp / "manifest.json", lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return manifest


def read_manifest(prep: str | os.PathLike) -> dict:
    """The manifest of a prepared collection; a :class:`UserError` when ``prep`` is none."""
    path = Path(prep) / "manifest.json"
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(str(path), f"not a prepared collection's manifest ({type(e).__name__})",
                        "make it with `python -m data prepare --data FILE... --images DIR --out PREP`") from None
    if m.get("kind") != MANIFEST_KIND:
        raise UserError(str(path), f"kind is {m.get('kind')!r}, not {MANIFEST_KIND!r}",
                        "make it with `python -m data prepare`")
    return m


def counts_table(splits: dict[str, dict], columns: Iterable[str] = ("posts",) + STATUSES) -> str:
    """The per-split counts as a small aligned table (one row per split, and a total)."""
    columns = list(columns)
    rows = [[name] + [str(c.get(k, 0)) for k in columns] for name, c in splits.items()]
    if len(rows) > 1:
        rows.append(["total"] + [str(sum(c.get(k, 0) for c in splits.values())) for k in columns])
    header = ["split"] + columns
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    fmt = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header)] + [fmt(r) for r in rows])
