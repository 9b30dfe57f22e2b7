import json

import numpy as np
import pytest

from retrieval.chunks import ChunkStore, ChunkStoreDamaged, ChunkStoreMismatch, chunk_bounds


def test_chunk_bounds_cover_every_item_once():
    assert chunk_bounds(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert chunk_bounds(8, 4) == [slice(0, 4), slice(4, 8)]
    assert chunk_bounds(0, 4) == [slice(0, 0)]
    for n, c in [(1, 1), (7, 3), (100, 7), (5, 50)]:
        covered = np.concatenate([np.arange(n)[s] for s in chunk_bounds(n, c)])
        np.testing.assert_array_equal(covered, np.arange(n))
        assert max(s.stop - s.start for s in chunk_bounds(n, c)) <= c
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
            chunk_bounds(10, bad)


def test_chunks_are_kept_and_a_reopened_store_resumes(tmp_path):
    store = ChunkStore.open(tmp_path / "s", "key1", 10, 4)
    assert store.n_chunks == 3 and store.todo() == [0, 1, 2] and not store.complete
    store.write(0, {"a": np.arange(4)}, {"seconds": 1.5})
    store.write_extra("prelude", {"v": np.ones(2)}, {"note": "x"})
    again = ChunkStore.open(tmp_path / "s", "key1", 10, 4)
    assert again.todo() == [1, 2] and again.done == {0: {"seconds": 1.5}}
    np.testing.assert_array_equal(again.read(0)["a"], np.arange(4))
    arrays, info = again.read_extra("prelude")
    assert info == {"note": "x"} and arrays["v"].tolist() == [1.0, 1.0]
    assert again.read_extra("other") is None
    with pytest.raises(KeyError, match="chunk 1 .* is not done"):
        again.read(1)
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.endswith(".tmp")]


def test_a_chunk_file_without_its_progress_entry_is_redone(tmp_path):
    store = ChunkStore.open(tmp_path, "k", 10, 4)
    store.write(0, {"a": np.arange(4)})
    # a kill after the chunk file was renamed in but before progress.json named it
    np.savez(tmp_path / "chunk-00001.npz", a=np.arange(4))
    assert ChunkStore.open(tmp_path, "k", 10, 4).todo() == [1, 2]


def test_another_key_is_refused_and_another_chunk_size_starts_over(tmp_path):
    store = ChunkStore.open(tmp_path, "k", 10, 4)
    store.write(0, {"a": np.arange(4)})
    with pytest.raises(ChunkStoreMismatch, match="another build .*'k'.*'other'.*rm -r"):
        ChunkStore.open(tmp_path, "other", 10, 4)
    with pytest.raises(ChunkStoreMismatch, match="10 items.*11 items"):
        ChunkStore.open(tmp_path, "k", 11, 4)
    fresh = ChunkStore.open(tmp_path, "k", 10, 5)
    assert fresh.todo() == [0, 1] and not list(tmp_path.glob("chunk-*"))
    assert json.loads((tmp_path / "progress.json").read_text())["chunk_size"] == 5


def test_a_damaged_progress_record_or_chunk_names_the_fix(tmp_path):
    store = ChunkStore.open(tmp_path, "k", 10, 4)
    store.write(0, {"a": np.arange(4)})
    f = tmp_path / "chunk-00000.npz"
    f.write_bytes(f.read_bytes()[:20])
    with pytest.raises(ChunkStoreDamaged, match=f"{f} cannot be read.*rm -r {tmp_path}"):
        store.read(0)
    (tmp_path / "progress.json").write_text("{")
    with pytest.raises(ChunkStoreDamaged, match="progress.json cannot be read"):
        ChunkStore.open(tmp_path, "k", 10, 4)


def test_remove_leaves_nothing_and_half_removed_folders_are_swept(tmp_path):
    from retrieval.chunks import remove_trash

    store = ChunkStore.open(tmp_path / "s", "k", 10, 4)
    store.write(0, {"a": np.arange(4)})
    store.remove()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "s.trash-abc" / "chunks").mkdir(parents=True)           # a kill during a removal
    (tmp_path / "keep").mkdir()
    remove_trash(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]
