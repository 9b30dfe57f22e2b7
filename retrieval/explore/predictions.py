"""A run's predictions over many posts (the triage list of wrong predictions, the map's
error colouring, the F1 of an A/B), with the graphs as built, kept on disk.

Each post is re-tagged once by the explorer's :class:`~retrieval.explore.counterfactual.Retagger`
(variant "as built"; through its optional ``predict_many`` (tags only) or ``retag_many`` (one
batch) when it has them, a chunk of posts at a time); the tags are kept in
``<cache_dir>/explore/predictions/<key>.json``, the key hashing the run's fingerprint and the
graph settings, so a later request (or a restarted explorer) reads them back.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

from data.errors import UserError
from data.files import write_atomically

from .tables import PostTable, post_table

CACHE_VERSION = 1
MAX_NEW = 5000
"""At most this many posts are re-tagged for one request (those already predicted do not
count): a whole training split would keep a page busy for many minutes."""


CHUNK = 1024
"""Posts re-tagged (and written to the cache) at a time: one graph build each."""


class TooManyToTag(UserError):
    """A request that would re-tag more than :data:`MAX_NEW` posts."""

    status = 400


def retagger_of(explorer, which: str = "a"):
    return explorer.retagger if which == "a" else explorer.retagger_b


def cache_file(explorer, which: str = "a") -> Path | None:
    retagger = retagger_of(explorer, which)
    if not explorer.cache_dir or retagger is None:
        return None
    settings = explorer.pick(which)[2]
    key = hashlib.sha256(json.dumps([CACHE_VERSION, retagger.fingerprint, settings.as_dict()],
                                    sort_keys=True).encode()).hexdigest()[:16]
    return Path(explorer.cache_dir) / "explore" / "predictions" / f"{key}.json"


def predictions(explorer, post_ids: Sequence[str], which: str = "a", max_new: int | None = None
                ) -> dict[str, list[str]] | None:
    """Post id -> predicted BIO tags of ``post_ids`` under setting ``which`` (``None`` without
    a run). Posts already predicted (in memory or in the cache file) are not re-tagged;
    more than ``max_new`` others (default :data:`MAX_NEW`) raise :class:`TooManyToTag`."""
    from .counterfactual import Variant

    retagger = retagger_of(explorer, which)
    if retagger is None:
        return None
    memo = explorer.__dict__.setdefault("_run_predictions", {})
    known = memo.get(which)
    path = cache_file(explorer, which)
    if known is None:
        known = {}
        if path is not None and path.is_file():
            try:
                known = json.loads(path.read_text())
            except (OSError, ValueError):
                known = {}
        memo[which] = known
    todo = [p for p in post_ids if p not in known]
    max_new = MAX_NEW if max_new is None else max_new
    if len(todo) > max_new:
        raise TooManyToTag(f"{len(todo):,} posts to re-tag", f"a request re-tags at most {max_new:,}",
                           "narrow the list with the split, kind or type filters (e.g. split=test)")
    built = [Variant("as built", "built")]
    tags_many = getattr(retagger, "predict_many", None)  # optional: the tags of many posts (rgcn.explain)
    many = getattr(retagger, "retag_many", None)        # optional: many posts in one batch
    for at in range(0, len(todo), CHUNK):
        chunk = todo[at:at + CHUNK]
        if tags_many is not None:
            tags = tags_many([explorer.sample(p) for p in chunk])
        elif many is not None:
            tags = [r[0].tags for r in many([(explorer.sample(p), built) for p in chunk])]
        else:
            tags = [retagger.retag(explorer.sample(p), built)[0].tags for p in chunk]
        known.update({p: list(t) for p, t in zip(chunk, tags)})
        if path is not None:                                # kept as it goes: a stopped request loses one chunk
            write_atomically(path, lambda f: f.write(json.dumps(known).encode()))
    return {p: known[p] for p in post_ids}


def table_of(explorer, which: str = "a") -> PostTable:
    """The :class:`PostTable` of setting ``which``'s graphs (computed once)."""
    return post_table(explorer.pick(which)[0], list(explorer.samples.values()), explorer.gold_types)


def gold_of(explorer) -> dict[str, list[str]]:
    return {p: s.tags for p, s in explorer.samples.items() if s.tags is not None}
