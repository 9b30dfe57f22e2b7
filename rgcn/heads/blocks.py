"""The pieces fusion heads are built from, written once (as PyG's ``MessagePassing`` sits
under every convolution).

How a post's own image reaches a head
    :func:`images_dropped` says which posts of a batch must be treated as having no image
    (``--drop-images``, or image dropout while training); :class:`PostRegions` holds each
    post's image as a grid of region features from the index artifact (``regions.npy``),
    with the images of posts that are not in the index embedded on the fly by the index's
    own embedder; :func:`load_post_regions` builds it, and :func:`post_regions_context` is a
    head's whole ``setup`` for it (no index: every post without an image). To tag new posts
    a batch at a time, :class:`PhotoReader` keeps the index and its embedder between batches
    (:func:`regions_for_posts`, :func:`take_regions`), so each batch reads its own photos only.

Gates
    :func:`gate` is ``sigmoid(W_h H + W_v V)``; :func:`gated_fusion` is R-GCN's residual
    form ``H + g * V``.

Words attending to visual tokens
    :func:`attend` runs a multi-head attention of the words over a post's visual tokens,
    giving zeros to posts that have none; :class:`CrossAttention` wraps it in one
    transformer layer (residual + LayerNorm, feed-forward + residual + LayerNorm);
    :func:`masked_mean` pools word states over a post's words.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from index.artifact import IndexArtifact, embed_like_index, embedder_of, load_index, ocr_engine_of, rebuild_command
from retrieval.cache import all_samples
from retrieval.post_images import resolve_post_images

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- which images count
def images_dropped(samples: Sequence, training: bool, image_dropout: float = 0.0,
                   rng: random.Random | None = None) -> list[bool]:
    """Per sample, whether a head must treat it as having no image: its image was removed
    on purpose (``meta["image_dropped"]``, see :func:`data.corpus.drop_images`) or, while
    training only, image dropout picked it (probability ``image_dropout``)."""
    dropped = [bool((s.meta or {}).get("image_dropped")) for s in samples]
    if training and image_dropout > 0:
        draw = (rng or random).random
        dropped = [d or draw() < image_dropout for d in dropped]
    return dropped


def fit_heads(dim: int, heads: int) -> int:
    """``heads`` when it divides ``dim``, else their greatest common divisor (at least 1)."""
    return heads if dim % heads == 0 else (math.gcd(dim, heads) or 1)


# --------------------------------------------------------------------------- the post's own image
USED = ("index", "new")   # statuses of retrieval.post_images whose image a head may use


@dataclass
class PostRegions:
    """Each post's own image as ``R`` region features of width ``d``.

    Attributes:
        post_ids: the posts, in the order of ``rows`` and ``status``.
        rows: (n,) row of each post's image in the index's regions, ``len(index) + j`` for
            the ``j``-th image embedded on the fly, -1 when it has none.
        status: (n,) one of :data:`retrieval.post_images.STATUSES`; only ``index`` and
            ``new`` images are used.
        index_regions: (N, R, d) the index's ``regions.npy`` (float16, memory-mapped), or
            ``None`` when there is no index.
        new_regions: (m, R, d) the regions of the images that are not in the index.
        region_dim, n_regions: ``d`` and ``R``.
        summaries: split name -> the line :meth:`retrieval.post_images.PostImages.summary`
            gives for that split's posts.
    """

    post_ids: list[str]
    rows: np.ndarray
    status: list[str]
    index_regions: np.ndarray | None
    new_regions: np.ndarray
    region_dim: int
    n_regions: int
    summaries: dict | None = None

    def __post_init__(self):
        self.position = {p: i for i, p in enumerate(self.post_ids)}
        self.n_index = 0 if self.index_regions is None else int(self.index_regions.shape[0])

    def lookup(self, post_ids: Sequence[str], dropped: Sequence[bool] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The posts' region features and whether each post has an image.

        ``dropped`` (default none) marks posts to treat as having no image. Posts without
        one get zeros.

        Shapes: returns ``regions (B, R, d)`` float32 and ``present (B,)`` bool.
        """
        dropped = dropped or [False] * len(post_ids)
        out = np.zeros((len(post_ids), self.n_regions, self.region_dim), np.float32)
        present = np.zeros(len(post_ids), bool)
        for b, (p, drop) in enumerate(zip(post_ids, dropped)):
            i = self.position.get(p)
            if i is None:
                raise KeyError(f"post {p!r} was not given to the head's setup (it knows {len(self.post_ids)} "
                               "posts): pass its split to setup, as train.py and prediction do")
            r = int(self.rows[i])
            if drop or r < 0 or self.status[i] not in USED:
                continue
            out[b] = self.index_regions[r] if r < self.n_index else self.new_regions[r - self.n_index]
            present[b] = True
        return torch.from_numpy(out), torch.from_numpy(present)

    def image_rows(self, post_ids: Sequence[str]) -> list[int]:
        """Each post's image row (-1: none); two posts with the same row share one image."""
        return [int(self.rows[self.position[p]]) if p in self.position else -1 for p in post_ids]

    @classmethod
    def without_images(cls, post_ids: Sequence[str], region_dim: int, n_regions: int = 1) -> "PostRegions":
        """Every post without an image (no index at all: the modality-missing setting)."""
        n = len(post_ids)
        return cls(list(post_ids), np.full(n, -1, np.int64), ["none"] * n, None,
                   np.zeros((0, n_regions, region_dim), np.float16), region_dim, n_regions)


