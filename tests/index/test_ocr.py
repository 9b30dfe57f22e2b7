"""OCR reads the text the demo draws onto real packaged photos."""
import numpy as np
import pytest

from data.demo_photos import augment, draw_sign, load_sources
from index.ocr import RapidOcr, get_ocr_engine, list_ocr_engines


def letters(text: str) -> str:
    """Upper-case, line separators and spaces removed: the letters a reader must get right
    (PP-OCRv4 rarely emits the space between two words of one line)."""
    return "".join(text.replace(" / ", " ").upper().split())


@pytest.fixture(scope="module")
def engine():
    return get_ocr_engine("rapidocr")


@pytest.mark.parametrize("photo, entity_type, seed", [("coffee", "ORG", 1), ("astronaut", "PER", 2)])
def test_reads_a_sign_drawn_on_a_packaged_photo(engine, photo, entity_type, seed):
    rng = np.random.default_rng(seed)
    view = augment(load_sources([photo])[photo], rng)          # the demo's own photo pipeline
    image, sign = draw_sign(view, "Zelby", entity_type, rng)
    read = engine.read(image)
    assert "ZELBY" in sign and letters(read) == letters(sign), (sign, read)
    assert "ZELBY" not in letters(engine.read(view))           # the name came from the sign


def test_unsure_and_too_short_lines_are_dropped(monkeypatch, engine):
    box = [[0, 0]] * 4
    lines = [[box, "ZELBY", 0.9], [box, "~xy", 0.2], [box, "O", 0.9], [box, "★★", 0.95], [box, "10", 0.8]]
    monkeypatch.setattr(engine, "engine", lambda image: (lines, None))
    assert engine.read(None) == "ZELBY / 10"
    monkeypatch.setattr(engine, "min_score", 0.1)
    assert engine.read(None) == "ZELBY / ~xy / 10"
    monkeypatch.setattr(engine, "min_chars", 0)
    assert engine.read(None) == "ZELBY / ~xy / O / ★★ / 10"


def test_registry_and_settings():
    assert list_ocr_engines() == ["rapidocr"]
    with pytest.raises(KeyError, match="valid names are rapidocr"):
        get_ocr_engine("tesseract")
    with pytest.raises(ValueError, match=r"min_score must be in \[0, 1\], found 2"):
        RapidOcr(min_score=2)
    d = RapidOcr(min_score=0.6).describe()
    assert d["engine"] == "rapidocr" and d["config"] == {"min_score": 0.6, "min_chars": 2}
    assert d["package"] == "rapidocr-onnxruntime" and d["version"][0].isdigit()
