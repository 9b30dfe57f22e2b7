"""rgcn/api.py: the tagging API on tiny runs of every head (the colour data of tests.colour):
offsets, confidences, images in three forms, posts without images, lazy batches, ensembles,
and predict's JSONL entities."""
import io
import json
import random
from pathlib import Path

import pytest
from PIL import Image

from data.errors import UserError
from data.spans import get_spans
from rgcn import load_tagger
from tests.colour import colour_image, image_decided_with_index, run_cli, train_colour_run

HEADS = ("text", "rgcn", "maf", "ita", "bga")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_encoder):
    """One tiny run of every head on the colour data (text and rgcn trained long enough to tag the names)."""
    root = tmp_path_factory.mktemp("api")
    splits = image_decided_with_index(root)
    index = f"head.options.index={root / 'index'}"
    extra = {"text": [], "rgcn": [index, "head.options.k=3", "head.options.gcn_hidden=16"], "maf": [index],
             "ita": [index], "bga": [index]}
    for head in HEADS:
        epochs = 6 if head in ("text", "rgcn") else 1
        train_colour_run(root, splits, tiny_encoder, head, epochs, f"head.name={head}", *extra[head])
    return root, splits


def _run(runs, head):
    return str(runs[0] / "runs" / head)


@pytest.fixture(scope="module")
def text_tagger(runs):
    return load_tagger(_run(runs, "text"))


def _fresh_image(tmp_path, colour="red", seed=3):
    return colour_image(tmp_path / f"fresh-{colour}.png", colour, random.Random(seed))


POSTS = ["look at Zelby now", "Zelby 🎉 is here today, Zelby!",
         "can't stop thinking about Rellow 👩‍👩‍👧 Rellow",
         "  Quandor   is here today  ", "look at Mivra now Mivra"]


def test_offsets_round_trip_with_emoji_and_repeated_words(text_tagger):
    results = list(text_tagger.tag_many(POSTS))
    assert sum(len(r.entities) for r in results) >= len(POSTS)         # the names are tagged
    for text, r in zip(POSTS, results):
        assert r.text == text and len(r.tokens) == len(r.tags)
        for tok in r.tokens:
            assert text[tok["start"]:tok["end"]] == tok["text"]
        for ent in r.entities:
            assert text[ent["start"]:ent["end"]] == ent["text"]
            assert (ent["type"], ent["token_start"], ent["token_end"]) in get_spans(r.tags)
            assert ent["start"] == r.tokens[ent["token_start"]]["start"]
            assert ent["end"] == r.tokens[ent["token_end"] - 1]["end"]
    # the repeated names are told apart by their offsets
    second = results[1]
    zelby = [e for e in second.entities if e["text"] == "Zelby"]
    assert len({e["start"] for e in zelby}) == len(zelby) >= 2


