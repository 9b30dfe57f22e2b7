import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from data.corpus import Corpus, Sample
from retrieval.cache import (CacheMismatchError, GraphSettings, build_graphs, load_graphs, load_or_build)
from retrieval.search import EmptyPoolError, RetrievalError, UnknownIdError

from .conftest import ANGLES, make_artifact, six_points


def angle_encoder(texts):
    """Fake sentence encoder: the text 'deg30 ...' is the unit vector at 30 degrees."""
    a = np.deg2rad([float(t.split()[0][3:]) for t in texts])
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def sample(i, angle, tags):
    return Sample(i, [f"deg{angle}", "word"], tags)


@pytest.fixture
def splits():
    types = ["B-PER", "B-PER", "B-LOC", "B-PER", "B-LOC", "O"]
    train = [sample(f"p{r}", ANGLES[r], [types[r], "O"]) for r in range(3)]
    test = [sample(f"p{r}", ANGLES[r], [types[r], "O"]) for r in range(3, 6)] + [sample("p6", 95, ["B-LOC", "O"])]
    return {"train": Corpus("train.txt", train), "test": Corpus("test.txt", test)}


def test_settings_are_validated():
    with pytest.raises(ValueError, match="pool must be one of train, all, found 'dev'"):
        GraphSettings(pool="dev")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        GraphSettings(k=0)
    with pytest.raises(ValueError, match="subset of inter, intra, tags"):
        GraphSettings(relations=("intra", "visual"))
    assert GraphSettings(relations=["intra"]).relations == ("intra",)


def test_build_neighbours_and_graphs(six, splits):
    g = build_graphs(splits, six, GraphSettings(k=2, inter="posts"), text_encoder=angle_encoder, progress=False)
    # training pool p0..p2; own image excluded
    assert g.neighbours("p0", "intra") == [("p1", pytest.approx(np.cos(np.deg2rad(10)))),
                                           ("p2", pytest.approx(np.cos(np.deg2rad(30))))]
    assert [n for n, _ in g.neighbours("p3", "intra")] == ["p2", "p1"]
    assert [n for n, _ in g.neighbours("p3", "tags")] == []             # no training image shows a car
    assert [n for n, _ in g.neighbours("p5", "tags")] == ["p0", "p1"]    # {dog, ball}: 1.0, 1/3
    # inter (image-only index): images of the most similar training posts by sentence
    assert [n for n, _ in g.neighbours("p6", "inter")] == ["p2", "p1"]  # 95 deg: 65, 85
    d = g.graph("p0", "intra")
    assert d.num_nodes == 3 and d.edge_type.tolist() == [1] * 4
    assert torch.equal(d.x[0], g.node_features[0]) and d.neighbour_rows.tolist() == [1, 2]
    b = Batch.from_data_list([g.graph(p, "all") for p in ["p0", "p6"]])
    assert b.has_image.tolist() == [True, False]


def test_post_without_image(six, splits):
    g = build_graphs(splits, six, GraphSettings(k=2, inter="posts"), text_encoder=angle_encoder, progress=False)
    assert not g.has_image("p6")
    intra = g.graph("p6", "intra")
    assert intra.num_nodes == 1 and intra.edge_index.shape == (2, 0) and intra.has_image.tolist() == [False]
    assert intra.x.abs().sum() == 0
    assert g.graph("p6", "inter").num_nodes == 3                       # still has an inter-modal graph


def test_inter_graph_holds_nothing_of_the_own_image(six, splits):
    g = build_graphs(splits, six, GraphSettings(k=2, inter="posts"), text_encoder=angle_encoder, progress=False)
    for post in ("p0", "p4"):
        inter = g.graph(post, "inter")
        assert inter.x[0].abs().sum() == 0                              # the centre is not the post's image
        own = g.image_rows[g.post_index[post]]
        assert own not in inter.neighbour_rows.tolist()


