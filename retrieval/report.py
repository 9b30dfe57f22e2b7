"""What a person looks at: a terminal table of one post's neighbours, and a self-contained
HTML page with thumbnails (base64 JPEG data URIs: the page needs no other file)."""
from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from typing import Sequence

from data.spans import get_spans

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


# --------------------------------------------------------------------------- HTML
def thumbnail_uri(path: str | None, size: int = 160) -> str | None:
    """A ``data:image/jpeg;base64,...`` URI of a thumbnail, or ``None`` when unreadable."""
    if not path or not os.path.isfile(path):
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((size, size))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=80)
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


CSS = """
body{font-family:system-ui,sans-serif;margin:16px;background:#fafafa;color:#222}
h1{font-size:20px} .post{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px;margin:14px 0}
.head{display:flex;gap:14px;align-items:flex-start} .text{font-size:15px;margin:4px 0}
.ent{background:#ffe9a8;border-radius:3px;padding:0 2px} .ent small{color:#a05a00;font-size:10px}
.rel{margin-top:10px} .rel h3{font-size:13px;margin:6px 0;color:#555}
.cards{display:flex;gap:8px;flex-wrap:wrap} .card{width:168px;font-size:11px;border:1px solid #eee;padding:4px;border-radius:4px}
.card img,.self img{width:160px;height:160px;object-fit:contain;background:#eee;display:block}
.noimg{width:160px;height:160px;background:#eee;color:#888;display:flex;align-items:center;justify-content:center}
.score{font-weight:bold} .kind{font-weight:bold;color:#333} .tags{color:#555} .labels{color:#a05a00} .meta{color:#777;font-size:12px}
"""


def _img(uri: str | None, alt: str) -> str:
    if uri is None:
        return f'<div class="noimg">{html.escape(alt)}</div>'
    return f'<img class="thumb" data-thumb="1" src="{uri}" alt="{html.escape(alt)}">'


def _marked_text(tokens: Sequence[str], tags: Sequence[str] | None) -> str:
    if not tags:
        return html.escape(" ".join(tokens))
    starts = {s: (t, e) for t, s, e in get_spans(tags)}
    out, i = [], 0
    while i < len(tokens):
        if i in starts:
            t, e = starts[i]
            out.append(f'<span class="ent">{html.escape(" ".join(tokens[i:e]))} <small>{t}</small></span>')
            i = e
        else:
            out.append(html.escape(tokens[i]))
            i += 1
    return " ".join(out)


def report_html(posts: Sequence[dict], title: str = "Retrieval report", meta: str = "") -> str:
    """A self-contained page. Each post dict: ``id, split, kind?, tokens, tags, image, own_tags,
    relations: {name: [{id, score, image, tags, labels, split, text}]}``."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
             f"<div class='meta'>{html.escape(meta)}</div>"]
    for p in posts:
        parts.append(f"<div class='post' id='post-{html.escape(p['id'])}'><div class='head'>"
                     f"<div class='self'>{_img(p['image_uri'], 'no image')}</div><div>"
                     f"<div class='meta'>post <b>{html.escape(p['id'])}</b> ({html.escape(str(p['split']))})"
                     + (f" &middot; kind <span class='kind'>{html.escape(p['kind'])}</span>" if p.get("kind") else "")
                     + "</div>"
                     f"<div class='text'>{_marked_text(p['tokens'], p['tags'])}</div>"
                     f"<div class='tags'>tags: {html.escape(tag_text(p['own_tags'], 5)) or '-'}</div>"
                     "</div></div>")
        for rel, nbs in p["relations"].items():
            parts.append(f"<div class='rel'><h3>{html.escape(RELATION_TITLES.get(rel, rel))} ({len(nbs)})</h3>"
                         "<div class='cards'>")
            if not nbs:
                why = " (the post has no image)" if rel != "inter" and p["image_uri"] is None and not p["has_image"] \
                    else ""
                parts.append(f"<div class='meta'>no neighbours{why}</div>")
            for n in nbs:
                parts.append(f"<div class='card'>{_img(n['image_uri'], 'image not found')}"
                             f"<div><span class='score'>{n['score']:.3f}</span> {html.escape(n['id'])} "
                             f"<span class='meta'>{html.escape(str(n['split'] or '-'))}</span></div>"
                             f"<div class='tags'>{html.escape(tag_text(n['tags'], 3))}</div>"
                             f"<div class='labels'>{html.escape(n['labels'])}</div>"
                             f"<div class='meta'>{html.escape(n['text'][:80])}</div></div>")
            parts.append("</div></div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "".join(parts)


__all__ = ["PostView", "entity_types", "format_table", "report_html", "show_text", "thumbnail_uri"]
