"""What a person looks at in a terminal: a table of one post's neighbours (``retrieval show``).
The HTML views (``retrieval report``, the explorer's cards) are :mod:`retrieval.explore`'s."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .agreement import entity_types

RELATION_TITLES = {"inter": "inter-modal: images matching the sentence",
                   "intra": "intra-modal: images similar to the post's image",
                   "tags": "object type: images sharing object tags"}


@dataclass
class PostView:
    """What the views need to know about a post (or a neighbour's post)."""

    id: str
    split: str | None
    text: str
    types: frozenset | None
    image: str | None
    tags: list
    kind: str | None = None   # what decides the post's ambiguous name (the demo's "kind" field)


def short_tag(label: str) -> str:
    """ImageNet labels are comma lists of synonyms: keep the first."""
    return label.split(",")[0].strip()


def tag_text(tags: Sequence, n: int = 3) -> str:
    return ", ".join(f"{short_tag(l)} {s:.2f}" for l, s in list(tags)[:n])


def labels_text(view: PostView | None, show: bool) -> str:
    if view is None or not show or view.types is None:
        return "-"
    return ",".join(sorted(view.types)) or "none"


# --------------------------------------------------------------------------- terminal
def format_table(rows: Sequence[Sequence], header: Sequence[str]) -> str:
    """A plain fixed-width table."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def show_text(post: PostView, relations: dict, views: dict, label_splits: set, width: int = 60) -> str:
    """The ``show`` view: the post, its image, then per relation a table of neighbours.

    ``relations`` maps a relation name to ``[(neighbour_id, score), ...]``; ``views`` maps
    ids to :class:`PostView`; entity labels are shown only for neighbours of ``label_splits``.
    """
    out = [f"post {post.id} ({post.split})" + (f", kind {post.kind}" if post.kind else ""), f"  text:   {post.text}",
           f"  labels: {labels_text(post, True)}",
           f"  image:  {post.image or 'none (no image: empty intra-modal and object-type graphs)'}"]
    if post.tags:
        out.append(f"  tags:   {tag_text(post.tags, 5)}")
    for rel, nbs in relations.items():
        out.append("")
        out.append(f"{rel}  ({RELATION_TITLES.get(rel, rel)}), {len(nbs)} neighbour(s)")
        rows = []
        for rank, (nid, score) in enumerate(nbs, 1):
            v = views.get(nid)
            rows.append([rank, nid, f"{score:.3f}", v.split if v else "-", tag_text(v.tags if v else [], 2),
                         labels_text(v, v is not None and v.split in label_splits),
                         (v.text[:width] + ("..." if len(v.text) > width else "")) if v else ""])
        out.append(format_table(rows, ["#", "neighbour", "score", "split", "tags", "labels", "post text"])
                   if rows else "  (none)")
    return "\n".join(out)


__all__ = ["PostView", "entity_types", "format_table", "show_text"]
