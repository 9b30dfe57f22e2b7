"""The ITA head's pieces: CRF marginals, the CVA loss, the options, the views and contexts."""
import itertools
import math

import pytest
import torch
from torchcrf import CRF

from data.corpus import Sample, drop_images
from index.visual_context import VisualContext
from rgcn.heads import build_head
from rgcn.heads.ita import crf_marginals, cva_loss


def _brute_force_marginals(crf: CRF, emissions: torch.Tensor, T: float) -> torch.Tensor:
    """Marginals of one post by enumerating every tag sequence: (W, L)."""
    W, L = emissions.shape
    em = emissions.unsqueeze(1)                                    # (W, 1, L), pytorch-crf's seq-first
    mask = torch.ones(W, 1, dtype=torch.bool)
    paths = list(itertools.product(range(L), repeat=W))
    scores = torch.stack([crf._compute_score(em, torch.tensor(p).view(W, 1), mask)[0] for p in paths])
    probs = torch.softmax(scores / T, dim=0)
    out = torch.zeros(W, L)
    for p, pr in zip(paths, probs):
        for i, t in enumerate(p):
            out[i, t] += pr
    return out


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_marginals_equal_brute_force_enumeration(T):
    torch.manual_seed(0)
    crf = CRF(3, batch_first=True)
    for p in (crf.start_transitions, crf.end_transitions, crf.transitions):
        torch.nn.init.normal_(p, std=1.0)
    emissions = torch.randn(2, 3, 3) * 2                           # 2 posts, 3 words, 3 tags
    mask = torch.tensor([[True, True, True], [True, True, False]])  # the second post has 2 words
    got = crf_marginals(crf, emissions, mask, T)
    torch.testing.assert_close(got[0], _brute_force_marginals(crf, emissions[0], T), atol=1e-5, rtol=0)
    torch.testing.assert_close(got[1, :2], _brute_force_marginals(crf, emissions[1, :2], T), atol=1e-5, rtol=0)
    assert torch.all(got[1, 2] == 0)                               # padding has no distribution
    assert not got.requires_grad                                   # a teacher: detached


def test_student_marginals_stay_differentiable():
    crf = CRF(3, batch_first=True)
    emissions = torch.randn(1, 3, 3, requires_grad=True)
    p = crf_marginals(crf, emissions, torch.ones(1, 3, dtype=torch.bool), 2.0, create_graph=True)
    p[0, 1, 2].backward()
    assert emissions.grad.abs().sum() > 0 and crf.transitions.grad.abs().sum() > 0


def _quiet_crf(n=2):
    crf = CRF(n, batch_first=True)
    for p in (crf.start_transitions, crf.end_transitions, crf.transitions):
        torch.nn.init.zeros_(p)
    return crf


def test_cva_loss_by_hand():
    # one word, two tags, no transition scores: the marginals are softmax(e / T)
    head = build_head("ita", 8, {"temperature": 2.0, "cva_weight": 0.5})
    mm = torch.tensor([[[0.0, math.log(3)], [5.0, -5.0]]], requires_grad=True)   # 2nd word is padding
    text = torch.tensor([[[0.0, 0.0], [-9.0, 9.0]]], requires_grad=True)
    mask = torch.tensor([[True, False]])
    loss = head.views_loss({"multimodal": mm, "text": text}, mask, _quiet_crf())
    # teacher softmax([0, ln 3 / 2]) = [1, sqrt 3] / (1 + sqrt 3); student [1/2, 1/2]
    p = [1 / (1 + math.sqrt(3)), math.sqrt(3) / (1 + math.sqrt(3))]
    kl = sum(q * math.log(q / 0.5) for q in p)
    assert loss.item() == pytest.approx(0.5 * 2.0 ** 2 * kl, abs=1e-6)
    loss.backward()
    assert mm.grad is None or torch.all(mm.grad == 0)               # the teacher is detached
    assert text.grad[0, 0].abs().sum() > 0 and torch.all(text.grad[0, 1] == 0)


