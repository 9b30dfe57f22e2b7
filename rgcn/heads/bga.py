"""BGA: bidirectional generative alignment (Chen et al., "Learning Implicit Entity-object
Relations by Bidirectional Generative Alignment for Multimodal NER", ACM MM 2023, BGA-MNER).

Two branches: the text tokens ``T`` (the encoder's word states, ``(B, W, D)``) and the
visual tokens ``V`` (the post's own photo as the index's region features, e.g.
EfficientNet-Lite0's 7x7 = 49 cells of width 1280, projected to ``D``). Each of the
``layers`` BGA layers ``l`` samples the tokens worth keeping in both branches (SCS),
generates each modality from the kept tokens of the other (MCG), and updates each branch
with a transformer layer whose keys and values hold its own tokens and the other side's
generated ones. At inference the text branch alone runs, on the visual tokens it generates
from the words: no photo is needed. The steps, numbered as the method section orders them:

  Stage-refined context sampler (SCS), per layer and branch, ``X`` being ``T^l`` or ``V^l``:
    (1) z = MLP_a(X^l)                                              local features
    (2) g = sum_i MLP_b(X^l)_i m^(l-1)_i / sum_i m^(l-1)_i          global content of the kept tokens
    (3) p = softmax(MLP_c([z ; g])),  m^l = GumbelSoftmax_hard(log p)[keep]
        (straight-through; the argmax at evaluation; m^0 = 1, padding 0, and a row keeps
        at least its most probable token)
  Multi-level cross-modal generator (MCG), one per direction, shared by the layers:
    (4) V_gen^l = Dec_t2v(Q_v, T^l * m_t^l)       cross-attention over the kept words only
    (5) T_gen^l = Dec_i2t(Q_t, V^l * m_v^l)       cross-attention over the kept regions only
    (6) L_rec^l = KL(s(V^l) || s(V_gen^l))[kept regions] + KL(s(T^l) || s(T_gen^l))[kept words]
        s: softmax over the feature dimension of each token; the real side is the target
        (detached), averaged over the target side's kept tokens
    (7) L_cyc^l = KL(s(T^l) || s(Dec_i2t(Dec_t2v(T^l)))) + KL(s(V^l) || s(Dec_t2v(Dec_i2t(V^l))))
        with every token kept
  Feature extractor (hybrid keys and values):
    (8) T^(l+1) = Layer_t(T^l, [T^l ; V_gen^l]),   V^(l+1) = Layer_v(V^l, [V^l ; T_gen^l])
        Layer(X, K) = LN(Y + FFN(Y)), Y = LN(X + MHA(X, K, K))
    (9) H = Layer_f(T^L, T^L)                      the paper's final layer (``final_layer``)
   (10) loss = L_crf + alpha * mean_l (L_rec^l + L_cyc^l)

``Q_v`` are ``R`` learnable visual queries, one per region (49); ``Q_t`` are learnable text
queries, one per word position (``max_words``, 128; words past it share the last query):
being indexed by position, they already carry the word positions, so none are added.
The image branch (``V^l``, (5), (8) right) runs in training, for ``T_gen`` and the losses,
and at evaluation in the ``real`` view only.

How this maps onto our encoder. The paper's extractor replaces BERT's top layers and starts
from their weights. Here the encoder (a 6-layer MiniLM) runs whole before the head, and its
word states reach the head with the casing embedding appended (width ``hidden +
casing_dim``, 400 for MiniLM), so the encoder's 384-wide layers do not fit the head's width:
the head stacks ``layers`` fresh transformer layers (default 2) on top of the encoder's
output, randomly initialised. With ``casing_dim: 0`` the widths would agree, but copying
layers the encoder has already applied would run them twice on their own output, which is
not the paper's model either; so the head stays one self-contained module, and the trainer
knows nothing of it.

Views (``view``, an inference option: ``python -m rgcn predict/evaluate --view real``):

- ``generated`` (default): the text branch reads the visual tokens it generated, (4). The
  head never looks a photo up (:meth:`BGAHead.prepare` returns nothing): the photo cannot
  change a tag, and a post's image does not need to exist.
- ``real``: the text branch reads the photo's own visual tokens ``V^l`` in place of
  ``V_gen^l`` (keys and values ``[T^l ; V^l]``); a post without an image keeps the
  generated ones.

Training always feeds the text branch the generated tokens, as the paper does
(``real_share: 0``): what the photo adds reaches the tags only through what the generator
learnt to infer from the words, so the ``real`` view swaps in tokens the text layers never
saw in training. ``real_share`` (not in the paper) lets a share of the training posts with
an image read their real tokens instead, which the ``real`` view needs to have learnt
anything from the photo itself (the image-decided test uses it).

A post without an image (none, missing, unreadable, dropped with ``--drop-images`` or by
``image_dropout``) takes no part in (6) and (7) at all; a batch with none gives no
generation loss (``aux_loss`` is ``None``).

Ablations (the paper's Table 3): ``scs: false`` keeps every token (``m = 1`` on the words
and regions, no sampler); ``cycle: false`` drops (7); ``mcg: false`` removes the generators:
the text branch has no visual tokens at all, each layer is a plain transformer layer over
the words, (8) with keys ``T^l``, there is no image branch, no SCS and no generation loss,
and no photo is ever looked up (``view: real`` is refused).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import FusionHead, HeadOutput, parse_options, register_head
from .blocks import (CrossAttention, PostRegions, context_regions, fit_heads, images_dropped, masked_mean,
                     post_regions_context, regions_for_posts, take_regions)

GENERATED, REAL = "generated", "real"
VIEWS = (GENERATED, REAL)
GRID = 49   # visual queries with no index at all: EfficientNet-Lite0's 7x7 cells


# --------------------------------------------------------------------------- the maths
def keep_mask(logits: torch.Tensor, valid: torch.Tensor, training: bool, tau: float = 1.0) -> torch.Tensor:
    """The SCS mask (3) from per-token ``[drop, keep]`` logits.

    In training a hard Gumbel-softmax sample (exactly 0 or 1, with the gradient of the soft
    sample: straight-through); at evaluation the argmax. Positions that are not ``valid``
    (padding) are 0, and a row with a valid token that would keep nothing keeps its most
    probable valid token.

    Shapes: ``logits (B, N, 2)``, ``valid (B, N)`` bool -> ``(B, N)`` float of 0s and 1s.
    """
    if training:
        m = F.gumbel_softmax(logits.float(), tau=tau, hard=True)[..., 1]           # (B, N)
    else:
        m = (logits[..., 1] > logits[..., 0]).float()                            # (B, N)
    m = m * valid.float()
    empty = valid.any(dim=1) & ~(m > 0).any(dim=1)                                # (B,)
    if empty.any():
        p_keep = (logits[..., 1] - logits[..., 0]).float().masked_fill(~valid, float("-inf"))
        best = F.one_hot(p_keep.argmax(dim=1), m.shape[1]).float()                # (B, N)
        m = m + empty.unsqueeze(1).float() * best
    return m


def generation_kl(real: torch.Tensor, generated: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(real) || softmax(generated))`` per token, over the feature dimension,
    averaged over the tokens with their ``weight`` (the kept target tokens); ``real`` is the
    target and is detached. Zero when ``generated == real``.

    Shapes: ``real, generated (B, N, D)``, ``weight (B, N)`` -> scalar.
    """
    log_p = F.log_softmax(real.detach().float(), dim=-1)                          # (B, N, D)
    log_q = F.log_softmax(generated.float(), dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(dim=-1)                              # (B, N)
    w = weight.float()
    return (kl * w).sum() / w.sum().clamp_min(1)


def hybrid(layer: CrossAttention, X: torch.Tensor, x_mask: torch.Tensor, Y: torch.Tensor | None = None,
           y_mask: torch.Tensor | None = None) -> torch.Tensor:
    """One transformer layer of ``X`` whose keys and values are ``[X ; Y]`` (8) (``X`` alone
    when ``Y`` is ``None``).

    Shapes: ``X (B, N, D)``, ``x_mask (B, N)``, ``Y (B, K, D)``, ``y_mask (B, K)`` -> ``(B, N, D)``.
    """
    if Y is None:
        return layer(X, X, x_mask)
    return layer(X, torch.cat([X, Y], dim=1), torch.cat([x_mask, y_mask], dim=1))   # keys (B, N + K, D)


# --------------------------------------------------------------------------- modules
class ContextSampler(nn.Module):
    """The stage-refined context sampler of one branch in one layer, (1)-(3).

    Shapes: ``X (B, N, D)``, ``m_prev (B, N)`` (the previous layer's mask, 0/1),
    ``valid (B, N)`` bool -> ``m (B, N)`` of 0s and 1s.
    """

    def __init__(self, dim: int):
        super().__init__()
        half = max(1, dim // 2)
        self.mlp_a = nn.Sequential(nn.Linear(dim, half), nn.GELU())
        self.mlp_b = nn.Sequential(nn.Linear(dim, half), nn.GELU())
        self.mlp_c = nn.Sequential(nn.Linear(2 * half, max(1, half // 2)), nn.GELU(), nn.Linear(max(1, half // 2), 2))

    def logits(self, X: torch.Tensor, m_prev: torch.Tensor) -> torch.Tensor:
        z = self.mlp_a(X)                                                         # (B, N, D/2)   (1)
        g = masked_mean(self.mlp_b(X), m_prev)                                    # (B, D/2)      (2)
        return self.mlp_c(torch.cat([z, g.unsqueeze(1).expand_as(z)], dim=-1))    # (B, N, 2)     (3)

    def forward(self, X: torch.Tensor, m_prev: torch.Tensor, valid: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        return keep_mask(self.logits(X, m_prev), valid, self.training, tau)      # (B, N)        (3)


class Generator(nn.Module):
    """One direction of the multi-level cross-modal generator, (4) or (5): learnable queries
    of the target modality decode the kept tokens of the source (one transformer decoder
    layer; a dropped token is a padded key, so it cannot change the output).

    Args:
        dim (int): token width.
        n_queries (int): learnable queries (target positions; position ``i >= n_queries``
            uses the last).
        heads, ffn_dim, dropout: of the decoder layer.

    Shapes: ``source (B, N, D)``, ``keep (B, N)`` (0/1 or bool; each row keeps a token),
    ``n_out`` target positions, ``target_mask (B, n_out)`` bool or ``None`` -> ``(B, n_out, D)``.
    """

    def __init__(self, dim: int, n_queries: int, heads: int = 8, ffn_dim: int | None = None, dropout: float = 0.1):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, dim) * 0.02)
        self.decoder = nn.TransformerDecoderLayer(dim, fit_heads(dim, heads), ffn_dim or 4 * dim, dropout,
                                                  activation="gelu", batch_first=True)

    def forward(self, source: torch.Tensor, keep: torch.Tensor, n_out: int,
                target_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder layer (post-norm, as :class:`torch.nn.TransformerDecoderLayer` computes
        it), its self-attention's input projection done once for the whole batch: every row's
        queries are the same learnt vectors."""
        position = torch.arange(n_out, device=source.device).clamp(max=self.queries.shape[0] - 1)
        q = self.queries[position].to(source.dtype)                                 # (n_out, D)
        memory = source * keep.unsqueeze(-1).to(source.dtype)     # (B, N, D): the mask's gradient (straight-through)
        dec, B = self.decoder, source.shape[0]
        x = q.unsqueeze(0).expand(B, -1, -1)                                        # (B, n_out, D)
        x = dec.norm1(x + dec.dropout1(self.query_attention(q, B, target_mask)))
        x = dec.norm2(x + dec._mha_block(x, memory, None, ~keep.bool()))
        return dec.norm3(x + dec._ff_block(x))                                      # (B, n_out, D)

    def query_attention(self, q: torch.Tensor, B: int, target_mask: torch.Tensor | None) -> torch.Tensor:
        """The decoder's self-attention over the queries ``q (n_out, D)``, the same in each of
        the ``B`` rows but for their ``target_mask (B, n_out)`` (True: attend) and the dropout on
        their attention weights: keys, values and queries are projected once.
        -> ``(B, n_out, D)``."""
        mha = self.decoder.self_attn
        n, D, H = q.shape[0], q.shape[1], mha.num_heads
        qkv = F.linear(q, mha.in_proj_weight, mha.in_proj_bias)                     # (n_out, 3D), once
        qh, kh, vh = (t.expand(B, -1, -1, -1) for t in qkv.view(n, 3, H, D // H).permute(1, 2, 0, 3))  # (B, H, n, d)
        mask = None if target_mask is None else target_mask.bool().view(B, 1, 1, n)
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask,
                                             dropout_p=mha.dropout if self.training else 0.0)   # (B, H, n, d)
        return mha.out_proj(out.transpose(1, 2).reshape(B, n, D))                   # (B, n_out, D)


@dataclass
class BGAOptions:
    """``head.options`` of the BGA head (defaults: the paper's where it gives them).

    Args:
        index: the index artifact folder whose ``regions.npy`` gives each post's photo
            (``None``: no images at all, the modality-missing setting; ``region_dim`` then
            sets the width of the visual projection, with 49 visual queries).
        region_dim: see ``index`` (1280, EfficientNet-Lite0's).
        view: ``generated`` (tag with the generated visual tokens, never reading a photo)
            or ``real`` (the photo's own tokens); an inference option.
        layers: BGA layers stacked on the encoder's output (2).
        heads, ffn_dim, dropout: of every transformer layer (8; ``4 * width``; 0.1).
        alpha: weight of the generation losses, (10) (0.001).
        scs: sample the tokens (SCS); off: every token kept.
        mcg: the generators (MCG); off: no visual tokens, no image branch, no generation loss.
        cycle: the cycle-consistency loss (7).
        gumbel_tau: temperature of the Gumbel-softmax (1.0).
        max_words: learnable text queries of the image-to-text generator (128).
        final_layer: one more transformer layer over the words after the BGA layers (9).
        image_dropout: while training only, the share of posts treated as having no image (0).
        real_share: while training only, the share of posts with an image whose text branch
            reads the real visual tokens instead of the generated ones (not in the paper; 0).
    """

    index: str | None = None
    region_dim: int = 1280
    view: str = GENERATED
    layers: int = 2
    heads: int = 8
    ffn_dim: int | None = None
    dropout: float = 0.1
    alpha: float = 0.001
    scs: bool = True
    mcg: bool = True
    cycle: bool = True
    gumbel_tau: float = 1.0
    max_words: int = 128
    final_layer: bool = True
    image_dropout: float = 0.0
    real_share: float = 0.0

    def __post_init__(self):
        def bad(what, expected):
            raise ValueError(f"bga head: options.{what} must be {expected}, found {getattr(self, what)!r}")

        if self.view not in VIEWS:
            bad("view", f"one of {', '.join(VIEWS)}")
        if self.view == REAL and self.mcg is False:
            raise ValueError("bga head: options.view=real needs options.mcg=true (without the generators the "
                             "head has no visual tokens to replace)")
        for name in ("region_dim", "layers", "heads", "max_words"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(name, "a positive integer")
        if self.ffn_dim is not None and (isinstance(self.ffn_dim, bool) or not isinstance(self.ffn_dim, int)
                                         or self.ffn_dim < 1):
            bad("ffn_dim", "a positive integer or null")
        for name in ("dropout", "image_dropout"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                bad(name, "a number in [0, 1)")
        if isinstance(self.real_share, bool) or not isinstance(self.real_share, (int, float)) \
                or not 0 <= self.real_share <= 1:
            bad("real_share", "a number in [0, 1]")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha < 0:
            bad("alpha", "a number of at least 0")
        if isinstance(self.gumbel_tau, bool) or not isinstance(self.gumbel_tau, (int, float)) or self.gumbel_tau <= 0:
            bad("gumbel_tau", "a positive number")
        for name in ("scs", "mcg", "cycle", "final_layer"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")

    @classmethod
    def parse(cls, options: dict | None) -> "BGAOptions":
        return parse_options(cls, options, "bga")


class BGALayer(nn.Module):
    """The modules of one BGA layer: a sampler per branch (with SCS) and a transformer layer
    per branch (the image's with MCG only)."""

    def __init__(self, dim: int, o: BGAOptions):
        super().__init__()
        self.text = CrossAttention(dim, o.heads, o.ffn_dim, o.dropout)
        if o.mcg:
            self.image = CrossAttention(dim, o.heads, o.ffn_dim, o.dropout)
            if o.scs:
                self.scs_t, self.scs_v = ContextSampler(dim), ContextSampler(dim)


@register_head("bga")
class BGAHead(FusionHead):
    """Bidirectional generative alignment (see the module doc).

    Options: :class:`BGAOptions`. The posts' region features reach the head as
    ``context["regions"]`` (:class:`rgcn.heads.blocks.PostRegions`, made by :meth:`setup`).

    Shapes:
        forward input: ``states (B, W, D)``, ``word_mask (B, W)``, ``inputs`` from
        :meth:`prepare`: ``regions (B, R, d)``, ``present (B,)``, ``use_real (B,)`` when the
        image branch runs, nothing otherwise;
        output: :class:`HeadOutput` with ``states (B, W, D)`` and, in training with MCG,
        ``aux_loss = alpha * mean_l (L_rec + L_cyc)`` (``None`` without a post with an image).
    """

    reads_index = True
    inference_options = ("view",)
    tagging_views = VIEWS

    def __init__(self, in_dim: int, options: dict | None = None, context: dict | None = None):
        super().__init__(in_dim, options, context)
        o = self.opts = BGAOptions.parse(self.options)
        self.regions: PostRegions = context_regions("bga", context or {}, {"region_dim": "with region_dim=",
                                                                          "n_regions": "with n_regions="})
        d_r, R = self.regions.region_dim, self.regions.n_regions
        D = in_dim
        self.layers = nn.ModuleList(BGALayer(D, o) for _ in range(o.layers))
        if o.mcg:
            self.W_v = nn.Linear(d_r, D)                                        # regions -> text width
            self.t2v = Generator(D, R, o.heads, o.ffn_dim, o.dropout)           # (4)
            self.i2t = Generator(D, o.max_words, o.heads, o.ffn_dim, o.dropout)  # (5)
        self.final = CrossAttention(D, o.heads, o.ffn_dim, o.dropout) if o.final_layer else None   # (9)

    @classmethod
    def setup(cls, options: dict, splits: dict, run_dir: str | None, progress: bool = True,
              training: bool = True) -> dict:
        """Each post's own image as region features, from the index named by ``options.index``
        (images of posts that are not in it are embedded now). To tag in the ``generated``
        view (or without MCG) no image is read at all, not even a new post's: every post is
        given as having none, with the index's region shape from its manifest."""
        o = BGAOptions.parse(options)
        manifest = Path(o.index or "") / "manifest.json"
        shape = (json.loads(manifest.read_text()).get("regions") or {}).get("shape") if manifest.is_file() else None
        if training or (o.mcg and o.view == REAL) or not o.index or not shape:
            return post_regions_context(o.index, o.region_dim, splits, progress, GRID)
        _, n_regions, region_dim = shape
        ids = [s.id for split in splits.values() for s in split]
        return {"regions": PostRegions.without_images(ids, region_dim, n_regions),
                "image_summary": {name: f"no image read: the {GENERATED} view tags from the words alone"
                                  for name in splits}}

    @classmethod
    def setup_for_posts(cls, options: dict, train: Sequence, posts: Sequence, run_dir: str | None,
                        memo: dict) -> dict:
        """The photos of a batch of new posts only (the ``real`` view; the index and its
        embedder kept in ``memo``); in the ``generated`` view, none, as :meth:`setup`."""
        o = BGAOptions.parse(options)
        if o.mcg and o.view == REAL and o.index:
            return regions_for_posts(o.index, o.region_dim, posts, memo, GRID)
        return cls.setup(options, {"predict": posts}, run_dir, progress=False, training=False)

    def use_context(self, context: dict) -> bool:
        return take_regions(self, context)

    def extra_state(self) -> dict:
        return {"region_dim": self.regions.region_dim, "n_regions": self.regions.n_regions}

    def image_branch(self, training: bool) -> bool:
        """Whether a batch's photos are read: in training, and for the ``real`` view."""
        return self.opts.mcg and (training or self.opts.view == REAL)

    def prepare(self, samples: Sequence, training: bool) -> dict:
        if not self.image_branch(training):
            return {}                                     # the generated view: no photo is looked up
        regions, present = self.regions.lookup([s.id for s in samples],
                                               images_dropped(samples, training, self.opts.image_dropout))
        if training:
            use_real = present & (torch.rand(len(samples)) < self.opts.real_share) if self.opts.real_share \
                else torch.zeros_like(present)
        else:
            use_real = present                            # the real view
        return {"regions": regions, "present": present, "use_real": use_real}

    def forward(self, states: torch.Tensor, word_mask: torch.Tensor, inputs: dict) -> HeadOutput:
        o = self.opts
        T = states                                                                # (B, W, D)
        B, W, _ = T.shape
        word_mask = word_mask.bool()
        if not o.mcg:
            for layer in self.layers:
                T = hybrid(layer.text, T, word_mask)                              # (B, W, D)        (8)
            return HeadOutput(self.final(T, T, word_mask) if self.final is not None else T)           # (9)

        R = self.t2v.queries.shape[0]
        read = "regions" in inputs
        present = inputs["present"].bool() if read else torch.zeros(B, dtype=torch.bool, device=T.device)
        rows = present.nonzero().squeeze(1)                                       # (n,) posts with a photo
        image = read and len(rows) > 0
        if image:
            V = self.W_v(inputs["regions"][rows].to(T.dtype))                     # (n, R, D)
            use_real = inputs["use_real"].bool()[rows]                            # (n,)
            m_v = torch.ones(len(rows), R, device=T.device)                      # m^0
            all_regions = torch.ones(len(rows), R, dtype=torch.bool, device=T.device)
        m_t = word_mask.float()                                                   # m^0
        ones_r = torch.ones(B, R, dtype=torch.bool, device=T.device)
        losses = []
        for depth, layer in enumerate(self.layers, 1):
            if o.scs:
                m_t = layer.scs_t(T, m_t, word_mask, o.gumbel_tau)                # (B, W)       (1)-(3)
            else:
                m_t = word_mask.float()
            cycle = image and self.training and o.cycle
            if image:
                T_p, w_p = T[rows], word_mask[rows]                               # (n, W, D), (n, W)
            if cycle:             # (4) beside the first half of text -> image -> text (7): one decoder call
                V_both = self.t2v(torch.cat([T, T_p]), torch.cat([m_t, w_p.to(m_t.dtype)]), R)   # (B + n, R, D)
                V_gen, V_of_T = V_both[:B], V_both[B:]                            # (B, R, D), (n, R, D)
            else:
                V_gen = self.t2v(T, m_t, R)                                       # (B, R, D)        (4)
            keys = V_gen
            if image:
                if o.scs:
                    m_v = layer.scs_v(V, m_v, all_regions, o.gumbel_tau)          # (n, R)       (1)-(3)
                if cycle:         # (5) beside image -> text and text -> image -> text of (7): one decoder call
                    n, every = len(rows), torch.ones_like(m_v)
                    T_all = self.i2t(torch.cat([V, V, V_of_T]), torch.cat([m_v, every, every]), W,
                                     w_p.repeat(3, 1))                            # (3n, W, D)
                    T_gen, T_of_V, T_cyc = T_all[:n], T_all[n:2 * n], T_all[2 * n:]
                    V_cyc = self.t2v(T_of_V, w_p, R)                              # (n, R, D)
                elif self.training or depth < len(self.layers):   # else T_gen would reach nothing
                    T_gen = self.i2t(V, m_v, W, w_p)                              # (n, W, D)        (5)
                if self.training:
                    loss = generation_kl(V, V_gen[rows], m_v) + generation_kl(T_p, T_gen, m_t[rows] * w_p)  # (6)
                    if cycle:     # T_cyc = i2t(t2v(T)), V_cyc = t2v(i2t(V)), every token kept
                        loss = loss + generation_kl(T_p, T_cyc, w_p) + generation_kl(V, V_cyc, every)    # (7)
                    losses.append(loss)
                real = torch.where(use_real.view(-1, 1, 1), V, V_gen[rows])       # (n, R, D)
                keys = V_gen.index_put((rows,), real)                             # (B, R, D)
                if depth < len(self.layers):          # the last layer's V^(L+1) would reach nothing
                    V = hybrid(layer.image, V, all_regions, T_gen, w_p)           # (n, R, D)  (8) right
            T = hybrid(layer.text, T, word_mask, keys, ones_r)                    # (B, W, D)  (8) left
        H = self.final(T, T, word_mask) if self.final is not None else T          # (B, W, D)        (9)
        aux = o.alpha * torch.stack(losses).mean() if losses else None            #                  (10)
        return HeadOutput(H, aux)
