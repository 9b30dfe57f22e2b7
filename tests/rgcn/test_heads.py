import pytest
import torch

from rgcn.heads import FusionHead, HeadOutput, build_head, list_heads, register_head


def test_unknown_head_lists_valid_ones():
    with pytest.raises(KeyError, match="valid heads: .*text"):
        build_head("nope", 8)


def test_text_head_is_identity_and_rejects_options():
    h = build_head("text", 8)
    x = torch.randn(2, 3, 8)
    assert torch.equal(h(x, torch.ones(2, 3, dtype=torch.bool), {}).states, x)
    with pytest.raises(ValueError, match="no options"):
        build_head("text", 8, {"k": 1})


def test_registering_a_new_head_needs_no_trainer_change():
    @register_head("_test_scale")
    class Scale(FusionHead):
        def forward(self, states, word_mask, inputs):
            return HeadOutput(states * 2, aux_loss=states.new_tensor(1.0))

    assert "_test_scale" in list_heads()
    out = build_head("_test_scale", 4)(torch.ones(1, 2, 4), None, {})
    assert out.states.sum().item() == 16 and out.aux_loss.item() == 1.0


def test_the_tagger_trains_on_crf_weight_times_the_crf_loss_plus_the_heads_loss(tiny_encoder):
    from data.corpus import Sample
    from rgcn.batching import TaggingDataset
    from rgcn.encoder import WordEncoder, WordTokenizer, load_backbone
    from rgcn.tagger import Tagger

    class Weighted(FusionHead):
        def forward(self, states, word_mask, inputs):
            return HeadOutput(states, aux_loss=states.new_tensor(1.5), crf_weight=0.25)

    backbone, tok = load_backbone(tiny_encoder)
    encoder = WordEncoder(backbone, casing_dim=0)
    labels = ["O", "B-PER", "I-PER"]
    text = Tagger(encoder, WordTokenizer(tok), build_head("text", encoder.out_dim), labels).eval()
    weighted = Tagger(encoder, WordTokenizer(tok), Weighted(encoder.out_dim), labels).eval()
    weighted.load_state_dict(text.state_dict())
    data = TaggingDataset([Sample("a", ["Zelby", "here"], ["B-PER", "O"])], text.tokenizer, labels)
    nll = text.forward_loss(text.make_batch(data, [0], training=True))
    loss = weighted.forward_loss(weighted.make_batch(data, [0], training=True))
    assert loss.item() == pytest.approx(0.25 * nll.item() + 1.5, rel=1e-6)


def test_importing_the_heads_prints_no_warning():
    """A quiet console: PyG's deprecation warning about torch.jit.script, which it raises when
    imported, does not leak out when the heads load (other libraries' versions may differ
    where the tests run, so only this known one is checked)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "always", "-c", "import rgcn.heads"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch.jit.script" not in done.stderr, done.stderr[-2000:]
