"""The MAF head's claims, each against a value computed here: the alignment loss, the
swapped pairs of the matching task, posts without an image, the loss weights, and the
reduction to the text tagger when CA and CM are off and the gate is closed."""
import math
import random

import numpy as np
import pytest
import torch

from data.corpus import Sample
from rgcn.encoder import WordEncoder, WordTokenizer, load_backbone
from rgcn.heads import build_head
from rgcn.heads.blocks import PostRegions
from rgcn.heads.maf import MAFOptions, alignment_loss, mismatched_pairs
from rgcn.tagger import Tagger

D, R, D_R = 8, 4, 3


def hand_regions(n=4, without=("p3",)):
    """Posts p0..p(n-1), each with its own 4x3 random regions, except those in ``without``."""
    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(n)]
    rows = np.asarray([-1 if p in without else i for i, p in enumerate(ids)])
    status = ["none" if p in without else "index" for p in ids]
    return PostRegions(ids, rows, status, rng.normal(size=(n, R, D_R)).astype(np.float16),
                       np.zeros((0, R, D_R), np.float16), D_R, R)


def maf(regions=None, **options):
    torch.manual_seed(0)
    return build_head("maf", D, {"heads": 2, "dropout": 0.0, **options}, {"regions": regions or hand_regions()})


def posts(n=4):
    return [Sample(f"p{i}", ["w"] * (i + 1)) for i in range(n)]


def word_mask(n=4):
    return torch.arange(n).unsqueeze(0) < torch.arange(1, n + 1).unsqueeze(1)    # post i has i + 1 words


# --------------------------------------------------------------------------- (2) alignment
def test_alignment_loss_equals_the_hand_computed_value_on_three_pairs():
    t = [(1.0, 0.0), (0.0, 2.0), (1.0, 1.0)]
    v = [(3.0, 0.0), (1.0, 2.0), (-1.0, 1.0)]
    tau, lam = 0.5, 0.7

    def cos(a, b):
        return (a[0] * b[0] + a[1] * b[1]) / math.hypot(*a) / math.hypot(*b)

    def nce(x, y):                             # mean_i -log( e^{cos(x_i,y_i)/tau} / sum_j e^{cos(x_i,y_j)/tau} )
        return sum(-math.log(math.exp(cos(x[i], y[i]) / tau) / sum(math.exp(cos(x[i], y[j]) / tau)
                                                                    for j in range(3))) for i in range(3)) / 3

    expected = lam * nce(t, v) + (1 - lam) * nce(v, t)
    assert nce(t, v) != pytest.approx(nce(v, t))               # the two directions differ: lambda_c matters
    got = alignment_loss(torch.tensor(t), torch.tensor(v), tau, lam)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert got.item() == pytest.approx(1.105060, abs=1e-5)


def test_the_head_aligns_the_posts_with_an_image_only():
    head = maf(matching=False).train()                          # p3 has no image
    states = torch.randn(4, 4, D)
    inputs = head.prepare(posts(), training=True)
    out = head(states, word_mask(), inputs)
    s = torch.tanh(head.W_s(torch.stack([states[i, : i + 1].mean(0) for i in range(3)])))
    v = inputs["regions"][:3].mean(dim=1)
    expected = 0.19 * alignment_loss(head.mlp_t(s), head.mlp_v(v), 0.179, 0.7)
    assert out.aux_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.crf_weight == pytest.approx(1 - 0.19)