class PhotoReader:
    """An index artifact, loaded once on the CPU, and what reads the photos that are not in
    it as its own were read: its embedder and OCR engine, each made on first use and kept.
    A head keeps one between the batches of new posts it tags (``setup_for_posts``'s memo).

    Args:
        index_path: the index artifact folder.
        search: keep the FAISS index and the vectors (``False``: a head that only reads
            visual contexts drops them).
    """

    def __init__(self, index_path, search: bool = True):
        artifact = load_index(index_path, gpu=False)
        self.artifact = artifact if search else replace(artifact, faiss_index=None, embeddings=None, regions=None)
        self._embedder = self._ocr = None
        self._ocr_made = False

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = embedder_of(self.artifact)
        return self._embedder

    @property
    def ocr(self):
        """The index's OCR engine (``None`` when it was built without OCR)."""
        if not self._ocr_made:
            self._ocr, self._ocr_made = ocr_engine_of(self.artifact), True
        return self._ocr

    @classmethod
    def kept(cls, memo: dict, index_path, search: bool = True) -> "PhotoReader":
        """The reader of ``index_path`` kept in ``memo``, made on the first call."""
        key = ("photos", str(index_path), search)
        if key not in memo:
            memo[key] = cls(index_path, search)
        return memo[key]


def load_post_regions(index_path: "str | PhotoReader", splits: dict, progress: bool = True) -> PostRegions:
    """Every post's own image as region features from the index artifact at ``index_path``.

    Posts whose image is not in the index (new posts to tag) have it embedded now by the
    index's own embedder, regions included; the index is not changed. Unreadable images
    count as missing.

    Args:
        index_path: an index artifact folder built with region features (``regions.npy``),
            or a :class:`PhotoReader` of one (its artifact and embedder are used).
        splits: split name -> iterable of :class:`data.corpus.Sample`; post ids are unique.
        progress: show a progress bar while new images are embedded.

    Raises:
        ValueError: the artifact has no region features.
    """
    reader = index_path if isinstance(index_path, PhotoReader) else None
    artifact: IndexArtifact = reader.artifact if reader else load_index(index_path, gpu=False)
    index_path = artifact.path
    if artifact.regions is None:
        raise ValueError(f"the index at {index_path} has no region features (regions.npy), which this head reads: "
                         f"rebuild it with them, `{rebuild_command(index_path, artifact.manifest)} --regions`")
    _, n_regions, region_dim = (int(x) for x in artifact.regions.shape)
    samples = all_samples(splits)
    pi = resolve_post_images(samples, artifact)
    new_regions = np.zeros((len(pi.new_ids), n_regions, region_dim), np.float16)
    if pi.new_ids:
        log.debug("embedding %d post image(s) that are not in the index %s, with regions", len(pi.new_ids),
                  index_path)
        res = embed_like_index(artifact, list(zip(pi.new_ids, pi.new_paths)), progress=progress, with_regions=True,
                               embedder=reader.embedder if reader else None)
        got = dict(zip(res.ids, range(len(res.ids))))
        pi.mark_unreadable(set(pi.new_ids) - set(got))
        for j, i in enumerate(pi.new_ids):
            if i in got:
                new_regions[j] = res.regions[got[i]]
    summaries = {name: pi.summary([s.id for s in split]) for name, split in splits.items()}
    return PostRegions(pi.post_ids, pi.rows, list(pi.status), artifact.regions, new_regions, region_dim, n_regions,
                       summaries)


def context_regions(head: str, context: dict, checked: dict[str, str]) -> PostRegions:
    """The posts' region features a head's ``setup`` put in ``context["regions"]``, checked
    against the shape a saved model was trained on (``context["head_state"]``, what the
    head's ``extra_state`` saved). ``checked``: attribute of :class:`PostRegions` -> how the
    error message names it, e.g. ``{"region_dim": "of width "}``.

    Raises:
        ValueError: no region features, or a shape other than the saved one.
    """
    regions = context.get("regions")
    if regions is None:
        raise ValueError(f"{head} head: no region features were given (context['regions']); set "
                         f"head.options.index and let train.py call the head's setup")
    saved = context.get("head_state") or {}
    for key, name in checked.items():
        have = getattr(regions, key)
        if saved.get(key) is not None and int(saved[key]) != have:
            raise ValueError(f"{head} head: this model was trained on region features {name}{saved[key]}, but the "
                             f"index gives {have}: load it with the index it was trained with")
    return regions


