"""`index build` over the broken files a scraped image folder holds: every good image is
embedded, every bad one is listed in the manifest with why, and nothing else is raised."""
import json

import numpy as np
from PIL import Image

from index.__main__ import main as index_main
from tests.colour import ColourEmbedder  # noqa: F401  (registers test_colour)


def write_broken_folder(d):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    img.save(d / "good.jpg")
    data = (d / "good.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (d / "zero.jpg").write_bytes(b"")
    img.save(d / "png_named.jpg", format="PNG")
    Image.new("1", (20000, 20000)).save(d / "huge.png")                 # 400M pixels, a few KB on disk
    img.convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 65535, (32, 32)).astype(np.uint16)).save(d / "sixteen_bit.png")
    frames = [Image.new("P", (32, 32), i) for i in range(3)]
    frames[0].save(d / "animated.gif", save_all=True, append_images=frames[1:])
    (d / "text.jpg").write_text("not an image")


def test_index_build_survives_every_broken_file(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_broken_folder(images)
    out = tmp_path / "index"
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(images),
                       "--out", str(out)]) == 0
    m = json.loads((out / "manifest.json").read_text())
    problems = {p["id"]: p["problem"] for p in m["problems"]}
    assert set(problems) == {"truncated", "zero", "huge", "text"}
    assert problems["zero"] == "empty file" and problems["text"] == "not an image"
    assert problems["truncated"].startswith("unreadable image") and problems["huge"].startswith("too large")
    ids = json.loads((out / "ids.json").read_text())
    assert sorted(ids) == ["animated", "cmyk", "good", "png_named", "sixteen_bit"]
