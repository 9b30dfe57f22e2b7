"""The BGA head's claims: binary straight-through SCS masks, a dropped token that changes no
generated token, the generation losses (zero on identical features, posts without an image
left out), the views (the generated one reads no photo), the ablations, the options, and
the head training end to end inside the tagger."""
import pytest
import torch

from data.corpus import Sample
from rgcn.batching import TaggingDataset
from rgcn.encoder import WordEncoder, WordTokenizer, load_backbone
from rgcn.heads import build_head
from rgcn.heads.bga import BGAOptions, ContextSampler, Generator, generation_kl, keep_mask
from rgcn.heads.blocks import CrossAttention, PostRegions
from rgcn.tagger import Tagger

from tests.rgcn.test_maf_head import D, D_R, R, hand_regions, posts, word_mask   # the same hand-made posts


def bga(regions=None, **options):
    torch.manual_seed(0)
    return build_head("bga", D, {"heads": 2, "dropout": 0.0, **options}, {"regions": regions or hand_regions()})


def run(head, states, inputs, seed=3):
    torch.manual_seed(seed)                                    # the same Gumbel noise
    return head(states, word_mask(), inputs)


# --------------------------------------------------------------------------- SCS (1)-(3)
def test_scs_masks_are_binary_and_pass_gradients_straight_through():
    torch.manual_seed(0)
    scs = ContextSampler(D).train()
    X, valid = torch.randn(4, 6, D), torch.ones(4, 6, dtype=torch.bool)
    m = scs(X, valid.float(), valid)
    assert set(m.unique().tolist()) <= {0.0, 1.0} and 0 < m.sum() < m.numel()
    (m * torch.arange(6.0)).sum().backward()                   # a loss that only sees the mask
    for part in (scs.mlp_a, scs.mlp_b, scs.mlp_c):
        assert part[0].weight.grad is not None and part[0].weight.grad.abs().sum() > 0
    scs.eval()                                                  # evaluation: the argmax, deterministic
    assert torch.equal(scs(X, valid.float(), valid), scs(X, valid.float(), valid))
    assert set(scs(X, valid.float(), valid).unique().tolist()) <= {0.0, 1.0}


def test_scs_gradients_reach_the_samplers_through_the_generation_loss():
    head = bga().train()
    out = run(head, torch.randn(4, 4, D), head.prepare(posts(), training=True))
    out.aux_loss.backward()
    for name, p in head.named_parameters():
        if ".scs_" in name and name.endswith("weight"):
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_padding_is_never_kept_and_a_row_never_keeps_nothing():
    valid = word_mask()                                         # rows of 1, 2, 3, 4 tokens
    drop_all = torch.tensor([5.0, -5.0]).expand(4, 4, 2)        # every token would be dropped
    keep_all = torch.tensor([-5.0, 5.0]).expand(4, 4, 2).clone()
    keep_all[1, 0] = torch.tensor([-1.0, 1.0])                  # the most probable valid token of row 1 ...
    for training in (True, False):
        torch.manual_seed(0)
        m = keep_mask(keep_all, valid, training)
        assert torch.equal(m, valid.float())                    # padding 0 even where it wants to be kept
        m = keep_mask(drop_all, valid, training)
        assert torch.equal(m.sum(1), torch.ones(4)) and torch.equal(m * ~valid, torch.zeros(4, 4))
    logits = drop_all.clone()
    logits[2, 1] = torch.tensor([1.0, 0.5])                     # row 2: the least unlikely to be kept
    assert keep_mask(logits, valid, False)[2].tolist() == [0, 1, 0, 0]
    assert torch.equal(keep_mask(drop_all, torch.zeros(4, 4, dtype=torch.bool), True), torch.zeros(4, 4))


