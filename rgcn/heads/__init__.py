"""Fusion heads: what sits between the text encoder and the CRF.

A head takes the encoder's word states and the post's multimodal inputs and returns word
states for the emission layer. Heads are chosen by name from a registry::

    head = build_head("text", in_dim=400, options={})

Importing this package registers the built-in heads.
"""
from .base import FusionHead, HeadOutput, build_head, head_class, list_heads, register_head
from . import bga, ita, maf, rgcn, text  # noqa: F401  (register "bga", "ita", "maf", "rgcn" and "text")

__all__ = ["FusionHead", "HeadOutput", "build_head", "head_class", "list_heads", "register_head"]
