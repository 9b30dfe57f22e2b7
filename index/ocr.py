"""Reading the text in an image (OCR), behind one interface and a name registry.

>>> from index.ocr import get_ocr_engine, list_ocr_engines
>>> list_ocr_engines()
['rapidocr']
>>> get_ocr_engine("rapidocr").read(image)          # a PIL image -> "ZELBY / INC."

An engine returns the lines it read, top to bottom, joined by ``" / "``. What made the
text (engine, reader version, package version, settings) is recorded in an index
artifact's manifest by :meth:`OcrEngine.describe`, and :meth:`OcrEngine.config` rebuilds
the same engine with ``get_ocr_engine(name, **config)`` for images read later.

Only ``rapidocr`` is registered: RapidOCR (``rapidocr-onnxruntime``, the optional extra
``.[ocr]``) bundles PP-OCRv4's ONNX detector and recogniser and runs offline. Its
recogniser rarely emits the space between two words of one line ("FENNICK CUP" is read
"FENNICKCUP"), so this reader puts the spaces back from the image: a run of blank
columns between two recognised characters at least ``space_gap`` times the text's
height wide is a space (:func:`insert_word_spaces`). Boxes the detector found on one
line are joined by a space, lines top to bottom (:func:`group_lines`).
``benchmarks/ocr_accuracy.py`` measures the letters and the spaces apart.
"""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from .registry import Registry

LINE_SEPARATOR = " / "


class OcrEngine(abc.ABC):
    """An image to the text it shows.

    Attributes:
        name: registry name.
    """

    name: str = "?"

    @abc.abstractmethod
    def read(self, image) -> str:
        """The text lines read in ``image`` (an RGB PIL image), joined by ``" / "``;
        ``""`` when there is none."""

    def config(self) -> dict:
        """Constructor kwargs that rebuild this engine with ``get_ocr_engine(name, **config)``."""
        return {}

    def describe(self) -> dict:
        """What the manifest records about this engine: its name, the settings that rebuild
        it (``config``) and, for an engine from a package, the package's version."""
        return {"engine": self.name, "config": self.config()}


# ---------------------------------------------------------------------------- the maths

def blank_runs(ink: np.ndarray) -> list[tuple[int, int]]:
    """The runs of columns without ink between two inked columns, as ``[start, end)``.

    >>> blank_runs(np.array([0, 1, 1, 0, 0, 1, 0, 1, 0], bool))
    [(3, 5), (6, 7)]
    """
    ink = np.asarray(ink, bool)
    inked = np.flatnonzero(ink)
    if len(inked) < 2:
        return []
    edges = np.flatnonzero(np.diff(ink[inked[0]:inked[-1] + 1].astype(np.int8)))   # ink/blank switches
    starts, ends = edges[::2] + 1 + inked[0], edges[1::2] + 1 + inked[0]
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def insert_word_spaces(text: str, centres, runs, text_height: float, space_gap: float) -> str:
    """``text`` with a space between characters ``k`` and ``k + 1`` wherever a blank run
    at least ``space_gap * text_height`` wide lies between their centres.

    Args:
        text: the characters as recognised, left to right (spaces it already has are kept).
        centres: each non-space character's x centre, same units as ``runs``.
        runs: ``[(start, end)]`` blank runs (:func:`blank_runs`).
        text_height: the height of the letters (inked rows), same units.
        space_gap: the least gap, in text heights, that separates two words.

    >>> insert_word_spaces("DRMAROVAN", [2, 8, 20, 26, 32, 38, 44, 50, 56], [(11, 17)], 10, 0.4)
    'DR MAROVAN'
    """
    chars = [c for c in text if c != " "]
    if len(chars) != len(centres):
        raise ValueError(f"{len(chars)} characters but {len(centres)} centres")
    centres = np.asarray(centres, float)
    after = set()                          # indices k of characters followed by a space
    for start, end in runs:
        if end - start >= space_gap * text_height:
            k = int(np.searchsorted(centres, (start + end) / 2)) - 1
            if 0 <= k < len(centres) - 1:
                after.add(k)
    out, k = [], 0
    for c in text:
        out.append(c)
        if c != " ":
            out.append(" " if k in after else "")
            k += 1
    return " ".join("".join(out).split())         # a space the recogniser emitted too counts once


