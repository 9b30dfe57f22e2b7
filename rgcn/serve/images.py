"""Photos reaching the service: uploads checked before any model decodes them, and the image
folders of the runs whose neighbours the pages show.

Every refusal is a :class:`BadInput` (a :class:`~data.errors.UserError`) carrying the HTTP
status the service answers with, and a message that says what to change.

- :func:`check_upload`: an upload is a whole, readable image of at most ``max_bytes`` whose
  header declares at most ``max_pixels`` (read before any pixel is decoded: a few-KB PNG
  declaring 30,000 x 30,000 pixels is refused without allocating them).
- :func:`resolve_inside`, :func:`find_image`, :func:`thumbnail` (from :mod:`data.web`, shared
  with the retrieval explorer): paths kept inside their folder, thumbnails.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

from PIL import Image

from data.web import (FORMATS, IMAGE_SUFFIXES, MAX_PIXELS, UNDECODABLE, BadInput, _open_checked,  # noqa: F401
                      check_size, find_image, resolve_inside, thumbnail, truncated)


def check_upload(data: bytes, max_bytes: int, max_pixels: int = MAX_PIXELS, what: str = "the uploaded image"
                 ) -> tuple[str, tuple[int, int]]:
    """Refuse ``data`` unless it is a whole image within the limits; returns its format and
    size. The pixels are decoded once here (a truncated file fails only then)."""
    if not data:
        raise BadInput(422, what, "the file is empty", f"send a {FORMATS} photo")
    check_size(len(data), max_bytes, what)
    im = _open_checked(io.BytesIO(data), max_pixels, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
    except UNDECODABLE as e:
        raise truncated(what, e) from None
    return str(im.format), im.size


def check_image_file(path: Path, max_bytes: int, max_pixels: int = MAX_PIXELS, what: str = "image") -> None:
    """The size and the header's pixel count of an image file, without decoding it (a file
    that does not decode is tagged as image-less by the tagger: ``unreadable``)."""
    check_size(path.stat().st_size, max_bytes, what)
    try:
        with open(path, "rb") as f:
            _open_checked(f, max_pixels, what)
    except BadInput as e:
        if e.status == 415:          # the tagger reports it: "unreadable"
            return
        raise


def run_image_folders(runs: list[str | os.PathLike]) -> list[Path]:
    """The image folders a run's neighbours come from: its index's ``image_dir`` (from the
    index manifest) and its ``data.images``, in that order, deduplicated, existing ones only."""
    out: list[Path] = []
    for run in runs:
        cfg = _run_config(Path(run))
        candidates = []
        index = ((cfg.get("head") or {}).get("options") or {}).get("index")
        if index:
            try:
                manifest = json.loads((Path(index) / "manifest.json").read_text())
                candidates.append(manifest.get("image_dir"))
            except (OSError, ValueError):
                pass
        candidates.append((cfg.get("data") or {}).get("images"))
        for c in candidates:
            if c and Path(c).is_dir() and Path(c).resolve() not in out:
                out.append(Path(c).resolve())
    return out


def _run_config(run: Path) -> dict:
    for f, key in ((run / "config.json", None), (run / "best" / "checkpoint.json", "config"),
                   (run / "checkpoint.json", "config")):
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        return d.get(key, {}) if key else d
    return {}
