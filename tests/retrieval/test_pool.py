"""retrieval/pool.py: the graphs of new posts built against a prepared pool equal those of a
whole build over the training split and the posts (rows, scores, node features, PyG graphs),
for every relation, inter-modal strategy and pool, photos new to the index included."""
import zlib

import numpy as np
import pytest
import torch

import retrieval.cache as cache
import retrieval.pool as pool_module
from data.corpus import Corpus, Sample
from index.embedding import EmbedResult
from retrieval.cache import GraphSettings, build_graphs
from retrieval.pool import GraphPool, jaccard_against_pool
from retrieval.relations import jaccard_topk
from retrieval.search import RetrievalError

from .conftest import make_artifact
from .test_cache import hashed_encoder

LABELS = ["dog", "cat", "car", "ball", "road", "tree"]


def photo_vector(data: bytes) -> tuple[np.ndarray, list]:
    """What the fake embedder makes of a photo file: a vector and tags fixed by its bytes."""
    rng = np.random.default_rng(zlib.crc32(data))
    v = rng.standard_normal(8).astype(np.float32)
    tags = [(LABELS[int(j)], float(s)) for j, s in zip(rng.choice(6, 3, replace=False), [.9, .5, .2])]
    return v / np.linalg.norm(v), tags


def fake_embed_like_index(artifact, images, batch_size=32, progress=True, embedder=None, with_regions=False):
    """The index's embedder on ``(id, path)`` pairs: files holding b"bad" cannot be read."""
    ids, vecs, tags = [], [], []
    for i, path in images:
        data = open(path, "rb").read()
        if data == b"bad":
            continue
        v, t = photo_vector(data)
        ids.append(i), vecs.append(v), tags.append(t)
    return EmbedResult(ids, np.asarray(vecs, np.float32).reshape(len(ids), 8), None, tags)


