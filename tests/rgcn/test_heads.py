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
