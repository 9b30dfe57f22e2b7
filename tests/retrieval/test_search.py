import numpy as np
import pytest

from retrieval.search import (EmbedderMismatchError, EmptyPoolError, UnknownIdError, check_embedder,
                              exact_search, rows_of, search)

from .conftest import make_artifact, six_points

COS = lambda deg: np.float32(np.cos(np.deg2rad(deg)))  # noqa: E731


def test_own_image_excluded_and_order(six):
    q = six.embeddings
    D, I = search(six, q, 2, exclude_ids=six.ids)
    assert D.shape == I.shape == (6, 2) and D.dtype == np.float32 and I.dtype == np.int64
    assert I.tolist() == [[1, 2], [0, 2], [1, 0], [4, 2], [3, 2], [4, 3]]
    np.testing.assert_allclose(D[0], [COS(10), COS(30)], atol=1e-6)
    np.testing.assert_allclose(D[5], [COS(80), COS(90)], atol=1e-6)


def test_without_exclusion_a_query_finds_itself(six):
    D, I = search(six, six.embeddings[:1], 1)
    assert I.tolist() == [[0]] and D[0, 0] == pytest.approx(1.0)


def test_pool_restricts_results(six):
    D, I = search(six, six.embeddings, 2, exclude_ids=six.ids, pool={"p0", "p1", "p2"})
    assert I.tolist() == [[1, 2], [0, 2], [1, 0], [2, 1], [2, 1], [2, 1]]
    np.testing.assert_allclose(D[5], [COS(150), COS(170)], atol=1e-6)


def test_padding_when_pool_is_smaller_than_k(six):
    D, I = search(six, six.embeddings[:2], 3, exclude_ids=["p0", "p1"], pool={"p0", "p1", "nope"})
    assert I.tolist() == [[1, -1, -1], [0, -1, -1]]
    assert np.isneginf(D[:, 1:]).all()


def test_empty_pool_is_a_clear_error(six):
    with pytest.raises(EmptyPoolError, match="pool is empty"):
        search(six, six.embeddings, 2, pool={"not-indexed"})


def test_pool_of_only_the_own_image_is_an_error(six):
    with pytest.raises(EmptyPoolError, match="own image"):
        search(six, six.embeddings[:1], 2, exclude_ids=["p0"], pool={"p0"})


def test_unknown_id_is_a_clear_error(six):
    assert rows_of(six, ["p2", "p0"]).tolist() == [2, 0]
    with pytest.raises(UnknownIdError, match="'zz' is not in the index"):
        rows_of(six, ["zz"])


def test_embedder_mismatch(six):
    with pytest.raises(EmbedderMismatchError, match="3-d but the index"):
        search(six, np.ones((1, 3), np.float32), 2)
    with pytest.raises(EmbedderMismatchError, match="built with embedder 'fake'.*from 'clip'"):
        check_embedder(six, name="clip")
    check_embedder(six, name="fake", dim=2)


def test_heavily_filtered_ivf_falls_back_to_exact():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 16))
    x = centres[rng.integers(0, 8, 600)] + 0.3 * rng.normal(size=(600, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    art = make_artifact(x, factory="IVF8,Flat", nprobe=1)
    pool = {f"i{r}" for r in range(0, 600, 40)}                       # 15 images, 2.5 %
    q = x[:50]
    D, I = search(art, q, 5, exclude_ids=art.ids[:50], pool=pool)
    mask = np.zeros(600, bool)
    mask[list(range(0, 600, 40))] = True
    Dx, Ix = exact_search(x, q, 5, mask, np.arange(50))
    assert (I >= 0).all()
    np.testing.assert_array_equal(I, Ix)
    np.testing.assert_allclose(D, Dx, atol=1e-5)
    assert not (I == np.arange(50)[:, None]).any()


def test_exact_search_ties_go_to_lower_row():
    x = np.array([[1, 0], [1, 0], [0, 1], [1, 0]], np.float32)
    D, I = exact_search(x, x[:1], 3, exclude_rows=np.array([0]))
    assert I.tolist() == [[1, 3, 2]]


class GpuIndexFlat:
    """Stands in for faiss-gpu's ``GpuIndexFlatIP`` (the name is what marks a GPU index): it
    refuses an ID selector and any ``k`` over 2048, as FAISS's GPU k-selection does."""

    def __init__(self, x):
        import faiss

        self.cpu = faiss.IndexFlatIP(x.shape[1])
        self.cpu.add(x)
        self.d, self.ntotal, self.ks = x.shape[1], len(x), []

    def search(self, q, k, params=None):
        self.ks.append(k)
        if params is not None:
            raise RuntimeError("search parameters with an ID selector are not supported on the GPU")
        if k > 2048:
            raise RuntimeError("Error: 'k > 0 && k <= GPU_MAX_SELECTION_K' failed: k must be <= 2048")
        return self.cpu.search(q, k)


def _gpu_artifact(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    art = make_artifact(x)
    art.faiss_index = GpuIndexFlat(x)
    return art, x


def test_a_small_pool_over_a_large_gpu_index_never_asks_more_than_2048():
    # pool: train over a much larger outside collection: the over-fetch would be ~5000
    art, x = _gpu_artifact(6000)
    pool_rows = np.arange(0, 6000, 300)                                # 20 images
    q = x[pool_rows[:5]]
    D, I = search(art, q, 10, exclude_ids=[art.ids[r] for r in pool_rows[:5]], pool={art.ids[r] for r in pool_rows})
    assert 0 < max(art.faiss_index.ks) <= 2048
    mask = np.zeros(6000, bool)
    mask[pool_rows] = True
    Dx, Ix = exact_search(x, q, 10, mask, pool_rows[:5])
    np.testing.assert_array_equal(I, Ix)
    np.testing.assert_allclose(D, Dx, atol=1e-5)


def test_k_over_2048_on_a_gpu_index_is_answered_whole():
    art, x = _gpu_artifact(2600, seed=1)
    D, I = search(art, x[:2], 2500)
    assert max(art.faiss_index.ks) <= 2048
    Dx, Ix = exact_search(x, x[:2], 2500)
    np.testing.assert_array_equal(I, Ix)