# --------------------------------------------------------------------------- (4) matching
def test_mismatched_pairs_swap_images_of_posts_with_one():
    present = [True, True, True, True, False, True, True, True]
    image_of, match = mismatched_pairs(present, 0.5, random.Random(1))   # 7 with an image: k = 2
    assert sorted(i for i, m in enumerate(match) if m == 0) == sorted(i for i in range(8) if image_of[i] != i)
    assert match.count(0) == 4 and match[4] == 1 and image_of[4] == 4
    assert all(image_of[image_of[i]] == i for i in range(8))            # pairs: a's image to b, b's to a
    same = mismatched_pairs([True] * 4, 1.0, random.Random(1), image_ids=[7, 7, 7, 7])
    assert same == ([0, 1, 2, 3], [1, 1, 1, 1])                          # one shared image: nothing to mismatch
    assert mismatched_pairs([True] * 64, 0.25, random.Random(0))[1].count(0) == 16   # the authors' 16 of 64


def test_swapped_pairs_carry_the_mismatched_label_and_only_in_training():
    regions = hand_regions(8, without=("p7",))
    head = maf(regions, swap_share=0.5)
    samples = posts(8)
    for seed in range(5):
        random.seed(seed)
        inputs = head.prepare(samples, training=True)
        image_of, match = inputs["image_of"].tolist(), inputs["match"].tolist()
        assert match.count(0) == 4                              # 7 posts with an image: 2k = 4
        assert all((image_of[i] != i) == (match[i] == 0) for i in range(8))
        assert match[7] == 1 and image_of[7] == 7               # a post without an image is never swapped
    evaluation = head.prepare(samples, training=False)
    assert "image_of" not in evaluation and "match" not in evaluation
    assert "image_of" not in maf(regions, matching=False).prepare(samples, training=True)


def test_a_swapped_post_is_shown_its_partners_image_and_trained_as_mismatched():
    head = maf(alignment=False).eval()
    states, mask = torch.randn(4, 4, D), word_mask()
    inputs = head.prepare(posts(), training=False)
    swapped = {**inputs, "image_of": torch.tensor([1, 0, 2, 3]), "match": torch.tensor([0, 0, 1, 1])}
    by_hand = {**inputs, "regions": inputs["regions"][[1, 0, 2, 3]]}
    assert torch.allclose(head(states, mask, swapped).states, head(states, mask, by_hand).states, atol=1e-6)
    assert not torch.allclose(head(states, mask, swapped).states, head(states, mask, inputs).states, atol=1e-3)
    # L_cm = beta * cross-entropy of the matcher against the labels, over the posts with an image (p0..p2)
    head.train()
    C = head.interaction(states, head.W_v(by_hand["regions"]), inputs["present"].unsqueeze(1).expand(-1, R))
    pooled = [torch.stack([x[i, : i + 1].mean(0) for i in range(3)]) for x in (states, C)]
    logits = head.W_c(torch.cat(pooled, dim=-1))
    expected = 0.19 * torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 1]))
    out = head(states, mask, swapped)
    assert out.aux_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.crf_weight == pytest.approx(1 - 0.19)


def test_without_tags_on_swapped_the_swap_trains_the_matcher_only():
    head = maf(alignment=False, tags_on_swapped=False).train()
    states, mask = torch.randn(4, 4, D), word_mask()
    inputs = head.prepare(posts(), training=False)
    swapped = {**inputs, "image_of": torch.tensor([1, 0, 2, 3]), "match": torch.tensor([0, 0, 1, 1])}
    out, own = head(states, mask, swapped), head(states, mask, inputs)
    assert torch.allclose(out.states, own.states, atol=1e-6)               # the tags see the own images
    by_hand = {**inputs, "regions": inputs["regions"][[1, 0, 2, 3]], "match": swapped["match"]}
    assert out.aux_loss.item() == pytest.approx(head(states, mask, by_hand).aux_loss.item(), rel=1e-5)
    assert out.aux_loss.item() != pytest.approx(own.aux_loss.item(), rel=1e-3)


