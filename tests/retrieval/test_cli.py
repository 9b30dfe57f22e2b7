"""End-to-end: a real tiny index (EfficientNet-Lite0 over images drawn here), the CLI's
show / report / stats, and the report rendered in headless Chromium."""
import json
import re
import subprocess

import numpy as np
import pytest

from retrieval.__main__ import main

TRAIN = """IMGID:101
Rome	B-LOC
sun	O

IMGID:102
Lakers	B-ORG
win	O

IMGID:103
Obama	B-PER
speaks	O

IMGID:104
Madrid	B-LOC
night	O

IMGID:105
Messi	B-PER
goal	O
"""
TEST = """IMGID:201
Paris	B-LOC
sun	O

IMGID:202
Kobe	B-PER
dunk	O

IMGID:203
no	O
image	O
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from PIL import Image, ImageDraw

    from index.build import build_index

    root = tmp_path_factory.mktemp("world")
    img = root / "images"
    img.mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i, iid in enumerate(["101", "102", "103", "104", "105", "201", "202"]):
        im = Image.new("RGB", (96, 96), tuple(int(c) for c in rng.integers(0, 255, 3)))
        d = ImageDraw.Draw(im)
        (d.ellipse if i % 2 else d.rectangle)([20, 20, 76, 76], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        im.save(img / f"{iid}.jpg")
        images.append((iid, str(img / f"{iid}.jpg")))
    build_index(images, "efficientnet_lite0", root / "index", progress=False)
    (root / "train.txt").write_text(TRAIN)
    (root / "test.txt").write_text(TEST)
    return root


def args(world, tiny_encoder, *extra):
    return ["--index", str(world / "index"), "--data", f"train={world / 'train.txt'}", f"test={world / 'test.txt'}",
            "--images", str(world / "images"), "--k", "2", "--text-model", tiny_encoder,
            "--cache", str(world / "cache"), "--quiet", *extra]


def test_show(world, tiny_encoder, capsys):
    assert main(["show", "201", *args(world, tiny_encoder)]) == 0
    out = capsys.readouterr().out
    assert "post 201 (test)" in out and "labels: LOC" in out
    for rel in ("inter", "intra", "tags"):
        assert re.search(rf"^{rel} ", out, re.M)
    assert re.search(r"^1\s+10[1-5]\s+0\.\d{3}\s+train", out, re.M)     # training neighbours only
    assert "20" not in "".join(re.findall(r"^\d\s+(\d+)", out, re.M)[:1])


def test_show_in_chunks_of_two_posts_gives_the_same_neighbours(world, tiny_encoder, capsys, tmp_path):
    assert main(["show", "201", *args(world, tiny_encoder)]) == 0
    whole = capsys.readouterr().out
    assert main(["show", "201", *args(world, tiny_encoder), "--cache", str(tmp_path), "--chunk-size", "2"]) == 0
    assert capsys.readouterr().out == whole
    assert json.loads(next(tmp_path.glob("*/manifest.json")).read_text())["chunk_size"] == 2


def test_show_post_without_image(world, tiny_encoder, capsys):
    assert main(["show", "203", *args(world, tiny_encoder)]) == 0
    out = capsys.readouterr().out
    assert "image:  none (no image" in out
    assert re.search(r"^intra .*0 neighbour", out, re.M)
    assert re.search(r"^inter .*2 neighbour", out, re.M)


def test_unknown_id_and_empty_pool(world, tiny_encoder, capsys):
    assert main(["show", "999", *args(world, tiny_encoder)]) == 2
    assert "'999' is in none of the splits" in capsys.readouterr().err
    empty = world / "nothing.txt"
    empty.write_text("IMGID:900\nhello\tO\n")
    a = args(world, tiny_encoder)
    a[a.index("--data") + 1] = f"train={empty}"
    assert main(["show", "201", *a]) == 2
    assert "pool is empty" in capsys.readouterr().err


def test_report(world, tiny_encoder):
    out = world / "report.html"
    assert main(["report", *args(world, tiny_encoder), "--ids", "201", "203", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.count("data:image/jpeg;base64,") == page.count('data-thumb="1"') >= 1 + 3 * 2 + 2
    assert "src=\"file:" not in page and "http" not in page                # self-contained
    assert 'id="post-203"' in page and "the post has no image" in page


def test_stats(world, tiny_encoder, capsys):
    out = world / "stats"
    assert main(["stats", *args(world, tiny_encoder), "--out", str(out)]) == 0
    for f in ("similarity_hist.png", "degree_hist.png", "label_agreement.png", "label_agreement.json"):
        assert (out / f).stat().st_size > 0
    s = json.loads((out / "label_agreement.json").read_text())
    assert set(s["relations"]) == {"inter", "intra", "tags"}
    a = s["relations"]["intra"]["agreement"]["test"]
    assert a["queries"] == 2 and 0 <= a["agreement"] <= 1 and 0 <= a["random"] <= 1
    assert "label agreement" in capsys.readouterr().out


@pytest.mark.browser
def test_report_renders_in_chromium(chromium, world, tiny_encoder, tmp_path):
    page = world / "report_browser.html"
    assert main(["report", *args(world, tiny_encoder), "--sample", "3", "--seed", "1", "--out", str(page)]) == 0
    probe = tmp_path / "probe.html"
    script = ("<script>window.addEventListener('load',function(){var w=[];"
              "document.querySelectorAll('img[data-thumb]').forEach(function(i){w.push(i.naturalWidth)});"
              "var p=document.createElement('pre');p.id='widths';p.textContent=JSON.stringify(w);"
              "document.body.appendChild(p)});</script>")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
             "--virtual-time-budget=5000"]
    dom = subprocess.run(flags + ["--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r'<pre id="widths">(\[.*?\])</pre>', dom)
    assert m, f"the probe script did not run; chromium printed: {dom[:300]!r}"
    widths = json.loads(m.group(1))
    assert len(widths) == page.read_text().count('data-thumb="1"') > 0
    assert all(w > 0 for w in widths), f"thumbnails that did not render: {widths}"
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
                   capture_output=True, timeout=60)
    from PIL import Image

    im = np.asarray(Image.open(shot).convert("L"))
    assert im.shape == (900, 1200) and im.std() > 10                   # not a blank page


def test_show_and_stats_when_images_are_not_named_by_post_id(tmp_path, capsys):
    from index.__main__ import main as index_main
    from tests.colour import write_image_decided

    files = write_image_decided(tmp_path / "data", sizes=(("train", 8), ("test", 2)), image_name="photo-{i}-{split}.png")
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(tmp_path / "data/images"),
                       "--data", *files.values(), "--out", str(tmp_path / "index")]) == 0
    common = ["--index", str(tmp_path / "index"), "--data", f"train={files['train']}", f"test={files['test']}",
              "--images", str(tmp_path / "data/images"), "--k", "2", "--relations", "intra", "tags",
              "--cache", str(tmp_path / "cache"), "--quiet"]
    assert main(["show", "test-001", *common]) == 0
    out = capsys.readouterr().out
    assert "post test-001 (test)" in out
    assert re.search(r"^1\s+photo-\d-train\s+\d\.\d{3}\s+train", out, re.M)   # the neighbour's own post is found
    assert main(["stats", *common, "--out", str(tmp_path / "stats")]) == 0
    s = json.loads((tmp_path / "stats" / "label_agreement.json").read_text())
    assert s["pool_images"] == 8
    assert s["relations"]["intra"]["agreement"]["test"]["agreement"] == 1.0     # same colour, same type


def test_show_names_the_posts_kind():
    from retrieval.report import PostView, show_text

    view = PostView("p1", "test", "Coach Zelby", frozenset({"PER"}), None, [], kind="conflicting_image")
    assert show_text(view, {}, {}, set()).splitlines()[0] == "post p1 (test), kind conflicting_image"