# --------------------------------------------------------------------------- MCG (4)-(5)
def test_a_dropped_token_cannot_change_a_generated_token():
    torch.manual_seed(0)
    gen = Generator(D, n_queries=3, heads=2, dropout=0.0).eval()
    source = torch.randn(2, 5, D)
    keep = torch.tensor([[1, 0, 1, 0, 1], [0, 1, 1, 1, 1]], dtype=torch.float)
    out = gen(source, keep, 3)
    changed = source.clone()
    changed[0, 1] += 100 * torch.randn(D)
    changed[1, 0] = torch.randn(D)
    assert torch.allclose(gen(changed, keep, 3), out, atol=1e-6)
    kept = source[0, keep[0].bool()].unsqueeze(0)               # as if the dropped tokens were never there
    assert torch.allclose(gen(kept, torch.ones(1, 3), 3), out[:1], atol=1e-6)
    changed[0, 2] += 1.0                                        # a kept token does change it
    assert not torch.allclose(gen(changed, keep, 3)[0], out[0], atol=1e-4)
    assert gen(source, keep, 7).shape == (2, 7, D)              # positions past the queries share the last


# --------------------------------------------------------------------------- losses (6)-(7)
def test_the_generation_kl_is_zero_on_identical_features_and_positive_otherwise():
    real, w = torch.randn(2, 5, D), torch.tensor([[1.0, 1, 0, 0, 1], [1, 1, 1, 1, 1]])
    assert generation_kl(real, real.clone(), w).item() == pytest.approx(0.0, abs=1e-6)
    other = real + torch.randn(2, 5, D)
    assert generation_kl(real, other, w).item() > 1e-3
    masked_only = real.clone()
    masked_only[0, 2:4] += 5.0                                  # a difference at unkept positions only
    assert generation_kl(real, masked_only, w).item() == pytest.approx(0.0, abs=1e-6)
    p, q = real.softmax(-1), other.softmax(-1)                  # KL(real || generated), by hand
    by_hand = ((p * (p / q).log()).sum(-1) * w).sum() / w.sum()
    assert generation_kl(real, other, w).item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_posts_without_an_image_are_left_out_of_the_generation_losses():
    head = bga().train()                                        # p3 has no image
    states = torch.randn(4, 4, D)
    inputs = head.prepare(posts(), training=True)
    assert inputs["present"].tolist() == [True, True, True, False]
    base = run(head, states, inputs).aux_loss
    noisy = {**inputs, "regions": inputs["regions"].clone()}
    noisy["regions"][3] = torch.randn(R, D_R)                   # its (zero) regions
    assert run(head, states, noisy).aux_loss.item() == pytest.approx(base.item(), rel=1e-6)
    other = states.clone()
    other[3] = torch.randn(4, D)                                # its words, hence its generated tokens
    assert run(head, other, inputs).aux_loss.item() == pytest.approx(base.item(), rel=1e-6)
    other[0] = torch.randn(4, D)                                # a post with an image does count
    assert run(head, other, inputs).aux_loss.item() != pytest.approx(base.item(), rel=1e-4)
    lonely = head.prepare([Sample("p3", ["w"] * 4)], training=True)
    out = head(states[3:], word_mask()[3:], lonely)
    assert out.aux_loss is None and out.crf_weight == 1.0


def test_the_cycle_loss_adds_both_round_trips_with_every_token_kept():
    states = torch.randn(4, 4, D)
    options = {"scs": False, "layers": 1, "final_layer": False, "alpha": 0.5}
    with_cycle, without = bga(**options).train(), bga(cycle=False, **options).train()
    inputs = with_cycle.prepare(posts(), training=True)
    added = run(with_cycle, states, inputs).aux_loss - run(without, states, inputs).aux_loss
    h, rows, w = with_cycle, [0, 1, 2], word_mask()[:3]          # by hand, on the posts with an image (7)
    T, V, every = states[rows], h.W_v(inputs["regions"][rows]), torch.ones(3, R)
    T_cyc = h.i2t(h.t2v(T, w, R), every, 4, w)                   # text -> image -> text
    V_cyc = h.t2v(h.i2t(V, every, 4, w), w, R)                   # image -> text -> image
    expected = 0.5 * (generation_kl(T, T_cyc, w) + generation_kl(V, V_cyc, every))
    assert added.item() == pytest.approx(expected.item(), rel=1e-4) and added.item() > 0


