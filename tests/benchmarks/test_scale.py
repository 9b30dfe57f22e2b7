"""benchmarks/scale.py end to end at two tiny sizes: every stage timed and measured, the
exponents fitted, recall computed against exact search, a sweep resumed."""
import json

import numpy as np
import pytest

from benchmarks import scale
from data.errors import UserError, raising

STAGES = ("vectors", "index", "knn", "graph", "recall")


def run(tmp_path, *extra, sizes=("2k", "5k")):
    out = tmp_path / "out" / "scale.json"
    argv = ["--sizes", *sizes, "--dim", "32", "--chunk", "1500", "--sample", "300", "--work-dir",
            str(tmp_path / "work"), "--out", str(out), "--quiet", *extra]
    assert scale.main(argv) == 0
    return json.loads(out.read_text()), out


def test_two_tiny_sizes_end_to_end(tmp_path, capsys):
    res, out = run(tmp_path)
    assert res["provenance"]["command"].startswith("python benchmarks/scale.py --sizes 2k 5k")
    assert [s["n"] for s in res["sizes"]] == [2000, 5000]
    for s in res["sizes"]:
        assert s["factory"] == "Flat" and s["recall@10"] == 1.0         # exact index: exact neighbours
        for st in STAGES:
            fig = s["stages"][st]
            assert fig["seconds"] > 0 and fig["wall_seconds"] >= fig["seconds"]
            assert 10 * 2 ** 20 < fig["peak_rss_bytes"] < 4 * 2 ** 30
        assert s["stages"]["graph"]["edges"] == s["n"] * 5               # k=5 neighbours each
        assert s["stages"]["recall"]["queries"] == 300
    for st in STAGES:
        assert isinstance(res["exponents"][st]["seconds"], float)
    assert set(res["estimates"]) == {"index", "knn", "graph", "knn_1M"}
    statuses = {t["target"]: t["status"] for t in res["targets"]}
    assert set(statuses.values()) == {"not measured"}                    # no 10M or 1M point: nothing "met"
    assert res["embedding_throughput"]["images_per_second"]["efficientnet_lite0"] > 0
    md = out.with_suffix(".md").read_text()
    assert md.splitlines()[0] == f"`{res['provenance']['command']}`" and "| 5k | `Flat` |" in md
    assert out.with_suffix(".png").stat().st_size > 1000
    assert not (tmp_path / "work").exists()                              # deleted without --keep
    assert "not measured" in capsys.readouterr().out


def test_recall_is_measured_against_exact_search(tmp_path):
    # an IVF index searching 1 of 32 lists misses true neighbours: its recall is below 1,
    # and equals recall recomputed here by brute force over every row
    res, _ = run(tmp_path, "--factory", "IVF32,Flat", "--nprobe", "1", "--sample", "5000", "--keep",
                 sizes=("2k",))
    reported = res["sizes"][0]["recall@10"]
    d = tmp_path / "work" / "n2000"
    x = np.load(d / "vectors.npy")
    I = np.load(d / "knn_I.npy")
    S = x @ x.T
    np.fill_diagonal(S, -np.inf)
    exact = np.argsort(-S, axis=1)[:, :10]
    truth = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(I, exact)])
    assert 0.2 < reported < 0.97
    assert reported == pytest.approx(truth, abs=1e-9)
    assert res["sizes"][0]["factory"] == "IVF32,Flat" and res["sizes"][0]["search_params"] == {"nprobe": 1}


def test_exact_topk_by_hand():
    x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.6, 0.8], [-1, 0]], np.float32)
    D, I = scale.exact_topk(x, np.array([0, 2]), 2, chunk=2)
    assert I.tolist() == [[1, 3], [3, 1]]
    np.testing.assert_allclose(D, [[0.9, 0.6], [0.8, 0.1]], rtol=1e-6)


