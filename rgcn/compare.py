"""Scoring runs on the kinds of post, and comparing runs.

A test split may mark what each post is about: a ``kind`` field (what decides the type of its
ambiguous name: ``image_decided``, ``conflicting_image``, ... in the demo) with ``target``, the
``[start, end)`` word span(s) of that name; or a field listing spans to score apart
(``image_decided``). :func:`score_by_kind` and :func:`score_with_subset` give the entity F1
on those names beside the overall one; :func:`compare_runs` scores several runs' test
predictions with both, and :func:`compare_table` prints them (``python -m rgcn compare``).
"""
from __future__ import annotations

from pathlib import Path

from data.corpus import CorpusError
from data.errors import UserError


def score_with_subset(gold_samples, pred, subset_field=None, where="gold") -> dict:
    """Overall P/R/F1 of ``pred`` against the samples' tags and, when ``subset_field``
    names a JSONL field of ``[start, end)`` word spans (e.g. ``image_decided``), F1 on the
    listed spans and on the entities outside them.

    Args:
        gold_samples: the gold posts (tags, and the field in ``meta`` when one is named).
        pred: one predicted tag sequence per post.
        subset_field: name of the span-list field, or ``None`` for overall scores only.
        where: what to call the gold file in error messages.

    Returns a dict with ``f1``, ``precision``, ``recall`` and, with a field ``F``:

    - ``F_f1``, ``F_gold``: gold and predicted spans whose ``(start, end)`` equals a
      listed span (the type must still match to count as correct);
    - ``outside_F_f1``, ``outside_F_gold``: gold and predicted spans that overlap no
      listed span. A predicted fragment of a listed span belongs to neither column: it is
      an error on the listed entity, already counted by the overall scores.
    """
    from .metrics import score

    gold_tags = [s.tags for s in gold_samples]
    overall = score(gold_tags, pred)
    row = {"f1": overall.f1, "precision": overall.total.precision, "recall": overall.total.recall}
    if subset_field:
        missing = [s.id for s in gold_samples if subset_field not in s.meta]
        if missing:
            raise CorpusError(where, None, f"post {missing[0]!r} has no field {subset_field!r}")
        listed = [{(a, b) for a, b in s.meta[subset_field]} for s in gold_samples]

        def overlaps_none(i, span):
            _, start, end = span
            return all(end <= a or b <= start for a, b in listed[i])

        inside = score(gold_tags, pred, spans_filter=lambda i, sp: (sp[1], sp[2]) in listed[i])
        outside = score(gold_tags, pred, spans_filter=overlaps_none)
        row[f"{subset_field}_f1"] = inside.f1
        row[f"{subset_field}_gold"] = inside.total.n_gold
        row[f"outside_{subset_field}_f1"] = outside.f1
        row[f"outside_{subset_field}_gold"] = outside.total.n_gold
    return row


OTHER = "other"
"""The column of :func:`score_by_kind` for the entities that overlap no target span."""


def post_kinds(gold_samples, kind_field="kind", target_field="target", where="gold"):
    """Each post's kind and target spans, read from ``meta``, checked.

    Returns ``(kinds, targets)``: per post the kind (``None`` when the post has no
    ``kind_field``) and the set of its ``(start, end)`` target spans (empty without a kind).

    Raises:
        CorpusError: (a ``ValueError``) naming ``where`` and the post, for a kind that is not a
            string (or is the reserved name ``other``), a kinded post without ``target_field``, or a
            target that is not a list of ``[start, end)`` word spans inside the post.
    """
    kinds, targets = [], []
    for s in gold_samples:
        kind = s.meta.get(kind_field)
        if kind is None:
            kinds.append(None)
            targets.append(set())
            continue
        if not isinstance(kind, str) or kind == OTHER:
            raise CorpusError(where, None, f"post {s.id!r} has {kind_field} {kind!r}; expected a kind name "
                              f"(a string other than {OTHER!r}, which names the entities outside every target)")
        if target_field not in s.meta:
            raise CorpusError(where, None, f"post {s.id!r} has a {kind_field!r} ({kind!r}) but no "
                              f"{target_field!r} field: list the [start, end) word spans of the name the kind is about")
        spans = s.meta[target_field]
        ok = isinstance(spans, list) and all(
            isinstance(sp, (list, tuple)) and len(sp) == 2 and all(isinstance(x, int) for x in sp)
            and 0 <= sp[0] < sp[1] <= len(s.tokens) for sp in spans)
        if not ok:
            raise CorpusError(where, None, f"post {s.id!r} has {target_field} {spans!r:.80}; expected a list of "
                              f"[start, end) word spans within its {len(s.tokens)} words, e.g. [[2, 4]]")
        kinds.append(kind)
        targets.append({(a, b) for a, b in spans})
    return kinds, targets


