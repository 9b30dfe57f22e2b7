import json

import numpy as np
import pytest

from index.artifact import load_index
from index.build import add_images, build_index
from index.embedding import EmptyCollectionError
from index.manifest import ManifestMismatch, manifest_table
from index.embedders import get_embedder
from index.images import images_in_dir

from .conftest import BAD_IDS, GOOD_IDS


def test_build_load_search(image_dir, tmp_path, effnet):
    out = tmp_path / "idx"
    art = build_index(images_in_dir(image_dir) + [("777", None)], effnet, out, batch_size=3, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.npy", "ids.json", "index.faiss",
                                                     "manifest.json", "regions.npy", "tags.jsonl"]
    assert art.ids == GOOD_IDS and art.id_to_row["103"] == 2
    m = json.loads((out / "manifest.json").read_text())
    assert m["embedder"] == "efficientnet_lite0" and m["dim"] == 1280 and m["factory"] == "Flat"
    assert m["metric"] == "inner_product" and m["normalisation"] == "l2"
    assert m["counts"] == {"requested": 8, "embedded": 4, "missing": 1, "unreadable": 3}
    assert sorted(p["id"] for p in m["problems"]) == sorted(BAD_IDS + ["777"])
    assert "faiss" in m["versions"] and "torch" in m["versions"]
    loaded = load_index(out, expect_embedder="efficientnet_lite0", expect_dim=1280)
    assert loaded.embeddings.shape == (4, 1280) and loaded.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(loaded.embeddings, axis=1), 1.0, rtol=1e-5)
    D, I = loaded.search(loaded.embeddings, 2)
    np.testing.assert_array_equal(I[:, 0], np.arange(4))
    np.testing.assert_allclose(D[:, 0], 1.0, atol=1e-5)
    assert loaded.regions.shape == (4, 49, 1280) and loaded.regions.dtype == np.float16
    assert len(loaded.tags["101"]) == 5 and loaded.ocr["101"] == ""
    table = manifest_table(m)
    assert "efficientnet_lite0" in table and "902" in table


def test_mismatch_names_both_embedders(image_dir, tmp_path, effnet):
    out = tmp_path / "idx"
    build_index(images_in_dir(image_dir), effnet, out, progress=False, with_regions=False)
    with pytest.raises(ManifestMismatch) as e:
        load_index(out, expect_embedder="clip", expect_dim=512)
    msg = str(e.value)
    assert "'efficientnet_lite0'" in msg and "'clip'" in msg and "1280" in msg and "512" in msg


