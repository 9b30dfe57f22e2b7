import hashlib
import json

import numpy as np
import pytest

import data.demo as demo
from data.corpus import read_corpus, tokenize_post

SIZES = dict(n_train=12, n_valid=4, n_test=4)


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "demo"
    summary = demo.generate(out, seed=0, **SIZES)
    return out, summary


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_split_reads_with_its_images(tiny_demo):
    out, summary = tiny_demo
    assert sorted(p.name for p in out.iterdir()) == ["images", "manifest.json", "test.jsonl", "train.jsonl",
                                                     "valid.jsonl"]
    for split, n in zip(demo.SPLITS, SIZES.values()):
        corpus = read_corpus(out / f"{split}.jsonl", out / "images", require_tags=True)
        assert len(corpus) == n
        assert not any(s.image_missing for s in corpus) and all(s.image for s in corpus)
        assert all(s.meta["image_class"] in demo.list_photo_classes() for s in corpus)
    assert summary["splits"]["train"]["posts"] == 12 and summary["out_dir"] == str(out)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 0


def test_images_are_distinct_jpegs(tiny_demo):
    from PIL import Image

    out, _ = tiny_demo
    files = sorted((out / "images").iterdir())
    assert len(files) == sum(SIZES.values())
    assert len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) == len(files)
    for f in files[:3]:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and min(im.size) == demo.SHORT_SIDE


def test_image_decided_spans_are_entities_of_the_class_type(tiny_demo):
    out, _ = tiny_demo
    types = {c.name: c.entity_type for c in demo.PHOTO_CLASSES}
    for split in demo.SPLITS:
        for r in _records(out / f"{split}.jsonl"):
            spans = {(s, e): t for s, e, t in demo.entity_spans(r["tags"])}
            assert len(r["image_decided"]) == 1
            for s, e in r["image_decided"]:
                assert spans[(s, e)] == types[r["image_class"]]
                assert all(tok.lower().capitalize() in demo.AMBIGUOUS_NAMES for tok in r["tokens"][s:e])
            assert tokenize_post(" ".join(r["tokens"])) == r["tokens"]   # tokens as the reader splits them
            ordered = sorted(spans)
            for (_, end), (start, _) in zip(ordered, ordered[1:]):       # two names never touch
                assert start > end or r["tokens"][start].startswith("#")


def test_classes_balanced_and_ceiling_stated(tiny_demo):
    _, summary = tiny_demo
    for split, n in zip(demo.SPLITS, SIZES.values()):
        s = summary["splits"][split]
        counts = list(s["image_decided"].values())
        assert sum(counts) == n and max(counts) - min(counts) <= 1
        assert s["text_only_ceiling"]["image_decided_f1"] == pytest.approx(max(counts) / n, abs=1e-4)
    assert set(summary["classes"]) == set(demo.list_photo_classes())
    assert all(len(c["sources"]) >= 2 for c in summary["classes"].values())
    assert "text-only" in summary["text_only_ceiling"]["explanation"]


def test_text_only_ceiling_by_hand():
    # T=10, I=10, p=0.25: guessing gives 12.5/20 = 0.625, abstaining 20/30 = 0.667
    assert demo.text_only_ceiling(10, 10, 0.25)["micro_f1"] == pytest.approx(0.6667, abs=1e-4)
    assert demo.text_only_ceiling(30, 10, 0.25)["micro_f1"] == pytest.approx((10 + 7.5) / 40)


def test_text_ignores_the_class():
    # the same random stream gives the same words whatever the type: text cannot tell classes apart
    posts = [demo.make_post(np.random.default_rng(7), t) for t in demo.ENTITY_TYPES]
    assert all(p[0] == posts[0][0] and p[2] == posts[0][2] for p in posts)


def test_entity_spans():
    assert demo.entity_spans(["B-PER", "I-PER", "O", "I-LOC", "B-ORG", "I-MISC"]) == [
        (0, 2, "PER"), (3, 4, "LOC"), (4, 5, "ORG"), (5, 6, "MISC")]


def test_deterministic_for_a_seed(tmp_path, tiny_demo):
    first, _ = tiny_demo
    again = demo.generate(tmp_path / "again", seed=0, **SIZES)
    other = demo.generate(tmp_path / "other", seed=1, **SIZES)

    def digest(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    assert digest(first) == digest(tmp_path / "again")
    assert again["splits"] == json.loads((first / "manifest.json").read_text())["splits"]
    assert other["splits"]["train"]["sha256"] != again["splits"]["train"]["sha256"]


def test_no_half_output_on_failure(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = demo._write_image

    def fail_late(path, data):
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(demo, "_write_image", fail_late)
    with pytest.raises(OSError, match="disk full"):
        demo.generate(tmp_path / "demo", seed=0, **SIZES)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_foreign_folder_but_replaces_its_own(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a demo"):
        demo.generate(foreign, n_train=2, n_valid=0, n_test=0)
    assert (foreign / "notes.txt").read_text() == "keep me"

    out = tmp_path / "demo"
    demo.generate(out, seed=0, n_train=2, n_valid=0, n_test=0)
    demo.generate(out, seed=1, n_train=3, n_valid=0, n_test=0)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    assert len(list((out / "images").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "mine"]


def test_bad_sizes():
    with pytest.raises(ValueError, match="n_valid must be a non-negative integer"):
        demo.generate("unused", n_valid=-1)


def test_main_generate(tmp_path, capsys):
    assert demo.main(["generate", "--out", str(tmp_path / "d"), "--n-train", "4", "--n-valid", "0",
                      "--n-test", "0", "--seed", "3", "--quiet"]) == 0
    assert "text-only F1" in capsys.readouterr().out
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["seed"] == 3


def test_new_posts_share_one_text_and_name_their_photos_freely(tmp_path):
    from data.demo import NEW_POST_TEXT, write_new_posts

    path = write_new_posts(tmp_path)
    posts = read_corpus(path, tmp_path / "images")
    assert [s.tokens for s in posts] == [tokenize_post(NEW_POST_TEXT)] * 2
    assert [s.meta["photo"] for s in posts] == ["astronaut", "chelsea"]
    assert all(s.image and s.image_key != s.id for s in posts)          # found by the image field
