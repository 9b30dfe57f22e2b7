import numpy as np
import pytest

from retrieval.relations import (Neighbours, inter_via_posts, inter_visual_text, intra_modal, jaccard_topk, object_type,
                                 tag_sets, visual_texts)
from retrieval.search import EmptyPoolError

from .conftest import make_artifact, six_points


def test_intra_modal_skips_posts_without_image(six):
    nb = intra_modal(six, np.array([0, -1, 5]), 2, pool=None)
    assert nb.rows.tolist() == [[1, 2], [-1, -1], [4, 3]]
    assert np.isneginf(nb.scores[1]).all()
    assert nb.lists(six.ids)[0][0][0] == "p1"


def test_intra_modal_queries_new_images_and_never_returns_them(six):
    new = np.array([[np.cos(np.deg2rad(95)), np.sin(np.deg2rad(95))]], np.float32)   # not in the index
    vectors = np.concatenate([six.embeddings, new])
    nb = intra_modal(six, np.array([6, 3]), 2, pool=None, vectors=vectors)
    assert nb.rows.tolist() == [[4, 3], [4, 2]]                 # 95 deg: 100, 90; post 3 (90 deg) excludes itself
    assert (nb.rows < 6).all()


def test_visual_texts_by_hand():
    tags = {"a": [("tabby", 0.2), ("Egyptian cat", 0.7)], "b": []}
    assert visual_texts(tags, {"b": "EXIT"}, ["a", "b", "c"]) == ["Egyptian cat, tabby", "EXIT", ""]
    assert visual_texts(tags, {"a": "MEOW"}, ["a"], top=1) == ["Egyptian cat. MEOW"]


def test_inter_visual_text_matches_sentences_to_image_descriptions():
    # sentences and image descriptions in one (fake) sentence space: unit vectors by angle
    sentences = six_points()[[0, 3, 5]]                          # 0, 90, 180 degrees
    described = six_points()[[1, 2, 4]]                          # candidate images: 10, 30, 100 degrees
    rows = np.array([11, 12, 14])                                # their artifact rows
    nb = inter_visual_text(sentences, described, rows, own_rows=np.array([-1, 14, -1]), k=2)
    assert nb.rows.tolist() == [[11, 12], [12, 11], [14, 12]]   # post 1 never gets its own image 14
    np.testing.assert_allclose(nb.scores[0], np.cos(np.deg2rad([10, 30])), atol=1e-6)
    with pytest.raises(EmptyPoolError, match="visual text"):
        inter_visual_text(sentences, np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.full(3, -1), 2)


def test_inter_via_similar_training_posts():
    text = six_points()                                  # post sentences, same angles as the images
    image_rows = np.array([0, 1, 2, -1, 4, 5])           # post 3 has no image
    train = np.array([True, True, True, False, False, False])
    nb = inter_via_posts(text, image_rows, train, 2)
    assert nb.rows.tolist() == [[1, 2], [0, 2], [1, 0], [2, 1], [2, 1], [2, 1]]
    np.testing.assert_allclose(nb.scores[3], np.cos(np.deg2rad([60, 80])), atol=1e-6)


def test_inter_via_posts_never_returns_own_image():
    text = np.array([[1, 0], [1, 0], [0, 1]], np.float32)
    nb = inter_via_posts(text, np.array([0, 0, 1]), np.ones(3, bool), 2)   # posts 0 and 1 share image 0
    assert nb.rows.tolist() == [[1, -1], [1, -1], [0, -1]]          # image 0 once, never its own


def test_inter_via_posts_empty_pool():
    with pytest.raises(EmptyPoolError):
        inter_via_posts(six_points(), np.full(6, -1), np.ones(6, bool), 2)


def test_jaccard_on_hand_sets(six):
    sets = tag_sets(six.tags, six.ids)
    assert sets[0] == {"dog", "ball"} and sets[4] == {"car"}
    D, I = jaccard_topk(sets, np.arange(6), 2, tiebreak=six.embeddings)
    assert I.tolist() == [[5, 1], [2, 0], [1, -1], [4, -1], [3, -1], [0, 1]]
    np.testing.assert_allclose(D[0], [1.0, 1 / 3], atol=1e-6)
    np.testing.assert_allclose(D[1], [0.5, 1 / 3], atol=1e-6)
    mask = np.array([1, 1, 1, 0, 0, 0], bool)
    D, I = jaccard_topk(sets, np.array([5, 3, -1]), 2, mask)
    assert I.tolist() == [[0, 1], [-1, -1], [-1, -1]]


def test_jaccard_ties_broken_by_image_similarity():
    sets = [frozenset("a")] * 3
    feats = np.array([[1, 0], [0, 1], [0.9, 0.1]], np.float32)
    _, I = jaccard_topk(sets, np.array([0]), 2, tiebreak=feats)
    assert I.tolist() == [[2, 1]]
    _, I = jaccard_topk(sets, np.array([0]), 2)
    assert I.tolist() == [[1, 2]]


def test_object_type_relation_and_missing_tags(six):
    nb = object_type(six, np.array([0, -1]), 2, pool=None)
    assert nb.rows.tolist() == [[5, 1], [-1, -1]]
    with pytest.raises(ValueError, match="no object tags"):
        object_type(make_artifact(six_points()), np.array([0]), 2, None)


def test_threshold_keeps_best_first():
    nb = Neighbours(np.array([[3, 4, 5]]), np.array([[0.9, 0.1, 0.5]])).apply_threshold(0.4)
    assert nb.rows.tolist() == [[3, 5, -1]]


