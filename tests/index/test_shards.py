"""Sharded builds: torchrun and ``--shard i/n`` + ``merge`` give the single-process artifact;
a set that is not whole is refused naming the shard folder and the fix; on-disk inverted
lists give the in-RAM neighbours."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index.__main__ import main
from index.artifact import load_index
from index.build import NotAddable
from index.embedders import EMBEDDERS, register_embedder
from index.factory import make_index, search, set_search_params
from index.shards import ShardSetError, ShardSpec, merge_shards, shard_path
from index.streaming import VectorFiles, build_streamed
from tests.colour import ColourEmbedder, colour_image

from .test_factory import clustered

ROOT = Path(__file__).resolve().parents[2]
RUN = "import sys, tests.colour; from index.__main__ import main; sys.exit(main(sys.argv[1:]))"


class ReversedColour(ColourEmbedder):
    """Another embedder of the same width: the colour embedding, negated."""

    name = "test_colour_reversed"

    def encode(self, pixels, regions=False, logits=False):
        out = super().encode(pixels, regions, logits)
        out.embeddings = -out.embeddings
        return out


if "test_colour_reversed" not in EMBEDDERS:
    register_embedder("test_colour_reversed", ReversedColour)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """13 photos (one an empty file) and the single-process build of them."""
    root = tmp_path_factory.mktemp("shards")
    rng = random.Random(0)
    (root / "images").mkdir()
    for i in range(12):
        colour_image(root / "images" / f"{i:03d}.png", ["red", "blue"][i % 2], rng)
    (root / "images" / "006b.png").write_bytes(b"")                       # unreadable, in the middle shard
    assert main(["build", *common(root), "--out", str(root / "single")]) == 0
    return root


def common(root, embedder="test_colour"):
    return ["--quiet", "--embedder", embedder, "--images", str(root / "images"), "--workers", "0",
            "--batch-size", "4", "--save-every", "4"]


def add_args(root):
    return ["--quiet", "--images", str(root / "images"), "--workers", "0"]


def assert_same_artifact(path, ref_path, k=5):
    a, ref = load_index(path, gpu=False), load_index(ref_path, gpu=False)
    assert a.ids == ref.ids
    np.testing.assert_array_equal(a.embeddings, ref.embeddings)
    np.testing.assert_array_equal(np.asarray(a.regions), np.asarray(ref.regions))
    assert a.tags == ref.tags
    D, I = a.search(ref.embeddings, k)
    D_ref, I_ref = ref.search(ref.embeddings, k)
    np.testing.assert_array_equal(I, I_ref)
    np.testing.assert_allclose(D, D_ref, atol=1e-6)
    m, m_ref = a.manifest, ref.manifest
    assert set(m) == set(m_ref) | {"shards"}
    for key in set(m_ref) - {"created", "updated", "timing", "versions"}:
        assert m[key] == m_ref[key], key
    return a


def test_torchrun_build_matches_single_process(collection, tmp_path):
    out = tmp_path / "idx"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "--no-python", sys.executable, "-c", RUN, "build", *common(collection), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = assert_same_artifact(out, collection / "single")
    assert a.manifest["shards"]["count"] == 2 and a.manifest["shards"]["ranges"] == [[0, 6], [6, 13]]
    assert not list(tmp_path.glob("idx.shard-*"))                          # merged by rank 0, then removed
    assert "# shard" in (out / "build.log").read_text()


@pytest.fixture(scope="module")
def shard_set(collection):
    """The collection embedded as 3 shards with ``--shard i/3``."""
    out = collection / "sharded"
    for i in range(3):
        assert main(["build", *common(collection), "--out", str(out), "--shard", f"{i}/3"]) == 0
    return [shard_path(out, ShardSpec(i, 3)) for i in range(3)]


def test_shard_flag_and_merge_match_single_process(collection, shard_set, tmp_path):
    out = tmp_path / "idx"
    assert main(["merge", *map(str, shard_set[::-1]), "--out", str(out), "--quiet"]) == 0   # any order
    a = assert_same_artifact(out, collection / "single")
    assert a.manifest["shards"]["ranges"] == [[0, 4], [4, 8], [8, 13]]
    assert a.manifest["shards"]["embedded"] == [4, 3, 5]                 # 006b.png, unreadable, is in shard 1


@pytest.mark.parametrize("mapped", [False, True])
def test_add_on_a_merged_artifact(collection, tmp_path, monkeypatch, mapped):
    """``index add`` grows a merged artifact; ``mapped``: with its vectors memory-mapped, as
    a large one's are (the new rows are appended while they are copied)."""
    if mapped:
        import index.artifact

        monkeypatch.setattr(index.artifact, "MMAP_EMBEDDINGS_BYTES", 0)
    part = tmp_path / "part"
    part.mkdir()
    for p in sorted((collection / "images").iterdir())[:7]:
        os.link(p, part / p.name)
    args = [a if a != str(collection / "images") else str(part) for a in common(collection)]
    for i in range(2):
        assert main(["build", *args, "--out", str(tmp_path / "idx"), "--shard", f"{i}/2"]) == 0
    assert main(["merge", "--out", str(tmp_path / "idx"), "--quiet"]) == 0    # finds idx.shard-*-of-002
    merged = load_index(tmp_path / "idx", gpu=False)
    assert len(merged.ids) == 7 and isinstance(merged.embeddings, np.memmap) == mapped
    del merged
    assert main(["add", str(tmp_path / "idx"), *add_args(collection)]) == 0
    a, ref = load_index(tmp_path / "idx", gpu=False), load_index(collection / "single", gpu=False)
    assert a.ids == ref.ids and a.manifest["shards"]["count"] == 2
    np.testing.assert_array_equal(a.embeddings, ref.embeddings)
    np.testing.assert_array_equal(a.search(ref.embeddings, 5)[1], ref.search(ref.embeddings, 5)[1])