def test_an_interrupted_sweep_keeps_its_finished_stages(tmp_path, monkeypatch, capsys):
    run(tmp_path, "--keep", sizes=("2k",))
    d = tmp_path / "work" / "n2000"
    kept = {st: (d / f"{st}.json").read_text() for st in STAGES}
    for st in ("graph", "recall"):                                       # as if killed during the graph stage
        (d / f"{st}.json").unlink()
    capsys.readouterr()
    res, _ = run(tmp_path, "--keep", sizes=("2k",))
    out = capsys.readouterr().out
    assert out.count("kept from an earlier run") == 3
    for st in ("vectors", "index", "knn"):
        assert (d / f"{st}.json").read_text() == kept[st]
    assert res["sizes"][0]["stages"]["graph"]["edges"] == 10_000
    with pytest.raises(UserError, match="holds a run with other settings.*'dim': \\(32, 16\\)"):
        raising(scale.main)(["--sizes", "2k", "--dim", "16", "--work-dir", str(tmp_path / "work"), "--quiet",
                    "--out", str(tmp_path / "x.json")])


def test_sizes_are_parsed():
    assert [scale.parse_size(s) for s in ("10k", "1M", "2500", "1.5k")] == [10_000, 1_000_000, 2500, 1500]
    for bad in ("10G", "k", "1"):
        with pytest.raises(Exception, match="size"):
            scale.parse_size(bad)


def test_npy_rows_read_and_write_like_an_array(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    f = tmp_path / "a.npy"
    with scale.NpyRows(f, (10, 4)) as w:
        w.write(0, x[:6])
        w.write_rows(np.array([9, 6, 8, 7]), x[[9, 6, 8, 7]])
    np.testing.assert_array_equal(np.load(f), x)                        # a plain .npy file
    r = scale.NpyRows(f)
    assert len(r) == 10
    np.testing.assert_array_equal(r.read(8, 20), x[8:])
    np.testing.assert_array_equal(r.read_rows(np.array([1, 7])), x[[1, 7]])
    D, I = scale.exact_topk(r, np.array([0, 9]), 2, chunk=3)
    D2, I2 = scale.exact_topk(x, np.array([0, 9]), 2, chunk=3)
    np.testing.assert_array_equal(I, I2)
    r.close()


def test_a_size_that_does_not_fit_the_disk_is_refused(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 ** 9, 0, 10 ** 5))
    with pytest.raises(UserError, match="n=2k needs about 0.0 GB of disk .* use another --work-dir"):
        raising(scale.main)(["--sizes", "2k", "--dim", "32", "--work-dir", str(tmp_path / "w"), "--quiet",
                    "--out", str(tmp_path / "x.json")])


def test_exact_topk_reads_vectors_split_over_several_files(tmp_path):
    from index.streaming import VectorFiles

    x = np.random.default_rng(0).standard_normal((11, 4)).astype(np.float32)
    files = [tmp_path / f"s{i}.npy" for i in range(3)]
    for f, part in zip(files, (x[:4], x[4:5], x[5:])):
        np.save(f, part)
    rows = np.array([0, 4, 10])
    D, I = scale.exact_topk(VectorFiles(files), rows, 3, chunk=3)     # blocks that straddle files
    D2, I2 = scale.exact_topk(x, rows, 3, chunk=3)
    assert (I == I2).all() and np.allclose(D, D2)


def test_the_memory_warning_counts_what_the_index_keeps(tmp_path, monkeypatch, capsys):
    """Refine(SQ8) keeps one byte per dimension, not the raw floats: 10M x 512 fits 23 GB;
    a Flat index of the same size (20 GB of floats) does not fit 16 GB and is warned of."""
    import argparse
    import os

    real = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda k: 2 ** 30 * 16 if k == "SC_PHYS_PAGES" else
                        1 if k == "SC_PAGE_SIZE" else real(k))
    import shutil
    from collections import namedtuple

    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("u", "total used free")(0, 0, 10 ** 12))
    for factory, warned in (("IVF4096,PQ64x4fs,Refine(SQ8)", False), ("Flat", True)):
        args = argparse.Namespace(dim=512, factory=factory, nprobe=None)
        scale.check_room(args, 10_000_000, tmp_path)
        assert ("keeps about" in capsys.readouterr().err) is warned, factory