def score_by_kind(gold_samples, pred, kind_field="kind", target_field="target", where="gold") -> dict:
    """Overall P/R/F1 of ``pred``, and entity scores on each kind's target names.

    Every post of the demo has a ``kind`` (what decides the type of its ambiguous name:
    ``image_decided``, ``conflicting_image``, ...) and ``target``, the ``[start, end)``
    span(s) of that name. A gold or predicted span counts for kind ``K`` when it lies in a
    post of kind ``K`` and its ``(start, end)`` equals one of the post's target spans (the
    type must still match to be correct). ``other`` counts the spans that overlap no target
    span, in any post. As in :func:`score_with_subset`, a predicted fragment of a target
    belongs to no column but the overall one. Posts without ``kind_field`` have no target:
    their entities count in ``other``.

    Args:
        gold_samples: the gold posts, with the two fields in ``meta``.
        pred: one predicted tag sequence per post.
        kind_field, target_field: the names of the two fields.
        where: what to call the gold file in error messages.

    Returns ``{"f1", "precision", "recall", "kinds", "other"}``: ``kinds`` maps each kind,
    in sorted order (the same columns for every file that holds the same kinds, whatever the
    order of its posts), to ``{"f1", "precision", "recall", "gold", "posts"}`` (``gold``:
    gold target entities; ``posts``: posts of the kind); ``other`` is
    ``{"f1", "precision", "recall", "gold"}``. Nested, so that a kind never shares a key
    with a :func:`score_with_subset` column (the demo has both an ``image_decided`` kind and
    an ``image_decided`` span field).

    Raises:
        CorpusError: see :func:`post_kinds`.
    """
    from .metrics import score

    kinds, targets = post_kinds(gold_samples, kind_field, target_field, where)
    gold_tags = [s.tags for s in gold_samples]

    def scores(spans_filter=None) -> dict:
        t = score(gold_tags, pred, spans_filter=spans_filter).total
        return {"f1": t.f1, "precision": t.precision, "recall": t.recall, "gold": t.n_gold}

    def overlaps_none(i, span):
        _, start, end = span
        return all(end <= a or b <= start for a, b in targets[i])

    overall = scores()
    by_kind = {}
    for kind in sorted({k for k in kinds if k is not None}):
        on_target = scores(lambda i, sp, kind=kind: kinds[i] == kind and sp[1:] in targets[i])
        by_kind[kind] = {**on_target, "posts": kinds.count(kind)}
    return {"f1": overall["f1"], "precision": overall["precision"], "recall": overall["recall"],
            "kinds": by_kind, OTHER: scores(overlaps_none)}


def has_kinds(gold_samples, kind_field="kind") -> bool:
    """Whether any post of the gold split carries ``kind_field`` (then compare scores by kind)."""
    return any(kind_field in s.meta for s in gold_samples)


def compare_runs(runs, gold_path, subset_field=None, kind_field="kind", target_field="target"):
    """Score each run's test predictions against ``gold_path``. Returns one dict per run,
    ``run`` first, then the keys of :func:`score_with_subset` and, when the gold split's
    posts have a ``kind_field``, those of :func:`score_by_kind` (per-kind F1 on the target
    names and ``other_f1``)."""
    from data.corpus import read_corpus, read_predictions

    gold = read_corpus(gold_path, require_tags=True)
    by_kind = has_kinds(gold.samples, kind_field)
    rows = []
    for run in runs:
        pred_file = Path(run) / "test_predictions.conll"
        if not pred_file.exists():
            raise UserError(str(pred_file), "no such file", f"was {run} trained with data.test set?")
        pred, _ = read_predictions(pred_file)
        row = {"run": str(run), **score_with_subset(gold.samples, pred, subset_field, str(gold_path))}
        if by_kind:
            row.update(score_by_kind(gold.samples, pred, kind_field, target_field, str(gold_path)))
        rows.append(row)
    return rows


def run_names(runs: list[str]) -> list[str]:
    """The shortest trailing parts of the run paths that tell them apart:
    ``runs/a/text/seed13``, ``runs/a/rgcn/seed13`` -> ``text/seed13``, ``rgcn/seed13``."""
    parts = [Path(r).parts or (str(r),) for r in runs]
    for n in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-n:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [str(r) for r in runs]


def compare_table(rows: list[dict]) -> str:
    """The rows of :func:`compare_runs` as a table, F1/P/R in percent: the overall scores,
    the subset columns, then one F1 column per kind (headed by the kind's name) and
    ``other``; the gold counts follow on their own lines."""
    first = rows[0]
    flat = [k for k in first if k != "run" and not k.endswith("_gold") and not isinstance(first[k], dict)]
    kinds = list(first.get("kinds", {}))
    cols = [(k, lambda r, k=k: r[k]) for k in flat]
    if "kinds" in first:
        cols += [(k, lambda r, k=k: r["kinds"][k]["f1"]) for k in kinds]
        cols.append((OTHER, lambda r: r[OTHER]["f1"]))
    names = run_names([r["run"] for r in rows])
    name_w = max(len("run"), *(len(n) for n in names))
    lines = ["run".ljust(name_w) + "".join(f"  {k:>{max(8, len(k))}}" for k, _ in cols)]
    for r, name in zip(rows, names):
        lines.append(name.ljust(name_w)
                     + "".join(f"  {100 * get(r):>{max(8, len(k))}.2f}" for k, get in cols))
    counts = [f"{k[:-len('_gold')]} {first[k]}" for k in first if k.endswith("_gold")]
    if counts:
        lines.append("gold entities: " + ", ".join(counts))
    if "kinds" in first:
        per = ", ".join(f"{k} {v['gold']} ({v['posts']} posts)" for k, v in first["kinds"].items())
        lines.append(f"kind columns: F1 on each kind's target names; gold targets: {per or 'none'}; "
                     f"{OTHER}: the {first[OTHER]['gold']} gold entities that overlap no target")
    return "\n".join(lines)
