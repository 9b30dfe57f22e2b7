"""Which image each post has: found by its image field, embedded when new, counted when missing."""
import numpy as np
import pytest

from data.corpus import read_corpus
from index.__main__ import main as index_main
from index.artifact import load_index
from retrieval.cache import GraphSettings, build_graphs, cache_key, load_or_build
from retrieval.post_images import resolve_post_images
from tests.colour import colour_image, write_image_decided

INTRA = GraphSettings(k=2, relations=("intra",))


@pytest.fixture
def renamed(tmp_path):
    """An index over posts whose photos are named photo-<i>-<split>.png, not <post id>.png."""
    files = write_image_decided(tmp_path / "data", sizes=(("train", 8), ("test", 4)),
                                image_name="photo-{i}-{split}.png")
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(tmp_path / "data/images"),
                       "--data", *files.values(), "--out", str(tmp_path / "index")]) == 0
    return tmp_path, files, load_index(tmp_path / "index")


def splits_of(files, images):
    return {name: read_corpus(path, images) for name, path in files.items()}


def test_posts_find_their_image_by_its_file_name(renamed):
    root, files, art = renamed
    assert art.image_of("train-003") == "photo-3-train" and "train-003" not in art.id_to_row
    for images in (root / "data/images", None):                 # with the files, or from the index alone
        g = build_graphs(splits_of(files, images), art, INTRA, progress=False)
        assert g.post_images.counts()["index"] == 12
        assert all(g.has_image(p) for p in g.post_ids)
        assert g.neighbours("test-001", "intra")


def test_new_and_missing_images_and_the_cache_key(renamed):
    root, files, art = renamed
    new = write_image_decided(root / "new", sizes=(("test", 4),), seed=3, prefix="new-")["test"]
    (root / "new/images/new-test-003.png").unlink()
    splits = {"train": read_corpus(files["train"], root / "data/images"), "test": read_corpus(new, root / "new/images")}
    g = build_graphs(splits, art, INTRA, progress=False)
    pi = g.post_images
    assert pi.counts([s.id for s in splits["test"]]) == {"index": 0, "new": 3, "unreadable": 0, "missing": 1,
                                                        "dropped": 0, "none": 0}
    assert g.ids[len(art.ids):] == ["new-test-000", "new-test-001", "new-test-002"]
    # a new post's node is its own embedded photo; its neighbours are training photos of its colour
    for s in splits["test"][:3]:
        own = g.graph(s.id, "intra")
        assert own.has_image.item() and own.x[0].abs().sum() > 0
        assert {art.ids[r] for r in own.neighbour_rows.tolist()} <= {f"photo-{i}-train" for i in range(8)}
        colour = s.meta["colour"]
        assert all(r % 2 == (0 if colour == "red" else 1) for r in own.neighbour_rows.tolist())
    assert not g.has_image("new-test-003")
    assert "3 embedded now" in pi.summary() and "new-test-003 (new-test-003)" in pi.summary()
    # changing a new photo's bytes changes the cache key
    key1, _ = cache_key(splits, art, INTRA)
    colour_image(root / "new/images/new-test-000.png", "blue", __import__("random").Random(9))
    splits["test"] = read_corpus(new, root / "new/images")
    assert cache_key(splits, art, INTRA)[0] != key1


def test_cached_graphs_keep_the_new_images(renamed, tmp_path):
    root, files, art = renamed
    new = write_image_decided(root / "new", sizes=(("test", 2),), seed=3, prefix="new-")["test"]
    splits = {"train": read_corpus(files["train"], root / "data/images"), "test": read_corpus(new, root / "new/images")}
    built = load_or_build(splits, art, INTRA, tmp_path / "cache", progress=False)
    loaded = load_or_build(splits, art, INTRA, tmp_path / "cache", progress=False)
    assert loaded.path == built.path and loaded.ids == built.ids
    assert np.array_equal(loaded.node_features.numpy(), built.node_features.numpy())
    assert loaded.post_images.status == built.post_images.status


def test_dropped_and_textless_posts():
    from data.corpus import Sample, drop_images

    class Art:
        ids, id_to_row = ["x"], {"x": 0}

        def image_of(self, p):
            return p

    a, b, c = Sample("x", ["w"]), Sample("y", ["w"]), Sample("z", ["w"], image_missing=True)
    drop_images([a])
    pi = resolve_post_images([a, b, c], Art())
    assert pi.status == ["dropped", "none", "missing"] and pi.rows.tolist() == [0, -1, -1]
