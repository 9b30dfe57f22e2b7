import re

import numpy as np
import pytest

from index.embedders.base import l2_normalise
from index.factory import (choose_factory, default_search_params, drop_self, index_ram_bytes, list_order, make_index,
                           recall_at_k, search, self_knn, set_search_params)


def clustered(n, dim=32, centres=20, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim))
    return l2_normalise(c[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, dim)))


def test_choose_factory_by_size():
    assert choose_factory(10, 512) == "Flat"
    assert choose_factory(50_000, 512) == "Flat"
    assert choose_factory(1_000_000, 512) == "IVF1024,PQ64x4fs,RFlat"
    assert choose_factory(100_000, 512).startswith("IVF256,")
    assert choose_factory(1_000_000, 1001) == "IVF1024,SQ8"
    with pytest.raises(ValueError, match="empty"):
        choose_factory(0, 512)
    assert default_search_params("IVF1024,PQ64x4fs,RFlat") == {"nprobe": 8, "k_factor": 8.0}
    assert default_search_params("Flat") == {}


def test_choice_at_ten_million_fits_in_8_gb():
    """Above 1M x 512-d, re-ranking on 8-bit codes instead of a float32 copy; beyond what
    those fit, inverted lists on disk."""
    assert choose_factory(2_000_000, 512) == "IVF1024,PQ64x4fs,Refine(SQ8)"
    fac = choose_factory(10_000_000, 512)
    assert fac == "IVF4096,PQ64x4fs,Refine(SQ8)"
    assert index_ram_bytes(fac, 10_000_000, 512) < 6e9
    assert index_ram_bytes("IVF1024,PQ64x4fs,RFlat", 10_000_000, 512) > 20e9     # what it replaces
    assert default_search_params(fac) == {"nprobe": 32, "k_factor": 8.0}
    assert choose_factory(100_000_000, 512) == "IVF8192,SQ8"                         # on disk
    assert choose_factory(1000, 512, on_disk=True) == "IVF32,SQ8"


def test_large_choice_keeps_recall_on_clustered_512d():
    """The 10M choice's codes (with fewer lists, for 10k vectors) against exact search, on
    vectors with the neighbour structure of image embeddings (benchmarks/index_synthetic.py;
    1M figures: benchmarks/index_large.py)."""
    from benchmarks.index_synthetic import clustered_unit_vectors

    x = clustered_unit_vectors(10_000, 512)
    rows = np.arange(0, 10_000, 20)
    exact = make_index("Flat", 512)
    exact.add(x)
    D, I_ref = search(exact, x[rows], 11)
    _, I_ref = drop_self(D, I_ref, rows, 10)
    fac = re.sub(r"^IVF\d+", "IVF64", choose_factory(10_000_000, 512))
    idx = make_index(fac, 512, x)
    idx.add(x)
    set_search_params(idx, {**default_search_params(choose_factory(10_000_000, 512)), "nprobe": 8})
    D, I = search(idx, x[rows], 11)
    _, I = drop_self(D, I, rows, 10)
    assert recall_at_k(I, I_ref) >= 0.95


def test_flat_returns_self_first_with_score_one():
    x = clustered(50)
    idx = make_index("Flat", 32)
    idx.add(x)
    D, I = search(idx, x, 3)
    assert D.shape == I.shape == (50, 3)
    np.testing.assert_array_equal(I[:, 0], np.arange(50))
    np.testing.assert_allclose(D[:, 0], 1.0, atol=1e-5)


def test_hand_placed_points():
    x = l2_normalise(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0], [-0.9, -0.1]], np.float32))
    idx = make_index("Flat", 2)
    idx.add(x)
    D, I = self_knn(idx, x, 1)
    np.testing.assert_array_equal(I[:, 0], [1, 0, 3, 2, 5, 4])


@pytest.mark.parametrize("factory,params", [("IVF8,Flat", {"nprobe": 8}), ("HNSW16,Flat", {"efSearch": 64}),
                                            ("IVF8,PQ8x4fs,RFlat", {"nprobe": 8, "k_factor": 16})])
def test_approximate_indexes_train_and_match_exact(factory, params):
    x = clustered(2000)
    exact = make_index("Flat", 32)
    exact.add(x)
    idx = make_index(factory, 32, x)
    idx.add(x)
    set_search_params(idx, params)
    _, I_ref = self_knn(exact, x, 5)
    _, I = self_knn(idx, x, 5)
    assert I.shape == (2000, 5)
    assert recall_at_k(I, I_ref) > 0.9


def test_make_index_errors():
    with pytest.raises(ValueError, match="bad FAISS factory"):
        make_index("NoSuchIndex", 8)
    with pytest.raises(ValueError, match="training vectors"):
        make_index("IVF4,Flat", 8)
    with pytest.raises(ValueError, match="only 3"):
        make_index("IVF16,Flat", 8, np.ones((3, 8), np.float32))