def test_empty_collection_is_an_error(image_dir, tmp_path, effnet):
    with pytest.raises(EmptyCollectionError, match="empty"):
        build_index([], effnet, tmp_path / "a", progress=False)
    bad = [(i, str(image_dir / f"{i}.jpg")) for i in BAD_IDS]
    with pytest.raises(EmptyCollectionError, match="none of the 3"):
        build_index(bad, effnet, tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_interrupted_build_leaves_nothing(image_dir, tmp_path, effnet, monkeypatch):
    calls = {"n": 0}
    real = type(effnet).encode

    def failing(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **kw)

    monkeypatch.setattr(type(effnet), "encode", failing)
    with pytest.raises(KeyboardInterrupt):
        build_index(images_in_dir(image_dir), effnet, tmp_path / "idx", batch_size=2, progress=False)
    # no artifact, no temporary folder: only the progress a rerun resumes from
    assert sorted(p.name for p in tmp_path.iterdir()) == [".idx.partial", "images"]


def test_write_failure_removes_temp_folder(image_dir, tmp_path, effnet, monkeypatch):
    import index.folder as A

    def boom(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(A, "write_context_jsonl", boom)
    with pytest.raises(OSError, match="disk full"):
        build_index(images_in_dir(image_dir), effnet, tmp_path / "idx", progress=False, with_regions=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".idx.partial", "images"]


def test_add_embeds_only_new_images(image_dir, tmp_path, effnet, monkeypatch):
    out = tmp_path / "idx"
    all_images = images_in_dir(image_dir)
    first = build_index(all_images[:2], effnet, out, progress=False)
    before = first.embeddings.copy()
    seen = []
    real = type(effnet).encode

    def counting(self, pixels, *a, **kw):
        seen.append(len(pixels))
        return real(self, pixels, *a, **kw)

    monkeypatch.setattr(type(effnet), "encode", counting)
    art = add_images(out, all_images, embedder=effnet, progress=False)
    assert sum(seen) == 2                                     # only 103 and 104 were embedded
    assert art.ids == GOOD_IDS
    np.testing.assert_array_equal(art.embeddings[:2], before)
    assert art.faiss_index.ntotal == 4 and art.regions.shape[0] == 4 and len(art.tags) == 4
    assert art.manifest["counts"]["unreadable"] == 3
    D, I = art.search(art.embeddings, 1)
    np.testing.assert_array_equal(I[:, 0], np.arange(4))


def test_add_refuses_another_embedder(image_dir, tmp_path, effnet, tiny_clip_files):
    out = tmp_path / "idx"
    build_index(images_in_dir(image_dir)[:2], effnet, out, progress=False)
    cfg, ckpt = tiny_clip_files
    clip = get_embedder("clip", model=cfg, pretrained=ckpt, device="cpu")
    with pytest.raises(ManifestMismatch, match="efficientnet_lite0.*clip"):
        add_images(out, images_in_dir(image_dir), embedder=clip, progress=False)


def test_clip_build_with_workers_and_ivf(image_dir, tmp_path, tiny_clip_files):
    cfg, ckpt = tiny_clip_files
    clip = get_embedder("clip", model=cfg, pretrained=ckpt, device="cpu", tag_vocabulary=["red", "green", "blue"])
    images = images_in_dir(image_dir) * 1
    art = build_index(images, clip, tmp_path / "idx", factory="IVF2,Flat", num_workers=2,
                      batch_size=2, progress=False, search_params={"nprobe": 2})
    assert art.manifest["factory"] == "IVF2,Flat" and art.manifest["tag"] == ckpt
    assert art.regions.shape == (4, 4, 32)
    assert [t for t, _ in art.tags["101"]][0] in {"red", "green", "blue"}
    D, I = art.search(art.embeddings, 1)
    np.testing.assert_array_equal(I[:, 0], np.arange(4))


def test_existing_folder_needs_overwrite(image_dir, tmp_path, effnet):
    out = tmp_path / "idx"
    build_index(images_in_dir(image_dir)[:1], effnet, out, progress=False)
    with pytest.raises(FileExistsError, match="--overwrite"):
        build_index(images_in_dir(image_dir)[:2], effnet, out, progress=False)
    art = build_index(images_in_dir(image_dir)[:2], effnet, out, progress=False, overwrite=True)
    assert len(art) == 2 and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["index.faiss", "embeddings.npy", "ids.json", "manifest.json", "tags.jsonl"])
def test_a_damaged_file_is_named_with_the_command_that_rebuilds_it(tmp_path, name):
    from index.__main__ import main as index_main
    from index.manifest import ArtifactDamaged
    from tests.colour import write_image_decided

    files = write_image_decided(tmp_path / "d", sizes=(("train", 6),))
    out = tmp_path / "index"
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(tmp_path / "d/images"),
                       "--data", *files.values(), "--out", str(out)]) == 0
    f = out / name
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])             # truncated
    with pytest.raises(ArtifactDamaged) as e:
        load_index(out)
    msg = str(e.value)
    assert str(f) in msg or f"index {out} is inconsistent" in msg
    if name != "manifest.json":
        assert (f"`python -m index build --images {tmp_path / 'd/images'} --data {files['train']} "
                f"--embedder test_colour --out {out} --overwrite`") in msg


def test_new_images_are_embedded_at_the_precision_of_the_index(monkeypatch, caplog):
    """``auto`` is fp16 on a GPU: images added to (or read beside) an index built at fp32 on
    a CPU are embedded at fp32 all the same; a manifest that does not say is fp32."""
    from types import SimpleNamespace

    import index.artifact
    from index.artifact import embedder_of, embedding_precision

    class Made:
        name, dim, tag = "test_colour", 3, None

        def __init__(self, precision="auto", **_):
            self.precision = {"auto": "fp16"}.get(precision, precision)     # as on a GPU

    monkeypatch.setattr(index.artifact, "get_embedder", lambda name, **kw: Made(**kw))
    manifest = {"embedder": "test_colour", "dim": 3, "tag": None, "embedder_config": {},
                "embedder_info": {"precision": "fp32"}}
    art = SimpleNamespace(path="idx", manifest=manifest)
    assert embedder_of(art).precision == "fp32"
    manifest["embedder_info"] = {"name": "test_colour"}                 # written before it was read
    assert embedding_precision(manifest) == "fp32" and embedder_of(art).precision == "fp32"
    manifest["embedder_info"]["precision"] = "bf16"
    assert embedder_of(art).precision == "bf16"
    with caplog.at_level("WARNING", logger="index.artifact"):
        embedder_of(art, Made("fp16"))                                 # given: used, with a word
    assert "embedded at bf16" in caplog.text and "fp16" in caplog.text
