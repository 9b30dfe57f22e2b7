"""An image's visual context: the words it gives a text tagger (object tags, OCR text, caption).

Three extractors fill it, each recorded with its version in the artifact manifest's
``visual_context`` block:

* object tags: the top-``k`` labels of the index's embedder with their scores, either its
  classifier's (EfficientNet-Lite0: the 1000 ImageNet classes, softmax probabilities) or
  CLIP zero-shot over a vocabulary (ImageNet's, or the user's ``--tag-vocabulary``);
* OCR: the text read in the image (:mod:`index.ocr`), lines joined by ``" / "``;
* a caption (:mod:`index.captions`).

Stored in the artifact as ``tags.jsonl``, one line per image::

    {"id": "42", "tags": [{"label": "tabby, tabby cat", "score": 0.42}, ...], "ocr": "ZELBY / INC.",
     "caption": "a cat on a sofa"}

All ``k`` tags are stored; :class:`VisualContext` keeps those scoring at least the
artifact's ``min_tag_score`` (recorded in the manifest, default :data:`MIN_TAG_SCORE`), and
names each by its first synonym ("tabby, tabby cat" -> "tabby").
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from data.corpus import CorpusError, file_lines, read_text

PARTS = ("tags", "ocr", "caption")
MIN_TAG_SCORE = 0.1
"""Default score a stored tag needs to be part of the context: EfficientNet-Lite0's softmax
gives a clear object 0.3-0.9 and a texture's best guess (grass -> "armadillo") under 0.05."""


def short_label(label: str) -> str:
    """ImageNet labels are comma lists of synonyms: the first one."""
    return label.split(",")[0].strip()


@dataclass(frozen=True)
class VisualContext:
    """The words of one image, ready to be appended to its post.

    Attributes:
        tags: ``(label, score)`` at or above the threshold, best first, labels shortened to
            their first synonym.
        ocr: text read in the image, lines joined by ``" / "`` (``""``: none or OCR off).
        caption: the image's caption (``""``: none).
    """

    tags: tuple[tuple[str, float], ...] = ()
    ocr: str = ""
    caption: str = ""

    @property
    def empty(self) -> bool:
        return not (self.tags or self.ocr or self.caption)

    def parts(self) -> dict[str, str]:
        """``{"tags": "tabby, Egyptian cat", "ocr": ..., "caption": ...}`` (empty parts as ``""``)."""
        return {"tags": ", ".join(lab for lab, _ in self.tags), "ocr": self.ocr, "caption": self.caption}

    def text(self, order: Sequence[str] = PARTS, sep: str = ". ") -> str:
        """The non-empty parts in ``order`` joined by ``sep``.

        >>> VisualContext((("tabby", 0.4),), "ZELBY / INC.").text()
        'tabby. ZELBY / INC.'
        """
        unknown = [p for p in order if p not in PARTS]
        if unknown:
            raise ValueError(f"unknown visual context part(s) {unknown}: valid parts are {', '.join(PARTS)}")
        parts = self.parts()
        return sep.join(parts[p] for p in order if parts[p])


def context_from_record(record: dict, min_tag_score: float = MIN_TAG_SCORE, max_tags: int | None = None
                        ) -> VisualContext:
    """A :class:`VisualContext` from one stored record (see :func:`context_record`): the
    tags scoring at least ``min_tag_score``, best first, at most ``max_tags`` of them."""
    tags = sorted(((short_label(lab), float(s)) for lab, s in record.get("tags", ()) if float(s) >= min_tag_score),
                  key=lambda t: -t[1])
    if max_tags is not None:
        tags = tags[:max_tags]
    return VisualContext(tuple(tags), record.get("ocr", ""), record.get("caption", ""))


def context_record(image_id: str, tags: Sequence[tuple[str, float]], ocr: str = "", caption: str = "") -> dict:
    """One ``tags.jsonl`` line as a dict; scores rounded to 6 decimals, as stored."""
    return {"id": image_id, "tags": [(lab, round(float(s), 6)) for lab, s in tags], "ocr": ocr, "caption": caption}


def write_context_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            line = {**r, "tags": [{"label": lab, "score": s} for lab, s in r["tags"]]}
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def read_context_jsonl(path: str | os.PathLike) -> dict[str, dict]:
    """Image id -> record (``tags`` as ``(label, score)`` pairs); empty when the file is absent."""
    out: dict[str, dict] = {}
    if not os.path.isfile(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            out[r["id"]] = {"id": r["id"], "tags": [(t["label"], float(t["score"])) for t in r.get("tags", [])],
                            "ocr": r.get("ocr", ""), "caption": r.get("caption", "")}
    return out


def read_tag_vocabulary(path: str | os.PathLike) -> list[str]:
    """Labels for zero-shot tags, one a line (blank lines and ``#`` comments skipped).

    Raises :class:`data.corpus.CorpusError` naming the file and line of a label given twice,
    or the file when it is missing or holds fewer than two labels.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(path, None, "no such tag vocabulary file: expected one label a line")
    labels: list[str] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(file_lines(read_text(path)), 1):
        label = line.strip()
        if not label or label.startswith("#"):
            continue
        if label in seen:
            raise CorpusError(path, n, f"label {label!r} is given twice (first on line {seen[label]})")
        seen[label] = n
        labels.append(label)
    if len(labels) < 2:
        raise CorpusError(path, None, f"a tag vocabulary needs at least two labels, found {len(labels)}")
    return labels
