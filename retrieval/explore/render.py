"""The explorer's templates, the path it is mounted under and a card's HTML: what the live
pages (:mod:`retrieval.explore.app`, :mod:`retrieval.explore.card`,
:mod:`retrieval.explore.pagekit`) and the exported files (:mod:`retrieval.explore.export`) all
render with. It imports none of them, so none of them needs to import another lazily to draw
a page."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
NAV = (("/", "Card search"), ("/triage", "Triage"), ("/ab", "A/B"), ("/agreement", "Agreement"), ("/map", "Map"))


def base_of(request: Request | None) -> str:
    """The path the app is mounted under (``""`` standalone; e.g. ``"/explore"`` inside the
    tagging service): every link, form action and asset URL of a page starts with it."""
    if request is None:
        return ""
    return (request.scope.get("root_path") or "").rstrip("/")


def templates() -> Jinja2Templates:
    """The pages' templates; a page rendered for a request sees ``base`` (:func:`base_of`) and
    ``home`` (the ``(label, href)`` of the app this one is mounted in, or ``None``)."""
    def context(request) -> dict:
        return {"base": base_of(request), "home": getattr(request.app.state, "home", None)}

    t = Jinja2Templates(directory=str(HERE / "templates"), context_processors=[context])
    t.env.globals["nav"] = NAV
    return t


def explorer_templates(request: Request | None) -> Jinja2Templates:
    """The app's templates given a request, else a fresh set (an exported page)."""
    if request is not None:
        return request.app.state.templates
    return templates()


def post_link(post_id: str, which: str = "a", base: str = "") -> str:
    """The card's URL; ``base``: the path the app is mounted under (:func:`base_of`)."""
    return base + "/post/" + quote(post_id, safe="") + ("?which=b" if which == "b" else "")


def render_card(request: Request | None, explorer, card: dict, exported: bool = False, thumb=None,
                inline_css: str | None = None):
    """The card's HTML (a ``TemplateResponse`` given a request; a string when ``exported``)."""
    base = base_of(request)
    ctx = {"card": card, "exported": exported, "inline_css": inline_css,
           "thumb": thumb or (lambda i: base + "/thumb/" + quote(i, safe="")),
           "link": (lambda pid: None) if exported else (lambda pid: post_link(pid, card["which"], base)),
           "title": f"post {card['id']}"}
    templates = explorer_templates(request)
    if request is None:
        return templates.get_template("card.html").render(ctx)
    return templates.TemplateResponse(request, "card.html", ctx)