def _random_tag_world(seed, n=300, vocab=12, top=5):
    rng = np.random.default_rng(seed)
    sets = [frozenset(f"t{x}" for x in rng.integers(0, vocab, rng.integers(0, top + 1))) for _ in range(n)]
    feats = rng.standard_normal((n, 8)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    return rng, sets, feats


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget", [1, 64, 2_000_000])
def test_jaccard_level_search_equals_scoring_the_whole_pool(seed, budget, monkeypatch):
    """The level-by-level search gives exactly what scoring every pool row gives (many ties:
    a small vocabulary), whatever the pair budget per slice."""
    import retrieval.relations as rel

    rng, sets, feats = _random_tag_world(seed, vocab=4 + 3 * seed)
    q = rng.integers(-1, len(sets), 120)
    mask = rng.random(len(sets)) < [1.0, 0.5, 0.05][seed % 3]
    k = 1 + seed
    monkeypatch.setattr(rel, "PAIR_BUDGET", budget)
    for tiebreak, max_ties in ((feats, 4096), (None, 4096), (feats, k)):
        D, I = jaccard_topk(sets, q, k, mask, tiebreak=tiebreak, max_ties=max_ties)
        D0, I0 = rel._jaccard_topk_loop(sets, q, k, mask, tiebreak=tiebreak, max_ties=max_ties)
        np.testing.assert_array_equal(I, I0)
        np.testing.assert_array_equal(D, D0)


@pytest.mark.parametrize("cache_bytes", [0, 1 << 30])
def test_a_prepared_jaccard_search_asked_in_chunks_equals_one_call(cache_bytes, monkeypatch):
    import retrieval.relations as rel

    rng, sets, feats = _random_tag_world(3, vocab=9)
    q = rng.integers(-1, len(sets), 200)
    mask = rng.random(len(sets)) < 0.5
    D0, I0 = jaccard_topk(sets, q, 4, mask, tiebreak=feats)
    monkeypatch.setattr(rel, "LEVEL_CACHE_BYTES", cache_bytes)        # tables kept between calls, or remade
    search = rel.JaccardSearch(sets, mask, feats)
    parts = [search(q[a:a + 37], 4) for a in range(0, 200, 37)]
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), I0)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), D0)
    assert (len(search.levels) > 0) == (cache_bytes > 0)


def test_jaccard_large_tag_sets_fall_back_to_the_reference():
    rng, _, feats = _random_tag_world(0, n=40)
    sets = [frozenset(f"t{x}" for x in rng.integers(0, 30, 12)) for _ in range(40)]   # > MAX_SUBSET_TAGS
    D, I = jaccard_topk(sets, np.arange(40), 3, tiebreak=feats)
    from retrieval.relations import _jaccard_topk_loop
    D0, I0 = _jaccard_topk_loop(sets, np.arange(40), 3, tiebreak=feats)
    np.testing.assert_array_equal(I, I0)
    np.testing.assert_array_equal(D, D0)


def test_intra_modal_grouped_by_ivf_list_equals_search_in_post_order():
    from retrieval.search import search

    rng = np.random.default_rng(0)
    c = rng.standard_normal((10, 16))
    x = c[rng.integers(0, 10, 400)] + 0.3 * rng.standard_normal((400, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    art = make_artifact(x, factory="IVF8,Flat", nprobe=2)
    pool = {art.ids[r] for r in range(0, 400, 3)}
    image_rows = np.where(rng.random(400) < 0.1, -1, np.arange(400))
    nb = intra_modal(art, image_rows, 4, pool)
    has = image_rows >= 0
    D, I = search(art, x[image_rows[has]], 4, exclude_ids=[art.ids[r] for r in image_rows[has]], pool=pool)
    np.testing.assert_array_equal(nb.rows[has], I)
    np.testing.assert_allclose(nb.scores[has], D, rtol=1e-6)
    assert (nb.rows[~has] == -1).all()


def test_inter_via_posts_with_an_ivf_text_index_matches_exact(monkeypatch):
    import index.factory

    rng = np.random.default_rng(1)
    c = rng.standard_normal((8, 16))
    text = c[rng.integers(0, 8, 600)] + 0.2 * rng.standard_normal((600, 16))
    text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
    image_rows, cand = np.arange(600), np.arange(600) < 400
    exact = inter_via_posts(text, image_rows, cand, 5)
    monkeypatch.setattr(index.factory, "FLAT_MAX", 100)                 # 400 pool posts -> an IVF index
    approx = inter_via_posts(text, image_rows, cand, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(approx.rows, exact.rows)])
    assert recall > 0.9


def test_text_queries_are_embedded_at_the_precision_of_the_index_images(monkeypatch):
    from types import SimpleNamespace

    import retrieval.relations
    from retrieval.relations import index_text_encoder

    made = []

    class Clip:
        def __init__(self, precision="auto", **kw):
            made.append(precision)

        def embed_texts(self, texts):
            return None

    monkeypatch.setattr(retrieval.relations, "get_embedder", lambda name, **kw: Clip(**kw))
    index_text_encoder(SimpleNamespace(manifest={"embedder": "clip", "embedder_config": {"model": "m"},
                                                 "embedder_info": {"precision": "fp32"}}))
    index_text_encoder(SimpleNamespace(manifest={"embedder": "clip", "embedder_config": {"model": "m"}}))
    assert made == ["fp32", "fp32"]                          # never "auto", which is fp16 on a GPU
