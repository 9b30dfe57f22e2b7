"""The one interface every embedder implements.

An embedder turns PIL images (and, when it has a text tower, strings) into float32
L2-normalised vectors. The index builder feeds it preprocessed tensors through
:meth:`Embedder.encode`, which may also return per-image regions (patch or feature-map
cells) and class logits over :attr:`Embedder.tag_labels` (used as object tags).
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from data.errors import UserError


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation, float32 out. Zero rows stay zero.

    Shapes: ``x`` (n, d) -> (n, d).
    """
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, eps)).astype(np.float32, copy=False)


@dataclass
class EncodeOutput:
    """What one forward pass over a batch gives.

    Shapes: ``embeddings`` (B, dim) float32 L2-normalised; ``regions`` (B, R, dim_r) or
    None; ``logits`` (B, len(tag_labels)) or None.
    """

    embeddings: np.ndarray
    regions: np.ndarray | None = None
    logits: np.ndarray | None = None


class NoTextTowerError(UserError, TypeError):
    """Raised by :meth:`Embedder.embed_texts` on an image-only embedder."""


class NoImageTowerError(UserError, TypeError):
    """Raised by :meth:`Embedder.embed_images` on a text-only embedder."""


class Embedder(abc.ABC):
    """Images (and optionally texts) to unit vectors.

    Attributes:
        name: registry name (``efficientnet_lite0``, ``clip``, ``timm``, ``sentence``).
        tag: weights tag or checkpoint path (``None`` means random weights).
        dim: embedding width.
        has_text: whether :meth:`embed_texts` works.
        has_regions: whether :meth:`encode` can return per-image regions.
        has_images: whether :meth:`embed_images` works.
        tag_labels: labels of the logits :meth:`encode` returns (empty: no object tags).
        tag_method: how those logits are made: ``"classifier"`` (a trained classification
            head) or ``"zero-shot"`` (image-text similarity to a prompt per label).
        library: the package whose version the manifest records beside the weights.
        transform: PIL image -> (3, H, W) float tensor (picklable, used in DataLoader workers).
    """

    name: str = "?"
    tag: str | None = None
    dim: int = 0
    has_text: bool = False
    has_images: bool = True
    has_regions: bool = False
    tag_labels: Sequence[str] = ()
    tag_method: str = "classifier"
    library: str = "torch"
    transform: Callable | None = None
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"

    # ----------------------------------------------------------------- images
    @abc.abstractmethod
    def encode(self, pixels: torch.Tensor, regions: bool = False, logits: bool = False) -> EncodeOutput:
        """Forward a preprocessed batch.

        Args:
            pixels: (B, 3, H, W) float tensor made by :attr:`transform`.
            regions: also return region features (only when :attr:`has_regions`).
            logits: also return logits over :attr:`tag_labels` (when there are any).
        """

    def embed_images(self, images: Sequence) -> np.ndarray:
        """PIL images -> (n, dim) float32 L2-normalised."""
        if not self.has_images:
            raise NoImageTowerError(f"embedder {self.name!r} has no image tower: "
                                    "pick an image embedder (efficientnet_lite0, clip, timm)")
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        pixels = torch.stack([self.transform(im.convert("RGB")) for im in images])
        return self.encode(pixels).embeddings

    def image_regions(self, images: Sequence) -> np.ndarray:
        """PIL images -> (n, R, dim_r) region features (feature-map cells or patches)."""
        if not self.has_regions:
            raise NotImplementedError(f"embedder {self.name!r} has no region features")
        pixels = torch.stack([self.transform(im.convert("RGB")) for im in images])
        return self.encode(pixels, regions=True).regions

    def object_tags(self, images: Sequence, k: int = 5) -> list[list[tuple[str, float]]]:
        """Top-``k`` ``(label, probability)`` per image over :attr:`tag_labels`."""
        if not self.tag_labels:
            raise NotImplementedError(f"embedder {self.name!r} gives no object tags "
                                      "(use efficientnet_lite0, or clip with pretrained weights)")
        pixels = torch.stack([self.transform(im.convert("RGB")) for im in images])
        return top_k_labels(self.encode(pixels, logits=True).logits, self.tag_labels, k)

    # ----------------------------------------------------------------- texts
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Strings -> (n, dim) float32 L2-normalised."""
        raise NoTextTowerError(f"embedder {self.name!r} has no text tower: use 'clip' "
                               "(image and text) or 'sentence' (text only)")

    # ----------------------------------------------------------------- manifest
    def describe(self) -> dict:
        """What the manifest records about this embedder."""
        return {"name": self.name, "tag": self.tag, "dim": self.dim, "has_text": self.has_text,
                "has_regions": self.has_regions, "n_tag_labels": len(self.tag_labels),
                "precision": self.precision}

    def config(self) -> dict:
        """Constructor kwargs that rebuild this embedder with ``get_embedder(name, **config)``."""
        return {}

    def to(self, device: str | torch.device) -> "Embedder":
        """Move the model(s) to ``device``; subclasses holding modules override."""
        self.device = torch.device(device)
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, tag={self.tag!r}, dim={self.dim})"


def top_k_labels(logits: np.ndarray, labels: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
    """Softmax over the last axis, then the ``k`` best ``(label, prob)`` per row.

    Shapes: ``logits`` (n, L) -> n lists of length min(k, L).
    """
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    k = min(k, p.shape[1])
    top = np.argsort(-p, axis=1)[:, :k]
    return [[(str(labels[j]), float(p[i, j])) for j in row] for i, row in enumerate(top)]


def resolve_device(device: str | None) -> torch.device:
    """``None``/``"auto"`` -> cuda when available, else cpu."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_context(device: torch.device, precision: str):
    """fp16/bf16 autocast on the device, or a no-op for fp32."""
    if precision == "fp32":
        return torch.autocast(device_type=device.type, enabled=False)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``auto`` -> fp16 on cuda, fp32 elsewhere. Validates the name."""
    valid = ("auto", "fp32", "fp16", "bf16")
    if precision is None:
        precision = "auto"
    if precision not in valid:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(valid)}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    return precision
