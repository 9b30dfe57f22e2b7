"""Counterfactual re-tagging: did the neighbours change the tags?

A post is re-tagged with edited inputs (:class:`Variant`) and each result is compared with
the tags of the graphs as built:

- ``built``: the graphs as built (what the model predicts);
- ``leave_out``: each neighbour left out in turn (one variant per relation and neighbour);
- ``none``: no neighbours in any relation (the post's own photo stays the centre of its
  intra-modal and object-type graphs);
- ``random``: per relation, ``k`` random pool images instead of the neighbours;
- ``oracle``: per relation, ``k`` pool images of posts that hold all of the query's gold
  entity types (those with no other type first): what perfect retrieval would give;
- ``photo_removed``, ``photo_swapped`` (heads that read no neighbours: maf, ita, bga; and
  rgcn too): the post without its photo, and with the photo of a pool post that shares none
  of its gold types.

A substituted neighbour takes the score of the rank it fills (the built neighbour's there;
the mean built score of the relation past its end, 1.0 when there is none), so an edit
changes which images the graph holds and not its edge weights.

What the explorer asks of a model is the :class:`Retagger` protocol. The rgcn package
implements it (``rgcn.explain``) and declares it as an entry point of the group
``rgcn_mner.retaggers``; :func:`load_retagger` finds it there, so this package imports no
model code.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

from data.errors import UserError
from data.spans import get_spans

ENTRY_POINT_GROUP = "rgcn_mner.retaggers"
KEEP = "<own photo>"
"""``Variant.image`` for "the post's own photo" (``None`` is "no photo")."""
CACHE_VERSION = 1

Neighbours = dict[str, list[tuple[str, float]]]
"""relation -> ``[(image_id, score), ...]`` best first."""


@dataclass(frozen=True)
class Variant:
    """One edited input. ``neighbours``: relation -> neighbours, or ``None`` for the graphs
    as built; ``image``: :data:`KEEP`, ``None`` (no photo) or another photo's path;
    ``left_out``: ``(relation, image_id)`` of a ``leave_out`` variant."""

    name: str
    kind: str
    neighbours: Neighbours | None = None
    image: str | None = KEEP
    left_out: tuple[str, str] | None = None


@dataclass
class Retagged:
    """A re-tagged post: its BIO tags and entities ``{type, token_start, token_end, confidence}``."""

    tags: list[str]
    entities: list[dict] = field(default_factory=list)


@runtime_checkable
class Retagger(Protocol):
    """What the explorer asks of a trained run.

    Attributes:
        name: the run (shown on the cards).
        head: the head's name.
        reads_neighbours: whether the head reads relation graphs (then the graph edits are
            offered; else the photo edits only).
        relations: the relations it reads.
        fingerprint: changes whenever the run's checkpoint does (the cache's key).
    """

    name: str
    head: str
    reads_neighbours: bool
    relations: tuple[str, ...]
    fingerprint: str

    def neighbours(self, sample) -> Neighbours:
        """The neighbours the model reads for ``sample`` (a :class:`data.corpus.Sample`), as built."""

    def retag(self, sample, variants: Sequence[Variant]) -> list[Retagged]:
        """Tag ``sample`` once per variant (in one batch where it can)."""

    # optional: ``attach_graphs(graphs) -> bool``: the explorer offers its (cached) graphs;
    # a re-tagger that finds them to be its own may read a post's neighbours from them
    # instead of building graphs (Explorer.build calls it when present);
    # ``retag_many(jobs) -> list[list[Retagged]]``: :meth:`retag` of many ``(sample, variants)``
    # in one batch; ``predict_many(samples) -> list[list[str]]``: the tags of many posts with
    # the graphs as built (retrieval.explore.predictions prefers it: no entity confidences)


def load_retagger(run, images=None, device: str = "cpu", **options) -> Retagger:
    """The :class:`Retagger` of ``run``, from the first entry point of :data:`ENTRY_POINT_GROUP`
    (a callable ``(run, images=..., device=..., **options) -> Retagger``; ``options`` such as
    rgcn's ``head_options`` and ``constrained`` are passed on only when given)."""
    from importlib.metadata import entry_points

    eps = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if not eps:
        raise UserError(f"--run {run}", f"no package declares a re-tagger (entry point group {ENTRY_POINT_GROUP!r})",
                        "install the project in this environment (pip install -e .) or leave out --run")
    return eps[0].load()(run, images=images, device=device, **{k: v for k, v in options.items() if v is not None})


# --------------------------------------------------------------------------- edits
def substitute_scores(built: list[tuple[str, float]], n: int) -> list[float]:
    """The edge weight each of ``n`` substituted neighbours takes: the built score of its rank,
    past the built ones their mean (1.0 when there are none)."""
    scores = [s for _, s in built]
    fill = sum(scores) / len(scores) if scores else 1.0
    return [scores[i] if i < len(scores) else fill for i in range(n)]


def oracle_images(query_types: frozenset, candidates: Sequence[tuple[str, frozenset]], k: int,
                  rng: random.Random) -> list[str]:
    """``k`` image ids of ``candidates`` (``(image_id, gold types of its post)``, the pool)
    whose types hold all of ``query_types``: those with no other type first, then by
    ``rng``'s order. A query with no types takes posts with no types."""
    order = list(candidates)
    rng.shuffle(order)
    if query_types:
        fit = [(len(t - query_types), i) for i, t in order if query_types <= t]
    else:
        fit = [(0, i) for i, t in order if not t]
    fit.sort(key=lambda x: x[0])                            # stable: keeps the shuffled order within ties
    return [i for _, i in fit[:k]]


def graph_variants(built: Neighbours, pool: Sequence[tuple[str, frozenset]], query_types: frozenset, k: int,
                   own_image: str | None = None, seed: int = 0) -> list[Variant]:
    """The graph edits of one post (module docstring): ``built`` is what the model reads;
    ``pool`` the images that may be retrieved with their posts' gold types; the random and
    oracle variants never hold ``own_image`` and are drawn with ``seed``."""
    out = [Variant("as built", "built", {r: list(v) for r, v in built.items()})]
    for rel, nbs in built.items():
        for rank, (image_id, _) in enumerate(nbs, 1):
            edited = {r: list(v) for r, v in built.items()}
            edited[rel] = [x for x in nbs if x[0] != image_id]
            out.append(Variant(f"without {rel} #{rank} {image_id}", "leave_out", edited, left_out=(rel, image_id)))
    out.append(Variant("no neighbours", "none", {r: [] for r in built}))
    candidates = [(i, t) for i, t in pool if i != own_image]
    ids = [i for i, _ in candidates]
    rng = random.Random(seed)
    picked = rng.sample(ids, min(k, len(ids)))
    out.append(Variant(f"{len(picked)} random pool images", "random",
                       {r: list(zip(picked, substitute_scores(v, len(picked)))) for r, v in built.items()}))
    oracle = oracle_images(query_types, candidates, k, random.Random(seed + 1))
    out.append(Variant(f"{len(oracle)} oracle neighbours (posts with the query's gold types)", "oracle",
                       {r: list(zip(oracle, substitute_scores(v, len(oracle)))) for r, v in built.items()}))
    return out


def photo_variants(pool: Sequence[tuple[str, frozenset]], query_types: frozenset, own_image: str | None,
                   resolve: Callable[[str], str | None], seed: int = 0) -> list[Variant]:
    """As built, the photo removed (when the post has one), and the photo swapped for that
    of a pool post sharing none of ``query_types`` (``pool``: ``(image_id, gold types)``;
    any other photo when none qualifies). ``resolve`` gives an image's file (``None``: not
    found); only the photos tried are looked up."""
    out = [Variant("as built", "built")]
    if own_image is not None:
        out.append(Variant("photo removed", "photo_removed", image=None))
    order = [p for p in pool if p[0] != own_image]
    random.Random(seed).shuffle(order)
    path = None
    for wanted in (lambda t: not (t & query_types), lambda t: True):
        for image_id, types in order:
            if wanted(types):
                path = resolve(image_id)
                if path is not None:
                    break
        if path is not None:
            break
    if path is not None:
        out.append(Variant(f"photo swapped for {Path(path).stem}", "photo_swapped", image=str(path)))
    return out


# --------------------------------------------------------------------------- comparison
def span_confidences(r: Retagged) -> dict[tuple[int, int, str], float]:
    return {(e["token_start"], e["token_end"], e["type"]): float(e["confidence"]) for e in r.entities}


def compare(base: Retagged, other: Retagged) -> dict:
    """What changed from ``base`` to ``other``: ``changed_tags`` (``[i, before, after]`` per
    word whose tag differs), ``span_changes`` (per span predicted by either: its confidence
    before and after, 0 where not predicted, and the change) and ``moved`` (the sum of
    the absolute confidence changes: how far the prediction moved)."""
    changed = [[i, a, b] for i, (a, b) in enumerate(zip(base.tags, other.tags)) if a != b]
    before, after = span_confidences(base), span_confidences(other)
    spans = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key, 0.0), after.get(key, 0.0)
        spans.append({"token_start": key[0], "token_end": key[1], "type": key[2], "before": b, "after": a,
                      "change": a - b})
    return {"changed_tags": changed, "span_changes": spans, "moved": sum(abs(s["change"]) for s in spans)}


