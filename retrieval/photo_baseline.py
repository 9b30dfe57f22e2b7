"""The photo-only baseline: type each post's ambiguous name by its photo's neighbours.

For a post whose image is in the index, the ``k`` images of the training posts nearest to
its own (its own image excluded, whoever else uses it) vote: each training post that uses
a neighbour image gives one vote for the gold type of its ``target`` name. The winner
types the post's target name, whatever its sentence says::

    types = photo_knn_types(artifact, train.samples, test.samples, k=5)
    pred = retype_targets(test.samples, text_pred_tags, types)

Spans still come from a text tagger (:func:`retype_targets` changes the type of a
predicted span that is exactly the post's target, nothing else). This is the baseline that
"types every ambiguous name by its photo alone": perfect where the photo decides, wrong
where it contradicts the text (the demo's ``conflicting_image`` posts), a guess where it is
unrelated. A fusion head has to beat it on the first and the text tagger on the second.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from data.spans import get_spans
from index.images import post_image_key

from .search import RetrievalError, search


def indexed_image_ids(artifact, samples: Sequence) -> list[str | None]:
    """Each post's image id when the index holds it, else ``None`` (no image, an image the
    index lacks, or one dropped on purpose: ``meta["image_dropped"]``)."""
    image_of = getattr(artifact, "image_of", lambda post_id: post_id)
    out = []
    for s in samples:
        key = post_image_key(s) or image_of(s.id)
        dropped = bool((s.meta or {}).get("image_dropped"))
        out.append(key if key in artifact.id_to_row and not dropped else None)
    return out


def target_types(sample, target_field: str = "target") -> list[str]:
    """Gold types of the post's target spans (a target the gold tags do not hold as an
    entity gives none; a post without ``target_field`` has none)."""
    targets = {tuple(sp) for sp in (sample.meta or {}).get(target_field) or []}
    return [t for t, a, b in get_spans(sample.tags or []) if (a, b) in targets]


def vote(neighbours: Sequence[str], votes: dict[str, Counter]) -> str | None:
    """The type most votes give over the ``neighbours`` (image ids, nearest first), each
    image giving ``votes[image]``; a tie goes to the type whose first vote came from the
    nearer neighbour, then to the name first in sorted order. ``None`` without a vote."""
    tally: Counter = Counter()
    first: dict[str, int] = {}
    for rank, image in enumerate(neighbours):
        for etype, n in votes[image].items():
            tally[etype] += n
            first.setdefault(etype, rank)
    if not tally:
        return None
    return max(sorted(tally), key=lambda t: (tally[t], -first[t]))


def photo_knn_types(artifact, train_samples: Sequence, samples: Sequence, k: int = 5,
                    target_field: str = "target") -> list[str | None]:
    """The type each post's photo votes for its target name.

    Args:
        artifact: the index (:class:`index.artifact.IndexArtifact`).
        train_samples: the training posts with gold tags and ``target_field`` in ``meta``;
            those whose image is in the index are the pool, and vote.
        samples: the posts to type.
        k: neighbour images per post.
        target_field: the ``meta`` field listing a post's ``[start, end)`` target spans.

    Returns one entry per post of ``samples``: the winning type, or ``None`` when the post
    has no image in the index.

    Raises:
        RetrievalError: no training post has both an image in the index and a target name
            its gold tags type (nothing could vote).
    """
    votes: dict[str, Counter] = {}                                 # training image -> its posts' types
    for s, image in zip(train_samples, indexed_image_ids(artifact, train_samples)):
        types = target_types(s, target_field)
        if image is not None and types:
            votes.setdefault(image, Counter()).update(types)
    if not votes:
        raise RetrievalError(
            f"none of the {len(train_samples)} training posts has both an image in the index at "
            f"{getattr(artifact, 'path', '<artifact>')} and a {target_field!r} name its gold tags type: "
            "the photo baseline needs posts with a target (the demo's JSONL field) and indexed images")
    images = indexed_image_ids(artifact, samples)
    asked = [i for i, image in enumerate(images) if image is not None]
    out: list[str | None] = [None] * len(samples)
    if not asked:
        return out
    queries = np.stack([artifact.vector(images[i]) for i in asked]).astype(np.float32)    # (nq, d)
    _, I = search(artifact, queries, k, exclude_ids=[images[i] for i in asked], pool=set(votes))  # (nq, k)
    for i, rows in zip(asked, I):
        out[i] = vote([artifact.ids[r] for r in rows if r >= 0], votes)
    return out


def retype_targets(samples: Sequence, pred_tags: Sequence[Sequence[str]], types: Sequence[str | None],
                   target_field: str = "target") -> list[list[str]]:
    """A text tagger's predictions with each target name typed by ``types``.

    A predicted span whose ``(start, end)`` equals one of the post's target spans takes
    the post's type; every other span, and every post whose type is ``None``, keeps the
    prediction. A span right after a retyped one stays apart (its ``I-`` becomes ``B-``
    when it would otherwise join it).

    Shapes: ``samples``, ``pred_tags`` and ``types`` have one entry per post; each tag
    sequence is as long as its post.
    """
    if not len(samples) == len(pred_tags) == len(types):
        raise ValueError(f"{len(samples)} posts, {len(pred_tags)} predicted tag sequences and "
                         f"{len(types)} types: give one of each per post")
    out = []
    for s, tags, etype in zip(samples, pred_tags, types):
        tags = list(tags)
        targets = {tuple(sp) for sp in (s.meta or {}).get(target_field) or []}
        if etype is not None and targets:
            for _, a, b in get_spans(tags):
                if (a, b) in targets:
                    tags[a:b] = [f"B-{etype}"] + [f"I-{etype}"] * (b - a - 1)
                    if b < len(tags) and tags[b] == f"I-{etype}":
                        tags[b] = f"B-{etype}"
        out.append(tags)
    return out