def test_incomplete_or_duplicated_sets_are_refused(shard_set, tmp_path, capsys):
    with pytest.raises(ShardSetError, match=r"shard\(s\) 1/3 missing") as e:
        merge_shards([shard_set[0], shard_set[2]], tmp_path / "a")
    assert str(shard_set[0]) in str(e.value) and "--shard 1/3" in str(e.value)
    with pytest.raises(ShardSetError, match="given twice") as e:
        merge_shards([shard_set[0], shard_set[1], shard_set[1], shard_set[2]], tmp_path / "b")
    assert str(shard_set[1]) in str(e.value) and "pass each shard once" in str(e.value)
    assert main(["merge", str(shard_set[0]), str(shard_set[2]), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and str(shard_set[0]) in err
    assert not any(p.name in ("a", "b", "c") for p in tmp_path.iterdir())
    with pytest.raises(ShardSetError, match="is shard 0/3 of a sharded build"):
        load_index(shard_set[0])


def test_shards_of_another_embedder_or_collection_are_refused(collection, shard_set, tmp_path):
    other = tmp_path / "other"
    assert main(["build", *common(collection, "test_colour_reversed"), "--out", str(other), "--shard", "1/3"]) == 0
    odd = shard_path(other, ShardSpec(1, 3))
    with pytest.raises(ShardSetError, match="another embedder") as e:
        merge_shards([shard_set[0], odd, shard_set[2]], tmp_path / "m")
    msg = str(e.value)
    assert str(odd) in msg and "test_colour_reversed" in msg and "--embedder test_colour " in msg
    assert "--shard 1/3" in msg

    fewer = tmp_path / "fewer"
    fewer.mkdir()
    for p in sorted((collection / "images").iterdir())[:9]:
        os.link(p, fewer / p.name)
    args = [a if a != str(collection / "images") else str(fewer) for a in common(collection)]
    assert main(["build", *args, "--out", str(other), "--shard", "1/3", "--overwrite"]) == 0
    with pytest.raises(ShardSetError, match="another image list") as e:
        merge_shards([shard_set[0], odd, shard_set[2]], tmp_path / "m")
    assert str(odd) in str(e.value) and "--images" in str(e.value)


def test_shard_bounds_cover_the_list_once_in_order():
    for n in range(0, 30):
        for count in range(1, 7):
            ranges = [ShardSpec(i, count).bounds(n) for i in range(count)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
    assert ShardSpec.parse("2/5") == ShardSpec(2, 5)
    assert ShardSpec.from_env({"RANK": "1", "WORLD_SIZE": "4"}) == ShardSpec(1, 4)
    assert ShardSpec.from_env({}) is None
    for bad in ("5/5", "x", "1/0"):
        with pytest.raises(ValueError, match="i/n"):
            ShardSpec.parse(bad)


@pytest.fixture(scope="module")
def vector_shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("vectors")
    x = clustered(3000)
    for i, (a, b) in enumerate([(0, 1100), (1100, 1101), (1101, 3000)]):      # one shard of a single row
        np.save(d / f"{i}.npy", x[a:b])
    return x, VectorFiles([d / f"{i}.npy" for i in range(3)])


@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,SQ8"])
def test_on_disk_lists_give_the_in_ram_neighbours(vector_shards, tmp_path, factory):
    import faiss

    from index.streaming import read_index

    x, files = vector_shards
    ram = make_index(factory, 32, x)                                      # a single-process build in RAM
    ram.add(x)
    streamed = build_streamed(factory, files, progress=False, block_rows=700)
    disk_dir = tmp_path / "disk"
    disk_dir.mkdir()
    on_disk = build_streamed(factory, files, on_disk_dir=disk_dir, progress=False, block_rows=700, part_rows=1000)
    faiss.write_index(on_disk, str(disk_dir / "index.faiss"))
    moved = tmp_path / "moved"
    disk_dir.rename(moved)                                                # the folder can move
    on_disk = read_index(moved / "index.faiss")
    q = x[::7]
    results = []
    for idx in (ram, streamed, on_disk):
        set_search_params(idx, {"nprobe": 4})
        results.append(search(idx, q, 10))
    for D, I in results[1:]:
        np.testing.assert_array_equal(I, results[0][1])
        np.testing.assert_allclose(D, results[0][0], atol=1e-6)
    assert sorted(p.name for p in moved.iterdir()) == ["index.faiss", "index.ivfdata"]


def test_merge_on_disk_searches_like_in_ram_and_add_names_the_fix(collection, shard_set, tmp_path, capsys):
    disk, ram = tmp_path / "disk", tmp_path / "ram"
    assert main(["merge", *map(str, shard_set), "--out", str(disk), "--on-disk", "--quiet"]) == 0
    m = json.loads((disk / "manifest.json").read_text())
    assert m["shards"]["on_disk"] and (disk / "index.ivfdata").is_file() and m["factory"].endswith(",SQ8")
    assert main(["merge", *map(str, shard_set), "--out", str(ram), "--in-ram", "--factory", m["factory"],
                 "--quiet"]) == 0
    a, b = load_index(disk, gpu=False), load_index(ram, gpu=False)
    assert not (ram / "index.ivfdata").exists()
    np.testing.assert_array_equal(a.search(a.embeddings, 5)[1], b.search(b.embeddings, 5)[1])
    with pytest.raises(NotAddable, match="on disk"):
        from index.build import add_images

        add_images(disk, [])
    assert main(["add", str(disk), *add_args(collection)]) == 2
    err = capsys.readouterr().err
    assert str(disk / "index.ivfdata") in err and "--shard i/3" in err and "merge" in err

    one = tmp_path / "one"                                # --on-disk in one process: one shard, merged at once
    assert main(["build", *common(collection), "--out", str(one), "--on-disk"]) == 0
    c = load_index(one, gpu=False)
    assert (one / "index.ivfdata").is_file() and c.manifest["shards"]["count"] == 1
    assert not list(tmp_path.glob("one.shard-*"))
    np.testing.assert_array_equal(c.search(c.embeddings, 5)[1], a.search(a.embeddings, 5)[1])


@pytest.mark.skipif(not hasattr(__import__("faiss"), "StandardGpuResources")
                    or __import__("faiss").get_num_gpus() == 0, reason="needs faiss-gpu and a GPU")
def test_merged_artifact_on_gpu_searches_like_cpu(collection, shard_set, tmp_path):
    out = tmp_path / "idx"
    merge_shards(shard_set, out, progress=False)
    cpu, gpu = load_index(out, gpu=False), load_index(out, gpu=True)
    assert type(gpu.faiss_index).__name__.startswith("Gpu")
    np.testing.assert_array_equal(gpu.search(cpu.embeddings, 5)[1], cpu.search(cpu.embeddings, 5)[1])


def test_shards_embedded_at_different_precisions_are_refused(shard_set, tmp_path, capsys):
    import shutil

    from data.errors import UserError

    copies = [tmp_path / p.name for p in shard_set]
    for p, c in zip(shard_set, copies):
        shutil.copytree(p, c)
    f = copies[1] / "manifest.json"
    m = json.loads(f.read_text())
    assert m["embedder_info"]["precision"] == "fp32"
    m["embedder_info"]["precision"] = "fp16"                              # shard 1 embedded on a GPU
    f.write_text(json.dumps(m))
    with pytest.raises(UserError, match="different precisions") as e:
        merge_shards(copies, tmp_path / "m")
    msg = str(e.value)
    assert all(str(c) in msg for c in copies) and f"{copies[1]} (fp16)" in msg and "--precision fp32" in msg
    assert not (tmp_path / "m").exists()
    # a shard written before the precision was read counts as fp32, so it merges with fp32 ones
    del m["embedder_info"]["precision"]
    f.write_text(json.dumps(m))
    merged = merge_shards(copies, tmp_path / "m", progress=False)
    assert merged.manifest["embedder_info"]["precision"] == "fp32" and len(merged.ids) == 12