def ink_profile(gray: np.ndarray) -> tuple[np.ndarray, float]:
    """Which columns of a text crop hold ink, and the letters' height in rows.

    The ink is the minority class of an Otsu threshold (dark letters on a light board or
    light on dark). Only the text's band is looked at: the longest run of rows inked over
    at least a quarter of the busiest row's share, so the edge of a photo caught above or
    below the board, or a descender, does not fill the gaps between words. A column is
    inked where two or more of the band's pixels are.

    Shapes:
        gray: (H, W) uint8 -> (W,) bool, float
    """
    import cv2

    _, bw = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = bw > 0
    if ink.mean() > 0.5:
        ink = ~ink
    rows = ink.mean(1)                                                       # (H,)
    band = np.concatenate([[False], rows >= 0.25 * rows.max(), [False]]) if rows.max() > 0 else None
    if band is None:
        return np.zeros(gray.shape[1], bool), float(gray.shape[0])
    edges = np.flatnonzero(np.diff(band.astype(np.int8)))                   # [start, end) pairs of row runs
    start, end = max(zip(edges[::2], edges[1::2]), key=lambda r: r[1] - r[0])
    return ink[start:end].sum(0) >= 2, float(end - start)


@dataclass
class Word:
    """A detected box's text. ``box``: (4, 2) corners, clockwise from top-left."""

    text: str
    score: float
    box: np.ndarray


def group_lines(words: list[Word]) -> list[str]:
    """Boxes on one line (their vertical centres within half the smaller box's height)
    joined by a space left to right; lines top to bottom.

    >>> b = lambda x, y: np.array([[x, y], [x + 30, y], [x + 30, y + 10], [x, y + 10]], float)
    >>> group_lines([Word("LIMIT", 1, b(50, 21)), Word("CITY", 1, b(10, 20)), Word("KRUNTA", 1, b(10, 2))])
    ['KRUNTA', 'CITY LIMIT']
    """
    def span(w):
        ys = w.box[:, 1]
        return (ys.min() + ys.max()) / 2, ys.max() - ys.min()

    lines: list[list[Word]] = []
    for w in sorted(words, key=lambda w: span(w)[0]):
        yc, h = span(w)
        if lines:
            lc, lh = span(lines[-1][-1])
            if abs(yc - lc) < 0.5 * max(1.0, min(h, lh)):
                lines[-1].append(w)
                continue
        lines.append([w])
    return [" ".join(w.text for w in sorted(ln, key=lambda w: w.box[:, 0].min())) for ln in lines]


# --------------------------------------------------------------------------- the engine

