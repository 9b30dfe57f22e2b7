"""R-GCN fusion (Relation-enhanced GCN, ACM MM 2022).

For each post and each relation (inter-modal: images that match the sentence; intra-modal:
images like the post's own), a small star graph links the post's node (node 0) to its
retrieved neighbours. GCN layers over each relation graph give the post a visual vector
per relation; each vector is fused into every word by a gate,

    H' = H + sigmoid(W_h H + W_v V) * V,

then the words attend to each other (self-attention) and to every node of the post's
graphs (text-to-image cross-attention) before the CRF.

Two defects of the reference code are not reproduced: the GCN output is pooled per graph
(the post's own node), not averaged across the feature axis, and the text keeps its own
length (no forcing to 98 tokens to match image regions).

A post without an image has an empty intra-modal graph (its node carries no feature and
``has_image`` is false): its intra vector is masked out of the gate and the attention,
and the post uses its inter-modal graph only. The inter-modal graph never holds the post's
own image (its centre is the sentence, see :mod:`retrieval.relations`), so the
"without intra" ablation sees no trace of the post's photo.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

with warnings.catch_warnings():     # PyG's own use of torch.jit.script, deprecated by torch: not ours to fix
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from torch_geometric.data import Batch
    from torch_geometric.nn import GCNConv
    from torch_geometric.utils import to_dense_batch

from index.artifact import load_index
from retrieval.cache import GraphSettings, load_or_build
from retrieval.graphs import relation_graph, relation_id
from retrieval.pool import GraphPool
from retrieval.relations import index_has_text, index_text_encoder, sentence_encoder

from .base import FusionHead, HeadOutput, register_head
from .blocks import attend, fit_heads, gated_fusion, images_dropped


class RelationGCN(nn.Module):
    """GCN layers over one relation's batched graphs; returns the post node's state and
    every node's state.

    Args:
        in_dim (int): node feature width (the index's embedding width).
        hidden (int): GCN width.
        layers (int, default 2): number of GCN layers.
        dropout (float, default 0.1).

    Shapes:
        input: ``x (N, in_dim)``, ``edge_index (2, E)``, ``edge_weight (E,)``, ``batch (N,)``,
        ``ptr (B + 1,)``;
        output: ``center (B, hidden)``, ``nodes (N, hidden)``.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        self.convs = nn.ModuleList(GCNConv(a, b, add_self_loops=True, normalize=True)
                                   for a, b in zip(dims, dims[1:]))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, edge_index, edge_weight, ptr):
        for i, conv in enumerate(self.convs):
            x = conv(x, edge_index, edge_weight)  # (N, hidden)
            if i < len(self.convs) - 1:
                x = self.dropout(torch.relu(x))
        return x[ptr[:-1]], x  # (B, hidden), (N, hidden)


def without_own_image(data):
    """The graph of a relation built from the post's own image (intra, tags) if the image
    were missing: one featureless node, no neighbours, ``has_image`` false. Used for the
    modality-missing evaluation and image dropout; the inter-modal graph needs no such
    change (it holds nothing of the own image)."""
    out = data.clone()
    keep = torch.zeros(data.edge_index.shape[1], dtype=torch.bool)
    out.x, out.num_nodes, out.has_image = torch.zeros_like(data.x[:1]), 1, torch.tensor([False])
    out.edge_index, out.edge_weight, out.edge_type = (data.edge_index[:, keep], data.edge_weight[keep],
                                                      data.edge_type[keep])
    if "neighbour_rows" in data:
        out.neighbour_rows = data.neighbour_rows[:0]
    if "neighbour_ids" in data:
        out.neighbour_ids = []
    return out


class NoImageGraphs:
    """Relation graphs for a dataset with no images: one featureless node per post."""

    def __init__(self, feature_dim: int):
        self.node_features = torch.zeros(0, feature_dim)

    def graph(self, post_id: str, relation: str):
        return relation_graph(None, torch.zeros(0, self.node_features.shape[1]), [], relation_id(relation),
                              has_image=False, dim=self.node_features.shape[1])


