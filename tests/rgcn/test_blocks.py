"""The shared blocks of the fusion heads: gate, attention over visual tokens, pooling, which
images count, and each post's own image as region features from an index."""
import random

import numpy as np
import pytest
import torch
from torch import nn

from data.corpus import Sample, drop_images, read_corpus
from index.__main__ import main as index_main
from index.artifact import load_index
from rgcn.heads.blocks import (CrossAttention, PostRegions, attend, fit_heads, gate, images_dropped,
                               load_post_regions, masked_mean)
from tests.colour import ColourEmbedder, _to_tensor, write_image_decided


def test_gate_by_hand():
    h, v = torch.ones(1, 2, 3), torch.full((1, 3), 2.0)
    w_h, w_v = nn.Linear(3, 3, bias=False), nn.Linear(3, 3)
    for lin in (w_h, w_v):
        nn.init.constant_(lin.weight, 0.1)
    nn.init.zeros_(w_v.bias)
    g = gate(h, v, w_h, w_v)                                    # sigmoid(0.3 + 0.6) for every entry
    assert g.shape == (1, 2, 3) and torch.allclose(g, torch.full((1, 2, 3), 1 / (1 + np.exp(-0.9))))
    per_word = gate(h, v.unsqueeze(1).expand(1, 2, 3), w_h, w_v)
    assert torch.allclose(per_word, g)


def test_masked_mean_by_hand():
    x = torch.tensor([[[1.0], [3.0], [100.0]], [[5.0], [7.0], [9.0]]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert masked_mean(x, mask).tolist() == [[2.0], [0.0]]


def test_attend_gives_zeros_without_keys_and_ignores_masked_keys():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(4, 2, batch_first=True)
    q, k = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    out = attend(attn, q, k, mask)
    assert out.shape == (2, 3, 4) and torch.equal(out[1], torch.zeros(3, 4))
    k2 = k.clone()
    k2[0, 2:] = 50.0                                            # masked keys of post 0
    assert torch.allclose(attend(attn, q, k2, mask), out)
    single, _ = attn(q[:1], k[:1, :2], k[:1, :2])
    assert torch.allclose(out[:1], single, atol=1e-6)


def test_cross_attention_is_one_transformer_layer():
    torch.manual_seed(0)
    layer = CrossAttention(8, heads=3, ffn_dim=16, dropout=0.0).eval()
    assert layer.attn.num_heads == fit_heads(8, 3) == 1
    T, V = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    mask = torch.tensor([[True] * 4, [False] * 4])
    C = layer(T, V, mask)
    a, _ = layer.attn(T[:1], V[:1], V[:1])
    V_ = layer.norm_attn(T[:1] + a)
    assert torch.allclose(C[:1], layer.norm_ffn(V_ + layer.ffn(V_)), atol=1e-5)
    no_image = layer.norm_attn(T[1:])                           # no visual token: V' = LN(T)
    assert torch.allclose(C[1:], layer.norm_ffn(no_image + layer.ffn(no_image)), atol=1e-5)


def test_images_are_dropped_on_purpose_always_and_by_dropout_in_training_only():
    samples = [Sample(str(i), ["x"]) for i in range(200)]
    drop_images(samples[:1])
    assert images_dropped(samples, training=False, image_dropout=0.9) == [True] + [False] * 199
    drawn = images_dropped(samples, training=True, image_dropout=0.5, rng=random.Random(0))
    assert drawn[0] and 60 < sum(drawn) < 140


@pytest.fixture
def colour_index(tmp_path):
    files = write_image_decided(tmp_path / "data", sizes=(("train", 6),))
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(tmp_path / "data/images"),
                       "--data", files["train"], "--out", str(tmp_path / "index")]) == 0
    return tmp_path, files


def test_post_regions_come_from_the_index_and_new_images_are_embedded_now(colour_index):
    root, files = colour_index
    art = load_index(root / "index")
    assert art.regions.shape == (6, 4, 3)
    train = read_corpus(files["train"], root / "data/images")
    new = read_corpus(write_image_decided(root / "new", sizes=(("test", 3),), seed=4, prefix="new-")["test"],
                      root / "new/images")
    (root / "new/images/new-test-002.png").unlink()
    new.samples[2].image, new.samples[2].image_missing = None, True
    regions = load_post_regions(root / "index", {"train": train, "test": new}, progress=False)
    assert (regions.region_dim, regions.n_regions) == (3, 4)
    assert "2 of 3 posts used their image (0 from the index, 2 embedded now)" in regions.summaries["test"]
    ids = ["train-001", "new-test-000", "new-test-002"]
    got, present = regions.lookup(ids)
    assert present.tolist() == [True, True, False]
    assert torch.allclose(got[0], torch.from_numpy(np.asarray(art.regions[art.id_to_row["train-001"]], np.float32)))
    from PIL import Image
    own = ColourEmbedder().encode(_to_tensor(Image.open(root / "new/images/new-test-000.png")).unsqueeze(0),
                                  regions=True).regions[0]
    assert torch.allclose(got[1], torch.from_numpy(own.astype(np.float16).astype(np.float32)))
    assert torch.equal(got[2], torch.zeros(4, 3))
    _, present = regions.lookup(ids, dropped=[True, False, False])
    assert present.tolist() == [False, True, False]
    with pytest.raises(KeyError, match="was not given to the head's setup"):
        regions.lookup(["nobody"])


def test_an_index_without_regions_is_refused_with_the_command_that_rebuilds_it(colour_index):
    root, files = colour_index
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(root / "data/images"),
                       "--data", files["train"], "--out", str(root / "flat"), "--no-regions"]) == 0
    with pytest.raises(ValueError, match="no region features.*--regions"):
        load_post_regions(root / "flat", {"train": read_corpus(files["train"])}, progress=False)


def test_without_images_every_post_lacks_one():
    regions = PostRegions.without_images(["a", "b"], region_dim=5)
    got, present = regions.lookup(["b", "a"])
    assert got.shape == (2, 1, 5) and not present.any()
