"""Which images to embed, and reading them safely.

Image ids are file-name stems (``images/1015799.jpg`` -> ``"1015799"``). A collection is
a list of ``(id, path)``; ``path`` is ``None`` for a post whose image file is missing.
Unreadable files (empty, truncated, not an image) are reported by :class:`ImageDataset`
as problems instead of raising, so a build records them and goes on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, UnidentifiedImageError

from data.corpus import image_folder_problem, read_corpus
from data.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class ImageFolderError(UserError, FileNotFoundError):
    """An image folder given that is not one."""


def image_id(path: str | os.PathLike) -> str:
    """The id of an image file: its name without the suffix."""
    return Path(path).stem


def images_in_dir(image_dir: str | os.PathLike) -> list[tuple[str, str]]:
    """Every file of ``image_dir`` with an image suffix, sorted by name, as ``(id, path)``."""
    root = Path(image_dir)
    if problem := image_folder_problem(root):
        raise ImageFolderError(str(root), problem, "give the folder that holds the images (<id>.jpg ...)")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [(image_id(p), str(p)) for p in files]


def post_image_key(sample) -> str | None:
    """The id of the image a post refers to (:attr:`data.corpus.Sample.image_key`; for
    samples made without it, the stem of its image file), ``None`` when it names none."""
    if getattr(sample, "image_key", None):
        return sample.image_key
    return image_id(sample.image) if sample.image else None


def collection_from_corpora(data_files: Sequence[str | os.PathLike], image_dir: str | os.PathLike
                            ) -> tuple[list[tuple[str, str | None]], dict[str, str]]:
    """The images the posts of ``data_files`` refer to, and which post uses which image.

    Returns ``(images, posts)``: ``images`` as ``(image id, path)`` in first-occurrence
    order, deduplicated, ``path=None`` where the file is missing (posts naming no image are
    left out); ``posts`` maps each post id to its image id (a JSONL ``image`` field's stem,
    the CoNLL ``IMGID``, or the post id: see :attr:`data.corpus.Sample.image_key`).
    """
    seen: dict[str, str | None] = {}
    posts: dict[str, str] = {}
    for f in data_files:
        for s in read_corpus(f, image_dir):
            key = post_image_key(s)
            if key is None or not (s.image or s.image_missing):
                continue
            posts[s.id] = key
            if seen.get(key) is None:
                seen[key] = s.image
    return list(seen.items()), posts


def images_from_corpora(data_files: Sequence[str | os.PathLike],
                        image_dir: str | os.PathLike) -> list[tuple[str, str | None]]:
    """The ``images`` of :func:`collection_from_corpora`."""
    return collection_from_corpora(data_files, image_dir)[0]


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image as RGB; raises ``ValueError`` saying why it cannot."""
    p = Path(path)
    if not p.is_file():
        raise ValueError("missing file")
    if p.stat().st_size == 0:
        raise ValueError("empty file")
    try:
        with Image.open(p) as im:
            im.load()
            return im.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError("not an image") from None
    except Image.DecompressionBombError:
        raise ValueError(f"too large (over Pillow's limit of {2 * Image.MAX_IMAGE_PIXELS} pixels: a "
                         "decompression bomb or a scan, not a post's photo)") from None
    except (OSError, SyntaxError) as e:
        raise ValueError(f"unreadable image ({e})") from None


class ImageDataset(torch.utils.data.Dataset):
    """``(row, pixels or None, problem or None)`` per item; never raises on a bad file."""

    def __init__(self, paths: Sequence[str | None], transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        if path is None:
            return i, None, "missing file"
        try:
            im = open_image(path)
        except ValueError as e:
            return i, None, str(e)
        return i, self.transform(im), None


def collate(items):
    """Stack the good items; keep the rows and the problems of the bad ones.

    Returns ``(rows (B,) long, pixels (B, 3, H, W) or None, [(row, problem), ...])``.
    """
    good = [(i, x) for i, x, err in items if err is None]
    bad = [(i, err) for i, x, err in items if err is not None]
    rows = torch.tensor([i for i, _ in good], dtype=torch.long)
    pixels = torch.stack([x for _, x in good]) if good else None
    return rows, pixels, bad
