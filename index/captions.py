"""Captions of images, behind one interface and a name registry.

No captioning model with its weights can be had offline, so the one registered captioner,
``file``, reads captions that were written beforehand (by a person, or by a captioning
model run elsewhere) from JSONL files, one image a line::

    {"id": "1015799", "caption": "a man holding a trophy on a stage"}

``id`` is the image id (the file-name stem, as in the index); other keys are ignored. A
file is checked whole when it is read: every problem is a :class:`CaptionsFileError` that
names the file and the line. An image that no file names has no caption (``""``).

A model-based captioner is added with :func:`register_captioner`; it implements
:meth:`Captioner.caption`, and :meth:`Captioner.config` rebuilds it from an artifact's
manifest for images captioned later.
"""
from __future__ import annotations

import abc
import json
import os
from pathlib import Path
from typing import Collection, Mapping, Sequence

from data.corpus import CorpusError, file_lines, read_text
from data.files import sha256_file

from .registry import Registry


class CaptionsFileError(CorpusError):
    """A captions file that cannot be used; the message names the file, the line and the fix."""


class Captioner(abc.ABC):
    """An image (its id and its decoded pixels) to one sentence describing it."""

    name: str = "?"

    @abc.abstractmethod
    def caption(self, image_id: str, image) -> str:
        """The caption of the image ``image_id`` (``image``: the RGB PIL image); ``""`` when
        there is none."""

    def config(self) -> dict:
        """Constructor kwargs that rebuild this captioner with ``get_captioner(name, **config)``."""
        return {}

    def describe(self) -> dict:
        """What the manifest records about this captioner: its name, the settings that
        rebuild it (``config``) and what it read or runs."""
        return {"captioner": self.name, "config": self.config()}


def read_captions_jsonl(path: str | os.PathLike, known_ids: Collection[str] | None = None,
                        encoding: str = "utf-8") -> dict[str, str]:
    """Image id -> caption from a JSONL captions file, checked line by line.

    Args:
        path: the file (``{"id": ..., "caption": ...}`` a line; blank lines are skipped).
        known_ids: when given, an id outside it is an error (a caption for an image the
            collection does not hold is a typo or the wrong file).
        encoding: the file's text encoding.

    Raises:
        CaptionsFileError naming the file and line: no such file, bad JSON, a line that is not
        an object, a missing or empty ``id``, a missing or non-string ``caption``, an id given
        twice, an unknown id, a file with no caption.
    """
    path = Path(path)
    if not path.is_file():
        raise CaptionsFileError(path, None, "no such captions file: expected JSONL with one "
                                '{"id": IMAGE_ID, "caption": TEXT} per line')
    text = read_text(path, encoding)              # a CorpusError naming the line of a bad byte
    out: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for n, line in enumerate(file_lines(text), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise CaptionsFileError(path, n, f"not valid JSON ({e.msg} at column {e.colno}): expected "
                                    '{"id": IMAGE_ID, "caption": TEXT}') from None
        if not isinstance(r, dict):
            raise CaptionsFileError(path, n, f"expected a JSON object {{\"id\", \"caption\"}}, found "
                                    f"{type(r).__name__}")
        if "id" not in r:
            raise CaptionsFileError(path, n, f"missing field 'id' (the image id, its file-name stem); "
                                    f"found keys {sorted(r)}")
        image_id = r["id"]
        if isinstance(image_id, bool) or not isinstance(image_id, (str, int)) or str(image_id).strip() == "":
            raise CaptionsFileError(path, n, f"field 'id' must be a non-empty string (or an integer), "
                                    f"found {image_id!r}")
        image_id = str(image_id)
        if "caption" not in r:
            raise CaptionsFileError(path, n, f"missing field 'caption' for image {image_id!r}; "
                                    f"found keys {sorted(r)}")
        if not isinstance(r["caption"], str):
            raise CaptionsFileError(path, n, f"field 'caption' of image {image_id!r} must be a string, "
                                    f"found {type(r['caption']).__name__}")
        if image_id in first_line:
            raise CaptionsFileError(path, n, f"image {image_id!r} is captioned twice (first on line "
                                    f"{first_line[image_id]}): keep one caption per image")
        if known_ids is not None and image_id not in known_ids:
            raise CaptionsFileError(path, n, f"unknown image id {image_id!r}: the collection has no such "
                                    "image (ids are file-name stems of --images, or the images of --data)")
        first_line[image_id] = n
        out[image_id] = " ".join(r["caption"].split())
    if not out:
        raise CaptionsFileError(path, None, 'no caption in the file: expected {"id", "caption"} lines')
    return out


class FileCaptioner(Captioner):
    """Captions looked up by image id in JSONL files (a later file's caption wins).

    Args:
        paths: captions files (see :func:`read_captions_jsonl`).
        known_ids: when given, every id of every file must be one of them.
        captions: captions already read (id -> caption), used instead of reading ``paths``.
    """

    name = "file"

    def __init__(self, paths: Sequence[str | os.PathLike] | str | os.PathLike = (),
                 known_ids: Collection[str] | None = None, captions: Mapping[str, str] | None = None):
        self.paths = [str(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
        if captions is not None:
            self.captions = dict(captions)
            self.files: list[dict] = []
            return
        if not self.paths:
            raise ValueError("the file captioner needs a captions file (--captions FILE)")
        self.captions = {}
        self.files = []
        for p in self.paths:
            read = read_captions_jsonl(p, known_ids)
            self.captions.update(read)
            self.files.append({"path": p, "sha256": sha256_file(p), "captions": len(read)})

    def caption(self, image_id: str, image=None) -> str:
        return self.captions.get(image_id, "")

    def config(self) -> dict:
        return {"paths": self.paths}

    def describe(self) -> dict:
        return {**super().describe(), "files": self.files}


CAPTIONERS: Registry[Captioner] = Registry("captioner", {"file": FileCaptioner}, default="file")
list_captioners = CAPTIONERS.names
register_captioner = CAPTIONERS.register
get_captioner = CAPTIONERS.build      # get_captioner(name="file", **constructor_kwargs)
