"""The text-only head: no fusion; the baseline every multimodal head is compared with."""
from __future__ import annotations

import torch

from .base import FusionHead, HeadOutput, register_head


@register_head("text")
class TextHead(FusionHead):
    """Passes the encoder's word states through unchanged."""

    def __init__(self, in_dim: int, options: dict | None = None, context: dict | None = None):
        super().__init__(in_dim, options, context)
        if self.options:
            raise ValueError(f"the text head takes no options, got {sorted(self.options)}")

    def forward(self, states: torch.Tensor, word_mask: torch.Tensor, inputs: dict) -> HeadOutput:
        return HeadOutput(states)
