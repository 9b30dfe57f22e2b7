import numpy as np
import pytest

from retrieval.relations import (Neighbours, inter_via_posts, intra_modal, jaccard_topk, object_type, tag_sets)
from retrieval.search import EmptyPoolError

from .conftest import make_artifact, six_points


def test_intra_modal_skips_posts_without_image(six):
    nb = intra_modal(six, np.array([0, -1, 5]), 2, pool=None)
    assert nb.rows.tolist() == [[1, 2], [-1, -1], [4, 3]]
    assert np.isneginf(nb.scores[1]).all()
    assert nb.lists(six.ids)[0][0][0] == "p1"


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
