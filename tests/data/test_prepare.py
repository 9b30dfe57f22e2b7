import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from data.__main__ import main
from data.corpus import read_corpus
from data.errors import UserError
from data.prepare import check_image, counts_table, prepare, read_manifest


def _jpeg(seed: int, size=(24, 20)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _post(imgid: str, word: str = "Rome") -> str:
    return f"IMGID:{imgid}\nHi\tO\n{word}\tB-LOC\n\n"


@pytest.fixture
def tree(tmp_path):
    """train: 3 photos, 3 posts on one placeholder, a truncated JPEG, an empty file, a text
    file named .jpg, a missing photo; test (JSONL): a photo, the placeholder, no image."""
    img = tmp_path / "images"
    img.mkdir()
    for i in (1, 2, 3):
        (img / f"p{i}.jpg").write_bytes(_jpeg(i))
    placeholder = _jpeg(99)
    for name in ("ph1", "ph2", "ph3", "ph4"):
        (img / f"{name}.jpg").write_bytes(placeholder)
    (img / "trunc.jpg").write_bytes(_jpeg(5, (64, 64))[:300])
    (img / "empty.jpg").write_bytes(b"")
    (img / "text.jpg").write_text("not a photo")
    train = tmp_path / "train.txt"
    train.write_text("".join(_post(i) for i in ("p1", "p2", "p3", "ph1", "ph2", "ph3", "trunc", "empty",
                                                 "text", "gone")))
    test = tmp_path / "test.jsonl"
    rows = [{"id": "t1", "tokens": ["Paris"], "tags": ["B-LOC"], "image": "p1.jpg"},
            {"id": "t2", "tokens": ["Lyon"], "tags": ["B-LOC"], "image": "ph4.jpg"},
            {"id": "t3", "tokens": ["Nice"], "tags": ["B-LOC"], "image": None}]
    test.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path, img, train, test


def test_counts_every_post_once_and_nulls_all_but_usable(tree):
    root, img, train, test = tree
    m = prepare([str(train), str(test)], img, root / "prep", progress=False)
    tr, te = m["splits"]["train"], m["splits"]["test"]
    assert {k: tr[k] for k in ("posts", "usable", "missing", "unreadable", "placeholder", "none")} == \
        {"posts": 10, "usable": 3, "missing": 1, "unreadable": 3, "placeholder": 3, "none": 0}
    assert {k: te[k] for k in ("posts", "usable", "missing", "unreadable", "placeholder", "none")} == \
        {"posts": 3, "usable": 1, "missing": 0, "unreadable": 0, "placeholder": 1, "none": 1}
    # the prepared splits keep every post; only usable images survive, by name under the folder
    back = read_corpus(root / "prep" / "train.jsonl", img)
    assert [s.id for s in back] == ["p1", "p2", "p3", "ph1", "ph2", "ph3", "trunc", "empty", "text", "gone"]
    assert [s.image is not None for s in back] == [True] * 3 + [False] * 7
    assert not any(s.image_missing for s in back)                  # "no image", not "file not found"
    assert [s.meta["image_status"] for s in back][3:] == ["placeholder"] * 3 + ["unreadable"] * 3 + ["missing"]
    assert back[0].tags == ["O", "B-LOC"] and back[0].image_key == "p1"
    lines = [json.loads(x) for x in (root / "prep" / "test.jsonl").read_text().splitlines()]
    assert [x["image"] for x in lines] == ["p1.jpg", None, None]


def test_manifest_hashes_problems_and_placeholders(tree):
    root, img, train, test = tree
    m = prepare([str(train), str(test)], img, root / "prep", progress=False)
    assert read_manifest(root / "prep") == m
    assert m["images"]["p2"]["sha256"] == hashlib.sha256((img / "p2.jpg").read_bytes()).hexdigest()
    assert m["images"]["p2"]["status"] == "usable"
    assert m["images"]["gone"] == {"file": None, "status": "missing", "sha256": None}
    assert m["images"]["empty"]["problem"] == "empty file"
    assert m["images"]["text"]["problem"] == "not an image"
    assert m["images"]["trunc"]["problem"].startswith("unreadable image")
    assert [(p["names"], p["example"]) for p in m["placeholders"]] == [(4, "ph1.jpg")]
    # the collection digest changes when one image's bytes do, and only then
    again = prepare([str(train), str(test)], img, root / "prep2", progress=False)
    assert again["images_sha256"] == m["images_sha256"]
    (img / "p3.jpg").write_bytes(_jpeg(33))
    assert prepare([str(train), str(test)], img, root / "prep3", progress=False)["images_sha256"] != m["images_sha256"]


def test_keep_placeholders_and_threshold(tree):
    root, img, train, test = tree
    kept = prepare([str(train)], img, root / "a", keep_placeholders=True, progress=False)["splits"]["train"]
    assert (kept["usable"], kept["placeholder"], kept["placeholder_kept"]) == (6, 0, 3)
    # four names share the placeholder's bytes: a threshold of 5 no longer calls it one
    high = prepare([str(train)], img, root / "b", placeholder_min=5, progress=False)["splits"]["train"]
    assert (high["usable"], high["placeholder"]) == (6, 0)


def test_workers_give_the_same_manifest(tree):
    root, img, train, test = tree
    one = prepare([str(train), str(test)], img, root / "a", progress=False)
    two = prepare([str(train), str(test)], img, root / "b", workers=2, progress=False)
    assert one["images"] == two["images"] and one["splits"] == two["splits"]


def test_check_image_never_raises(tmp_path):
    assert check_image(tmp_path / "nothing.jpg").problem == "missing file"
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert check_image(tmp_path / "a.png").problem is not None


def test_cli_prints_the_table(tree, capsys):
    root, img, train, test = tree
    assert main(["prepare", "--data", str(train), f"heldout={test}", "--images", str(img),
                 "--out", str(root / "prep"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["split", "posts", "usable", "missing", "unreadable", "placeholder", "none"]
    assert out.splitlines()[1].split() == ["train", "10", "3", "1", "3", "3", "0"]
    assert out.splitlines()[2].split() == ["heldout", "3", "1", "0", "0", "1", "1"]
    assert out.splitlines()[3].split() == ["total", "13", "4", "1", "3", "4", "1"]
    assert "ph1.jpg, under 4 names" in out
    assert (root / "prep" / "heldout.jsonl").is_file()


def test_user_errors_name_the_input_and_the_fix(tree, tmp_path):
    root, img, train, test = tree
    with pytest.raises(UserError, match="no such folder"):
        prepare([str(train)], root / "nope", root / "p", progress=False)
    (root / "full").mkdir()
    (root / "full" / "x").write_text("x")
    with pytest.raises(UserError, match="--overwrite"):
        prepare([str(train)], img, root / "full", progress=False)
    with pytest.raises(UserError, match="two split files are both named 'train'"):
        prepare([str(train), str(train)], img, root / "p", progress=False)
    bad = root / "bad.txt"
    bad.write_text("IMGID:1\nHi\tX-PER\n")
    with pytest.raises(UserError, match=r"bad.txt:2.*unknown tag"):
        prepare([str(bad)], img, root / "p", progress=False)
    with pytest.raises(UserError, match="prepared collection"):
        read_manifest(root)
    assert not (root / "p").exists()          # nothing half-written on a refusal


def test_counts_table_aligns():
    t = counts_table({"a": {"posts": 1, "usable": 1}, "bb": {"posts": 10, "missing": 10}}, ["posts", "usable"])
    assert t.splitlines() == ["split  posts  usable", "a          1       1", "bb        10       0",
                              "total     11       1"]