def neighbour_ranking(results: list[dict]) -> list[dict]:
    """The left-out neighbours, those whose removal moved the prediction most first (tags
    changed, then confidence moved)."""
    rows = [r for r in results if r["kind"] == "leave_out"]
    return sorted(({"relation": r["left_out"][0], "image_id": r["left_out"][1], "moved": r["moved"],
                    "n_changed": len(r["changed_tags"])} for r in rows),
                  key=lambda x: (-x["n_changed"], -x["moved"], x["relation"], x["image_id"]))


# --------------------------------------------------------------------------- one post
def pool_with_types(explorer, which: str = "a") -> list[tuple[str, frozenset]]:
    """The images a graph may hold (the pool), each with the gold types of its posts
    (computed once per explorer and setting)."""
    memo = explorer.__dict__.setdefault("_pool_types", {})
    if which not in memo:
        graphs, _, settings, _ = explorer.pick(which)
        splits = {settings.train_split} if settings.pool == "train" else set(explorer.splits)
        out: dict[str, frozenset] = {}
        for pid, key, row in zip(graphs.post_ids, graphs.post_images.keys, graphs.image_rows):
            if key is not None and row >= 0 and explorer.split_of[pid] in splits:
                out[key] = out.get(key, frozenset()) | explorer.types(pid)
        memo[which] = list(out.items())
    return memo[which]


