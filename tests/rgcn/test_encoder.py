import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModel, AutoTokenizer

from rgcn.encoder import SHAPES, WordEncoder, WordTokenizer, plan_windows, word_shape


@pytest.mark.parametrize("word,shape", [("obama", "lower"), ("OBAMA", "upper"), ("Obama", "title"),
                                        ("McDonald", "mixed"), ("2015", "numeric"), ("!!", "punct"),
                                        ("http://t.co/x", "url"), ("@cnn", "mention"), ("#NBA", "hashtag"),
                                        ("B2B", "alnum"), ("I", "title")])
def test_word_shape(word, shape):
    assert SHAPES[word_shape(word)] == shape


def test_short_post_is_one_window():
    assert plan_windows([1, 2, 3], 10) == ([(0, 3)], [0, 0, 0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=80), st.integers(8, 40))
def test_windows_cover_every_word_within_budget(lengths, max_sub):
    windows, owner = plan_windows(lengths, max_sub)
    assert windows[0][0] == 0 and windows[-1][1] == len(lengths)
    for a, b in windows:
        assert b > a
        assert sum(min(l, max_sub) for l in lengths[a:b]) <= max_sub
    for w, o in enumerate(owner):
        a, b = windows[o]
        assert a <= w < b
    for (a1, b1), (a2, b2) in zip(windows, windows[1:]):
        assert a2 > a1 and a2 <= b1  # progress, and overlap or adjacency: no gap


def test_each_word_is_owned_by_its_best_context_window():
    # 16 one-piece words, 8 a window, the next window half a window back:
    # (0, 8) (4, 12) (8, 16). Word 6 has 1 word of context on its right in (0, 8) but 2 on
    # each side in (4, 12); word 10 has 1 in (4, 12) and 2 in (8, 16).
    windows, owner = plan_windows([1] * 16, 8)
    assert windows == [(0, 8), (4, 12), (8, 16)]
    assert owner == [0] * 6 + [1] * 4 + [2] * 6
    # words of 3 sub-words: (0, 4) (1, 7) (5, 9); word 2 ties (1 each side in both) and
    # keeps the earlier window; word 3 has none on its right in (0, 4), 2 in (1, 7)
    windows, owner = plan_windows([3, 1, 1, 1, 3, 1, 1, 1, 2], 8)
    assert windows == [(0, 4), (1, 7), (5, 9)]
    assert owner == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_collated_words_point_to_their_best_context_window(tiny_encoder):
    tok = WordTokenizer(AutoTokenizer.from_pretrained(tiny_encoder), max_subwords=8)
    words = ("one two three four five six seven eight nine ten eleven twelve "
             "red blue green black").split()
    post = tok.encode(words)
    assert all(len(p) == 1 for p in post.word_pieces)       # one sub-word a word
    batch = tok.collate([tok.encode(["hi"]), post])         # the long post's windows are rows 1-3
    rows = [r[m.bool()].tolist()[1:-1] for r, m in zip(batch.input_ids, batch.attention_mask)]
    moved = 0
    for w, (piece,) in enumerate(post.word_pieces):
        # context of word w in each row holding it: sub-words before and after, the fewer
        ctx = {r: min(ids.index(piece), len(ids) - 1 - ids.index(piece))
               for r, ids in enumerate(rows) if piece in ids}
        row, pos = batch.word_window[1, w].item(), batch.word_pos[1, w].item()
        assert ctx[row] == max(ctx.values()), (w, row, ctx)
        assert batch.input_ids[row, pos].item() == piece
        moved += row != min(ctx)
    assert moved == 4                                        # words 6, 7, 10, 11 leave their first window


def test_long_post_read_through_windows_matches_word_count(tiny_encoder):
    tok = WordTokenizer(AutoTokenizer.from_pretrained(tiny_encoder), max_subwords=8)
    words = [f"word{i}" for i in range(40)] + ["Paris"]
    post = tok.encode(words)
    batch = tok.collate([post, tok.encode(["hi"])], [[0] * len(words), [1]])
    assert batch.input_ids.shape[1] <= 10                  # 8 sub-words + [CLS] + [SEP]
    assert batch.word_mask.sum().item() == len(words) + 1  # every word is read
    # each word is read at its own first sub-word
    for w in (0, 17, 40):
        row, pos = batch.word_window[0, w], batch.word_pos[0, w]
        assert batch.input_ids[row, pos].item() == post.word_pieces[w][0]
    enc = WordEncoder(AutoModel.from_pretrained(tiny_encoder), casing_dim=4, dropout=0.0)
    out = enc(batch)
    assert out.shape == (2, len(words), 32 + 4)


def test_casing_changes_the_states_of_an_uncased_encoder(tiny_encoder):
    tok = WordTokenizer(AutoTokenizer.from_pretrained(tiny_encoder))
    enc = WordEncoder(AutoModel.from_pretrained(tiny_encoder), casing_dim=4, dropout=0.0).eval()
    a = enc(tok.collate([tok.encode(["apple"])]))
    b = enc(tok.collate([tok.encode(["Apple"])]))
    assert torch.allclose(a[..., :32], b[..., :32])        # the encoder lowercases
    assert not torch.allclose(a[..., 32:], b[..., 32:])    # the casing embedding tells them apart


# ----------------------------------------------------------------------------- context
def _rows(batch):
    return [r[m.bool()].tolist() for r, m in zip(batch.input_ids, batch.attention_mask)]


