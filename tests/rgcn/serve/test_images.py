"""rgcn/serve/images.py: upload checks, paths kept inside their folder, thumbnails."""
import json
import os

import pytest

from benchmarks.serve_bad_inputs import bomb_png, photo_bytes, truncated_jpeg
from rgcn.serve.images import (BadInput, check_upload, find_image, resolve_inside, run_image_folders,
                               thumbnail)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_whole_images_pass(fmt):
    assert check_upload(photo_bytes(fmt=fmt), 10**6) == (fmt, (64, 48))


@pytest.mark.parametrize("data, status, says", [
    (b"", 422, "empty"), (b"GIF89a" + b"\0" * 10, 415, "not an image"), (truncated_jpeg(), 422, "truncated"),
    (bomb_png(), 413, "900 megapixels"), (bomb_png(5000, 5000), 413, "5000 x 5000 pixels (25 megapixels)"),
    (photo_bytes() + b"\0" * 20_000, 413, "over the limit")])
def test_bad_uploads(data, status, says):
    with pytest.raises(BadInput) as e:
        check_upload(data, max_bytes=20_000, max_pixels=10_000_000)
    assert e.value.status == status and says in str(e.value)


def test_the_bomb_is_small_and_refused_before_decoding():
    import time

    assert len(bomb_png()) < 10_000
    t0 = time.perf_counter()
    with pytest.raises(BadInput, match="9000 x 9000 pixels"):     # under PIL's own limit: ours refuses it
        check_upload(bomb_png(9000, 9000), 10**6, max_pixels=50_000_000)
    assert time.perf_counter() - t0 < 0.5                         # no 81-megapixel decode happened


def test_resolve_inside(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.jpg").write_bytes(b"x")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    os.symlink(tmp_path / "secret.jpg", root / "out.jpg")
    os.symlink(root / "sub" / "a.jpg", root / "in.jpg")
    os.symlink(tmp_path, root / "updir")
    assert resolve_inside(root, "sub/a.jpg") == (root / "sub" / "a.jpg").resolve()
    assert resolve_inside(root, "in.jpg") == (root / "sub" / "a.jpg").resolve()   # a link that stays inside
    for name, status in [("../secret.jpg", 403), ("sub/../../secret.jpg", 403), (str(tmp_path / "secret.jpg"), 403),
                         ("out.jpg", 403), ("updir/secret.jpg", 403), ("C:\\x.jpg", 403), ("..\\secret.jpg", 403),
                         ("nope.jpg", 404), ("", 422), ("a\0b", 422)]:
        with pytest.raises(BadInput) as e:
            resolve_inside(root, name)
        assert e.value.status == status, name


def test_find_image_and_thumbnail(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (b / "7.png").write_bytes(photo_bytes((300, 200), fmt="PNG"))
    (a / "notes.txt").write_text("x")
    assert find_image([a, b], "7") == (b / "7.png").resolve()
    for bad in ("notes", "../b/7", "7/..", ""):
        with pytest.raises(BadInput):
            find_image([a, b], bad)
    from io import BytesIO

    from PIL import Image

    im = Image.open(BytesIO(thumbnail(b / "7.png", side=64)))
    assert im.format == "JPEG" and max(im.size) == 64


def test_run_image_folders_read_the_config_and_the_index_manifest(tmp_path):
    imgs, idx_imgs, index = tmp_path / "imgs", tmp_path / "idx_imgs", tmp_path / "index"
    for d in (imgs, idx_imgs, index):
        d.mkdir()
    (index / "manifest.json").write_text(json.dumps({"image_dir": str(idx_imgs)}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": {"images": str(imgs)},
                                                 "head": {"name": "rgcn", "options": {"index": str(index)}}}))
    assert run_image_folders([run, run]) == [idx_imgs.resolve(), imgs.resolve()]
    assert run_image_folders([tmp_path / "none"]) == []
