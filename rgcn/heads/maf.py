"""MAF fusion: cross-modal matching, alignment and a gate (Xu, Huang, Sha and Wang, "MAF: A
General Matching and Alignment Framework for Multimodal Named Entity Recognition", WSDM 2022).

Text: the encoder's word states ``T`` and a sentence vector ``s``. Image: the post's own
photo as a grid of region features (the index's ``regions.npy``: EfficientNet-Lite0's 7x7
feature-map cells, or a CLIP ViT's patch tokens), projected to the text width as ``V``.
The steps, numbered here in the order of the paper's method section:

    (1) s = tanh(W_s mean_w T),  v = mean_r regions                 sentence, image vectors
    (2) L_ca = lambda_c NCE(z_t -> z_v) + (1 - lambda_c) NCE(z_v -> z_t)
        z_t = MLP_t(s), z_v = MLP_v(v), NCE over cos / tau with in-batch negatives
                                                                    cross-modal alignment
    (3) V' = LN(T + MHA(T, V, V)),  C = LN(V' + FFN(V'))            cross-modal interaction
    (4) p = softmax(W_c [mean_w T ; mean_w C])[match],  L_cm = CE   cross-modal matching
    (5) M = p * C
    (6) g = sigmoid(W_t T + W_m M),  R = g * M,  H = [T ; R]        fusion, then emissions, CRF
    (7) loss = alpha L_ca + beta L_cm + (1 - alpha - beta) L_crf

For (4), each training batch swaps the images of ``k`` pairs of its posts (2k posts, about
``swap_share`` of those with an image) and labels them mismatched, the rest matched; the
words of a swapped post attend to the other post's photo. By default its tags are still
learnt from what it was shown (``M = p * C`` of the swapped image, as in the authors'
code), so the model may learn to let a low ``p`` shut a wrong photo out; with
``tags_on_swapped: false`` the swapped pairs train the matcher only and the tags see each
post's own image (where the text cannot tell a wrong photo, the default turns the swaps
into label noise). (7) reaches the trainer through :class:`rgcn.heads.HeadOutput`:
``aux_loss = alpha L_ca + beta L_cm`` and ``crf_weight = 1 - alpha - beta``; switching CA
(or CM) off drops its term and its weight (``crf_weight = 1`` with both off).

A post without an image (none, missing, unreadable, or dropped with ``--drop-images``) has
no visual state: ``M = 0``, so ``H = [T ; 0]``, and it takes no part in ``L_ca`` or
``L_cm`` (neither as a pair nor as a negative).

Where this differs from the authors' code, on purpose:

- The matcher pools over the words (mean of ``[T ; C]``) instead of a linear layer over
  128 flattened positions, which locked the text to 128 tokens.
- ``s`` pools the word states (mean, then a tanh layer, as BERT's pooler is a tanh layer):
  the head sees words, not the encoder's ``[CLS]``, and MiniLM was trained to be read
  by mean pooling.
- Images are swapped before the interaction (the image side of a pair), not the
  cross-attended states after it, so a swapped post looks like a post with a wrong photo
  at test time. The authors swap ``C``, which also carries the other post's words: their
  matcher can spot a swap by comparing two texts, which no real post at test time shows.
  Pairs are drawn at random among the posts with an image (the authors swap
  the last quarter of a shuffled batch), and two posts that share one image are never
  paired.
- Evaluation images are never augmented, and an image that cannot be read counts as
  missing (no fixed substitute image). The image encoder stays frozen (the index's
  features), which is also what the authors' flag to fine-tune their CNN amounts to, as
  it does nothing.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import FusionHead, HeadOutput, parse_options, register_head
from .blocks import (CrossAttention, PostRegions, context_regions, gate, images_dropped, masked_mean,
                     post_regions_context, regions_for_posts, take_regions)


def alignment_loss(z_t: torch.Tensor, z_v: torch.Tensor, temperature: float = 0.179,
                   lambda_c: float = 0.7) -> torch.Tensor:
    """The cross-modal alignment loss (2): InfoNCE both ways over the in-batch pairs.

    ``L = lambda_c * L_t2v + (1 - lambda_c) * L_v2t`` with
    ``L_t2v = mean_i -log( exp(cos(t_i, v_i) / tau) / sum_j exp(cos(t_i, v_j) / tau) )``
    (``L_v2t`` the same with the roles swapped).

    Shapes: ``z_t (n, d)``, ``z_v (n, d)`` (pair ``i`` is row ``i`` of each) -> scalar.
    """
    sim = F.normalize(z_t, dim=-1) @ F.normalize(z_v, dim=-1).T / temperature   # (n, n)
    target = torch.arange(sim.shape[0], device=sim.device)
    return lambda_c * F.cross_entropy(sim, target) + (1 - lambda_c) * F.cross_entropy(sim.T, target)


def mismatched_pairs(present: Sequence[bool], share: float, rng: random.Random | None = None,
                     image_ids: Sequence | None = None) -> tuple[list[int], list[int]]:
    """The matching task's negatives for one batch.

    Of the posts with an image, ``2k`` are drawn at random (``k = round(share * n / 2)``,
    ``n`` posts with an image) and the first ``k`` swap images with the second ``k``; a
    pair whose posts share an image (equal ``image_ids``) is left matched.

    Returns:
        ``(image_of, match)``: post ``i`` is shown the image of post ``image_of[i]``;
        ``match[i]`` is 1 when that is its own image, 0 when swapped.
    """
    n = len(present)
    cand = [i for i, p in enumerate(present) if p]
    k = int(share * len(cand) / 2 + 0.5)
    (rng or random).shuffle(cand)
    image_of, match = list(range(n)), [1] * n
    for a, b in zip(cand[:k], cand[k:2 * k]):
        if image_ids is not None and image_ids[a] == image_ids[b]:
            continue
        image_of[a], image_of[b] = b, a
        match[a] = match[b] = 0
    return image_of, match


@dataclass
class MAFOptions:
    """``head.options`` of the MAF head (defaults: the paper's and the authors' code's).

    Args:
        index: the index artifact folder whose ``regions.npy`` gives each post's image
            (``None``: no images at all, the modality-missing setting; ``region_dim`` then
            sets the width of the visual projection).
        region_dim: see ``index`` (1280, EfficientNet-Lite0's).
        alignment: train with the cross-modal alignment loss (CA).
        matching: the cross-modal matching module (CM): ``p`` scales ``C`` and its loss is
            trained; off: ``M = C``.
        alpha, beta: weights of ``L_ca`` and ``L_cm``; the CRF's is ``1 - alpha - beta``
            (the paper: 0.62 on the CRF, 0.38 shared by CA and CM).
        temperature, lambda_c: of the alignment loss (0.179, 0.7).
        swap_share: share of a batch's posts with an image whose images are swapped for
            the matching task (2k of them; the authors: 16 of a batch of 64).
        tags_on_swapped: a swapped post's tags are trained with the image it was shown, as
            in the authors' code; ``false``: swapped pairs train the matcher only, and the
            tags are trained with each post's own image.
        heads, ffn_dim, dropout: of the cross-attention layer (8; ``4 * width``; 0.1).
        image_dropout: while training only, the share of posts treated as having no image
            (not in the paper; 0).
    """

    index: str | None = None
    region_dim: int = 1280
    alignment: bool = True
    matching: bool = True
    alpha: float = 0.19
    beta: float = 0.19
    temperature: float = 0.179
    lambda_c: float = 0.7
    swap_share: float = 0.25
    tags_on_swapped: bool = True
    heads: int = 8
    ffn_dim: int | None = None
    dropout: float = 0.1
    image_dropout: float = 0.0

    def __post_init__(self):
        def bad(what, expected):
            raise ValueError(f"maf head: options.{what} must be {expected}, found {getattr(self, what)!r}")

        for name in ("alpha", "beta", "lambda_c", "swap_share"):
            if not isinstance(getattr(self, name), (int, float)) or not 0 <= getattr(self, name) <= 1:
                bad(name, "a number in [0, 1]")
        if self.alpha * self.alignment + self.beta * self.matching >= 1:
            raise ValueError(f"maf head: options.alpha + options.beta must be below 1 (the CRF's weight is "
                             f"1 - alpha - beta), found alpha={self.alpha}, beta={self.beta}")
        if not isinstance(self.temperature, (int, float)) or self.temperature <= 0:
            bad("temperature", "a positive number")
        for name in ("dropout", "image_dropout"):
            if not isinstance(getattr(self, name), (int, float)) or not 0 <= getattr(self, name) < 1:
                bad(name, "a number in [0, 1)")
        for name in ("heads", "region_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, "a positive integer")
        if self.ffn_dim is not None and (not isinstance(self.ffn_dim, int) or self.ffn_dim < 1):
            bad("ffn_dim", "a positive integer or null")
        for name in ("alignment", "matching", "tags_on_swapped"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")

    @classmethod
    def parse(cls, options: dict | None) -> "MAFOptions":
        return parse_options(cls, options, "maf")


@register_head("maf")
class MAFHead(FusionHead):
    """Cross-modal alignment, interaction, matching and gate (see the module doc).

    Options: :class:`MAFOptions`. The posts' region features reach the head as
    ``context["regions"]`` (:class:`rgcn.heads.blocks.PostRegions`, made by :meth:`setup`).

    Shapes:
        forward input: ``states (B, W, D)``, ``word_mask (B, W)``, ``inputs`` from
        :meth:`prepare`: ``regions (B, R, d)``, ``present (B,)`` and, in training with
        CM, ``image_of (B,)``, ``match (B,)``;
        output: :class:`HeadOutput` with ``states (B, W, 2D)``.
    """

    reads_index = True

    def __init__(self, in_dim: int, options: dict | None = None, context: dict | None = None):
        super().__init__(in_dim, options, context)
        o = self.opts = MAFOptions.parse(self.options)
        self.regions: PostRegions = context_regions("maf", context or {}, {"region_dim": "of width "})
        d_r = self.regions.region_dim
        D = in_dim
        self.out_dim = 2 * D
        self.W_v = nn.Linear(d_r, D)                                  # regions -> text width
        self.interaction = CrossAttention(D, o.heads, o.ffn_dim, o.dropout)
        if o.matching:
            self.W_c = nn.Linear(2 * D, 2)                            # (4): [mismatched, matched]
        if o.alignment:
            self.W_s = nn.Linear(D, D)                                # (1): the sentence vector
            self.mlp_t = nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D))
            self.mlp_v = nn.Sequential(nn.Linear(d_r, D), nn.ReLU(), nn.Linear(D, D))
        self.W_t = nn.Linear(D, D)                                    # (6): the gate
        self.W_m = nn.Linear(D, D, bias=False)

    @classmethod
    def setup(cls, options: dict, splits: dict, run_dir: str | None, progress: bool = True,
              training: bool = True) -> dict:
        """Each post's own image as region features, from the index named by ``options.index``
        (images of posts that are not in it are embedded now)."""
        o = MAFOptions.parse(options)
        return post_regions_context(o.index, o.region_dim, splits, progress)

    @classmethod
    def setup_for_posts(cls, options: dict, train: Sequence, posts: Sequence, run_dir: str | None,
                        memo: dict) -> dict:
        """The photos of a batch of new posts only; the index and its embedder are kept in ``memo``."""
        o = MAFOptions.parse(options)
        return regions_for_posts(o.index, o.region_dim, posts, memo)

    def use_context(self, context: dict) -> bool:
        return take_regions(self, context)

    def extra_state(self) -> dict:
        return {"region_dim": self.regions.region_dim}

    def prepare(self, samples: Sequence, training: bool) -> dict:
        ids = [s.id for s in samples]
        regions, present = self.regions.lookup(ids, images_dropped(samples, training, self.opts.image_dropout))
        out = {"regions": regions, "present": present}
        if training and self.opts.matching:
            image_of, match = mismatched_pairs(present.tolist(), self.opts.swap_share, random,
                                               self.regions.image_rows(ids))
            out["image_of"], out["match"] = torch.tensor(image_of), torch.tensor(match)
        return out

    def matcher(self, T: torch.Tensor, C: torch.Tensor, word_mask: torch.Tensor) -> torch.Tensor:
        """Logits of [mismatched, matched] from the words and their cross-attended states (4).

        Shapes: ``T (B, W, D)``, ``C (B, W, D)``, ``word_mask (B, W)`` -> ``(B, 2)``.
        """
        return self.W_c(torch.cat([masked_mean(T, word_mask), masked_mean(C, word_mask)], dim=-1))

    def match_probability(self, states: torch.Tensor, word_mask: torch.Tensor, inputs: dict) -> torch.Tensor:
        """p(match) (4) of each post and the image in ``inputs["regions"]`` (a post without
        an image gets the probability of its words alone, which means nothing: filter by
        ``inputs["present"]``).

        Shapes: ``states (B, W, D)``, ``word_mask (B, W)`` -> ``(B,)``.
        """
        if not self.opts.matching:
            raise ValueError("maf head: this model was trained without the matching module (matching: false)")
        V = self.W_v(inputs["regions"].to(states.dtype))              # (B, R, D)
        mask = inputs["present"].bool().unsqueeze(1).expand(-1, V.shape[1])
        C = self.interaction(states, V, mask)                         # (B, W, D)
        return self.matcher(states, C, word_mask).float().softmax(dim=-1)[:, 1]

    @property
    def crf_weight(self) -> float:
        """``1 - alpha - beta`` (7), leaving out the weight of a module that is off."""
        o = self.opts
        return 1.0 - o.alpha * o.alignment - o.beta * o.matching

    def forward(self, states: torch.Tensor, word_mask: torch.Tensor, inputs: dict) -> HeadOutput:
        o = self.opts
        T = states                                                    # (B, W, D)
        regions = inputs["regions"].to(T.dtype)                       # (B, R, d)
        present = inputs["present"].bool()                            # (B,)
        V = self.W_v(regions)                                         # (B, R, D)
        visual_mask = present.unsqueeze(1).expand(-1, V.shape[1])    # (B, R)
        C = self.interaction(T, V, visual_mask)                       # (B, W, D)            (3)
        shown = C                                                     # with the image each post is shown
        image_of = inputs.get("image_of")
        if image_of is not None:                                      # the matching task's swapped pairs
            swapped = (image_of != torch.arange(len(image_of), device=image_of.device)).nonzero().squeeze(1)
            if len(swapped):
                C_swapped = self.interaction(T[swapped], V[image_of[swapped]], visual_mask[swapped])  # (2k, W, D)
                shown = C.index_copy(0, swapped, C_swapped)
            if o.tags_on_swapped:
                C = shown
        losses = []
        if o.matching:
            logits = self.matcher(T, shown, word_mask)                # (B, 2)
            if C is not shown:
                p = self.matcher(T, C, word_mask).float().softmax(dim=-1)[:, 1]  # (B,)     (4)
            else:
                p = logits.float().softmax(dim=-1)[:, 1]              # (B,)                 (4)
            M = p.to(C.dtype).view(-1, 1, 1) * C                      # (B, W, D)            (5)
            if self.training and present.any():
                match = inputs.get("match", torch.ones_like(present, dtype=torch.long))
                losses.append(o.beta * F.cross_entropy(logits[present].float(), match[present].long()))
        else:
            M = C
        M = M * present.view(-1, 1, 1).to(M.dtype)                   # no image: no visual state
        g = gate(T, M, self.W_t, self.W_m)                            # (B, W, D)            (6)
        H = torch.cat([T, g * M], dim=-1)                             # (B, W, 2D)           (6)
        if o.alignment and self.training and present.any():
            s = torch.tanh(self.W_s(masked_mean(T, word_mask)))       # (B, D)               (1)
            v = regions.mean(dim=1)                                   # (B, d): own images   (1)
            z_t, z_v = self.mlp_t(s[present]), self.mlp_v(v[present])  # (n, D)
            losses.append(o.alpha * alignment_loss(z_t.float(), z_v.float(), o.temperature, o.lambda_c))  # (2)
        return HeadOutput(H, sum(losses) if losses else None, self.crf_weight)                            # (7)
