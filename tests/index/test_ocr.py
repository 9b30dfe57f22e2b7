"""OCR reads the text the demo draws onto real packaged photos, with the spaces between
its words; the spacing and line grouping as pure functions on hand-placed boxes."""
import logging
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageDraw

from data.demo_photos import augment, draw_sign, load_sources, sign_font
from index.artifact import ocr_engine_of, ocr_reader
from index.ocr import (RapidOcr, Word, blank_runs, get_ocr_engine, group_lines, ink_profile, insert_word_spaces,
                       list_ocr_engines)


def normalised(text: str) -> str:
    """Upper-case, the line separator a space, whitespace collapsed: spaces between words count."""
    return " ".join(text.replace(" / ", " ").upper().split())


@pytest.fixture(scope="module")
def engine():
    return get_ocr_engine("rapidocr")


# --------------------------------------------------------------------------- pure parts

def synthetic_line(widths_and_gaps: list[tuple[int, int]], height: int = 14) -> np.ndarray:
    """A (height + 6, W) crop, dark letters on white: each letter the outline (2 pixels
    thick) of a box of the given width, followed by a blank gap of the given width."""
    width = 6 + sum(w + gap for w, gap in widths_and_gaps)
    img = np.full((height + 6, width), 255, np.uint8)
    x = 3
    for w, gap in widths_and_gaps:
        img[3:3 + height, x:x + w] = 0
        img[5:1 + height, x + 2:x + w - 2] = 255
        x += w + gap
    return img


def centres(widths_and_gaps):
    x, out = 3, []
    for w, gap in widths_and_gaps:
        out.append(x + w / 2)
        x += w + gap
    return out


@pytest.mark.parametrize("inside, between", [(0, 7), (2, 10), (4, 13), (5, 9)])
def test_spaces_from_the_gaps_between_letter_boxes(inside, between):
    # letters 10 wide, 14 high: inside a word 0-0.5 widths apart, between words 0.7-1.3
    text = "MOSSVELFORMAYOR"
    ends = {6, 9}                                  # MOSSVEL | FOR | MAYOR
    boxes = [(10, between if k in ends else inside) for k in range(len(text))]
    boxes[-1] = (10, 0)
    gray = synthetic_line(boxes)
    ink, height = ink_profile(gray)
    assert height == 14 and ink.sum() == 10 * len(text)
    got = insert_word_spaces(text, centres(boxes), blank_runs(ink), height, space_gap=0.37)
    assert got == "MOSSVEL FOR MAYOR"


def test_spacing_keeps_the_recognisers_spaces_and_ignores_gaps_outside_the_letters():
    cs = [5, 15, 45, 55]
    assert insert_word_spaces("ABCD", cs, [(20, 40)], 10, 0.37) == "AB CD"
    assert insert_word_spaces("AB CD", cs, [(20, 40)], 10, 0.37) == "AB CD"          # counted once
    assert insert_word_spaces("AB CD", cs, [], 10, 0.37) == "AB CD"
    assert insert_word_spaces("ABCD", cs, [(60, 90), (0, 3)], 10, 0.37) == "ABCD"    # before/after the text
    assert insert_word_spaces("ABCD", cs, [(20, 23)], 10, 0.37) == "ABCD"            # 0.3 heights: one word
    with pytest.raises(ValueError, match="4 characters but 3 centres"):
        insert_word_spaces("ABCD", cs[:3], [], 10, 0.37)
    assert blank_runs(np.array([0, 0, 1, 0, 1, 1, 0, 0, 1, 0], bool)) == [(3, 4), (6, 8)]
    assert blank_runs(np.zeros(5, bool)) == [] and blank_runs(np.array([1, 0, 0], bool)) == []


def test_a_photo_edge_under_the_board_does_not_fill_the_gap():
    boxes = [(10, 2), (10, 9), (10, 0)]
    gray = synthetic_line(boxes)
    gray[-2:, :] = 0                                # a dark strip below the letters, across the gap
    ink, height = ink_profile(gray)
    assert height == 14
    assert insert_word_spaces("ABC", centres(boxes), blank_runs(ink), height, 0.37) == "AB C"


def test_boxes_on_one_line_are_joined_and_lines_read_top_to_bottom():
    def box(x, y, w=30, h=10):
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], float)

    words = [Word("LIMIT", 0.9, box(60, 31)), Word("KRUNTA", 0.9, box(20, 5)), Word("CITY", 0.9, box(10, 30)),
             Word("12 KM", 0.9, box(10, 55))]
    assert group_lines(words) == ["KRUNTA", "CITY LIMIT", "12 KM"]
    assert group_lines([]) == []