def variants_for(explorer, post_id: str, retagger: Retagger, which: str = "a", seed: int = 0) -> list[Variant]:
    """The variants the card shows for ``post_id`` with ``retagger``."""
    sample = explorer.sample(post_id)
    qtypes = explorer.types(post_id)
    pool = pool_with_types(explorer, which)
    own = explorer.image_key(post_id, which)
    if retagger.reads_neighbours:
        built = retagger.neighbours(sample)
        k = explorer.pick(which)[2].k
        out = graph_variants(built, pool, qtypes, k, own_image=own, seed=seed)
    else:
        out = [Variant("as built", "built")]

    def resolve(image_id):
        path = explorer.image_path(image_id)
        return None if path is None else str(path)
    return out + photo_variants(pool, qtypes, own, resolve, seed)[1:]


def cache_path(explorer, retagger: Retagger, post_id: str, which: str, seed: int) -> Path | None:
    if not explorer.cache_dir:
        return None
    settings = explorer.pick(which)[2]
    key = hashlib.sha256(json.dumps([CACHE_VERSION, retagger.fingerprint, settings.as_dict(), seed],
                                    sort_keys=True).encode()).hexdigest()[:16]
    safe = hashlib.sha256(post_id.encode()).hexdigest()[:20]
    return Path(explorer.cache_dir) / "explore" / "counterfactuals" / key / f"{safe}.json"


def counterfactuals(explorer, post_id: str, which: str = "a", seed: int = 0, use_cache: bool = True) -> dict:
    """Re-tag ``post_id`` with every variant of :func:`variants_for` and compare each with the
    graphs as built. Kept per run, graph setting and post under ``<cache>/explore``.

    Returns ``{"post", "run", "head", "cached", "variants": [{name, kind, left_out, image,
    tags, entities, changed_tags, span_changes, moved}], "ranking": [...]}``."""
    retagger = explorer.retagger if which == "a" else explorer.retagger_b
    if retagger is None:
        raise UserError(f"counterfactuals of post {post_id!r}", "the explorer was started without a run",
                        "start it with --run RUN" + (" / --b-run RUN" if which == "b" else ""))
    sample = explorer.sample(post_id)
    path = cache_path(explorer, retagger, post_id, which, seed) if use_cache else None
    if path is not None and path.is_file():
        try:
            out = json.loads(path.read_text())
            if out.get("post") == post_id:
                out["cached"] = True
                return out
        except (OSError, ValueError):
            pass
    variants = variants_for(explorer, post_id, retagger, which, seed)
    results = retagger.retag(sample, variants)
    base = results[0]
    rows = []
    for v, r in zip(variants, results):
        rows.append({"name": v.name, "kind": v.kind, "left_out": list(v.left_out) if v.left_out else None,
                     "image": None if v.image is None else ("own" if v.image == KEEP else Path(v.image).stem),
                     "neighbours": v.neighbours, **asdict(r), **compare(base, r)})
    out = {"post": post_id, "run": retagger.name, "head": retagger.head, "cached": False, "seed": seed,
           "tokens": list(sample.tokens), "gold": list(sample.tags) if sample.tags else None,
           "variants": rows, "ranking": neighbour_ranking(rows)}
    out = json.loads(json.dumps(out))                       # as read back from the cache (lists, not tuples)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out))
        os.replace(tmp, path)
    return out


def predicted_spans(explorer, post_id: str, which: str = "a") -> list[tuple[str, int, int]] | None:
    """The spans the run predicts for the post with its graphs as built (``None`` without a run)."""
    retagger = explorer.retagger if which == "a" else explorer.retagger_b
    if retagger is None:
        return None
    cache = getattr(explorer, "_predicted", None)
    if cache is None:
        cache = explorer._predicted = {}
    if (which, post_id) not in cache:
        r = retagger.retag(explorer.sample(post_id), [Variant("as built", "built")])[0]
        cache[(which, post_id)] = get_spans(r.tags)
    return cache[(which, post_id)]