# --------------------------------------------------------------------------- views
def test_the_generated_view_never_reads_a_photo_and_the_real_view_does(monkeypatch):
    def no_photos(self, post_ids, dropped=None):
        raise AssertionError("a photo was looked up")

    head = bga().eval()
    states = torch.randn(4, 4, D)
    inputs = head.prepare(posts(), training=True)
    monkeypatch.setattr(PostRegions, "lookup", no_photos)
    assert head.prepare(posts(), training=False) == {}
    generated = head(states, word_mask(), {}).states
    real = bga(view="real").eval()
    with pytest.raises(AssertionError, match="a photo was looked up"):
        real.prepare(posts(), training=False)
    with pytest.raises(AssertionError, match="a photo was looked up"):
        head.prepare(posts(), training=True)                     # training reads them
    shown = {**inputs, "use_real": inputs["present"]}
    out = real(states, word_mask(), shown).states
    assert not torch.allclose(out[:3], generated[:3], atol=1e-4)   # the photo's own tokens change the tags
    assert torch.allclose(out[3], generated[3], atol=1e-6)          # no image: the generated tokens


def test_the_views_inside_the_tagger(tiny_encoder, monkeypatch):
    backbone, tok = load_backbone(tiny_encoder)
    encoder = WordEncoder(backbone, casing_dim=4)
    labels = ["O", "B-PER", "I-PER"]
    head = build_head("bga", encoder.out_dim, {"heads": 2}, {"regions": hand_regions()})
    model = Tagger(encoder, WordTokenizer(tok), head, labels)
    samples = [Sample(f"p{i}", ["Zelby", "is", "here"][: i + 1]) for i in range(4)]
    before = model.predict(samples).tags
    monkeypatch.setattr(PostRegions, "lookup", lambda *a, **k: (_ for _ in ()).throw(AssertionError("looked up")))
    assert model.predict(samples).tags == before                # the generated view tags with no photo
    model.head.opts.view = "real"
    with pytest.raises(AssertionError, match="looked up"):
        model.predict(samples)


# --------------------------------------------------------------------------- ablations
def test_without_mcg_the_head_is_plain_transformer_layers_over_the_words(monkeypatch):
    head = bga(mcg=False).train()
    monkeypatch.setattr(PostRegions, "lookup", lambda *a, **k: (_ for _ in ()).throw(AssertionError("looked up")))
    assert head.prepare(posts(), training=True) == {}           # no photo, in training too
    assert not any(k.startswith(("t2v", "i2t", "W_v")) or ".scs_" in k or ".image." in k
                   for k in head.state_dict())
    states, mask = torch.randn(4, 4, D), word_mask()
    out = head(states, mask, {})
    T = states
    for layer in head.layers:
        T = layer.text(T, T, mask)                              # keys and values: the words alone
    assert torch.allclose(out.states, head.final(T, T, mask), atol=1e-6) and out.aux_loss is None
    assert isinstance(head.final, CrossAttention)
    bare = bga(mcg=False, final_layer=False)                    # same seed: the same layers
    assert bare.final is None and torch.allclose(bare(states, mask, {}).states, T, atol=1e-6)


def test_without_scs_every_token_is_kept_and_training_is_deterministic():
    states = torch.randn(4, 4, D)
    plain = bga(scs=False).train()
    inputs = plain.prepare(posts(), training=True)
    assert not any(".scs_" in k for k in plain.state_dict())
    a, b = run(plain, states, inputs, seed=1), run(plain, states, inputs, seed=2)
    assert torch.equal(a.states, b.states) and a.aux_loss.item() == b.aux_loss.item()
    sampled = bga().train()                                     # with SCS the Gumbel draw matters
    a, b = run(sampled, states, inputs, seed=1), run(sampled, states, inputs, seed=2)
    assert not torch.equal(a.states, b.states)