def post_regions_context(index_path, region_dim: int, splits: dict, progress: bool = True,
                         n_regions: int = 1) -> dict:
    """A head's ``setup`` result for the posts' own images: ``{"regions": PostRegions}`` from
    the index at ``index_path`` (or a :class:`PhotoReader`) with its ``image_summary``, or,
    with no index (``None``), every post without an image, with ``n_regions`` regions of width
    ``region_dim``."""
    if not index_path:
        ids = [s.id for split in splits.values() for s in split]
        return {"regions": PostRegions.without_images(ids, region_dim, n_regions)}
    regions = load_post_regions(index_path, splits, progress)
    return {"regions": regions, "image_summary": regions.summaries}


def regions_for_posts(index_path, region_dim: int, posts: Sequence, memo: dict, n_regions: int = 1) -> dict:
    """:func:`post_regions_context` for a batch of new posts to tag (split ``predict``): only
    their own photos are read, the index and its embedder kept in ``memo`` between batches."""
    if not index_path:
        return post_regions_context(None, region_dim, {"predict": posts}, False, n_regions)
    return post_regions_context(PhotoReader.kept(memo, index_path), region_dim, {"predict": posts}, False)


def take_regions(head: nn.Module, context: dict) -> bool:
    """Give ``head`` (whose ``regions`` a :class:`PostRegions`) the regions of new posts in
    place, when they have the shape it was trained on; ``False`` when they do not."""
    regions = context.get("regions")
    if regions is None or (regions.region_dim, regions.n_regions) != (head.regions.region_dim, head.regions.n_regions):
        return False
    head.regions = regions
    return True


# --------------------------------------------------------------------------- gates
def gate(h: torch.Tensor, v: torch.Tensor, w_h: nn.Module, w_v: nn.Module) -> torch.Tensor:
    """``g = sigmoid(W_h H + W_v V)``; ``v`` is either per word or one vector per post.

    Shapes: ``h (B, W, D)``, ``v (B, W, D)`` or ``(B, D)`` -> ``(B, W, D)``.
    """
    gv = w_v(v)
    if gv.dim() == 2:
        gv = gv.unsqueeze(1)                                     # (B, 1, D)
    return torch.sigmoid(w_h(h) + gv)


def gated_fusion(h: torch.Tensor, v: torch.Tensor, gate_h: nn.Linear, gate_v: nn.Linear,
                 present: torch.Tensor) -> torch.Tensor:
    """``H + sigmoid(W_h H + W_v V) * V`` with ``V`` broadcast over the words (R-GCN's form).

    Shapes: ``h (B, W, D)``, ``v (B, D)``, ``present (B,)`` -> ``(B, W, D)``.
    """
    v = v * present.unsqueeze(-1).to(v.dtype)                   # (B, D)
    return h + gate(h, v, gate_h, gate_v) * v.unsqueeze(1)


# --------------------------------------------------------------------------- words attend to images
def attend(attn: nn.MultiheadAttention, queries: torch.Tensor, keys: torch.Tensor,
           key_mask: torch.Tensor) -> torch.Tensor:
    """Multi-head attention of ``queries`` over ``keys`` (keys are values too); a post with
    no key gets zeros.

    Shapes: ``queries (B, W, D)``, ``keys (B, K, D)``, ``key_mask (B, K)`` (True: a real
    key) -> ``(B, W, D)``.
    """
    has_any = key_mask.any(dim=1)                                # (B,)
    # a post with no key attends to one dummy key, and the result is zeroed
    first = torch.arange(key_mask.shape[1], device=key_mask.device) == 0
    key_mask = key_mask | (~has_any).unsqueeze(1) & first
    c, _ = attn(queries, keys, keys, key_padding_mask=~key_mask, need_weights=False)
    return c * has_any.view(-1, 1, 1).to(c.dtype)


class CrossAttention(nn.Module):
    """Words attend to visual tokens, in one transformer layer::

        V' = LN(T + MHA(T, V, V))
        C  = LN(V' + FFN(V'))

    Args:
        dim (int): width of the words and the visual tokens.
        heads (int, default 8): attention heads (reduced to a divisor of ``dim``).
        ffn_dim (int, default ``4 * dim``): hidden width of the feed-forward layer (GELU).
        dropout (float, default 0.1): on the attention weights and each sub-layer's output.

    Shapes:
        input: ``T (B, W, dim)``, ``V (B, K, dim)``, ``visual_mask (B, K)`` (True: a token);
        output: ``C (B, W, dim)``. A post with no visual token gets ``V' = LN(T)``.
    """

    def __init__(self, dim: int, heads: int = 8, ffn_dim: int | None = None, dropout: float = 0.1):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, fit_heads(dim, heads), dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim or 4 * dim), nn.GELU(), nn.Linear(ffn_dim or 4 * dim, dim))
        self.norm_attn = nn.LayerNorm(dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, T: torch.Tensor, V: torch.Tensor, visual_mask: torch.Tensor) -> torch.Tensor:
        V_ = self.norm_attn(T + self.dropout(attend(self.attn, T, V, visual_mask)))   # (B, W, dim)
        return self.norm_ffn(V_ + self.dropout(self.ffn(V_)))                          # (B, W, dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is true (zeros where none is).

    Shapes: ``x (B, W, D)``, ``mask (B, W)`` -> ``(B, D)``.
    """
    m = mask.unsqueeze(-1).to(x.dtype)                           # (B, W, 1)
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