def test_confidences_are_probabilities_and_follow_the_crf(text_tagger):
    import torch

    from rgcn.crf import crf_span_probabilities

    results = list(text_tagger.tag_many(POSTS))
    confs = [e["confidence"] for r in results for e in r.entities]
    assert confs and all(0.0 <= c <= 1.0 for c in confs)
    # the confidence is the CRF's probability of the span (not 1, not a softmax of one word)
    model = text_tagger.runs[0].model
    from rgcn.batching import TaggingDataset
    from data.corpus import Sample

    r = results[0]
    ds = TaggingDataset([Sample("x", [t["text"] for t in r.tokens])], model.tokenizer)
    batch = model.make_batch(ds, [0], training=False)
    with torch.inference_mode():
        em = model.emissions(batch)[0]
    labels = model.labels
    e = r.entities[0]
    b, i = labels.index("B-" + e["type"]), labels.index("I-" + e["type"])
    want = crf_span_probabilities(model.crf, em, batch.word_mask, [(0, e["token_start"], e["token_end"], b, i, b)])
    assert e["confidence"] == pytest.approx(want[0], abs=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_a_post_without_image_works_with_every_head(runs, head):
    tagger = load_tagger(_run(runs, head))
    assert tagger.heads == [head]
    r = tagger.tag("look at Zelby now")
    assert r.image == "none" and len(r.tags) == 4
    assert (r.evidence["head"] == head) and json.dumps(r.to_dict())
    r = tagger.tag({"tokens": ["look", "at", "Zelby", "now"], "id": "p1"})
    assert r.id == "p1" and r.text == "look at Zelby now" and len(r.tags) == 4


@pytest.mark.parametrize("head", ["rgcn", "maf", "ita"])
def test_image_as_path_bytes_or_pil_gives_the_same_result(runs, tmp_path, head):
    tagger = load_tagger(_run(runs, head))
    path = _fresh_image(tmp_path)
    data = open(path, "rb").read()
    pil = Image.open(io.BytesIO(data))
    got = [tagger.tag("look at Zelby now", image=img) for img in (path, data, pil)]
    assert [g.image for g in got] == ["embedded"] * 3
    assert not list(Path(tagger._tmp.name).iterdir())             # no upload kept once its post is tagged
    assert tagger.tag("look at Zelby now", image=data).tags == got[1].tags   # the same bytes again
    assert got[0].tags == got[1].tags == got[2].tags
    for g in got[1:]:
        assert [e["confidence"] for e in g.entities] == pytest.approx([e["confidence"] for e in got[0].entities],
                                                                      abs=1e-5)
    # an image the index holds is used, an unreadable one is reported and the post tagged without it
    indexed = runs[0] / "data" / "images" / "train-000.png"
    assert tagger.tag("look at Zelby now", image=str(indexed)).image == "used"
    bad = tagger.tag("look at Zelby now", image=b"not an image")
    assert bad.image == "unreadable" and bad.tags == tagger.tag("look at Zelby now").tags


def test_a_text_run_ignores_the_image(text_tagger, tmp_path):
    r = text_tagger.tag("look at Zelby now", image=_fresh_image(tmp_path))
    assert r.image == "ignored" and r.tags == text_tagger.tag("look at Zelby now").tags


def test_the_photo_reaches_the_rgcn_head(runs, tmp_path):
    tagger = load_tagger(_run(runs, "rgcn"))
    red = tagger.tag("look at Zelby now", image=_fresh_image(tmp_path, "red"))
    blue = tagger.tag("look at Zelby now", image=_fresh_image(tmp_path, "blue"))
    assert red.evidence["relations"]["intra"] and red.evidence["relations"]["intra"] != \
        blue.evidence["relations"]["intra"]


def test_new_photos_share_one_embedder_and_get_a_whole_builds_neighbours(runs, tmp_path, monkeypatch):
    import index.artifact as artifact
    from data.corpus import Corpus
    from retrieval.cache import build_graphs

    builds, real = [], artifact.get_embedder
    monkeypatch.setattr(artifact, "get_embedder", lambda *a, **kw: builds.append(a) or real(*a, **kw))
    tagger = load_tagger(_run(runs, "rgcn"))
    run = tagger.runs[0]
    photos = [colour_image(tmp_path / f"new-{n}.png", colour, random.Random(n))
              for n, colour in enumerate(("red", "blue", "red"))]
    got = [tagger.tag("look at Zelby now", image=p) for p in photos]
    assert [g.image for g in got] == ["embedded"] * 3 and len(builds) == 1      # one embedder for the tagger
    # each post's neighbours are those of a graph build over the training split and the post
    pool = run.memo["pool"]
    for photo, res in zip(photos, got):
        post = tagger.prepare("look at Zelby now", photo)
        whole = build_graphs({"train": run.train(), "predict": Corpus("predict", [post.sample])}, pool.artifact,
                             pool.settings, None, pool.text_encoder, progress=False)
        for rel, found in res.evidence["relations"].items():
            assert [(n["image"], n["score"]) for n in found] == \
                [(i, round(s, 4)) for i, s in whole.neighbours(post.sample.id, rel)], rel


def test_the_rgcn_head_takes_each_batchs_graphs_in_place(runs, tmp_path, monkeypatch):
    import rgcn.heads as heads
    from rgcn.heads.rgcn import RGCNHead

    posts = [{"text": p, "image": _fresh_image(tmp_path, c, n)} for n, (p, c) in enumerate(zip(POSTS, ["red", "blue"] * 3))]
    tagger = load_tagger(_run(runs, "rgcn"))
    head = tagger.runs[0].model.head
    built, real = [], heads.build_head
    monkeypatch.setattr(heads, "build_head", lambda *a, **kw: built.append(a) or real(*a, **kw))
    in_place = [r.to_dict() for r in tagger.tag_many(posts, batch_size=2)]
    assert not built and tagger.runs[0].model.head is head and head.graphs.post_ids == [f"tag:{len(posts) - 1}"]
    monkeypatch.setattr(RGCNHead, "use_context", lambda self, ctx: False)        # the head rebuilt for each batch
    rebuilt = [r.to_dict() for r in tagger.tag_many(posts, batch_size=2)]
    assert len(built) == 3
    for a, b in zip(in_place, rebuilt):
        assert a["tags"] == b["tags"] and a["evidence"] == b["evidence"]
        assert [e["confidence"] for e in a["entities"]] == pytest.approx([e["confidence"] for e in b["entities"]],
                                                                         abs=1e-6)


def test_tag_many_is_lazy_and_equals_tag_one_by_one(text_tagger):
    read = []

    def posts():
        for i, p in enumerate(POSTS * 3):
            read.append(i)
            yield {"text": p, "id": i}

    gen = text_tagger.tag_many(posts(), batch_size=2)
    first = next(gen)
    assert first.id == 0 and len(read) == 2                            # one batch read, not all 15 posts
    rest = list(gen)
    assert len(read) == 15 and [r.id for r in rest] == list(range(1, 15))
    for r in [first, *rest]:
        one = text_tagger.tag(POSTS[r.id % len(POSTS)], id=r.id)
        assert one.tags == r.tags and one.tokens == r.tokens
        assert [e["confidence"] for e in one.entities] == pytest.approx([e["confidence"] for e in r.entities],
                                                                        abs=1e-5)


def test_an_ensemble_averages_the_runs(runs, text_tagger):
    twice = load_tagger([_run(runs, "text"), _run(runs, "text")])
    for a, b in zip(text_tagger.tag_many(POSTS), twice.tag_many(POSTS)):
        assert a.tags == b.tags                                        # the mean of one run with itself
        assert [e["confidence"] for e in a.entities] == pytest.approx([e["confidence"] for e in b.entities],
                                                                      abs=1e-5)
        assert b.evidence == [{"head": "text"}, {"head": "text"}]
    mixed = load_tagger([_run(runs, "text"), _run(runs, "rgcn")])
    r = mixed.tag("look at Zelby now")
    assert mixed.heads == ["text", "rgcn"] and [e["head"] for e in r.evidence] == ["text", "rgcn"]


def test_bad_input_is_a_user_error(text_tagger, tmp_path):
    for post in ("", "   ", {"tokens": []}, 42, {"text": "hi", "colour": "red"}):
        with pytest.raises(UserError):
            text_tagger.tag(post)
    with pytest.raises(UserError):
        text_tagger.tag("hi there", image=3.5)
    with pytest.raises(UserError):
        load_tagger(str(tmp_path))


def test_predict_jsonl_has_the_entities(runs, tmp_path):
    root, splits = runs
    out = tmp_path / "pred.jsonl"
    rc, said = run_cli("predict", "--run", root / "runs" / "rgcn", "--input", splits["test"], "--images",
                       root / "data" / "images", "--output", out, "--format", "jsonl")
    assert rc == 0 and "posts had their image used" in said or rc == 0
    rows = [json.loads(line) for line in open(out)]
    assert len(rows) == 40 and sum(len(r["entities"]) for r in rows) >= 20
    for r in rows:
        text = " ".join(r["tokens"])
        assert [(e["type"], e["token_start"], e["token_end"]) for e in r["entities"]] == get_spans(r["tags"])
        for e in r["entities"]:
            assert text[e["start"]:e["end"]] == e["text"] and 0 <= e["confidence"] <= 1


def test_a_text_run_never_opens_the_photo(text_tagger, tmp_path, monkeypatch):
    import PIL.Image

    def refuse(*a, **kw):
        raise AssertionError("the photo was opened")

    monkeypatch.setattr(PIL.Image, "open", refuse)
    for image in (_fresh_image(tmp_path), tmp_path / "absent.jpg", b"not even an image"):
        r = text_tagger.tag("look at Zelby now", image=image)
        assert r.image == "ignored"
    assert not list(Path(text_tagger._tmp.name).iterdir())          # no upload copied for a run that reads none


def test_prepared_posts_tag_as_the_posts_themselves(runs, tmp_path):
    tagger = load_tagger(_run(runs, "rgcn"))
    posts = [{"text": p, "image": Path(_fresh_image(tmp_path, c, n)).read_bytes()}
             for n, (p, c) in enumerate(zip(POSTS, ["red", "blue"] * 3))]
    ready = [tagger.prepare(p) for p in posts]
    assert all(Path(r.sample.image).exists() for r in ready)             # uploads copied once, by prepare
    got = [r.to_dict() for r in tagger.tag_many(ready, batch_size=4)]
    assert not list(Path(tagger._tmp.name).iterdir())                   # ... and removed once tagged
    want = [r.to_dict() for r in tagger.tag_many(posts, batch_size=4)]
    for g, w in zip(got, want):
        assert (g["text"], g["tags"], g["image"]) == (w["text"], w["tags"], w["image"])
        assert [e["confidence"] for e in g["entities"]] == pytest.approx([e["confidence"] for e in w["entities"]],
                                                                         abs=1e-5)
    extra = tagger.prepare(posts[0])
    tagger.discard(extra)                                                # prepared but never tagged
    assert not Path(extra.sample.image).exists()


@pytest.mark.parametrize("head", ["maf", "ita", "bga"])
def test_photo_heads_keep_the_index_and_embedder_between_batches(runs, tmp_path, monkeypatch, head):
    """maf, ita and bga tag a batch of new posts by reading those posts' photos only, with one
    index load and one embedder for the tagger's life, and tag exactly as a whole setup over
    the training split and the batch does."""
    import index.artifact as artifact
    import rgcn.heads.blocks as blocks
    from rgcn.heads import head_class
    from rgcn.heads.base import FusionHead

    opts = [f"view={'real' if head == 'bga' else 'multimodal'}"] if head in ("bga", "ita") else []
    posts = [{"text": p, "image": _fresh_image(tmp_path, c, n)} for n, (p, c) in enumerate(zip(POSTS, ["red", "blue"] * 3))]
    builds, loads = [], []
    real_embedder, real_load = artifact.get_embedder, blocks.load_index
    monkeypatch.setattr(artifact, "get_embedder", lambda *a, **kw: builds.append(a) or real_embedder(*a, **kw))
    monkeypatch.setattr(blocks, "load_index", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))
    tagger = load_tagger(_run(runs, head), head_options=dict(o.split("=") for o in opts))
    kept = [r.to_dict() for r in tagger.tag_many(posts, batch_size=2)]
    assert [r["image"] for r in kept] == ["embedded"] * len(posts)
    assert len(loads) == 1 and len(builds) == 1                       # three batches, one index, one embedder

    cls = head_class(head)                                             # the whole setup, remade for every batch
    monkeypatch.setattr(cls, "setup_for_posts", classmethod(FusionHead.setup_for_posts.__func__))
    monkeypatch.setattr(cls, "use_context", lambda self, ctx: False)
    whole = [r.to_dict() for r in load_tagger(_run(runs, head), head_options=dict(o.split("=") for o in opts)
                                              ).tag_many(posts, batch_size=2)]
    assert len(builds) > 2
    for k, w in zip(kept, whole):
        assert k["tags"] == w["tags"] and k["evidence"] == w["evidence"]
        assert [e["confidence"] for e in k["entities"]] == pytest.approx([e["confidence"] for e in w["entities"]],
                                                                         abs=1e-5)


def test_an_image_of_another_kind_is_refused_by_every_run(runs, text_tagger):
    from rgcn.api import TaggingError

    for tagger in (text_tagger, load_tagger(_run(runs, "rgcn"))):
        with pytest.raises(TaggingError, match="expected a path, bytes, a PIL image or None, found int"):
            tagger.tag("look at Zelby now", image=42)
