"""Embedders behind one interface and a name registry.

>>> from index.embedders import get_embedder, list_embedders
>>> list_embedders()
['clip', 'efficientnet_lite0', 'sentence', 'timm']
"""
from __future__ import annotations

from typing import Callable

from .base import Embedder, EncodeOutput, NoImageTowerError, NoTextTowerError, l2_normalise, top_k_labels

DEFAULT_EMBEDDER = "efficientnet_lite0"


def _efficientnet(**kw):
    from .timm_backbone import EfficientNetLite0Embedder
    return EfficientNetLite0Embedder(**kw)


def _timm(**kw):
    from .timm_backbone import TimmEmbedder
    return TimmEmbedder(**kw)


def _clip(**kw):
    from .clip import ClipEmbedder
    return ClipEmbedder(**kw)


def _sentence(**kw):
    from .sentence import SentenceEmbedder
    return SentenceEmbedder(**kw)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "efficientnet_lite0": _efficientnet,
    "clip": _clip,
    "timm": _timm,
    "sentence": _sentence,
}


def list_embedders() -> list[str]:
    """Registered embedder names, sorted."""
    return sorted(EMBEDDERS)


def register_embedder(name: str, make: Callable[..., Embedder]) -> None:
    """Add an embedder constructor under ``name`` (refuses to overwrite)."""
    if name in EMBEDDERS:
        raise ValueError(f"embedder {name!r} is already registered")
    EMBEDDERS[name] = make


def get_embedder(name: str = DEFAULT_EMBEDDER, **kwargs) -> Embedder:
    """Build the embedder registered as ``name``; ``kwargs`` go to its constructor.

    An unknown name raises ``KeyError`` listing the valid ones.
    """
    try:
        make = EMBEDDERS[name]
    except KeyError:
        raise KeyError(f"unknown embedder {name!r}: valid names are {', '.join(list_embedders())}") from None
    return make(**kwargs)


__all__ = ["Embedder", "EncodeOutput", "NoImageTowerError", "NoTextTowerError", "DEFAULT_EMBEDDER",
           "get_embedder", "list_embedders", "register_embedder", "l2_normalise", "top_k_labels"]
