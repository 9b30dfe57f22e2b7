"""Each image's visual context (object tags, OCR text, caption): stored by `index build`,
extended by `index add`, recorded in the manifest, and extracted the same way on the fly."""
import json
import random
import shutil
from importlib import metadata

import numpy as np
import pytest

from data.demo_photos import augment, draw_sign, encode_jpeg, load_sources
from index.__main__ import main
from index.artifact import load_index, visual_context_like_index
from index.build import add_images, build_index
from index.manifest import context_info
from index.embedders import get_embedder
from index.ocr import OcrEngine
from index.visual_context import VisualContext, context_from_record, read_tag_vocabulary
from tests.colour import colour_image  # also registers the test_colour embedder


def letters(text: str) -> str:
    return "".join(text.replace(" / ", " ").upper().split())


def normalised(text: str) -> str:
    return " ".join(text.replace(" / ", " ").upper().split())


# --------------------------------------------------------------------------- pure parts
def test_context_text_keeps_tags_above_the_score_best_first():
    record = {"tags": [("cup", 0.07), ("tabby, tabby cat", 0.42), ("Egyptian cat", 0.24), ("rug", 0.099999)],
              "ocr": "ZELBY / INC.", "caption": "a cat on a rug"}
    ctx = context_from_record(record, min_tag_score=0.07)
    assert ctx.tags == (("tabby", 0.42), ("Egyptian cat", 0.24), ("rug", 0.099999), ("cup", 0.07))
    assert context_from_record(record, 0.1).tags == (("tabby", 0.42), ("Egyptian cat", 0.24))
    assert context_from_record(record, 0.0, max_tags=1).tags == (("tabby", 0.42),)
    ctx = context_from_record(record, 0.2)
    assert ctx.text() == "tabby, Egyptian cat. ZELBY / INC.. a cat on a rug"
    assert ctx.text(order=("caption", "ocr"), sep=" | ") == "a cat on a rug | ZELBY / INC."
    assert VisualContext(ocr="X").text() == "X" and VisualContext().empty
    with pytest.raises(ValueError, match="unknown visual context part.*valid parts are tags, ocr, caption"):
        ctx.text(order=("tags", "objects"))


def test_artifacts_made_before_the_block_read_as_the_same_settings():
    old = {"tags": {"k": 5, "vocabulary": "imagenet-1k", "ocr": True}}
    info = context_info(old)
    assert info["tags"]["k"] == 5 and info["tags"]["min_score"] == 0.1
    assert info["ocr"]["engine"] == "rapidocr" and info["captions"] is None
    assert context_info({"tags": {"k": 0, "ocr": False}}) == {"tags": None, "ocr": None, "captions": None}


def test_tag_vocabulary_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("# what the demo shows\nperson\n\nsign board\nperson\n")
    with pytest.raises(ValueError, match=r"labels.txt:5: label 'person' is given twice \(first on line 2\)"):
        read_tag_vocabulary(p)
    p.write_text("person\nsign board\n")
    assert read_tag_vocabulary(p) == ["person", "sign board"]


# --------------------------------------------------------------------------- tags above a score
def colour_folder(tmp_path, n=6):
    rng = random.Random(0)
    (tmp_path / "images").mkdir()
    return [(f"{i:03d}", colour_image(tmp_path / "images" / f"{i:03d}.png", ["red", "blue"][i % 2], rng))
            for i in range(n)]


