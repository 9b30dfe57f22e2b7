"""Reading the text in an image (OCR), behind one interface and a name registry.

>>> from index.ocr import get_ocr_engine, list_ocr_engines
>>> list_ocr_engines()
['rapidocr']
>>> get_ocr_engine("rapidocr").read(image)          # a PIL image -> "ZELBY / INC."

An engine returns the lines it read, best-first as the engine orders them, joined by
``" / "``. What made the text (engine, package version, settings) is recorded in an index
artifact's manifest by :meth:`OcrEngine.describe`, and :meth:`OcrEngine.config` rebuilds the
same engine with ``get_ocr_engine(name, **config)`` for images read later.

Only ``rapidocr`` is registered: RapidOCR (``rapidocr-onnxruntime``, the optional extra
``.[ocr]``) bundles its PP-OCRv4 ONNX models and runs offline. The PP-OCRv4 recogniser
rarely emits the space between two words of one line ("FENNICK CUP" is read
"FENNICKCUP"); ``benchmarks/ocr_accuracy.py`` measures that apart from the letters.
"""
from __future__ import annotations

import abc
from importlib import metadata
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


class RapidOcr(OcrEngine):
    """RapidOCR: PP-OCRv4 text detection and recognition as ONNX models, offline.

    Args:
        min_score: lines the recogniser is less sure of than this are dropped.
        min_chars: lines with fewer letters and digits than this are dropped: on photos
            without text the detector finds the odd "O" in an eye or a "★" on a uniform.
    """

    name = "rapidocr"
    package = "rapidocr-onnxruntime"

    def __init__(self, min_score: float = 0.5, min_chars: int = 2):
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], found {min_score!r}")
        if min_chars < 0:
            raise ValueError(f"min_chars must be >= 0, found {min_chars!r}")
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise ImportError("OCR needs the optional extra: pip install rapidocr-onnxruntime "
                              "(or pip install -e '.[ocr]'), or build without --ocr") from e
        self.engine = RapidOCR()
        self.min_score = float(min_score)
        self.min_chars = int(min_chars)

    def read(self, image) -> str:
        result, _ = self.engine(image)
        lines = [text.strip() for _, text, score in (result or []) if float(score) >= self.min_score]
        return LINE_SEPARATOR.join(t for t in lines if t and sum(c.isalnum() for c in t) >= self.min_chars)

    def config(self) -> dict:
        return {"min_score": self.min_score, "min_chars": self.min_chars}

    def describe(self) -> dict:
        return {**super().describe(), "package": self.package, "version": metadata.version(self.package),
                "onnxruntime": metadata.version("onnxruntime"), "models": "PP-OCRv4 det + rec, bundled"}


DEFAULT_OCR_ENGINE = "rapidocr"
OCR_ENGINES: Registry[OcrEngine] = Registry("OCR engine", {"rapidocr": RapidOcr}, default=DEFAULT_OCR_ENGINE)
list_ocr_engines = OCR_ENGINES.names
register_ocr_engine = OCR_ENGINES.register
get_ocr_engine = OCR_ENGINES.build    # get_ocr_engine(name="rapidocr", **constructor_kwargs)
