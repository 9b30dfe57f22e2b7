"""Which image each post has: one of the index, a new one to embed, or none.

A post names its image by :attr:`data.corpus.Sample.image_key` (a JSONL ``image`` field's
stem, the CoNLL ``IMGID``, or the post id), whatever its file is called; the index keys
images the same way and records which post of its data files uses which image
(``IndexArtifact.posts``). A post whose image file exists but is not in the index (a new
post to tag, a split that was not indexed) gets its image embedded with the index's own
embedder: it is the post's node and intra-modal query, but never a neighbour of anyone,
and the index is not changed.

Every post ends in one status:

==========  ===============================================================
index       its image is in the index
new         its image file exists and is not in the index: embedded now
unreadable  its image file exists but could not be decoded
missing     its image file was looked for and not found, and the index lacks it
dropped     its image was removed on purpose (``--drop-images``); heads ignore it
none        it has no image file (it names none, or no image folder was given)
==========  ===============================================================
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from data.files import sha256_file
from index.images import post_image_key

STATUSES = ("index", "new", "unreadable", "missing", "dropped", "none")


@dataclass
class PostImages:
    """Each post's image, in the order of ``post_ids``.

    Attributes:
        post_ids: (n,) the posts.
        keys: (n,) the image id each post names (``None``: it names none).
        rows: (n,) row of the post's image among the index's rows followed by the new
            images (``len(artifact) + j`` for ``new_ids[j]``), -1 when it has none.
        status: (n,) one of :data:`STATUSES`.
        new_ids, new_paths: the images to embed (files that exist, not in the index).
        new_hashes: sha256 of each new image file (part of the graph cache key).
    """

    post_ids: list[str]
    keys: list[str | None]
    rows: np.ndarray
    status: list[str]
    new_ids: list[str] = field(default_factory=list)
    new_paths: list[str] = field(default_factory=list)
    new_hashes: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """Hash of the assignment of images to posts and of the new images' bytes."""
        blob = json.dumps([self.keys, self.status, self.new_ids, self.new_hashes])
        return hashlib.sha256(blob.encode()).hexdigest()

    def mark_unreadable(self, image_ids: set[str]) -> None:
        """Posts whose new image could not be embedded lose it."""
        for i, k in enumerate(self.keys):
            if self.status[i] == "new" and k in image_ids:
                self.status[i], self.rows[i] = "unreadable", -1

    def counts(self, post_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Posts per status (over ``post_ids``, default all)."""
        sel = None if post_ids is None else set(post_ids)
        c = Counter(s for p, s in zip(self.post_ids, self.status) if sel is None or p in sel)
        return {s: c.get(s, 0) for s in STATUSES}

    def examples(self, status: str, n: int = 3, post_ids: Sequence[str] | None = None) -> list[str]:
        """Up to ``n`` ``"post (image)"`` strings of one status."""
        sel = None if post_ids is None else set(post_ids)
        return [f"{p} ({k})" for p, k, s in zip(self.post_ids, self.keys, self.status)
                if s == status and (sel is None or p in sel)][:n]

    def summary(self, post_ids: Sequence[str] | None = None) -> str:
        """One line for a person: how many posts had an image used, and which lacked one."""
        c = self.counts(post_ids)
        n = sum(c.values())
        used = c["index"] + c["new"]
        line = (f"images: {used} of {n} posts used their image ({c['index']} from the index, "
                f"{c['new']} embedded now)")
        for status, what in (("missing", "named an image that is missing"),
                             ("unreadable", "had an unreadable image"), ("dropped", "had their image dropped"),
                             ("none", "had no image file (none named, or no image folder given)")):
            if c[status]:
                ex = self.examples(status, 3, post_ids) if status in ("missing", "unreadable") else []
                line += f"; {c[status]} {what}" + (f", e.g. {', '.join(ex)}" if ex else "")
        return line


def resolve_post_images(samples: Sequence, artifact) -> PostImages:
    """Find each sample's image in the index, or its file to embed (see the module doc).

    Args:
        samples: objects with ``id``, ``image`` (path or ``None``), ``image_missing``,
            ``meta`` and, optionally, ``image_key`` (:class:`data.corpus.Sample`).
        artifact: the index (``ids``, ``id_to_row``, ``image_of(post_id)``).
    """
    n_index = len(artifact.ids)
    post_ids, keys, rows, status = [], [], [], []
    new: dict[str, int] = {}              # new image id -> its position among the new images
    new_paths: dict[str, str] = {}
    image_of = getattr(artifact, "image_of", lambda p: p)
    for s in samples:
        key = post_image_key(s) or image_of(s.id)
        row = artifact.id_to_row.get(key, -1)
        if (s.meta or {}).get("image_dropped"):
            st = "dropped"
        elif row >= 0:
            st = "index"
        elif s.image:
            st = "new"
            row = n_index + new.setdefault(key, len(new))
            new_paths.setdefault(key, s.image)
        elif s.image_missing:
            st = "missing"
        else:
            st, key = "none", None
        post_ids.append(s.id)
        keys.append(key)
        rows.append(row)
        status.append(st)
    return PostImages(post_ids, keys, np.asarray(rows, dtype=np.int64), status, list(new),
                      list(new_paths.values()), [sha256_file(p) for p in new_paths.values()])