def test_p_match_scales_the_cross_attended_states():
    head = maf(alignment=False).eval()
    states, mask = torch.randn(4, 4, D), word_mask()
    inputs = head.prepare(posts(), training=False)
    base = head(states, mask, inputs).states
    with torch.no_grad():                                       # p(match) = 0: M = 0, the text path alone
        head.W_c.weight.zero_()
        head.W_c.bias.copy_(torch.tensor([50.0, -50.0]))
    out = head(states, mask, inputs).states
    assert torch.allclose(out[..., D:], torch.zeros_like(out[..., D:]), atol=1e-30)
    assert not torch.allclose(base[:3, :, D:], torch.zeros_like(base[:3, :, D:]))


# --------------------------------------------------------------------------- posts without an image
def test_a_post_without_an_image_has_no_visual_state_and_no_auxiliary_loss():
    head = maf().train()
    states = torch.randn(4, 4, D)
    out = head(states, word_mask(), head.prepare(posts(), training=True))
    assert out.states.shape == (4, 4, 2 * D)
    assert torch.equal(out.states[3, :, D:], torch.zeros(4, D)) and torch.equal(out.states[..., :D], states)
    lonely = [Sample("p3", ["w"])]                              # a batch with no image: no CA, no CM
    out = head(states[3:], word_mask()[3:], head.prepare(lonely, training=True))
    assert out.aux_loss is None and out.crf_weight == pytest.approx(0.62)


def test_with_no_index_every_post_takes_the_text_path():
    ctx = build_head.__globals__["head_class"]("maf").setup({"index": None, "region_dim": 5},
                                                             {"train": posts()}, None, progress=False)
    head = build_head("maf", D, {"index": None, "region_dim": 5}, ctx).train()
    states = torch.randn(4, 4, D)
    out = head(states, word_mask(), head.prepare(posts(), training=True))
    assert torch.equal(out.states[..., D:], torch.zeros(4, 4, D)) and out.aux_loss is None


# --------------------------------------------------------------------------- (7) and the text reduction
def test_with_ca_and_cm_off_and_the_gate_closed_maf_is_the_text_tagger(tiny_encoder):
    backbone, tok = load_backbone(tiny_encoder)
    encoder = WordEncoder(backbone, casing_dim=4)
    width = encoder.out_dim
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    regions = hand_regions()
    text = Tagger(encoder, WordTokenizer(tok), build_head("text", width), labels)
    torch.manual_seed(1)
    head = build_head("maf", width, {"alignment": False, "matching": False, "heads": 2}, {"regions": regions})
    with torch.no_grad():
        head.W_t.bias.fill_(-1e4)                               # the gate closed: g = 0
    fused = Tagger(encoder, WordTokenizer(tok), head, labels)
    with torch.no_grad():
        fused.emission.weight.copy_(torch.cat([text.emission.weight, torch.randn(len(labels), width)], dim=1))
        fused.emission.bias.copy_(text.emission.bias)
    fused.crf.load_state_dict(text.crf.state_dict())
    samples = [Sample(f"p{i}", ["Zelby", "is", "here", "today"][: i + 1], ["B-PER", "O", "O", "O"][: i + 1])
               for i in range(4)]
    from rgcn.batching import TaggingDataset
    data = TaggingDataset(samples, text.tokenizer, labels)
    losses = {}
    for name, model in (("text", text), ("maf", fused)):
        model.train()
        torch.manual_seed(5)                                    # the same dropout masks in the shared encoder
        losses[name] = model.forward_loss(model.make_batch(data, range(4), training=True))
    assert losses["maf"].item() == pytest.approx(losses["text"].item(), rel=1e-6)
    assert fused.predict(samples).tags == text.predict(samples).tags
    # the comparison can fail: CA on adds its loss and takes 0.19 off the CRF's weight
    torch.manual_seed(1)
    with_ca = build_head("maf", width, {"alignment": True, "matching": False, "heads": 2}, {"regions": regions})
    with_ca.load_state_dict(head.state_dict(), strict=False)
    fused.head = with_ca
    fused.train()
    torch.manual_seed(5)
    assert fused.forward_loss(fused.make_batch(data, range(4), training=True)).item() != \
        pytest.approx(losses["text"].item(), rel=1e-3)