def test_negative_thresholds_are_rejected():
    for bad in (-0.1, None, 1.5):
        with pytest.raises(ValueError, match="threshold must be a number in \\[0, 1\\].*negative"):
            GraphSettings(threshold=bad)


def test_threshold_setting(six, splits):
    g = build_graphs(splits, six, GraphSettings(k=2, threshold=0.0, inter="posts"), text_encoder=angle_encoder, progress=False)
    assert g.neighbours("p5", "intra") == []                            # 150 and 170 degrees away


def test_errors(six, splits):
    g = build_graphs(splits, six, GraphSettings(k=2, relations=("intra",)), progress=False)
    with pytest.raises(UnknownIdError, match="'nope' is not in these graphs"):
        g.neighbours("nope", "intra")
    with pytest.raises(KeyError, match="was not built"):
        g.neighbours("p0", "tags")
    with pytest.raises(RetrievalError, match="needs a split named 'train'"):
        build_graphs({"test": splits["test"]}, six, GraphSettings(relations=("intra",)), progress=False)
    no_images = {"train": Corpus("t", [sample("x1", 0, ["O", "O"])]), "test": splits["test"]}
    with pytest.raises(EmptyPoolError, match="pool is empty"):
        build_graphs(no_images, six, GraphSettings(relations=("intra",)), progress=False)


def test_cache_roundtrip_and_invalidation(six, splits, tmp_path):
    s = GraphSettings(k=2, relations=("intra", "tags"))
    g1 = load_or_build(splits, six, s, tmp_path, progress=False)
    folders = [p for p in tmp_path.iterdir()]
    assert len(folders) == 1 and sorted(f.name for f in folders[0].iterdir()) == ["graphs.npz", "manifest.json"]
    m = json.loads((folders[0] / "manifest.json").read_text())
    assert m["settings"]["k"] == 2 and set(m["data"]) == {"train", "test"}
    g2 = load_or_build(splits, six, s, tmp_path, progress=False)
    assert g2.path == g1.path and g2.neighbours("p4", "tags") == g1.neighbours("p4", "tags")
    assert g2.graph("p4", "intra").edge_index.tolist() == g1.graph("p4", "intra").edge_index.tolist()
    # a changed setting -> another key, a rebuild
    g3 = load_or_build(splits, six, GraphSettings(k=1, relations=("intra", "tags")), tmp_path, progress=False)
    assert g3.path != g1.path and len(list(tmp_path.iterdir())) == 2
    assert len(g3.neighbours("p4", "intra")) == 1
    # the stored folder refuses other settings and another index
    with pytest.raises(CacheMismatchError, match="other settings"):
        load_graphs(g1.path, six, GraphSettings(k=3, relations=("intra", "tags")))
    other = make_artifact(six_points()[::-1].copy(), list(six.ids), six.tags, embedder="clip")
    with pytest.raises(CacheMismatchError, match="another index"):
        load_graphs(g1.path, other)
    # a changed index -> another key
    g4 = load_or_build(splits, other, s, tmp_path, progress=False)
    assert g4.path not in (g1.path, g3.path)


def test_no_leftover_temp_folders(six, splits, tmp_path):
    load_or_build(splits, six, GraphSettings(k=2, relations=("intra",)), tmp_path, progress=False)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_direct_inter_in_a_joint_space(splits):
    from retrieval.search import EmbedderMismatchError

    from .conftest import IDS

    art = make_artifact(six_points(), IDS, has_text=True)
    g = build_graphs(splits, art, GraphSettings(k=2, relations=("inter",)), text_encoder=angle_encoder,
                     progress=False)
    assert g.manifest["inter_strategy"] == "direct"
    assert [n for n, _ in g.neighbours("p6", "inter")] == ["p2", "p1"]
    assert [n for n, _ in g.neighbours("p0", "inter")] == ["p1", "p2"]  # own image excluded
    d = g.graph("p6", "inter")
    assert d.x[0].tolist() == pytest.approx(angle_encoder(["deg95"])[0].tolist(), abs=1e-6)
    with pytest.raises(EmbedderMismatchError, match="3-d but the index"):
        build_graphs(splits, art, GraphSettings(k=2, relations=("inter",)),
                     text_encoder=lambda t: np.ones((len(t), 3), np.float32), progress=False)


