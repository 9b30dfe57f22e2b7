"""Re-tag one post with edited inputs: the counterfactuals of the retrieval explorer.

:class:`RunRetagger` implements :class:`retrieval.explore.counterfactual.Retagger` over the
tagging API (:mod:`rgcn.api`): the rgcn head re-tags a post with edited relation graphs (a
neighbour left out, none, random or oracle images: each variant's graph holds the images it
names, found by id among the run's graph nodes, with the scores it gives), and every head
re-tags it with its photo removed or swapped. It is declared as the entry point
``rgcn_mner.retaggers: rgcn = rgcn.explain:load_retagger``, which ``python -m retrieval
explore --run RUN`` loads.

    from rgcn.explain import load_retagger
    from retrieval.explore.counterfactual import Variant
    r = load_retagger("runs/demo/rgcn/seed13", images="data/demo/images")
    built = r.neighbours(sample)                                   # {"inter": [(image_id, score), ...], ...}
    r.retag(sample, [Variant("as built", "built"), Variant("no neighbours", "none", {k: [] for k in built})])
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch

from retrieval.explore.counterfactual import KEEP, Neighbours, Retagged, Variant
from retrieval.graphs import relation_graph, relation_id


class EditedGraphs:
    """Relation graphs whose posts named in ``edits`` (post id -> relation -> neighbours) hold
    the given neighbours instead of the built ones; every other graph is ``base``'s.

    ``alias`` maps a variant's post id to ``(post, image_post)``: its inter-modal graph (the
    sentence) is ``post``'s, its intra-modal and object-type graphs (the photo) are
    ``image_post``'s, or the post's without its photo when ``image_post`` is ``None``. A
    variant not in ``alias`` is a post of ``base``.

    An image id that is not a node of ``base`` cannot be placed in a graph: it is left out
    and listed in :attr:`missing`."""

    def __init__(self, base, edits: dict[str, Neighbours], alias: dict[str, tuple[str, str | None]] | None = None):
        self.base, self.edits, self.alias = base, edits, alias or {}
        self.node_features = base.node_features
        self.row = {i: r for r, i in enumerate(base.ids)}
        self.missing: set[str] = set()

    def __getattr__(self, name):                        # neighbours(), relations, ... of the base
        return getattr(self.base, name)

    def graph(self, post_id: str, relation: str = "all"):
        from .heads.rgcn import without_own_image

        post, image_post = self.alias.get(post_id, (post_id, post_id))
        edit = self.edits.get(post_id)
        if edit is None or relation not in edit:
            if relation == "inter":
                return self.base.graph(post, relation)
            if image_post is None:
                return without_own_image(self.base.graph(post, relation))
            return self.base.graph(image_post, relation)
        nbs = [(self.row[i], s) for i, s in edit[relation] if i in self.row]
        self.missing |= {i for i, _ in edit[relation] if i not in self.row}
        own = int(self.base.image_rows[self.base.post_index[image_post]]) if image_post is not None else -1
        if relation == "inter":
            q = self.base.text_queries
            center = q[self.base.post_index[post]] if q is not None else None
        else:
            center = self.node_features[own] if own >= 0 else None
        rows = torch.tensor([r for r, _ in nbs], dtype=torch.long)
        data = relation_graph(center, self.node_features[rows], [float(s) for _, s in nbs], relation_id(relation),
                              has_image=own >= 0, dim=self.node_features.shape[1])
        data.neighbour_rows = rows
        return data


class RunRetagger:
    """A trained run as a :class:`~retrieval.explore.counterfactual.Retagger` (one run, not an
    ensemble). ``images``: the folder relative photo paths are read from; ``device``,
    ``head_options`` (e.g. ``{"view": "text"}``) and ``constrained``: as for
    :func:`rgcn.api.load_tagger`, so that it tags as the service or ``predict`` given the
    same options does."""

    def __init__(self, run, images=None, device: str = "cpu", head_options: dict | None = None,
                 constrained: bool | None = None):
        from .api import load_tagger
        from .heads import head_class

        self.tagger = load_tagger(str(run), device=device, images=images, head_options=head_options,
                                  constrained=constrained)
        self.run = self.tagger.runs[0]
        self.name = str(run)
        self.head = self.run.head
        self.reads_neighbours = self.head == "rgcn"
        self.relations = tuple(self.run.model.head.relations) if self.reads_neighbours else ()
        self._reads_index = head_class(self.head).reads_index
        ckpt = Path(run) / "best" if (Path(run) / "best" / "checkpoint.json").is_file() else Path(run)
        h = hashlib.sha256(str(Path(run).resolve()).encode())
        if head_options or constrained is not None:                 # other options, other predictions
            h.update(json.dumps([head_options or {}, constrained], sort_keys=True, default=str).encode())
        for f in sorted(ckpt.iterdir()):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        self.fingerprint = h.hexdigest()[:16]
        self._known: list = []
        self._owners: dict[int, dict[str, str]] = {}

    # ------------------------------------------------------------------ graphs already built
    def attach_graphs(self, graphs) -> bool:
        """Use ``graphs`` (:class:`retrieval.cache.RelationGraphs`, e.g. the explorer's, cached)
        for the posts it holds when they are the run's own: the same index, graph settings (each
        relation is built on its own, so they may hold more relations than the run reads) and
        training split. Then a post is re-tagged without building any graph (building them for
        new posts answers every training post too). Returns whether they were taken."""
        from .heads.rgcn import graph_settings

        if not self.reads_neighbours or graphs is None or any(g is graphs for g in self._known):
            return False
        opts = dict(self.run.cfg.head.options)
        ours = graph_settings(opts)
        theirs = graphs.settings
        index = (graphs.manifest or {}).get("index_path")
        same = {k: v for k, v in ours.as_dict().items() if k != "relations"} == \
            {k: v for k, v in theirs.as_dict().items() if k != "relations"}
        if (not same or not set(self.relations) <= set(theirs.relations) or not index or not opts.get("index")
                or Path(index).resolve() != Path(opts["index"]).resolve()):
            return False
        train = {s.id for s in self.run.train()}
        if train != {p for p, sp in graphs.split_of.items() if sp == ours.train_split}:
            return False
        self._known.append(graphs)
        return True

    def _built_for(self, samples: Sequence):
        """Attached graphs holding every one of ``samples`` (by id), else ``None``."""
        for g in self._known:
            if all(s.id in g.post_index for s in samples):
                return g
        return None

    def _alias(self, graphs, sample, variant: Variant) -> tuple[str, str | None] | None:
        """Where a variant's graphs come from in attached ``graphs``: ``(post, image_post)``, or
        ``None`` when its photo is no post's there."""
        if variant.image == KEEP:
            return sample.id, (sample.id if graphs.has_image(sample.id) else None)
        if variant.image is None:
            return sample.id, None
        owners = self._owners.get(id(graphs))
        if owners is None:
            owners = self._owners[id(graphs)] = {}
            for p, k in zip(graphs.post_ids, graphs.post_images.keys):
                if k is not None and graphs.has_image(p):
                    owners.setdefault(k, p)
        return (sample.id, owners[Path(variant.image).stem]) if Path(variant.image).stem in owners else None

    # ------------------------------------------------------------------ graphs
    def _variant_samples(self, sample, variants: Sequence[Variant], prefix: str = "cf") -> list:
        out = []
        for i, v in enumerate(variants):
            s = replace(sample, id=f"{prefix}:{i}", meta=dict(sample.meta))
            if v.image is None:
                s = replace(s, image=None, image_missing=False, image_key=None)
            elif v.image != KEEP:
                s = replace(s, image=str(v.image), image_missing=False, image_key=Path(v.image).stem)
            out.append(s)
        return out

    def _graphs(self, samples: list):
        """The run's relation graphs of ``samples`` (built with its training split as the pool)."""
        from .heads import head_class

        run = self.run
        ctx = head_class(self.head).setup_for_posts(dict(run.cfg.head.options), run.train(), samples,
                                                    str(run.path), run.memo)
        return ctx["graphs"]

    def neighbours(self, sample) -> Neighbours:
        return self.neighbours_many([sample])[0]

    def neighbours_many(self, samples: Sequence) -> list[Neighbours]:
        """:meth:`neighbours` of several posts, their graphs built at once (or read from the
        attached graphs)."""
        if not self.reads_neighbours:
            return [{} for _ in samples]
        built = self._built_for(samples)
        if built is not None:
            return [{r: built.neighbours(s.id, r) for r in self.relations} for s in samples]
        posts = [replace(s, id=f"nb:{j}", meta=dict(s.meta)) for j, s in enumerate(samples)]
        graphs = self._graphs(posts)
        return [{r: graphs.neighbours(p.id, r) for r in self.relations} for p in posts]

    # ------------------------------------------------------------------ tagging
    def retag(self, sample, variants: Sequence[Variant]) -> list[Retagged]:
        return self.retag_many([(sample, variants)])[0]

    def retag_many(self, jobs: Sequence[tuple], batch_size: int = 64) -> list[list[Retagged]]:
        """:meth:`retag` of several ``(sample, variants)`` at once: one graph build for all."""
        samples, sizes = [], []
        for j, (sample, variants) in enumerate(jobs):
            samples += self._variant_samples(sample, variants, prefix=f"cf{j}")
            sizes.append(len(variants))
        if not self.reads_neighbours:
            results, _, _ = self.tagger.tag_samples(samples, batch_size)
            flat = [Retagged(list(r.tags), [{k: e[k] for k in ("type", "token_start", "token_end", "confidence")}
                                            for e in r.entities]) for r in results]
        else:
            flat_variants = [v for _, vs in jobs for v in vs]
            edits = {s.id: v.neighbours for s, v in zip(samples, flat_variants) if v.neighbours is not None}
            built = self._built_for([s for s, _ in jobs])
            alias = None
            if built is not None:
                alias, at = {}, 0
                for s, variants in jobs:
                    for vs, v in zip(samples[at:at + len(variants)], variants):
                        alias[vs.id] = self._alias(built, s, v)
                    at += len(variants)
                if any(a is None for a in alias.values()):
                    built = alias = None
            graphs = EditedGraphs(built, edits, alias) if built is not None else \
                EditedGraphs(self._graphs(samples), edits)
            flat = self._tag_with(graphs, samples, batch_size)
        out, at = [], 0
        for n in sizes:
            out.append(flat[at:at + n])
            at += n
        return out

    def predict_many(self, samples: Sequence, batch_size: int = 128) -> list[list[str]]:
        """The BIO tags of each of ``samples`` with the graphs as built (the "as built" variant
        of :meth:`retag_many`, without the entities' confidences, which a list of many posts
        does not show): read from the attached graphs when they hold every post, else built
        once for all of them."""
        samples = list(samples)
        if not samples:
            return []
        if not self.reads_neighbours:
            as_built = [Variant("as built", "built")]
            return [r[0].tags for r in self.retag_many([(s, as_built) for s in samples], batch_size)]
        built = self._built_for(samples)
        if built is not None:
            posts = samples
            graphs = EditedGraphs(built, {}, {s.id: self._alias(built, s, Variant("as built", "built"))
                                              for s in samples})
        else:
            posts = [replace(s, id=f"p:{j}", meta=dict(s.meta)) for j, s in enumerate(samples)]
            graphs = self._graphs(posts)
        return [r.tags for r in self._tag_with(graphs, posts, batch_size, confidence=False)]

    def _tag_with(self, graphs, samples: list, batch_size: int, confidence: bool = True) -> list[Retagged]:
        """:meth:`_tag` of ``samples`` in batches, the head reading ``graphs`` meanwhile (its
        own graphs are given back after)."""
        head = self.run.model.head
        old, head.graphs = head.graphs, graphs
        try:
            return [r for at in range(0, len(samples), batch_size)
                    for r in self._tag(samples[at:at + batch_size], confidence)]
        finally:
            head.graphs = old

    @torch.inference_mode()
    def _tag(self, samples: list, confidence: bool = True) -> list[Retagged]:
        from .batching import TaggingDataset
        from .crf import crf_span_probabilities, labelled_spans

        model = self.run.model
        ds = TaggingDataset(samples, model.tokenizer)
        batch = model.make_batch(ds, list(range(len(samples))), training=False).to(model.device)
        emissions = model.emissions(batch)[0]                                   # (B, W, L)
        mask = batch.word_mask
        paths = model.decode_emissions(emissions, mask)
        if not confidence:
            return [Retagged(list(p)) for p in paths]
        spans = [(j, *sp) for j, tags in enumerate(paths) for sp in labelled_spans(tags, model.labels)]
        conf = crf_span_probabilities(model.decoding_crf(), emissions, mask,
                                      [(j, s, e, a, b, c) for j, _, s, e, a, b, c in spans])
        out = [Retagged(list(p)) for p in paths]
        for (j, etype, s, e, *_), p in zip(spans, conf):
            out[j].entities.append({"type": etype, "token_start": s, "token_end": e, "confidence": float(p)})
        return out


def load_retagger(run, images=None, device: str = "cpu", head_options: dict | None = None,
                  constrained: bool | None = None) -> RunRetagger:
    """The entry point ``rgcn_mner.retaggers: rgcn``."""
    if not os.path.isdir(run):
        from data.errors import UserError

        raise UserError(f"run {run}", "is not a folder", "give a trained run folder (python train.py)")
    return RunRetagger(run, images=images, device=device, head_options=head_options, constrained=constrained)
