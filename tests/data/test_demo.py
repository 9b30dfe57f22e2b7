import hashlib
import json
from collections import Counter

import numpy as np
import pytest

import data.demo as demo
from data.corpus import read_corpus, tokenize_post
from data.spans import get_spans

SIZES = dict(n_train=20, n_valid=10, n_test=20)
TYPE_OF_CLASS = {c.name: c.entity_type for c in demo.PHOTO_CLASSES}


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "demo"
    summary = demo.generate(out, seed=0, **SIZES)
    return out, summary


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _all_records(out):
    return {split: _records(out / f"{split}.jsonl") for split in demo.SPLITS}


def _target_type(r):
    (s, e), = r["target"]
    return {(a, b): t for t, a, b in get_spans(r["tags"])}[(s, e)]


def test_every_split_reads_with_its_images(tiny_demo):
    out, summary = tiny_demo
    assert sorted(p.name for p in out.iterdir()) == ["images", "manifest.json", "test.jsonl", "train.jsonl",
                                                     "valid.jsonl"]
    for split, n in zip(demo.SPLITS, SIZES.values()):
        corpus = read_corpus(out / f"{split}.jsonl", out / "images", require_tags=True)
        assert len(corpus) == n
        assert not any(s.image_missing for s in corpus)          # a post without an image is not "missing"
        for s in corpus:
            assert bool(s.image) == (s.meta["kind"] != "no_image")
            assert s.meta["kind"] in demo.KIND_NAMES
    assert summary["splits"]["train"]["posts"] == 20 and summary["out_dir"] == str(out)
    assert json.loads((out / "manifest.json").read_text())["seed"] == 0


def test_images_are_distinct_jpegs(tiny_demo):
    from PIL import Image

    out, _ = tiny_demo
    files = sorted((out / "images").iterdir())
    n_with_image = sum(r["image"] is not None for rs in _all_records(out).values() for r in rs)
    assert len(files) == n_with_image
    assert len({hashlib.sha256(f.read_bytes()).hexdigest() for f in files}) == len(files)
    for f in files[:3]:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and min(im.size) == demo.SHORT_SIDE


def test_each_kind_follows_its_rule(tiny_demo):
    out, _ = tiny_demo
    seen = set()
    for split, records in _all_records(out).items():
        for r in records:
            seen.add(r["kind"])
            etype = _target_type(r)
            (s, e), = r["target"]
            assert all(tok.lower().capitalize() in demo.AMBIGUOUS_NAMES for tok in r["tokens"][s:e])
            photo_type = TYPE_OF_CLASS.get(r["image_class"])
            if r["kind"] == "image_decided":
                assert photo_type == etype and r["sign"] is None
            elif r["kind"] == "conflicting_image":
                assert photo_type is not None and photo_type != etype
            elif r["kind"] == "unrelated_image":
                assert r["image_class"] == "unrelated" and r["source_photo"] in demo.UNRELATED.sources
            elif r["kind"] == "visual_text":
                name = " ".join(r["tokens"][s:e]).upper()
                assert name in r["sign"] and photo_type is not None
                assert any(r["sign"] == " / ".join(lines).replace("{X}", name) for lines in demo.SIGNS[etype])
            else:
                assert r["image"] is None and r["image_class"] is None and r["source_photo"] is None
            # only the image decides image_decided and visual_text names; a cue decides the others
            assert r["image_decided"] == (r["target"] if r["kind"] in ("image_decided", "visual_text") else [])
            assert tokenize_post(" ".join(r["tokens"])) == r["tokens"]   # tokens as the reader splits them
            ordered = sorted((a, b) for _, a, b in get_spans(r["tags"]))
            for (_, end), (start, _) in zip(ordered, ordered[1:]):       # two names never touch
                assert start > end or r["tokens"][start].startswith("#")
    assert seen == set(demo.KIND_NAMES)


def test_held_out_photos_appear_only_in_test(tiny_demo):
    out, summary = tiny_demo
    held_out = {s for c in demo.PHOTO_CLASSES for s in c.test_sources}
    assert held_out == {"grace_hopper", "hubble_deep_field"}
    records = _all_records(out)
    for split, rs in records.items():
        used = {r["source_photo"] for r in rs if r["image_class"] in ("person", "place")}
        assert used <= held_out if split == "test" else not used & held_out
    assert summary["photo_disjoint"]["classes"] == ["person", "place"]
    assert summary["classes"]["product"]["photo_disjoint"] is False