def bag_of_words(texts):
    """Fake sentence encoder: counts of a few object words (plus a constant), L2-normalised."""
    vocab = ["dog", "cat", "car", "ball", "road"]
    v = np.array([[t.count(w) for w in vocab] + [0.1] for t in texts], np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_visual_text_is_the_default_inter_relation_without_clip(six):
    train = [Sample("p0", ["my", "dog"], ["O", "O"]), Sample("p1", ["a"], ["O"]), Sample("p2", ["b"], ["O"])]
    test = [Sample("q", ["look", "at", "my", "cat"], ["O"] * 4), Sample("p3", ["car", "here"], ["O", "O"])]
    splits = {"train": Corpus("train.txt", train), "test": Corpus("test.txt", test)}
    g = build_graphs(splits, six, GraphSettings(k=2, relations=("inter",)), text_encoder=bag_of_words,
                     progress=False)
    assert g.manifest["inter_strategy"] == "visual_text"
    # pool images described by their tags: p0 "dog, ball", p1 "dog, cat", p2 "cat"
    assert [n for n, _ in g.neighbours("q", "inter")] == ["p2", "p1"]
    assert [n for n, _ in g.neighbours("p0", "inter")] == ["p1", "p2"]         # never its own photo
    assert g.graph("p0", "inter").x[0].abs().sum() == 0                       # the centre is not its photo
    assert "p3" not in {n for n, _ in g.neighbours("q", "inter")}             # only the training pool


@pytest.mark.parametrize("name", ["graphs.npz", "manifest.json"])
def test_a_damaged_cache_file_is_named_with_the_fix(six, splits, tmp_path, name):
    from retrieval.cache import GraphCacheDamaged

    g = load_or_build(splits, six, GraphSettings(k=2, relations=("intra",)), tmp_path, progress=False)
    f = tmp_path / g.path / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(GraphCacheDamaged, match=rf"{f} cannot be read .*rm -r {g.path}"):
        load_or_build(splits, six, GraphSettings(k=2, relations=("intra",)), tmp_path, progress=False)


# --------------------------------------------------------------------------- chunked builds
def hashed_encoder(texts):
    """Fake sentence encoder: each distinct text a fixed random unit vector (8-d)."""
    import zlib

    v = np.stack([np.random.default_rng(zlib.crc32(t.encode())).standard_normal(8) for t in texts])
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def world():
    """40 indexed images in 4 clusters with object tags; 26 training posts, 17 test posts
    (3 of them without an image)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 8))
    x = centres[np.arange(40) % 4] + 0.5 * rng.standard_normal((40, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    labels = ["dog", "cat", "car", "ball", "road", "tree"]
    tags = {f"m{r}": [(labels[int(j)], float(s)) for j, s in zip(rng.choice(6, 3, replace=False), [.9, .5, .2])]
            for r in range(40)}
    words = ["my", "dog", "cat", "car", "ball", "on", "the", "road"]
    post = lambda i: Sample(i, list(rng.choice(words, 3)), ["O", "O", "O"])         # noqa: E731
    train = [post(f"m{r}") for r in range(26)]
    test = [post(f"m{r}") for r in range(26, 40)] + [post(f"x{j}") for j in range(3)]
    return x, tags, {"train": Corpus("train.txt", train), "test": Corpus("test.txt", test)}


def assert_same_graphs(a, b):
    assert a.post_ids == b.post_ids and a.relations == b.relations
    np.testing.assert_array_equal(a.image_rows, b.image_rows)
    for rel in a.relations:
        np.testing.assert_array_equal(a.tables[rel].rows, b.tables[rel].rows, err_msg=rel)
        np.testing.assert_array_equal(a.tables[rel].scores, b.tables[rel].scores, err_msg=rel)
    if a.text_queries is None:
        assert b.text_queries is None
    else:
        np.testing.assert_array_equal(a.text_queries, b.text_queries)
    assert torch.equal(a.node_features, b.node_features)


@pytest.mark.parametrize("inter,has_text", [("visual_text", False), ("posts", False), ("direct", True)])
@pytest.mark.parametrize("chunk_size", [1, 4, 7])
def test_a_chunked_build_equals_a_one_shot_build(world, tmp_path, inter, has_text, chunk_size):
    x, tags, splits = world
    art = make_artifact(x, [f"m{r}" for r in range(40)], tags, has_text=has_text)
    s = GraphSettings(k=3, inter=inter)
    one = build_graphs(splits, art, s, text_encoder=hashed_encoder, progress=False, chunk_size=10_000)
    assert (one.tables["intra"].rows >= 0).sum() > 0 and (one.tables["inter"].rows >= 0).all(1).sum() > 30
    chunked = build_graphs(splits, art, s, text_encoder=hashed_encoder, progress=False, chunk_size=chunk_size)
    assert_same_graphs(one, chunked)
    stored = load_or_build(splits, art, s, tmp_path, text_encoder=hashed_encoder, progress=False,
                           chunk_size=chunk_size)
    assert_same_graphs(one, stored)
    assert_same_graphs(one, load_graphs(stored.path, art, s, splits))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "retrieval.log") == [Path(stored.path).name]


class Interrupted(Exception):
    pass


def test_an_interrupted_build_resumes_from_its_last_chunk(world, tmp_path, monkeypatch):
    import retrieval.cache as cache

    x, tags, splits = world
    art = make_artifact(x, [f"m{r}" for r in range(40)], tags)
    s = GraphSettings(k=3, inter="posts")
    one = build_graphs(splits, art, s, text_encoder=hashed_encoder, progress=False)
    calls, real = [], cache.intra_modal

    def intra_then_fail(art_, image_rows, *a, fail_at=None):
        calls.append(len(image_rows))
        if fail_at is not None and len(calls) == fail_at:
            raise Interrupted
        return real(art_, image_rows, *a)

    # 43 posts in chunks of 5: 9 chunks; killed while computing the 4th
    monkeypatch.setattr(cache, "intra_modal", lambda *a: intra_then_fail(*a, fail_at=4))
    with pytest.raises(Interrupted):
        load_or_build(splits, art, s, tmp_path, text_encoder=hashed_encoder, progress=False, chunk_size=5)
    partial = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert len(partial) == 1 and not [p for p in tmp_path.iterdir() if (p / "manifest.json").exists()]
    progress = json.loads((partial[0] / "progress.json").read_text())
    assert sorted(progress["done"]) == ["0", "1", "2"] and progress["chunk_size"] == 5
    # run again: only the 6 chunks left are computed, the result is the one-shot build's
    calls.clear()
    monkeypatch.setattr(cache, "intra_modal", lambda *a: intra_then_fail(*a))
    g = load_or_build(splits, art, s, tmp_path, text_encoder=hashed_encoder, progress=False, chunk_size=5)
    assert calls == [5, 5, 5, 5, 5, 3]
    assert_same_graphs(one, g)
    assert not partial[0].exists()                                       # cleaned up once published
    assert g.manifest["chunk_size"] == 5 and set(g.manifest["build_seconds"]) == {"inter", "intra", "tags"}


def test_a_partial_build_of_other_inputs_is_refused(world, tmp_path, monkeypatch):
    import retrieval.cache as cache

    x, tags, splits = world
    art = make_artifact(x, [f"m{r}" for r in range(40)], tags)
    s = GraphSettings(k=3, relations=("intra",))
    monkeypatch.setattr(cache, "intra_modal", lambda *a: (_ for _ in ()).throw(Interrupted()))
    with pytest.raises(Interrupted):
        build_graphs(splits, art, s, tmp_path, progress=False, chunk_size=5)
    partial = next(tmp_path.glob(".*.partial"))
    record = json.loads((partial / "progress.json").read_text())
    (partial / "progress.json").write_text(json.dumps({**record, "key": "another"}))
    with pytest.raises(CacheMismatchError, match="holds chunks of another build.*rm -r"):
        build_graphs(splits, art, s, tmp_path, progress=False, chunk_size=5)


def test_each_search_sees_at_most_a_chunk_of_posts(world, monkeypatch):
    import retrieval.relations as relations

    x, tags, splits = world
    art = make_artifact(x, [f"m{r}" for r in range(40)], tags, has_text=True)
    sizes = {"search": [], "encoder": [], "jaccard": []}

    def spy(name, fn, arg=1):
        def wrapped(*a, **kw):
            sizes[name].append(len(a[arg]))
            return fn(*a, **kw)
        return wrapped

    monkeypatch.setattr(relations, "search", spy("search", relations.search))
    monkeypatch.setattr(relations.JaccardSearch, "__call__", spy("jaccard", relations.JaccardSearch.__call__))
    build_graphs(splits, art, GraphSettings(k=3, inter="direct"), text_encoder=spy("encoder", hashed_encoder, 0),
                 progress=False, chunk_size=6)
    # 43 posts: 8 chunks, each searched by intra (posts with an image) and inter (all posts)
    assert max(sizes["search"]) <= 6 and max(sizes["encoder"]) <= 6 and max(sizes["jaccard"]) <= 6
    assert len(sizes["encoder"]) == 8 and len(sizes["jaccard"]) == 8 and sum(sizes["encoder"]) == 43
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, found 0"):
        build_graphs(splits, art, GraphSettings(k=3, relations=("intra",)), progress=False, chunk_size=0)


def test_a_resumed_build_does_not_embed_new_images_again(world, tmp_path, monkeypatch):
    import retrieval.cache as cache

    x, tags, splits = world
    art = make_artifact(x, [f"m{r}" for r in range(40)], tags)
    for j, name in enumerate(("new1", "bad")):                           # two posts with images the index lacks
        f = tmp_path / f"{name}.jpg"
        f.write_bytes(bytes([j]) * 10)
        splits["test"].samples.append(Sample(name, ["my", "dog"], ["O", "O"], image=str(f)))
    embedded = []

    def fake_embed(artifact, post_images, progress):
        embedded.append(list(post_images.new_ids))
        post_images.mark_unreadable({"bad"})
        return np.stack([x[0], np.zeros(8, np.float32)]), {"new1": [("dog", 0.9)]}

    monkeypatch.setattr(cache, "_embed_new_images", fake_embed)
    s = GraphSettings(k=3, relations=("intra", "tags"))
    one = build_graphs(splits, art, s, progress=False)
    real = cache.intra_modal
    monkeypatch.setattr(cache, "intra_modal", lambda *a: real(*a) if len(embedded) > 1 else
                        (_ for _ in ()).throw(Interrupted()))
    embedded.clear()
    with pytest.raises(Interrupted):
        build_graphs(splits, art, s, tmp_path / "cache", progress=False, chunk_size=20)
    monkeypatch.setattr(cache, "intra_modal", real)
    g = load_or_build(splits, art, s, tmp_path / "cache", progress=False, chunk_size=20)
    assert embedded == [["new1", "bad"]]                                 # once, before the kill
    assert_same_graphs(one, g)
    assert g.post_images.status[g.post_index["bad"]] == "unreadable" and not g.has_image("bad")
    assert g.neighbours("new1", "tags") and g.neighbours("new1", "intra")[0] == ("m0", pytest.approx(1.0))