def test_options_are_checked():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['gamma'\]; valid options: .*'alpha'"):
        MAFOptions.parse({"gamma": 1})
    with pytest.raises(ValueError, match="alpha \\+ options.beta must be below 1"):
        MAFOptions.parse({"alpha": 0.5, "beta": 0.5})
    MAFOptions.parse({"alpha": 0.5, "beta": 0.5, "matching": False})         # beta unused
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        MAFOptions.parse({"temperature": 0})
    with pytest.raises(ValueError, match="no region features were given"):
        build_head("maf", D, {}, {})
    with pytest.raises(ValueError, match="trained on region features of width 1280, but the index gives 3"):
        build_head("maf", D, {}, {"regions": hand_regions(), "head_state": {"region_dim": 1280}})
    assert maf().extra_state() == {"region_dim": D_R}


def test_match_probability_of_the_image_a_post_is_shown():
    head = maf().eval()
    states, mask = torch.randn(4, 4, D), word_mask()
    inputs = head.prepare(posts(), training=False)
    p = head.match_probability(states, mask, inputs)
    C = head.interaction(states, head.W_v(inputs["regions"]), inputs["present"].unsqueeze(1).expand(-1, R))
    assert torch.allclose(p, head.matcher(states, C, mask).softmax(-1)[:, 1])
    other = head.match_probability(states, mask, {**inputs, "regions": inputs["regions"][[1, 0, 2, 3]]})
    assert not torch.allclose(p[:2], other[:2]) and torch.allclose(p[2:], other[2:])
    with pytest.raises(ValueError, match="without the matching module"):
        maf(matching=False).match_probability(states, mask, inputs)


def test_the_matcher_learns_to_spot_swapped_pairs_when_the_text_can_tell():
    """Each post's first word names its photo's colour (red or blue): trained on the swapped
    pairs of its batches alone, the matcher tells held-out real pairs from swapped ones."""
    from benchmarks.maf_matching import auc

    n, width = 96, 16
    gen = torch.Generator().manual_seed(0)
    colour = torch.arange(n) % 2                                         # 0 red, 1 blue
    words = torch.randn(2, width, generator=gen)
    states = torch.randn(n, 3, width, generator=gen) * 0.3
    states[:, 0] += words[colour]
    cells = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])[colour].unsqueeze(1).expand(n, R, D_R)
    cells = cells + 0.2 * torch.randn(n, R, D_R, generator=gen)
    ids = [f"q{i}" for i in range(n)]
    regions = PostRegions(ids, np.arange(n), ["index"] * n, cells.numpy().astype(np.float16),
                          np.zeros((0, R, D_R), np.float16), D_R, R)
    torch.manual_seed(0)
    head = build_head("maf", width, {"alignment": False, "heads": 2, "dropout": 0.0, "swap_share": 0.5},
                      {"regions": regions}).train()
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    samples = [Sample(i, ["w"] * 3) for i in ids]
    mask = torch.ones(n, 3, dtype=torch.bool)
    train, held_out = list(range(0, 64)), list(range(64, n))
    random.seed(0)
    for step in range(80):
        batch = random.sample(train, 32)
        inputs = head.prepare([samples[i] for i in batch], training=True)
        loss = head(states[batch], mask[batch], inputs).aux_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    head.eval()
    inputs = head.prepare([samples[i] for i in held_out], training=False)
    other_colour = [i + 1 if i % 2 == 0 else i - 1 for i in held_out]   # each post shown a photo of the other colour
    shown = {**inputs, "regions": head.prepare([samples[i] for i in other_colour], training=False)["regions"]}
    with torch.no_grad():
        real = head.match_probability(states[held_out], mask[held_out], inputs)
        swapped = head.match_probability(states[held_out], mask[held_out], shown)
    assert auc(real.numpy(), swapped.numpy()) > 0.95
