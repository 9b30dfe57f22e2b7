"""Image-to-text: object tags (from an embedder's class logits) and OCR text.

Stored in the artifact as ``tags.jsonl``, one line per image:
``{"id": ..., "tags": [{"label": str, "score": float}, ...], "ocr": str}``.
OCR uses ``rapidocr-onnxruntime`` (optional extra ``.[ocr]``; bundles its ONNX models).
"""
from __future__ import annotations

import json
import os
from typing import Iterable


class OcrEngine:
    """RapidOCR (PP-OCRv4 ONNX, offline). ``read(path) -> str`` (lines joined by " / ")."""

    def __init__(self, min_score: float = 0.5):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:
            raise ImportError("OCR needs the optional extra: pip install rapidocr-onnxruntime "
                              "(or pip install -e '.[ocr]'), or build without --ocr") from e
        self.engine = RapidOCR()
        self.min_score = min_score

    def read(self, path: str | os.PathLike) -> str:
        result, _ = self.engine(str(path))
        lines = [text for _, text, score in (result or []) if float(score) >= self.min_score]
        return " / ".join(t.strip() for t in lines if t.strip())


def tag_record(image_id: str, tags: list[tuple[str, float]], ocr: str = "") -> dict:
    """One ``tags.jsonl`` line as a dict."""
    return {"id": image_id, "tags": [{"label": lab, "score": round(float(s), 6)} for lab, s in tags],
            "ocr": ocr}


def write_tags_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_tags_jsonl(path: str | os.PathLike) -> tuple[dict[str, list[tuple[str, float]]], dict[str, str]]:
    """``(tags: id -> [(label, score)], ocr: id -> text)``; empty when the file is absent."""
    tags, ocr = {}, {}
    if not os.path.isfile(path):
        return tags, ocr
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            tags[r["id"]] = [(t["label"], float(t["score"])) for t in r.get("tags", [])]
            ocr[r["id"]] = r.get("ocr", "")
    return tags, ocr