def test_context_is_read_after_the_post_and_never_tagged(tiny_encoder):
    tok = WordTokenizer(AutoTokenizer.from_pretrained(tiny_encoder), max_subwords=16)
    posts = [tok.encode(["look", "at", "Zelby"]), tok.encode(["hi"])]
    contexts = [tok.encode(["red", "sign"]), None]
    plain = tok.collate(posts, [[0, 0, 1], [0]])
    batch = tok.collate(posts, [[0, 0, 1], [0]], contexts)
    c, s = tok.cls_id, tok.sep_id
    post_ids = [p for w in posts[0].word_pieces for p in w]
    ctx_ids = [p for w in contexts[0].word_pieces for p in w]
    assert _rows(batch) == [[c, *post_ids, s, *ctx_ids, s], _rows(plain)[1]]
    # the words, their tags and where they are read are those of the post alone
    for name in ("word_window", "word_pos", "word_mask", "shape_ids", "tag_ids"):
        assert torch.equal(getattr(batch, name), getattr(plain, name)), name
    assert batch.word_pos.max().item() <= len(post_ids)       # every read position is a post word


def test_a_full_window_cuts_the_context_before_any_post_word(tiny_encoder):
    tok = WordTokenizer(AutoTokenizer.from_pretrained(tiny_encoder), max_subwords=8)
    ctx = tok.encode(["red", "blue", "green"])                 # one sub-word a word
    six = tok.encode("one two three four five six".split())
    # 6 post sub-words + [CLS] [SEP] leave room for 1 context word and its [SEP]
    (row,) = _rows(tok.collate([six], None, [ctx]))
    assert row == [tok.cls_id, *[p for (p,) in six.word_pieces], tok.sep_id, ctx.word_pieces[0][0], tok.sep_id]
    eight = tok.encode("one two three four five six seven eight".split())
    (row,) = _rows(tok.collate([eight], None, [ctx]))          # a full window: no context at all
    assert row == [tok.cls_id, *[p for (p,) in eight.word_pieces], tok.sep_id]
    # a post longer than the window is read in the same windows, each word from the same place
    long = tok.encode([f"w{i}" for i in range(30)])
    plain, batch = tok.collate([long]), tok.collate([long], None, [ctx])
    assert torch.equal(plain.word_window, batch.word_window) and torch.equal(plain.word_pos, batch.word_pos)
    assert batch.input_ids.shape[1] <= 10
    for got, want in zip(_rows(batch), _rows(plain)):
        assert got[: len(want)] == want                         # every post word kept, context only after


# ----------------------------------------------------------------------------- pooling, layer mix
def _two_posts(tiny_encoder):
    tok = WordTokenizer(AutoTokenizer.from_pretrained(tiny_encoder), max_subwords=16)
    posts = [tok.encode(["Zimmermanesque", "in", "Floridaland", "!"]), tok.encode(["ok", "Kardashianism"])]
    return tok.collate(posts), posts


def test_mean_pooling_is_the_mean_of_a_words_subwords(tiny_encoder):
    batch, posts = _two_posts(tiny_encoder)
    backbone = AutoModel.from_pretrained(tiny_encoder).eval()
    first = WordEncoder(backbone, casing_dim=0, dropout=0.0).eval()
    mean = WordEncoder(backbone, casing_dim=0, dropout=0.0, pooling="mean").eval()
    with torch.no_grad():
        hidden = backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        a, b = first(batch), mean(batch)
    several = 0
    for i, post in enumerate(posts):
        for w, pieces in enumerate(post.word_pieces):
            row, pos = batch.word_window[i, w], batch.word_pos[i, w]
            assert batch.word_len[i, w] == len(pieces)
            by_hand = hidden[row, pos: pos + len(pieces)].mean(0)
            assert torch.allclose(b[i, w], by_hand, atol=1e-6)
            assert torch.allclose(a[i, w], hidden[row, pos])
            # the two differ exactly when the word has several sub-words
            assert torch.allclose(a[i, w], b[i, w]) == (len(pieces) == 1)
            several += len(pieces) > 1
    assert several >= 3


def test_layer_mix_of_one_is_the_last_layer_and_of_k_mixes_the_last_k(tiny_encoder):
    batch, _ = _two_posts(tiny_encoder)
    backbone = AutoModel.from_pretrained(tiny_encoder).eval()
    plain = WordEncoder(backbone, casing_dim=0, dropout=0.0).eval()
    one = WordEncoder(backbone, casing_dim=0, dropout=0.0, layer_mix=1).eval()
    two = WordEncoder(backbone, casing_dim=0, dropout=0.0, layer_mix=2).eval()
    assert one.layer_mix is None and sum(p.numel() for p in two.layer_mix.parameters()) == 3
    with torch.no_grad():
        states = backbone(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                          output_hidden_states=True).hidden_states            # embeddings + 2 layers
        assert torch.equal(one(batch), plain(batch))
        assert torch.allclose(one(batch), states[-1][batch.word_window, batch.word_pos])
        even = (states[1] + states[2]) / 2                                # the last two, evenly at first
        assert torch.allclose(two(batch), even[batch.word_window, batch.word_pos], atol=1e-6)
        two.layer_mix.scalars.copy_(torch.tensor([50.0, 0.0]))            # all weight on the first layer
        two.layer_mix.gamma.fill_(2.0)
        assert torch.allclose(two(batch), 2 * states[1][batch.word_window, batch.word_pos], atol=1e-5)
    with pytest.raises(ValueError, match=r"layer_mix must be in \[1, 3\]"):
        WordEncoder(backbone, layer_mix=4)