# ------------------------------------------------------------------------ with RapidOCR

def test_a_rendered_sign_is_read_with_its_spaces(engine):
    img = Image.new("RGB", (300, 70), (25, 45, 120))
    draw = ImageDraw.Draw(img)
    draw.text((10, 8), "MOSSVEL FOR MAYOR", font=sign_font(24), fill=(255, 255, 255))
    draw.text((100, 38), "VOTE", font=sign_font(24), fill=(255, 255, 255))
    assert engine.read(img) == "MOSSVEL FOR MAYOR / VOTE"
    glued = RapidOcr(space_gap=0.0)                       # the recogniser alone glues the words
    assert glued.read(img).replace(" / ", "/").count(" ") < 2


@pytest.mark.parametrize("photo, entity_type, seed", [("coffee", "ORG", 1), ("astronaut", "PER", 2)])
def test_reads_a_sign_drawn_on_a_packaged_photo(engine, photo, entity_type, seed):
    rng = np.random.default_rng(seed)
    view = augment(load_sources([photo])[photo], rng)          # the demo's own photo pipeline
    image, sign = draw_sign(view, "Zelby", entity_type, rng)
    read = engine.read(image)
    assert "ZELBY" in sign and normalised(read) == normalised(sign), (sign, read)
    assert "ZELBY" not in engine.read(view).replace(" ", "")   # the name came from the sign


def test_nothing_detected_means_nothing_recognised(monkeypatch):
    engine = RapidOcr()

    def no_recognition(crops):
        raise AssertionError("recognised crops of an image where nothing was detected")

    monkeypatch.setattr(engine, "recognise", no_recognition)
    assert engine.read(Image.new("RGB", (224, 224), (120, 160, 90))) == ""
    assert engine.timing["images"] == 1 and engine.timing["nothing_detected"] == 1
    assert engine.timing["recognise_s"] == 0.0 and engine.timing["detect_s"] > 0


def test_unsure_and_too_short_lines_are_dropped(monkeypatch, engine):
    def box(y):
        return np.array([[0, y], [50, y], [50, y + 10], [0, y + 10]], float)

    words = [Word("ZELBY", 0.9, box(0)), Word("~xy", 0.2, box(20)), Word("O", 0.9, box(40)),
             Word("★★", 0.95, box(60)), Word("10", 0.8, box(80))]
    monkeypatch.setattr(engine, "read_words", lambda image: words)
    assert engine.read(None) == "ZELBY / 10"
    monkeypatch.setattr(engine, "min_score", 0.1)
    assert engine.read(None) == "ZELBY / ~xy / 10"
    monkeypatch.setattr(engine, "min_chars", 0)
    assert engine.read(None) == "ZELBY / ~xy / O / ★★ / 10"


def test_registry_settings_and_reader_version():
    assert list_ocr_engines() == ["rapidocr"]
    with pytest.raises(KeyError, match="valid names are rapidocr"):
        get_ocr_engine("tesseract")
    with pytest.raises(ValueError, match=r"min_score must be in \[0, 1\], found 2"):
        RapidOcr(min_score=2)
    with pytest.raises(ValueError, match=r"det_side must be in \[32, 2000\] pixels, found 8"):
        RapidOcr(det_side=8)
    with pytest.raises(ValueError, match="threads must be >= 1 or None, found 0"):
        RapidOcr(threads=0)
    d = RapidOcr(min_score=0.6, det_side=320).describe()
    assert d["engine"] == "rapidocr" and d["reader"] == 2
    assert d["config"] == {"min_score": 0.6, "min_chars": 2, "det_side": 320, "space_gap": 0.37}
    assert d["package"] == "rapidocr-onnxruntime" and d["version"][0].isdigit()
    assert RapidOcr(**d["config"]).config() == d["config"]


def test_an_index_read_by_the_old_reader_is_told_apart(caplog):
    new = RapidOcr().describe()
    old = {"engine": "rapidocr", "config": {"min_score": 0.5, "min_chars": 2}, "package": "rapidocr-onnxruntime",
           "version": new["version"]}                                    # what indexes recorded before readers
    assert ocr_reader(old) == 1 and ocr_reader(new) == 2 and ocr_reader(None) is None

    def artifact(info):
        return SimpleNamespace(path="idx", manifest={"visual_context": {"tags": None, "ocr": info, "captions": None}})

    with caplog.at_level(logging.WARNING, logger="index.artifact"):
        assert ocr_engine_of(artifact(new)).config() == new["config"]
        assert not caplog.records
        ocr_engine_of(artifact(old))
    assert "reader 1" in caplog.text and "rebuild the index with --ocr" in caplog.text