def test_only_tags_above_the_threshold_are_context(tmp_path):
    images = colour_folder(tmp_path)
    art = build_index(images, get_embedder("test_colour"), tmp_path / "idx", tags_k=3, min_tag_score=0.3,
                      progress=False)
    assert art.manifest["visual_context"]["tags"]["min_score"] == 0.3 and art.min_tag_score == 0.3
    for i, _ in images:
        stored = art.tags[i]
        assert len(stored) == 3 and min(s for _, s in stored) < 0.3        # all k are stored ...
        ctx = art.visual_context(i)
        assert ctx.tags and all(s >= 0.3 for _, s in ctx.tags)              # ... the context keeps those above
        assert [t for t, _ in ctx.tags] == [t for t, s in stored if s >= 0.3]
        assert ctx.tags[0][0] == ["red", "blue"][int(i) % 2]
        assert len(art.visual_context(i, min_tag_score=0.0).tags) == 3
    with pytest.raises(KeyError, match="not in the index.*visual_context_like_index"):
        art.visual_context("nope")
    with pytest.raises(ValueError, match=r"min_tag_score must be in \[0, 1\], found 1.5"):
        build_index(images, get_embedder("test_colour"), tmp_path / "b", min_tag_score=1.5, progress=False)


# --------------------------------------------------------------------------- OCR and captions on real photos
SIGNS = {"sign1": ("coffee", "ORG", 1), "sign2": ("china", "LOC", 3)}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Demo-made photos: two with a sign drawn on (``sign1``, ``sign2``), a cat without."""
    folder = tmp_path_factory.mktemp("photos")
    sources = load_sources(["coffee", "china", "chelsea"])
    signs = {}
    for image_id, (photo, etype, seed) in SIGNS.items():
        rng = np.random.default_rng(seed)
        image, signs[image_id] = draw_sign(augment(sources[photo], rng), "Zelby", etype, rng)
        (folder / f"{image_id}.jpg").write_bytes(encode_jpeg(image))
    (folder / "cat.jpg").write_bytes(encode_jpeg(augment(sources["chelsea"], np.random.default_rng(0))))
    (folder / "captions.jsonl").write_text(json.dumps({"id": "sign1", "caption": "a cup of coffee under a sign"})
                                           + "\n")
    return folder, signs


@pytest.fixture(scope="module")
def built(photos, effnet, tmp_path_factory):
    folder, _ = photos
    out = tmp_path_factory.mktemp("index") / "idx"
    images = [("sign1", str(folder / "sign1.jpg")), ("cat", str(folder / "cat.jpg"))]
    return build_index(images, effnet, out, ocr=True, captions=folder / "captions.jsonl", with_regions=False,
                       posts={"post-7": "cat"}, progress=False)


def test_manifest_records_each_extractor_and_its_version(built, photos):
    import timm

    vc = built.manifest["visual_context"]
    assert vc["tags"]["extractor"] == "efficientnet_lite0" and vc["tags"]["method"] == "classifier"
    assert vc["tags"]["weights"] == "efficientnet-lite0-57934424" and vc["tags"]["vocabulary"] == "imagenet-1k"
    assert vc["tags"]["library"] == "timm" and vc["tags"]["version"] == timm.__version__
    assert vc["tags"]["k"] == 5 and vc["tags"]["labels"] == 1000 and len(vc["tags"]["labels_sha256"]) == 64
    assert vc["ocr"]["engine"] == "rapidocr" and vc["ocr"]["reader"] == 2
    assert vc["ocr"]["config"] == {"min_score": 0.5, "min_chars": 2, "det_side": 256, "space_gap": 0.37}
    assert vc["ocr"]["version"] == metadata.version("rapidocr-onnxruntime")
    assert vc["captions"]["captioner"] == "file"
    assert vc["captions"]["config"] == {"paths": [str(photos[0] / "captions.jsonl")]}
    assert vc["captions"]["files"][0]["captions"] == 1


def test_build_stores_tags_ocr_and_caption(built, photos):
    _, signs = photos
    sign = built.visual_context("sign1")
    assert normalised(sign.ocr) == normalised(signs["sign1"]) and "ZELBY" in sign.ocr      # spaces too
    assert sign.caption == "a cup of coffee under a sign"
    cat = built.post_visual_context("post-7")                  # a post's image, through posts.json
    assert cat.ocr == "" and cat.caption == ""
    assert cat.tags[0][0] in {"tabby", "Egyptian cat", "tiger cat"} and all(s >= 0.1 for _, s in cat.tags)
    assert cat.text().startswith(cat.tags[0][0])
    again = load_index(built.path)
    assert again.visual_context("sign1") == sign


def test_on_the_fly_equals_what_build_stored(built, photos, tmp_path):
    folder, signs = photos
    shutil.copy(folder / "sign1.jpg", tmp_path / "copy.jpg")
    got = visual_context_like_index(built, [("sign1", str(tmp_path / "copy.jpg")), ("gone", None)], progress=False)
    assert set(got) == {"sign1"}                               # a missing file is left out
    stored = built.visual_context("sign1")
    new = got["sign1"]
    assert (new.ocr, new.caption) == (stored.ocr, stored.caption)
    assert [t for t, _ in new.tags] == [t for t, _ in stored.tags]
    np.testing.assert_allclose([s for _, s in new.tags], [s for _, s in stored.tags], atol=1e-5)
    captions = tmp_path / "new.jsonl"
    captions.write_text('{"id": "post-photo", "caption": "a new post\'s photo"}\n')
    got = visual_context_like_index(built, [("post-photo", str(tmp_path / "copy.jpg"))], captioner=captions,
                                    progress=False)
    assert got["post-photo"].caption == "a new post's photo" and got["post-photo"].ocr == stored.ocr


def test_add_extends_the_visual_context(built, photos, tmp_path):
    folder, signs = photos
    path = tmp_path / "idx"
    shutil.copytree(built.path, path)
    captions = tmp_path / "more.jsonl"
    captions.write_text('{"id": "sign2", "caption": "a pagoda"}\n{"id": "cat", "caption": "a cat"}\n')
    art = add_images(path, [("sign2", str(folder / "sign2.jpg"))], captions=captions, progress=False)
    assert art.ids == ["sign1", "cat", "sign2"]
    new = art.visual_context("sign2")
    assert letters(new.ocr) == letters(signs["sign2"]) and new.caption == "a pagoda" and len(art.tags["sign2"]) == 5
    assert art.visual_context("cat").caption == "a cat"                                  # named by the new file
    assert art.visual_context("sign1") == built.visual_context("sign1")                  # kept
    vc = art.manifest["visual_context"]
    assert vc["captions"]["config"]["paths"] == [str(folder / "captions.jsonl"), str(captions)]
    assert [f["captions"] for f in vc["captions"]["files"]] == [1, 2]
    assert vc["ocr"] == built.manifest["visual_context"]["ocr"] and vc["tags"] == built.manifest["visual_context"]["tags"]
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"id": "sign2", "caption": "x"}\n{"id": "dog", "caption": "y"}\n')
    with pytest.raises(ValueError, match=r"unknown.jsonl:2: unknown image id 'dog'"):
        add_images(path, [], captions=unknown, progress=False)


def test_extraction_the_index_did_not_do_is_refused(tmp_path):
    images = colour_folder(tmp_path, 2)
    art = build_index(images, get_embedder("test_colour"), tmp_path / "idx", progress=False)
    assert art.manifest["visual_context"]["ocr"] is None and art.manifest["visual_context"]["captions"] is None
    with pytest.raises(ValueError, match="built without ocr"):
        visual_context_like_index(art, images, ocr=CountingOcr(), progress=False)
    got = visual_context_like_index(art, images, progress=False)
    assert got["000"] == art.visual_context("000")


# --------------------------------------------------------------------------- resuming OCR
class CountingOcr(OcrEngine):
    """Reads an image's mean colour as text; counts its calls and can fail on the n-th."""

    name = "test_counting"

    def __init__(self, fail_at: int | None = None):
        self.calls, self.fail_at = 0, fail_at

    def read(self, image) -> str:
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("killed in the middle of OCR")
        return "RGB " + " ".join(str(int(v) // 32) for v in np.asarray(image).reshape(-1, 3).mean(0))


def test_a_killed_build_resumes_its_ocr(tmp_path):
    images = colour_folder(tmp_path, 12)
    embedder = get_embedder("test_colour")
    ref = build_index(images, embedder, tmp_path / "ref", ocr=CountingOcr(), save_every=4, progress=False)
    out = tmp_path / "idx"
    first = CountingOcr(fail_at=6)
    with pytest.raises(KeyboardInterrupt):
        build_index(images, embedder, out, ocr=first, save_every=4, progress=False)
    assert not out.exists() and len(list((tmp_path / ".idx.partial").glob("chunk-*.npz"))) == 1
    second = CountingOcr()
    art = build_index(images, embedder, out, ocr=second, save_every=4, progress=False)
    assert second.calls == 8                                   # the first chunk's 4 images were not read again
    assert art.ocr == ref.ocr and all(t.startswith("RGB ") for t in art.ocr.values())
    assert not (tmp_path / ".idx.partial").exists()


# --------------------------------------------------------------------------- CLIP zero-shot tags
def test_clip_zero_shot_tags_over_a_user_vocabulary(image_dir, tmp_path, tiny_clip_files):
    cfg, ckpt = tiny_clip_files
    vocab = tmp_path / "labels.txt"
    vocab.write_text("red square\nblue square\ncat\ntraffic sign\n")
    out = tmp_path / "idx"
    assert main(["build", "--images", str(image_dir), "--out", str(out), "--embedder", "clip", "--model", cfg,
                 "--pretrained", ckpt, "--tag-vocabulary", str(vocab), "--tags-k", "2", "--tag-min-score", "0",
                 "--workers", "0", "--quiet", "--device", "cpu"]) == 0
    art = load_index(out)
    tags = art.manifest["visual_context"]["tags"]
    assert tags["method"] == "zero-shot" and tags["vocabulary"] == "user" and tags["labels"] == 4
    assert tags["library"] == "open_clip" and tags["k"] == 2
    assert art.manifest["embedder_config"]["tag_vocabulary"] == ["red square", "blue square", "cat", "traffic sign"]
    labels = set(read_tag_vocabulary(vocab))
    assert all(len(t) == 2 and {lab for lab, _ in t} <= labels for t in art.tags.values())
    got = visual_context_like_index(art, [("101", str(image_dir / "101.jpg"))], progress=False)  # rebuilt embedder
    assert [t for t, _ in got["101"].tags] == [t for t, _ in art.visual_context("101").tags]


# --------------------------------------------------------------------------- command line
def test_cli_captions_errors_and_vocabulary_misuse(image_dir, tmp_path, capsys):
    bad = tmp_path / "captions.jsonl"
    bad.write_text('{"id": "101", "caption": "ok"}\n{"id": "102", "caption": "broken}\n')
    out = tmp_path / "idx"
    assert main(["build", "--images", str(image_dir), "--out", str(out), "--embedder", "test_colour",
                 "--captions", str(bad), "--workers", "0", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"error: {bad}:2: not valid JSON" in err
    assert not out.exists() and not list(tmp_path.glob(".idx*"))      # no artifact, no log left behind
    assert main(["build", "--images", str(image_dir), "--out", str(out), "--tag-vocabulary", str(bad)]) == 2
    assert "--tag-vocabulary is for --embedder clip" in capsys.readouterr().err

    bad.write_text('{"id": "101", "caption": "a red square"}\n')
    assert main(["build", "--images", str(image_dir), "--out", str(out), "--embedder", "test_colour",
                 "--captions", str(bad), "--tag-min-score", "0.2", "--workers", "0", "--quiet"]) == 0
    assert load_index(out).visual_context("101").caption == "a red square"
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    table = capsys.readouterr().out
    assert "visual_context.tags.min_score" in table and "visual_context.captions.captioner" in table