def test_drop_self_and_recall():
    D = np.array([[1.0, 0.9, 0.8], [0.95, 0.9, 0.7]], np.float32)
    I = np.array([[0, 2, 1], [0, 2, 3]])
    d, i = drop_self(D, I, np.array([0, 1]), 2)
    np.testing.assert_array_equal(i, [[2, 1], [0, 2]])
    assert recall_at_k(np.array([[1, 2]]), np.array([[2, 3]])) == 0.5


def test_search_rejects_wrong_width():
    idx = make_index("Flat", 4)
    idx.add(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(nq, 4\)"):
        search(idx, np.ones((2, 3), np.float32), 1)


@pytest.mark.parametrize("factory", ["IVF8,Flat", "IVF8,PQ8x4fs,RFlat"])
def test_list_order_groups_queries_by_ivf_list(factory):
    import faiss

    x = clustered(500)
    idx = make_index(factory, 32, x)
    perm = list_order(idx, x)
    assert sorted(perm.tolist()) == list(range(500))
    _, assign = faiss.extract_index_ivf(idx).quantizer.search(x, 1)
    lists = assign[perm, 0]
    assert (np.diff(lists) >= 0).all()                                  # grouped, list by list
    for lst in np.unique(lists):                                        # stable within a list
        assert (np.diff(perm[lists == lst]) > 0).all()


def test_list_order_is_identity_without_ivf():
    x = clustered(20)
    np.testing.assert_array_equal(list_order(make_index("Flat", 32), x), np.arange(20))


def test_to_gpu_puts_the_index_on_one_gpu_or_shards_it_over_several(monkeypatch):
    """faiss-gpu is not installed here: its calls are stood in for, and what ``to_gpu`` asks
    of them is checked (one GPU: GPU 0; several: every GPU, each with a shard)."""
    import faiss

    from index.factory import is_gpu, to_gpu

    calls = []

    class Options:
        shard = False

    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: "resources", raising=False)
    monkeypatch.setattr(faiss, "GpuMultipleClonerOptions", Options, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, ix: calls.append(("one", dev)) or "on gpu 0",
                        raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda ix, co=None: calls.append(("all", co.shard)) or "sharded",
                        raising=False)
    index = make_index("IVF4,Flat", 8, np.random.default_rng(0).standard_normal((64, 8)).astype("float32"))
    for n_gpus, want, call in ((0, index, None), (1, "on gpu 0", ("one", 0)), (3, "sharded", ("all", True))):
        calls.clear()
        monkeypatch.setattr(faiss, "get_num_gpus", lambda n=n_gpus: n, raising=False)
        assert to_gpu(index) == want
        assert calls == ([call] if call else [])
    # an index spread over devices counts as on the GPU only when its shards are GPU indexes
    shards = faiss.IndexShards(8)
    shards.add_shard(faiss.IndexFlatIP(8))
    assert not is_gpu(shards) and not is_gpu(index)


def test_under_torchrun_each_process_puts_the_index_on_its_own_gpu_only(monkeypatch):
    import faiss

    from index.factory import to_gpu

    calls = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 4, raising=False)
    monkeypatch.setattr(faiss, "StandardGpuResources", lambda: "resources", raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", lambda res, dev, ix: calls.append(dev) or f"on gpu {dev}",
                        raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus", lambda *a, **k: pytest.fail("copied onto every GPU"),
                        raising=False)
    index = faiss.IndexFlatIP(8)
    assert [to_gpu(index, env={"LOCAL_RANK": str(r), "WORLD_SIZE": "6"}) for r in range(6)] == \
        ["on gpu 0", "on gpu 1", "on gpu 2", "on gpu 3", "on gpu 0", "on gpu 1"]


class GpuIndexFlat:
    """Stands in for faiss-gpu's ``GpuIndexFlatIP`` (its name marks it a GPU index): a ``k``
    over 2048 is refused, as FAISS's GPU k-selection refuses it."""

    def __init__(self, cpu):
        self.cpu, self.d, self.ntotal = cpu, cpu.d, cpu.ntotal

    def search(self, q, k):
        if k > 2048:
            raise RuntimeError("Error: 'k > 0 && k <= GPU_MAX_SELECTION_K' failed")
        return self.cpu.search(q, k)


def test_a_k_over_the_gpu_limit_is_searched_on_a_cpu_copy(monkeypatch):
    import faiss

    x = l2_normalise(np.random.default_rng(0).standard_normal((2100, 8)))
    cpu = faiss.IndexFlatIP(8)
    cpu.add(x)
    gpu = GpuIndexFlat(cpu)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", lambda ix: ix.cpu, raising=False)
    D, I = search(gpu, x[:3], 2050)
    Dc, Ic = cpu.search(x[:3], 2050)
    np.testing.assert_array_equal(I, Ic)
    assert search(gpu, x[:3], 5)[1].shape == (3, 5)                    # within the limit: the GPU answers
    small = faiss.IndexFlatIP(8)
    small.add(x[:100])
    D, I = search(GpuIndexFlat(small), x[:3], 2100)                     # refused even above its size
    assert (I[:, :100] >= 0).all() and (I[:, 100:] == -1).all()