def test_cva_loss_averages_over_the_words_of_the_batch():
    teacher = torch.tensor([[[0.5, 0.5], [1.0, 0.0]], [[0.25, 0.75], [0.3, 0.7]]])
    student = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.1, 0.9]]])
    mask = torch.tensor([[True, True], [True, False]])
    kl = [0.0, math.log(2), 0.25 * math.log(0.5) + 0.75 * math.log(1.5)]
    assert cva_loss(teacher, student, mask, 3.0).item() == pytest.approx(9 * sum(kl) / 3, abs=1e-6)


def test_no_cva_no_views_loss_and_a_single_view():
    head = build_head("ita", 8, {"cva": False})
    assert head.views(training=True) == ("multimodal",)
    em = torch.zeros(1, 1, 2)
    assert head.views_loss({"multimodal": em}, torch.ones(1, 1, dtype=torch.bool), _quiet_crf()) is None


def test_options_are_checked():
    with pytest.raises(ValueError, match="valid options: .*cva_weight"):
        build_head("ita", 8, {"temprature": 2})
    with pytest.raises(ValueError, match="view must be one of multimodal, text"):
        build_head("ita", 8, {"view": "image"})
    with pytest.raises(ValueError, match="order must list distinct parts of tags, ocr, caption"):
        build_head("ita", 8, {"order": ["tags", "objects"]})
    with pytest.raises(ValueError, match="temperature must be positive"):
        build_head("ita", 8, {"temperature": 0})


CONTEXTS = {"img-a": VisualContext((("tabby", 0.6), ("sofa", 0.2)), "DR. MAROVAN / CAFE", "a cat on a sofa")}


def _samples():
    return [Sample("a", ["look", "at", "Marovan"], image="a.jpg", image_key="img-a"),
            Sample("b", ["no", "photo"], image=None, image_key=None),
            Sample("c", ["lost", "photo"], image=None, image_missing=True, image_key="img-c")]


def test_the_multimodal_view_reads_the_context_in_order_and_budget():
    head = build_head("ita", 8, {"order": ["ocr", "tags"], "max_context_words": 4}, {"visual_contexts": CONTEXTS})
    assert head.context_words(_samples(), "multimodal") == [["DR.", "MAROVAN", "/", "CAFE."], [], []]
    head = build_head("ita", 8, {}, {"visual_contexts": CONTEXTS})
    assert head.context_words(_samples()[:1], "multimodal") == [
        "tabby, sofa. DR. MAROVAN / CAFE. a cat on a sofa".split()]
    assert head.context_words(_samples(), "text") is None         # the text view: the post alone
    assert head.views(training=True) == ("multimodal", "text") and head.views(training=False) == ("multimodal",)
    assert build_head("ita", 8, {"view": "text"}).views(training=False) == ("text",)


def test_a_dropped_image_gives_an_empty_context():
    head = build_head("ita", 8, {}, {"visual_contexts": CONTEXTS})
    samples = _samples()
    drop_images(samples)
    assert head.context_words(samples, "multimodal") == [[], [], []]


def _tagger(tiny_encoder, head_name, options=None, context=None):
    from transformers import AutoModel, AutoTokenizer

    from rgcn.encoder import WordEncoder, WordTokenizer
    from rgcn.tagger import Tagger

    torch.manual_seed(0)
    enc = WordEncoder(AutoModel.from_pretrained(tiny_encoder), casing_dim=4, dropout=0.0)
    head = build_head(head_name, enc.out_dim, options, context)
    return Tagger(enc, WordTokenizer(AutoTokenizer.from_pretrained(tiny_encoder)), head, ["O", "B-PER", "I-PER"])


