"""Entity-level scoring, exactly as the standard MNER scorer counts.

Spans are read by :func:`data.spans.get_spans`. Precision, recall and F1 are
micro-averaged over every span of the whole split, with an exact ``(type, start, end)`` match. This is the counting of the scorer that UMT and MAF
ship and of seqeval's default (conlleval) mode.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from data.spans import get_spans


@dataclass
class TypeScore:
    tp: int = 0
    n_pred: int = 0
    n_gold: int = 0

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_gold if self.n_gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {"precision": round(100 * self.precision, 2), "recall": round(100 * self.recall, 2),
                "f1": round(100 * self.f1, 2), "tp": self.tp, "pred": self.n_pred, "gold": self.n_gold}


@dataclass
class Scores:
    """Micro scores over a whole split, plus one :class:`TypeScore` per entity type."""

    total: TypeScore = field(default_factory=TypeScore)
    by_type: dict[str, TypeScore] = field(default_factory=dict)

    @property
    def f1(self) -> float:
        return self.total.f1

    def as_dict(self) -> dict:
        return {"micro": self.total.as_dict(),
                "by_type": {t: s.as_dict() for t, s in sorted(self.by_type.items())}}

    def table(self) -> str:
        rows = [("type", "P", "R", "F1", "pred", "gold")]
        for name, s in [*sorted(self.by_type.items()), ("micro", self.total)]:
            rows.append((name, f"{100 * s.precision:.2f}", f"{100 * s.recall:.2f}",
                         f"{100 * s.f1:.2f}", str(s.n_pred), str(s.n_gold)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        return "\n".join(lines)


def score(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]],
          spans_filter=None) -> Scores:
    """Score predicted tag sequences against gold, post by post, over the whole split.

    Args:
        gold, pred: one tag sequence per post; each pair must have equal length.
        spans_filter: optional ``f(post_index, span) -> bool`` restricting which gold and
            predicted spans are counted (e.g. only the image-decided entities).
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} posts but predictions have {len(pred)}")
    result = Scores()
    tp, n_pred, n_gold = Counter(), Counter(), Counter()
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"post {i}: gold has {len(g)} tags but the prediction has {len(p)}")
        gs, ps = set(get_spans(g)), set(get_spans(p))
        if spans_filter is not None:
            gs = {s for s in gs if spans_filter(i, s)}
            ps = {s for s in ps if spans_filter(i, s)}
        for s in gs:
            n_gold[s[0]] += 1
        for s in ps:
            n_pred[s[0]] += 1
        for s in gs & ps:
            tp[s[0]] += 1
    for t in sorted(set(n_gold) | set(n_pred)):
        result.by_type[t] = TypeScore(tp[t], n_pred[t], n_gold[t])
    result.total = TypeScore(sum(tp.values()), sum(n_pred.values()), sum(n_gold.values()))
    return result
