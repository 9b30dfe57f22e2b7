"""Entity spans of a BIO tag sequence, the rule both scoring and retrieval use.

A span opens at ``B-X``, at ``I-X`` after ``O`` (or at the start), and at a change of type;
it closes at ``O``, at the next ``B-``, at a change of type or at the end of the post. This is
the standard MNER scorer's reading (UMT, MAF) and seqeval's default (conlleval) mode.
"""
from __future__ import annotations

from typing import Sequence

Span = tuple[str, int, int]  # (type, start, end) with end exclusive


def get_spans(tags: Sequence[str]) -> list[Span]:
    """Entity spans of one tag sequence."""
    spans: list[Span] = []
    etype, start = None, 0
    for i, tag in enumerate(tags):
        if tag == "O":
            if etype is not None:
                spans.append((etype, start, i))
                etype = None
            continue
        prefix, _, t = tag.partition("-")
        if etype is None:
            etype, start = t, i
        elif t != etype or prefix == "B":
            spans.append((etype, start, i))
            etype, start = t, i
    if etype is not None:
        spans.append((etype, start, len(tags)))
    return spans