class RapidOcr(OcrEngine):
    """RapidOCR's PP-OCRv4 text detector and recogniser (ONNX, offline), with the spaces
    between words put back from the image and boxes on one line joined.

    Args:
        min_score: boxes the recogniser is less sure of than this are dropped.
        min_chars: lines with fewer letters and digits than this are dropped: on photos
            without text the detector finds the odd "O" in an eye or a "★" on a uniform.
        det_side: the detector sees the image with its shorter side scaled up to this
            (RapidOCR's default is 736; a larger image is seen at its own size). On the
            demo's 224-pixel photos 256 reads as well as 736 at a fifth of the time.
        space_gap: the least blank gap between two letters, in text heights, read as a
            space; 0 keeps only the spaces the recogniser emits.
        threads: onnxruntime's intra-op threads (``None``: onnxruntime's default, every
            core); it changes the speed, not the text. One thread reads faster where the
            cores are shared, and leaves the others to the embedder.

    Attributes:
        timing: seconds spent detecting and recognising, images read, and images where
            nothing was detected (so nothing was recognised), since construction.
    """

    name = "rapidocr"
    package = "rapidocr-onnxruntime"
    reader = 2          # 1: RapidOCR's own pipeline, words glued; 2: spaces from the image, boxes joined per line

    def __init__(self, min_score: float = 0.5, min_chars: int = 2, det_side: int = 256, space_gap: float = 0.37,
                 threads: int | None = 1):
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], found {min_score!r}")
        if min_chars < 0:
            raise ValueError(f"min_chars must be >= 0, found {min_chars!r}")
        if not 32 <= int(det_side) <= 2000:
            raise ValueError(f"det_side must be in [32, 2000] pixels, found {det_side!r}")
        if not 0.0 <= space_gap <= 5.0:
            raise ValueError(f"space_gap must be in [0, 5] text heights, found {space_gap!r}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1 or None, found {threads!r}")
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise ImportError("OCR needs the optional extra: pip install rapidocr-onnxruntime "
                              "(or pip install -e '.[ocr]'), or build without --ocr") from e
        self.min_score, self.min_chars = float(min_score), int(min_chars)
        self.det_side, self.space_gap, self.threads = int(det_side), float(space_gap), threads
        self.engine = RapidOCR(**({"intra_op_num_threads": int(threads)} if threads else {}))
        self.engine.text_det.limit_side_len = self.det_side
        self.charset = self.engine.text_rec.postprocess_op.character      # 0: the CTC blank
        self.timing = {"detect_s": 0.0, "recognise_s": 0.0, "images": 0, "nothing_detected": 0}

    def read(self, image) -> str:
        lines = group_lines([w for w in self.read_words(image) if w.score >= self.min_score])
        return LINE_SEPARATOR.join(t for t in lines if sum(c.isalnum() for c in t) >= self.min_chars)

    def read_words(self, image) -> list[Word]:
        """Every detected box's text and score, unfiltered; ``[]`` without recognising
        anything when nothing is detected."""
        img = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])      # the BGR RapidOCR expects
        img, _, _ = self.engine.preprocess(img)                                         # longest side <= 2000
        t = time.perf_counter()
        boxes, _ = self.engine.text_det(img)
        self.timing["detect_s"] += time.perf_counter() - t
        self.timing["images"] += 1
        if boxes is None or len(boxes) == 0:
            self.timing["nothing_detected"] += 1
            return []
        boxes = self.engine.sorted_boxes(boxes)
        t = time.perf_counter()
        words = [Word(text, score, np.asarray(box)) for (text, score), box
                 in zip(self.recognise(self.engine.get_crop_img_list(img, boxes)), boxes)]
        self.timing["recognise_s"] += time.perf_counter() - t
        return words

    def recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """Each crop's text (spaces put back) and mean character confidence.

        Each crop is recognised at its own width (at least the recogniser's 320 pixels at
        height 48), not padded to the widest of a batch: the recogniser's time grows with
        the width it is given, and batching saves nothing on a CPU.

        Shapes:
            crops: list of (h_i, w_i, 3) uint8 BGR -> list of (str, float)
        """
        rec = self.engine.text_rec
        _, height, width = rec.rec_image_shape
        out = []
        for crop in crops:
            ratio = max(width / height, crop.shape[1] / max(1, crop.shape[0]))
            norm = rec.resize_norm_img(crop, ratio).astype(np.float32)              # (3, 48, W)
            p = rec.session(norm[None])[0][0]                                       # (T, classes)
            idx = p.argmax(1)
            keep = np.ones(len(idx), bool)
            keep[1:] = idx[1:] != idx[:-1]
            keep &= idx != 0
            cols = np.flatnonzero(keep)
            text = "".join(self.charset[i] for i in idx[cols])
            score = float(p[cols, idx[cols]].mean()) if len(cols) else 0.0
            if self.space_gap > 0 and len(cols) > 1:
                text = self._space(text, cols, norm, crop, norm.shape[2] / p.shape[0])
            out.append((text.strip(), score))
        return out

    def _space(self, text: str, cols: np.ndarray, norm: np.ndarray, crop: np.ndarray, px_per_step: float) -> str:
        shown = min(norm.shape[2], int(np.ceil(norm.shape[1] * crop.shape[1] / max(1, crop.shape[0]))))
        gray = ((norm[:, :, :shown].mean(0) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)   # (48, shown)
        ink, text_height = ink_profile(gray)
        letters = [c for c, ch in zip(cols, text) if ch != " "]
        return insert_word_spaces(text, (np.asarray(letters) + 0.5) * px_per_step, blank_runs(ink), text_height,
                                  self.space_gap)

    def config(self) -> dict:
        return {"min_score": self.min_score, "min_chars": self.min_chars, "det_side": self.det_side,
                "space_gap": self.space_gap}

    def describe(self) -> dict:
        return {**super().describe(), "reader": self.reader, "package": self.package,
                "version": metadata.version(self.package), "onnxruntime": metadata.version("onnxruntime"),
                "models": "PP-OCRv4 det + rec, bundled"}


DEFAULT_OCR_ENGINE = "rapidocr"
OCR_ENGINES: Registry[OcrEngine] = Registry("OCR engine", {"rapidocr": RapidOcr}, default=DEFAULT_OCR_ENGINE)
list_ocr_engines = OCR_ENGINES.names
register_ocr_engine = OCR_ENGINES.register
get_ocr_engine = OCR_ENGINES.build    # get_ocr_engine(name="rapidocr", **constructor_kwargs)
