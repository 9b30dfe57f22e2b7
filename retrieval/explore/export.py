"""Any card or list page as one self-contained HTML file, for a paper's case study.

The file needs no server and fetches nothing: the explorer's CSS is inlined, every thumbnail
(``/thumb/<id>``) becomes a ``data:image/jpeg;base64`` URI, scripts that load a file are
dropped (inline ones are kept), and links into the explorer lose their ``href`` (the page
they pointed at is not in the file) but keep it as ``data-href``.

- :func:`export_card` / :func:`export_cards`: one or several cards (``retrieval report``
  writes the latter);
- :func:`self_contained`: the same treatment for any page the explorer rendered (the list
  pages export through it).
"""
from __future__ import annotations

import base64
import html as html_lib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import unquote

from data.web import BadInput, thumbnail

from .render import explorer_templates, render_card

HERE = Path(__file__).parent
THUMB_SIDE = 160

_STYLESHEET = re.compile(r'<link\b[^>]*rel="stylesheet"[^>]*>\s*', re.I)
_ICON = re.compile(r'<link\b[^>]*rel="icon"[^>]*>\s*', re.I)
_SCRIPT_SRC = re.compile(r'<script\b[^>]*\bsrc=[^>]*>\s*</script>\s*', re.I)
_THUMB = re.compile(r'''(src|href)=(["'])(?:/[^"']*?)?/thumb/([^"']+)\2''')     # standalone or mounted
_LOCAL_HREF = re.compile(r'''\s(href|action)=(["'])(/[^"']*)\2''')
_FORM = re.compile(r'<form\b.*?</form>', re.I | re.S)


def inline_css() -> str:
    """The explorer's stylesheets (``static/*.css``; explore.css first), joined."""
    files = sorted((HERE / "static").glob("*.css"), key=lambda p: (p.name != "explore.css", p.name))
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


def thumb_uri_maker(explorer, side: int = THUMB_SIDE) -> Callable[[str], str]:
    """``image_id -> data URI`` of its thumbnail (``data:,``, nothing, when the image is not
    found: the page still renders, with the image's alt text)."""
    @lru_cache(maxsize=None)
    def uri(image_id: str) -> str:
        path = explorer.image_path(image_id)
        if path is None:
            return "data:,"
        try:
            data = thumbnail(path, side)
        except BadInput:
            return "data:,"
        return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
    return uri


def self_contained(page: str, explorer) -> str:
    """``page`` (HTML the explorer rendered) made into a file that needs nothing else."""
    uri = thumb_uri_maker(explorer)
    css = inline_css()
    page = _ICON.sub("", page)
    if "<style>" not in page:
        page = _STYLESHEET.sub("", page, count=0)
        page = page.replace("</head>", f"<style>{css}</style>\n</head>", 1)
    else:
        page = _STYLESHEET.sub("", page)
    page = _SCRIPT_SRC.sub("", page)
    page = _FORM.sub("", page)
    page = _THUMB.sub(lambda m: f'{m.group(1)}="{uri(unquote(html_lib.unescape(m.group(3))))}"', page)
    page = _LOCAL_HREF.sub(lambda m: f' data-{m.group(1)}={m.group(2)}{m.group(3)}{m.group(2)}', page)
    return page


def export_cards(explorer, cards: Sequence[dict], title: str = "Retrieval report", meta: str = "") -> str:
    """Several cards (:func:`retrieval.explore.card.card_data`) as one self-contained page."""
    uri = thumb_uri_maker(explorer)
    page = explorer_templates(None).get_template("cards.html").render(
        cards=cards, title=title, meta=meta, exported=True, inline_css=inline_css(), thumb=uri,
        link=lambda pid: None)
    return self_contained(page, explorer)


def export_card(explorer, card: dict) -> str:
    """One card as a self-contained page."""
    page = render_card(None, explorer, card, exported=True, thumb=thumb_uri_maker(explorer), inline_css=inline_css())
    return self_contained(page, explorer)


def write_page(page: str, out: str | os.PathLike) -> Path:
    """Write ``page`` to ``out`` through a temporary sibling (never half a file)."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
