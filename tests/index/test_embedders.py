import numpy as np
import pytest
import torch
from PIL import Image

from index.embedders import get_embedder, list_embedders
from index.embedders.base import NoTextTowerError, l2_normalise, top_k_labels
from index.embedders.clip import PretrainedUnavailable


def test_registry_lists_valid_names_on_unknown():
    assert {"efficientnet_lite0", "clip", "timm", "sentence"} <= set(list_embedders())
    with pytest.raises(KeyError) as e:
        get_embedder("resnet9000")
    for name in ("efficientnet_lite0", "clip", "timm", "sentence"):
        assert name in str(e.value)


def test_l2_normalise_and_top_k():
    x = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]])
    tags = top_k_labels(np.array([[0.0, 2.0, 1.0]]), ["a", "b", "c"], 2)
    assert tags[0][0][0] == "b" and tags[0][1][0] == "c"


def test_efficientnet_tags_a_cat_photo(effnet):
    from skimage import data

    cat = Image.fromarray(data.chelsea())
    tags = effnet.object_tags([cat], k=3)[0]
    assert any("cat" in label for label, _ in tags), tags
    emb = effnet.embed_images([cat, cat.rotate(10)])
    assert emb.shape == (2, 1280) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert float(emb[0] @ emb[1]) > 0.8
    regions = effnet.image_regions([cat])
    assert regions.shape == (1, 49, 1280)


def test_efficientnet_has_no_text(effnet):
    with pytest.raises(NoTextTowerError, match="clip"):
        effnet.embed_texts(["hello"])


def test_clip_checkpoint_round_trip(tiny_clip_files):
    cfg, ckpt = tiny_clip_files
    a = get_embedder("clip", model=cfg, pretrained=ckpt, device="cpu", tag_vocabulary=["red", "blue"])
    b = get_embedder("clip", model=cfg, pretrained=ckpt, device="cpu")
    img = Image.new("RGB", (40, 30), (200, 10, 10))
    ea, eb = a.embed_images([img]), b.embed_images([img])
    assert ea.shape == (1, 32)
    np.testing.assert_allclose(ea, eb, atol=1e-6)             # same weights loaded from the file
    t = a.embed_texts(["a red square", "a dog"])
    assert t.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-5)
    assert a.image_regions([img]).shape == (1, 4, 32)          # 2x2 patches, projected
    assert len(a.object_tags([img], k=2)[0]) == 2
    assert a.tag == ckpt and a.config() == {"model": cfg, "pretrained": ckpt, "tag_vocabulary": ["red", "blue"]}
    assert b.config() == {"model": cfg, "pretrained": ckpt}               # ImageNet labels: not repeated


def test_clip_random_weights_differ_from_checkpoint(tiny_clip_files):
    cfg, ckpt = tiny_clip_files
    torch.manual_seed(123)
    rnd = get_embedder("clip", model=cfg, device="cpu")
    loaded = get_embedder("clip", model=cfg, pretrained=ckpt, device="cpu")
    img = Image.new("RGB", (32, 32), (0, 100, 200))
    assert not np.allclose(rnd.embed_images([img]), loaded.embed_images([img]))
    assert rnd.tag_labels == []                               # no zero-shot tags from random weights


def test_clip_unloadable_tag_fails_fast_with_advice(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.perf_counter()
    with pytest.raises(PretrainedUnavailable) as e:
        get_embedder("clip", model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert time.perf_counter() - t < 5
    assert "--pretrained /path/to/checkpoint.pt" in str(e.value)
    assert "--embedder efficientnet_lite0" in str(e.value)


def test_clip_unknown_tag_and_missing_file(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedUnavailable, match="openai"):
        get_embedder("clip", model="ViT-B-32", pretrained="no-such-tag")
    with pytest.raises(FileNotFoundError, match="--pretrained"):
        get_embedder("clip", model="ViT-B-32", pretrained="/nonexistent/ckpt.pt")


def test_timm_embedder_random_and_checkpoint(tmp_path):
    emb = get_embedder("timm", model="efficientnet_lite0", device="cpu")
    ck = tmp_path / "w.pt"
    torch.save(emb.net.state_dict(), ck)
    again = get_embedder("timm", model="efficientnet_lite0", checkpoint=str(ck), device="cpu")
    img = Image.new("RGB", (48, 48), (10, 200, 10))
    np.testing.assert_allclose(emb.embed_images([img]), again.embed_images([img]), atol=1e-5)
    with pytest.raises(ValueError, match="unknown timm model"):
        get_embedder("timm", model="efficientnet_lite_nope")


def test_sentence_embedder():
    s = get_embedder("sentence", device="cpu")
    v = s.embed_texts(["a cat on a mat", "a kitten on a rug", "stock market crash"])
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    with pytest.raises(TypeError, match="no image tower"):
        s.embed_images([Image.new("RGB", (8, 8))])


def test_clip_zero_shot_tags_pick_the_label_whose_prompt_matches_the_image(tiny_clip_files, monkeypatch):
    cfg, ckpt = tiny_clip_files
    clip = get_embedder("clip", model=cfg, pretrained=ckpt, device="cpu", tag_vocabulary=["dog", "sign", "cat"])
    img = Image.new("RGB", (40, 30), (200, 10, 10))
    v = clip.embed_images([img])[0]
    other = np.linalg.qr(np.stack([v, *np.random.default_rng(0).normal(size=(2, v.size))]).T)[0].T[1:]
    prompts = {}

    def texts(batch):                                  # "sign" is the image itself, the others orthogonal to it
        prompts["seen"] = list(batch)
        return np.stack([other[0], v, other[1]]).astype(np.float32)

    monkeypatch.setattr(clip, "embed_texts", texts)
    (top, p), *_ = clip.object_tags([img], k=3)[0]
    assert top == "sign" and p > 0.99                 # logit scale (1/0.07 at init) x cosine 1, vs 0
    assert prompts["seen"] == ["a photo of a dog.", "a photo of a sign.", "a photo of a cat."]


def test_clip_to_moves_the_cached_label_matrix_too(tiny_clip_files):
    cfg, ckpt = tiny_clip_files
    clip = get_embedder("clip", model=cfg, pretrained=ckpt, device="cpu", tag_vocabulary=["dog", "cat"])
    assert clip._labels().device.type == "cpu"                # the prompts' embeddings, cached
    clip.to("meta")                                           # stands in for a GPU: another device
    assert clip._labels().device.type == "meta" and next(clip.net.parameters()).device.type == "meta"