@pytest.fixture
def world(tmp_path, monkeypatch):
    """40 indexed images in 4 clusters with tags; 26 training posts (one with a photo the
    index lacks), 21 posts to tag: indexed photos (two of them training photos), none, new
    photos (one shared with the training post, one unreadable, one given twice)."""
    monkeypatch.setattr(pool_module, "embed_like_index", fake_embed_like_index)
    monkeypatch.setattr(cache, "embed_like_index", fake_embed_like_index)
    monkeypatch.setattr(pool_module, "embedder_of", lambda artifact: object())
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 8))
    x = centres[np.arange(40) % 4] + 0.5 * rng.standard_normal((40, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tags = {f"m{r}": [(LABELS[int(j)], float(s)) for j, s in zip(rng.choice(6, 3, replace=False), [.9, .5, .2])]
            for r in range(40)}
    words = ["my", "dog", "cat", "car", "ball", "on", "the", "road"]

    def photo(name, data):
        f = tmp_path / f"{name}.jpg"
        f.write_bytes(data)
        return str(f)

    def post(i, image=None, key=None):
        return Sample(i, list(rng.choice(words, 3)), ["O", "O", "O"], image=image, image_key=key)

    train = [post(f"m{r}") for r in range(25)] + [post("t-new", photo("shared", b"shared"), "shared")]
    new = [post(f"m{r}") for r in range(25, 40)] + [post("q-none", None, "nothing")]
    new[-1].image_key = None
    new += [post("q-again", None, "m3"), post("q-again2", None, "m7"),            # training photos again
            post("q-shared", photo("shared-too", b"shared"), "shared"), post("q-new", photo("n1", b"n1"), "n1"),
            post("q-bad", photo("bad", b"bad"), "bad"), post("q-new2", photo("n1b", b"n1"), "n1")]
    return x, tags, Corpus("train.txt", train), new


def assert_same_post_graphs(whole, part, posts):
    """The graphs of ``posts`` in a whole build and in a pool's answer are the same."""
    assert part.post_ids == [s.id for s in posts] and part.relations == whole.relations
    assert part.ids == whole.ids
    assert torch.equal(part.node_features, whole.node_features)
    at = [whole.post_index[s.id] for s in posts]
    np.testing.assert_array_equal(part.image_rows, whole.image_rows[at])
    for rel in whole.relations:
        np.testing.assert_array_equal(part.tables[rel].rows, whole.tables[rel].rows[at], err_msg=rel)
        np.testing.assert_array_equal(part.tables[rel].scores, whole.tables[rel].scores[at], err_msg=rel)
        for s in posts:
            assert part.neighbours(s.id, rel) == whole.neighbours(s.id, rel)
            a, b = part.graph(s.id, rel), whole.graph(s.id, rel)
            for key in ("x", "edge_index", "edge_weight", "edge_type", "has_image", "neighbour_rows"):
                assert torch.equal(a[key], b[key]), (rel, s.id, key)
    if whole.text_queries is None:
        assert part.text_queries is None
    else:
        np.testing.assert_array_equal(part.text_queries, whole.text_queries[at])
    assert part.image_summary() == whole.image_summary([s.id for s in posts])


@pytest.mark.parametrize("inter,has_text", [("visual_text", False), ("posts", False), ("direct", True)])
@pytest.mark.parametrize("pool,threshold", [("train", 0.0), ("all", 0.3)])
def test_the_posts_graphs_equal_those_of_a_whole_build(world, inter, has_text, pool, threshold):
    x, tags, train, new = world
    art = make_artifact(x, [f"m{r}" for r in range(40)], tags, has_text=has_text)
    s = GraphSettings(k=3, inter=inter, pool=pool, threshold=threshold)
    prepared = GraphPool(train, art, s, text_encoder=hashed_encoder)
    assert prepared.graphs_for([]).post_ids == []
    for batch in (new, new[:5], new[5:12], new[12:], new[-3:], [new[-1]]):
        whole = build_graphs({"train": train, "predict": Corpus("predict", batch)}, art, s, text_encoder=hashed_encoder,
                             progress=False)
        part = prepared.graphs_for(batch)
        assert_same_post_graphs(whole, part, batch)
    whole = build_graphs({"train": train, "predict": Corpus("predict", new)}, art, s, text_encoder=hashed_encoder,
                         progress=False)
    # the test means something: every relation finds neighbours, new photos are embedded, one is unreadable
    for rel in s.relations:
        assert (whole.tables[rel].rows[-len(new):] >= 0).sum() > 2 * len(new) - 10, rel
    assert len(whole.ids) == 40 + 3 and whole.post_images.counts([p.id for p in new])["unreadable"] == 1


def test_jaccard_against_the_pool_equals_the_level_search():
    rng = np.random.default_rng(1)
    labels = list("abcdefg")
    sets = [frozenset(rng.choice(labels, int(rng.integers(0, 5)), replace=False)) for _ in range(60)]
    vec = rng.standard_normal((60, 4)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    mask = rng.random(60) < 0.6
    queries = np.asarray([-1, 0, 3, 7, 11, 59] + list(range(20, 40)))
    for k in (1, 3, 8):
        for max_ties in (1, 4096):
            D, I = jaccard_topk(sets, queries, k, mask, vec, max_ties=max_ties)
            rows = np.nonzero(mask)[0]
            D2, I2 = jaccard_against_pool([sets[r] for r in rows], rows,
                                          [sets[q] if q >= 0 else frozenset() for q in queries], queries, k, vec,
                                          max_ties=max_ties)
            np.testing.assert_array_equal(I, I2)
            np.testing.assert_array_equal(D, D2)


def test_a_post_id_of_the_training_split_is_refused(world):
    x, tags, train, new = world
    prepared = GraphPool(train, make_artifact(x, [f"m{r}" for r in range(40)], tags), GraphSettings(k=3),
                         text_encoder=hashed_encoder)
    with pytest.raises(RetrievalError, match="post id 'm3' occurs twice"):
        prepared.graphs_for([Sample("m3", ["my", "dog"], ["O", "O"])])


def test_the_pool_side_is_made_once_and_the_embedder_built_once(world, monkeypatch):
    x, tags, train, new = world
    art = make_artifact(x, [f"m{r}" for r in range(40)], tags)
    builds, encoded = [], []
    monkeypatch.setattr(pool_module, "embedder_of", lambda artifact: builds.append(1) or object())

    def encoder(texts):
        encoded.append(len(texts))
        return hashed_encoder(texts)

    prepared = GraphPool(train, art, GraphSettings(k=3, inter="visual_text"), text_encoder=encoder)
    assert builds == [1]                                   # the training post's own new photo
    prepared.graphs_for([])
    pool_texts = sum(encoded)
    assert pool_texts >= 10                                # the pool's visual texts, once
    for post in (new[-3], new[-2], new[-1], new[0]):
        prepared.graphs_for([post])
    assert builds == [1] and sum(encoded) == pool_texts + 4