def graph_settings(options: dict) -> GraphSettings:
    """The graph settings of the head's options (``k``, ``pool``, ``threshold``, ``relations``, ``inter``)."""
    wanted = list(options.get("relations", ["inter", "intra"]))
    return GraphSettings(k=int(options.get("k", 5)), pool=options.get("pool", "train"),
                         threshold=options.get("threshold", 0.0),
                         relations=tuple(options.get("graph_relations", wanted)), inter=options.get("inter", "auto"))


def remembered(encode):
    """A text encoder that encodes each distinct string once and keeps its vector."""
    seen: dict[str, np.ndarray] = {}

    def encoder(texts):
        new = [t for t in dict.fromkeys(texts) if t not in seen]
        if new:
            seen.update(zip(new, np.asarray(encode(new), dtype=np.float32)))
        if not texts:
            return np.asarray(encode([]), dtype=np.float32)
        return np.stack([seen[t] for t in texts])
    return encoder


@register_head("rgcn")
class RGCNHead(FusionHead):
    """Relation graphs -> GCN -> gated fusion -> self- and cross-attention.

    Options (``head.options`` in the run config):
        relations (list, default ["inter", "intra"]): which relation graphs to use; the
            ablations of the paper drop one.
        gcn_hidden (int, default 256), gcn_layers (int, default 2), heads (int, default 4),
        dropout (float, default 0.1).
        image_dropout (float, default 0.0): during training only, the share of posts treated
            as having no image (as :func:`without_own_image`), so the model also learns to
            tag without one. Not in the paper; the modality-missing evaluation shows its effect.
        index (str): the index artifact folder (``null``: no images at all, every graph is
            empty; ``feature_dim`` then sets the node width); k (5), pool ("train"), threshold (0.0),
            inter ("auto": CLIP text-to-image, else the sentence against the images' visual
            text), graph_cache (default: ``<index>/../graphs``): graph settings, see
            :class:`retrieval.cache.GraphSettings`.
    The graphs reach the head as ``context["graphs"]`` (from :meth:`setup`). Posts whose
    image is not in the index (new posts to tag) have it embedded by the index's embedder
    when the graphs are built.
    """

    reads_index = True

    def __init__(self, in_dim: int, options: dict | None = None, context: dict | None = None):
        super().__init__(in_dim, options, context)
        o = self.options
        self.relations: list[str] = list(o.get("relations", ["inter", "intra"]))
        if not self.relations:
            raise ValueError("rgcn head: options.relations is empty; use head.name=text for no fusion")
        hidden = int(o.get("gcn_hidden", 256))
        heads = fit_heads(in_dim, int(o.get("heads", 4)))
        dropout = float(o.get("dropout", 0.1))
        self.image_dropout = float(o.get("image_dropout", 0.0))
        if not 0 <= self.image_dropout < 1:
            raise ValueError(f"rgcn head: options.image_dropout must be in [0, 1), found {self.image_dropout}")
        self.graphs = (context or {}).get("graphs")
        feat_dim = int(self.graphs.node_features.shape[1]) if self.graphs is not None else 0
        if feat_dim <= 0:
            raise ValueError("rgcn head: no relation graphs were given (context['graphs']); "
                             "set head.options.index and let train.py build the graphs")
        self.feature_dim = feat_dim
        self.gcn = nn.ModuleDict({r: RelationGCN(feat_dim, hidden, int(o.get("gcn_layers", 2)), dropout)
                                  for r in self.relations})
        self.to_text = nn.ModuleDict({r: nn.Linear(hidden, in_dim) for r in self.relations})
        self.gate_h = nn.ModuleDict({r: nn.Linear(in_dim, in_dim, bias=False) for r in self.relations})
        self.gate_v = nn.ModuleDict({r: nn.Linear(in_dim, in_dim) for r in self.relations})
        self.self_attn = nn.MultiheadAttention(in_dim, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(in_dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(in_dim)
        self.norm2 = nn.LayerNorm(in_dim)
        self.dropout = nn.Dropout(dropout)

    @classmethod
    def setup(cls, options: dict, splits: dict, run_dir: str | None, progress: bool = True,
              training: bool = True) -> dict:
        """Load the index artifact named by ``options.index`` and build (or load from the
        cache) the relation graphs over ``splits``."""
        if not options.get("index"):
            # no image collection at all (the modality-missing setting): every graph is the
            # post's own, featureless node
            return {"graphs": NoImageGraphs(int(options.get("feature_dim", 1280)))}
        artifact = load_index(options["index"])
        cache = options.get("graph_cache") or str(Path(options["index"]).parent / "graphs")
        graphs = load_or_build(splits, artifact, graph_settings(options), cache, progress=progress)
        return {"graphs": graphs, "image_summary": {name: graphs.image_summary([s.id for s in split])
                                                    for name, split in splits.items()}}

    @classmethod
    def setup_for_posts(cls, options: dict, train: Sequence, posts: Sequence, run_dir: str | None,
                        memo: dict) -> dict:
        """The relation graphs of ``posts``, built in memory against the training pool (no
        graph cache is written for a batch of new posts): the pool's side (the index, the
        training posts' images, the search structures, the text encoder and its vectors, the
        embedder of new photos) is made on the first call and kept in ``memo``
        (:class:`retrieval.pool.GraphPool`), so each batch searches for its own posts only."""
        if not options.get("index"):
            return cls.setup(options, {"predict": posts}, run_dir, progress=False, training=False)
        if "pool" not in memo:
            artifact, settings = load_index(options["index"]), graph_settings(options)
            direct = settings.inter == "direct" or (settings.inter == "auto" and index_has_text(artifact))
            encoder = remembered(index_text_encoder(artifact) if direct else sentence_encoder(settings.text_model))
            memo["pool"] = GraphPool(train, artifact, settings, encoder)
        graphs = memo["pool"].graphs_for(posts)
        return {"graphs": graphs, "image_summary": {"predict": graphs.image_summary([s.id for s in posts])}}

    def extra_state(self) -> dict:
        return {"feature_dim": self.feature_dim}

    def use_context(self, context: dict) -> bool:
        """Tag new posts with their graphs (``context["graphs"]``) without rebuilding the head."""
        graphs = context.get("graphs")
        if graphs is None or int(graphs.node_features.shape[1]) != self.feature_dim:
            return False
        self.graphs = graphs
        return True

    def prepare(self, samples: Sequence, training: bool) -> dict:
        if self.graphs is None:
            raise RuntimeError("rgcn head has no relation graphs: pass the graphs when loading "
                               "(rgcn.heads.rgcn needs context['graphs'])")
        dropped = images_dropped(samples, training, self.image_dropout)
        out = {}
        for r in self.relations:
            data = [self.graphs.graph(s.id, r) for s in samples]
            if r != "inter":                          # built from the own image: dropped posts lose it
                data = [without_own_image(d) if drop else d for d, drop in zip(data, dropped)]
            out[r] = Batch.from_data_list(data)
        return out

    def forward(self, states: torch.Tensor, word_mask: torch.Tensor, inputs: dict) -> HeadOutput:
        h = states  # (B, W, D)
        node_states, node_masks = [], []
        for r in self.relations:
            g = inputs[r]
            center, nodes = self.gcn[r](g.x, g.edge_index, g.edge_weight, g.ptr)  # (B, hid), (N, hid)
            present = g.has_image.view(-1).bool() if r == "intra" else (g.ptr[1:] - g.ptr[:-1] > 1)
            h = gated_fusion(h, self.to_text[r](center), self.gate_h[r], self.gate_v[r], present)
            dense, mask = to_dense_batch(self.to_text[r](nodes), g.batch, batch_size=h.shape[0])  # (B, n, D)
            node_states.append(dense)
            node_masks.append(mask & present.unsqueeze(1))
        pad = ~word_mask
        a, _ = self.self_attn(h, h, h, key_padding_mask=pad, need_weights=False)
        h = self.norm1(h + self.dropout(a))
        nodes = torch.cat(node_states, dim=1)        # (B, n_all, D)
        nmask = torch.cat(node_masks, dim=1)         # (B, n_all)
        c = attend(self.cross_attn, h, nodes, nmask)  # posts with no visual node get zeros
        h = self.norm2(h + self.dropout(c))
        return HeadOutput(h)