def test_kinds_follow_the_mix_and_types_are_balanced_within_each_kind(tmp_path):
    summary = demo.generate(tmp_path / "d", n_train=100, n_valid=0, n_test=0)
    assert summary["splits"]["train"]["kinds"] == {k: round(100 * v) for k, v in demo.DEFAULT_MIX.items()}
    records = _records(tmp_path / "d" / "train.jsonl")
    for kind in demo.KIND_NAMES:
        counts = Counter(_target_type(r) for r in records if r["kind"] == kind)
        assert set(counts) == set(demo.ENTITY_TYPES) and max(counts.values()) - min(counts.values()) <= 1
    only = demo.generate(tmp_path / "e", n_train=9, n_valid=0, n_test=0, mix={"no_image": 2, "visual_text": 1})
    assert only["splits"]["train"]["kinds"] == {**dict.fromkeys(demo.KIND_NAMES, 0), "no_image": 6, "visual_text": 3}
    with pytest.raises(ValueError, match="mix must give"):
        demo.generate(tmp_path / "f", n_train=9, mix={"image_decided": 0})


def test_kind_ceilings_by_hand():
    def rec(kind, etype, photo_class):
        return {"kind": kind, "tags": ["B-" + etype, "O"], "target": [[0, 1]], "image_class": photo_class}

    records = [rec("image_decided", "PER", "person"), rec("image_decided", "PER", "person"),
               rec("image_decided", "LOC", "place"), rec("image_decided", "ORG", "product"),
               rec("conflicting_image", "PER", "place"), rec("conflicting_image", "LOC", "person"),
               rec("visual_text", "ORG", "product"), rec("visual_text", "MISC", "place"),
               rec("no_image", "LOC", None)]
    c = demo.kind_ceilings(records)
    assert c["image_decided"] == {"posts": 4, "text_only": 0.5, "photo_class_only": 1.0, "image_oracle": 1.0}
    assert c["conflicting_image"] == {"posts": 2, "text_only": 1.0, "photo_class_only": 0.0, "image_oracle": 0.0}
    assert c["visual_text"] == {"posts": 2, "text_only": 0.5, "photo_class_only": 0.5, "image_oracle": 1.0}
    assert c["no_image"] == {"posts": 1, "text_only": 1.0, "photo_class_only": 1.0, "image_oracle": 1.0}
    assert "unrelated_image" not in c


def test_ceilings_in_the_manifest_show_both_failure_modes(tiny_demo):
    _, summary = tiny_demo
    test = summary["ceilings"]["test"]["kinds"]
    assert test["image_decided"]["text_only"] <= 0.5 and test["image_decided"]["photo_class_only"] == 1.0
    assert test["conflicting_image"]["text_only"] == 1.0 and test["conflicting_image"]["photo_class_only"] == 0.0
    assert "text_only" in summary["ceilings"]["explanation"]


def test_text_only_ceiling_by_hand():
    # T=10, I=10, p=0.25: guessing gives 12.5/20 = 0.625, abstaining 20/30 = 0.667
    assert demo.text_only_ceiling(10, 10, 0.25)["micro_f1"] == pytest.approx(0.6667, abs=1e-4)
    assert demo.text_only_ceiling(30, 10, 0.25)["micro_f1"] == pytest.approx((10 + 7.5) / 40)


def test_neutral_text_ignores_the_type_and_cue_text_tells_it():
    # the same random stream gives the same words whatever the type: text cannot tell classes apart
    posts = [demo.make_post(np.random.default_rng(7), t) for t in demo.ENTITY_TYPES]
    assert all(p[0] == posts[0][0] and p[2] == posts[0][2] for p in posts)
    cued = [demo.make_post(np.random.default_rng(7), t, cue=True) for t in demo.ENTITY_TYPES]
    assert len({tuple(p[0]) for p in cued}) == len(demo.ENTITY_TYPES)


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


def test_workers_draw_the_same_bytes(tmp_path):
    one = demo.generate(tmp_path / "one", seed=4, n_train=70, n_valid=0, n_test=0, workers=1)
    two = demo.generate(tmp_path / "two", seed=4, n_train=70, n_valid=0, n_test=0, workers=2)
    assert one["splits"] == two["splits"]
    assert [p.read_bytes() for p in sorted((tmp_path / "one" / "images").iterdir())] == \
        [p.read_bytes() for p in sorted((tmp_path / "two" / "images").iterdir())]


def test_main_generate(tmp_path, capsys):
    assert demo.main(["generate", "--out", str(tmp_path / "d"), "--n-train", "4", "--n-valid", "0",
                      "--n-test", "0", "--seed", "3", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "photo class only" in printed and "photo-disjoint classes" in printed
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["seed"] == 3


def test_new_posts_share_one_text_and_name_their_photos_freely(tmp_path):
    from data.demo import NEW_POST_TEXT, write_new_posts

    path = write_new_posts(tmp_path)
    posts = read_corpus(path, tmp_path / "images")
    assert [s.tokens for s in posts] == [tokenize_post(NEW_POST_TEXT)] * 2
    assert [s.meta["photo"] for s in posts] == ["grace_hopper", "chelsea"]
    assert all(s.image and s.image_key != s.id for s in posts)          # found by the image field
