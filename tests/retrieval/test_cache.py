import json

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