# --------------------------------------------------------------------------- options
def test_options_are_checked():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['gamma'\]; valid options: .*'alpha'"):
        BGAOptions.parse({"gamma": 1})
    for option, value, expected in (("view", "photo", "one of generated, real"), ("layers", 0, "a positive integer"),
                                    ("alpha", -1, "a number of at least 0"), ("gumbel_tau", 0, "a positive number"),
                                    ("dropout", 1.0, r"a number in \[0, 1\)"), ("scs", "yes", "true or false"),
                                    ("real_share", 2, r"a number in \[0, 1\]"), ("max_words", 1.5, "a positive integer")):
        with pytest.raises(ValueError, match=f"options.{option} must be {expected}"):
            BGAOptions.parse({option: value})
    with pytest.raises(ValueError, match="view=real needs options.mcg=true"):
        BGAOptions.parse({"view": "real", "mcg": False})
    with pytest.raises(ValueError, match="no region features were given"):
        build_head("bga", D, {}, {})
    with pytest.raises(ValueError, match="region_dim=1280, but the index gives 3"):
        build_head("bga", D, {}, {"regions": hand_regions(), "head_state": {"region_dim": 1280}})
    assert bga().extra_state() == {"region_dim": D_R, "n_regions": R}


def test_with_no_index_no_post_has_an_image_and_there_is_no_generation_loss():
    from rgcn.heads import head_class
    ctx = head_class("bga").setup({"index": None, "region_dim": 5}, {"train": posts()}, None, progress=False)
    head = build_head("bga", D, {"index": None, "region_dim": 5, "heads": 2}, ctx).train()
    out = head(torch.randn(4, 4, D), word_mask(), head.prepare(posts(), training=True))
    assert out.states.shape == (4, 4, D) and out.aux_loss is None
    assert head.t2v.queries.shape == (49, D)


# --------------------------------------------------------------------------- end to end
def test_the_head_trains_inside_the_tagger(tiny_encoder):
    backbone, tok = load_backbone(tiny_encoder)
    torch.manual_seed(0)
    encoder = WordEncoder(backbone, casing_dim=4)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    words = [["Zelby", "is", "here", "today"], ["flying", "to", "Norvik", "now"], ["saw", "Zelby", "in", "Norvik"]]
    tags = [["B-PER", "O", "O", "O"], ["O", "O", "B-LOC", "O"], ["O", "B-PER", "O", "B-LOC"]]
    samples = [Sample(f"p{i}", words[i % 3], tags[i % 3]) for i in range(4)]      # p3 has no image
    head = build_head("bga", encoder.out_dim, {"heads": 2, "alpha": 0.1}, {"regions": hand_regions()})
    model = Tagger(encoder, WordTokenizer(tok), head, labels)
    data = TaggingDataset(samples, model.tokenizer, labels)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for step in range(30):
        batch = model.make_batch(data, range(4), training=True)
        assert model.head_output(batch)[1].aux_loss is not None
        loss = model.forward_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]
    assert model.predict(samples).tags == [s.tags for s in samples]


# --------------------------------------------------------------------------- the batched decoder calls
def unbatched_forward(head, T, word_mask, inputs):
    """The head's training forward as first written: one generator call per direction and
    purpose, six a layer with the cycle loss ((4), (5) and the four passes of (7)), and the
    image branch's layer (8) run in every layer, the last one's output unused."""
    from rgcn.heads.bga import hybrid

    o, (B, W, _), R = head.opts, T.shape, head.t2v.queries.shape[0]
    word_mask = word_mask.bool()
    rows = inputs["present"].bool().nonzero().squeeze(1)
    V = head.W_v(inputs["regions"][rows].to(T.dtype))
    use_real = inputs["use_real"].bool()[rows]
    m_v, every = torch.ones(len(rows), R), torch.ones(len(rows), R, dtype=torch.bool)
    m_t, ones_r, losses = word_mask.float(), torch.ones(B, R, dtype=torch.bool), []
    for layer in head.layers:
        m_t = layer.scs_t(T, m_t, word_mask, o.gumbel_tau) if o.scs else word_mask.float()
        V_gen = head.t2v(T, m_t, R)
        if o.scs:
            m_v = layer.scs_v(V, m_v, every, o.gumbel_tau)
        T_p, w_p = T[rows], word_mask[rows]
        T_gen = head.i2t(V, m_v, W, w_p)
        loss = generation_kl(V, V_gen[rows], m_v) + generation_kl(T_p, T_gen, m_t[rows] * w_p)
        if o.cycle:
            T_cyc = head.i2t(head.t2v(T_p, w_p, R), every, W, w_p)
            V_cyc = head.t2v(head.i2t(V, every, W, w_p), w_p, R)
            loss = loss + generation_kl(T_p, T_cyc, w_p) + generation_kl(V, V_cyc, m_v.new_ones(m_v.shape))
        losses.append(loss)
        keys = V_gen.index_put((rows,), torch.where(use_real.view(-1, 1, 1), V, V_gen[rows]))
        V = hybrid(layer.image, V, every, T_gen, w_p)
        T = hybrid(layer.text, T, word_mask, keys, ones_r)
    H = head.final(T, T, word_mask) if head.final is not None else T
    return H, o.alpha * torch.stack(losses).mean()