def test_the_tagger_reads_both_views_and_adds_the_views_loss(tiny_encoder):
    from rgcn.batching import TaggingDataset

    samples = _samples()
    for s in samples:
        s.tags = ["O"] * (len(s.tokens) - 1) + ["B-PER"]
    ita = _tagger(tiny_encoder, "ita", {}, {"visual_contexts": CONTEXTS})
    text = _tagger(tiny_encoder, "text")
    data = TaggingDataset(samples, ita.tokenizer, ita.labels)
    batch = ita.make_batch(data, [0, 1, 2], training=True)
    plain = text.make_batch(data, [0, 1, 2], training=True)
    assert list(batch.views) == ["text"]
    assert torch.equal(batch.views["text"].input_ids, plain.input_ids)      # the text view is the text head's input
    assert batch.input_ids.shape[1] > plain.input_ids.shape[1]              # the multimodal view reads more
    T = plain.input_ids.shape[1]                                             # posts with no image: no context
    assert torch.equal(batch.input_ids[1:, :T], plain.input_ids[1:]) and not batch.attention_mask[1:, T:].any()
    ita.eval()                                                               # no dropout: the same emissions twice
    em, _ = ita.emissions(batch)
    em_text, _ = ita.emissions(batch.views["text"])
    crf = -ita.crf(em, batch.tag_ids, mask=batch.word_mask, reduction="mean")
    tie = ita.head.views_loss({"multimodal": em, "text": em_text}, batch.word_mask, ita.crf)
    assert tie.item() > 0
    torch.testing.assert_close(ita.forward_loss(batch), crf + tie)
    assert [len(t) for t in ita.predict(samples).tags] == [3, 2, 2]         # the post's words only are tagged
    # tagging with the text view reads exactly what the text head reads
    ita.head.opts.view = "text"
    assert torch.equal(ita.make_batch(data, [0, 1, 2], training=False).input_ids, plain.input_ids)


def test_posts_setup_did_not_see_have_their_photos_read_once(tmp_path, monkeypatch):
    import rgcn.heads.ita as ita

    calls = []

    def fake_read(artifact, samples, opts, progress=False, reader=None):
        calls.append([s.id for s in samples])
        return {s.image_key: VisualContext((("red", 0.9),)) for s in samples if s.image}, {}

    monkeypatch.setattr(ita, "read_contexts", fake_read)
    head = build_head("ita", 8, {}, {"visual_contexts": CONTEXTS, "index_artifact": object()})
    new = [Sample("n1", ["x"], image="n1.png", image_key="n1"), Sample("n2", ["y"], image="n2.png", image_key="n2")]
    samples = _samples() + new
    assert head.context_words(samples, "multimodal")[3:] == [["red"], ["red"]]
    assert head.context_words(samples, "multimodal")[0][0] == "tabby,"
    assert calls == [["c", "n1", "n2"]]                           # one read for the batch, then never again


def test_setup_keeps_the_index_off_the_gpu_and_releases_its_vectors(tmp_path, monkeypatch):
    """The head never searches: its index is not copied onto a GPU, and once the contexts are
    read only what gives visual contexts is kept; a post seen later still has its photo read."""
    import index.artifact
    from data.corpus import read_corpus
    from rgcn.heads.ita import ITAHead
    from tests.colour import image_decided_with_index, write_image_decided

    splits = image_decided_with_index(tmp_path)
    posts = {name: read_corpus(path, str(tmp_path / "data" / "images"), "jsonl").samples
             for name, path in splits.items() if name != "test"}
    monkeypatch.setattr(index.artifact, "to_gpu", lambda ix: pytest.fail("the ita head's index put on a GPU"))
    context = ITAHead.setup({"index": str(tmp_path / "index")}, posts, None, progress=False)
    art = context["index_artifact"]
    assert art.faiss_index is None and art.embeddings is None and art.regions is None
    assert context["visual_contexts"]["train-000"].text().split()[0] == "red"
    head = build_head("ita", 8, {"index": str(tmp_path / "index")}, context)
    fresh = write_image_decided(tmp_path / "fresh", sizes=(("test", 2),), seed=5, prefix="new-")["test"]
    new = read_corpus(fresh, str(tmp_path / "fresh" / "images"), "jsonl").samples
    assert [w[:1] for w in head.context_words(new, "multimodal")] == [["red"], ["blue"]]
