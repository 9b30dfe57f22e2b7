"""Embedders behind one interface and a name registry.

>>> from index.embedders import get_embedder, list_embedders
>>> list_embedders()
['clip', 'efficientnet_lite0', 'sentence', 'timm']
"""
from __future__ import annotations


from ..registry import Registry
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


EMBEDDERS: Registry[Embedder] = Registry("embedder", {
    "efficientnet_lite0": _efficientnet,
    "clip": _clip,
    "timm": _timm,
    "sentence": _sentence,
}, default=DEFAULT_EMBEDDER)
list_embedders = EMBEDDERS.names
register_embedder = EMBEDDERS.register
get_embedder = EMBEDDERS.build        # get_embedder(name=DEFAULT_EMBEDDER, **constructor_kwargs)


__all__ = ["Embedder", "EncodeOutput", "NoImageTowerError", "NoTextTowerError", "DEFAULT_EMBEDDER",
           "get_embedder", "list_embedders", "register_embedder", "l2_normalise", "top_k_labels"]