@pytest.mark.parametrize("scs", [True, False])
def test_the_batched_generator_calls_give_the_unbatched_loss_and_gradients(scs):
    """Three generator calls a layer instead of six, and no image layer after the last text one."""
    head = bga(scs=scs, alpha=0.5, real_share=0.5).train()       # dropout 0: the only noise is Gumbel's
    states = torch.randn(4, 4, D, requires_grad=True)
    torch.manual_seed(5)
    inputs = head.prepare(posts(), training=True)                 # p3 has no image
    results = []
    for forward in (lambda: run(head, states, inputs), lambda: unbatched_forward(head, states, word_mask(), inputs)):
        torch.manual_seed(3)
        out = forward()
        H, aux = (out.states, out.aux_loss) if hasattr(out, "states") else out
        head.zero_grad()
        states.grad = None
        ((H * torch.linspace(-1, 1, D)).sum() + aux).backward()
        grads = {n: p.grad.clone() for n, p in head.named_parameters() if p.grad is not None}
        results.append((H.detach(), aux.detach(), states.grad.clone(), grads))
    (H, aux, g, grads), (H0, aux0, g0, grads0) = results
    assert aux0.item() > 0 and grads.keys() == grads0.keys() and len(grads) > 20
    torch.testing.assert_close(aux, aux0, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(H, H0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g0, rtol=1e-4, atol=1e-6)
    for name in grads0:
        torch.testing.assert_close(grads[name], grads0[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("target", [False, True])
def test_the_generator_equals_its_decoder_layer_run_on_the_expanded_queries(target):
    """Its self-attention projects the shared queries once; the layer's output and every
    gradient equal torch's TransformerDecoderLayer on the queries copied into each row."""
    torch.manual_seed(0)
    gen = Generator(D, 5, heads=2, dropout=0.0).train()
    source, keep = torch.randn(3, 4, D, requires_grad=True), torch.tensor([[1, 1, 0, 1], [1, 0, 0, 0], [1, 1, 1, 1.]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]).bool() if target else None
    results = []
    for forward in (lambda: gen(source, keep, 5, mask),
                    lambda: gen.decoder(gen.queries.unsqueeze(0).expand(3, -1, -1), source * keep.unsqueeze(-1),
                                        tgt_key_padding_mask=None if mask is None else ~mask,
                                        memory_key_padding_mask=~keep.bool())):
        gen.zero_grad()
        source.grad = None
        out = forward()
        (out * torch.linspace(-1, 1, D)).sum().backward()
        results.append((out.detach(), source.grad.clone(), {n: p.grad.clone() for n, p in gen.named_parameters()}))
    (out, g, grads), (out0, g0, grads0) = results
    torch.testing.assert_close(out, out0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g, g0, rtol=1e-4, atol=1e-6)
    assert grads.keys() == grads0.keys() and grads["queries"].abs().sum() > 0
    for name in grads0:
        torch.testing.assert_close(grads[name], grads0[name], rtol=1e-4, atol=1e-6, msg=name)
