"""A post's evidence card, ``/post/<id>``: why each neighbour was retrieved, whether it is
any good, and (given a run) whether it changed the tags.

:func:`card_data` computes what the card shows (the photo, the text with gold and predicted
spans, per relation its ``k`` neighbours with score, margin to the threshold, kept or not,
their posts and gold types with the shared ones marked, near-duplicate and exact-search
flags); :func:`counterfactuals` (:mod:`retrieval.explore.counterfactual`) adds the re-tagging
with ``?cf=1``. The routes only render them (``?format=json`` answers the dict).
"""
from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse

from data.errors import UserError
from data.spans import get_spans

from ..report import RELATION_TITLES, short_tag
from .collection import index_searched, is_exact_index, search_space
from .counterfactual import cache_path, counterfactuals, predicted_spans
from .export import export_card
from .pagekit import base_of
from .render import post_link, render_card

router = APIRouter()

HOME_LIST = 12
"""Posts of each split linked from the home page."""


def marked_tokens(tokens, spans) -> list[dict]:
    """``tokens`` grouped into pieces ``{text, type}`` (``type`` ``None`` outside a span)."""
    starts = {s: (t, e) for t, s, e in spans or []}
    out, i = [], 0
    while i < len(tokens):
        if i in starts:
            t, e = starts[i]
            out.append({"text": " ".join(tokens[i:e]), "type": t})
            i = e
        else:
            out.append({"text": tokens[i], "type": None})
            i += 1
    return out


def card_data(explorer, post_id: str, which: str = "a", with_counterfactuals: bool = False) -> dict:
    """Everything the card of ``post_id`` shows under graph setting ``which`` (``a`` or ``b``).

    ``counterfactuals`` is the re-tagging (:func:`retrieval.explore.counterfactual.counterfactuals`)
    when ``with_counterfactuals`` or when it is already cached, else ``None``."""
    s = explorer.sample(post_id)
    graphs, _, settings, artifact = explorer.pick(which)
    gold = get_spans(s.tags) if s.tags else []
    pred = predicted_spans(explorer, post_id, which)
    image_id = explorer.image_key(post_id, which)
    retagger = explorer.retagger if which == "a" else explorer.retagger_b
    cf = None
    if retagger is not None:
        cached = cache_path(explorer, retagger, post_id, which, 0)
        if with_counterfactuals or (cached is not None and cached.is_file()):
            cf = counterfactuals(explorer, post_id, which)
            for r in cf["ranking"]:
                r["posts"] = explorer.owners(r["image_id"], which)
    relations = {}
    for rel in graphs.relations:
        relations[rel] = {"title": RELATION_TITLES.get(rel, rel), "neighbours": explorer.neighbour_rows(post_id, rel,
                                                                                                      which),
                          "space": search_space(graphs, rel), "exact_checked": index_searched(graphs, rel)}
    return {
        "id": post_id, "split": explorer.split_of[post_id], "kind": s.meta.get("kind"), "which": which,
        "tokens": list(s.tokens), "gold_tags": list(s.tags) if s.tags else None,
        "gold": [list(x) for x in gold], "predicted": None if pred is None else [list(x) for x in pred],
        "gold_text": marked_tokens(s.tokens, gold), "predicted_text": None if pred is None else marked_tokens(s.tokens,
                                                                                                          pred),
        "types": sorted(explorer.types(post_id)), "image_id": image_id, "has_image": image_id is not None,
        "object_tags": [[short_tag(t), float(sc)] for t, sc in artifact.tags.get(image_id, [])[:5]] if image_id else [],
        "settings": settings.as_dict(), "exact_index": is_exact_index(artifact),
        "index": str(getattr(artifact, "path", "")), "run": getattr(retagger, "name", None),
        "relations": relations, "counterfactuals": cf,
    }


def neighbour_images(card: dict) -> list[str]:
    """The image ids a card shows (its own photo first)."""
    ids = [card["image_id"]] if card["image_id"] else []
    ids += [n["image_id"] for r in card["relations"].values() for n in r["neighbours"]]
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------- routes
@router.get("/")
def home(request: Request):
    ex = request.app.state.explorer
    lists = {name: [s.id for s in c][:HOME_LIST] for name, c in ex.splits.items()}
    data = {"splits": {n: len(c) for n, c in ex.splits.items()}, "examples": lists,
            "settings": ex.settings.as_dict(), "run": getattr(ex.retagger, "name", None)}
    if request.query_params.get("format") == "json":
        return JSONResponse(data)
    base = base_of(request)
    return request.app.state.templates.TemplateResponse(request, "home.html", {
        **data, "link": lambda pid: post_link(pid, base=base)})


@router.get("/search")
def search(request: Request, id: str = ""):
    ex = request.app.state.explorer
    post_id = id.strip()
    if not post_id:
        return RedirectResponse(base_of(request) + "/", status_code=303)
    ex.sample(post_id)                      # unknown: the 404 page
    return RedirectResponse(post_link(post_id, base=base_of(request)), status_code=303)


@router.get("/post/{post_id:path}")
def card(request: Request, post_id: str, which: str = "a", cf: int = 0):
    """The card; ``?which=b`` under setting B; ``?cf=1`` runs the counterfactuals;
    ``?format=json`` answers the data; ``?format=html`` the exported page."""
    ex = request.app.state.explorer
    if which not in ("a", "b"):
        raise UserError("which", f"{which!r} is neither a nor b", "use ?which=a or ?which=b")
    data = card_data(ex, post_id, which, with_counterfactuals=bool(cf))
    fmt = request.query_params.get("format")
    if fmt == "json":
        return JSONResponse(data)
    if fmt == "html":
        from fastapi.responses import HTMLResponse

        return HTMLResponse(export_card(ex, data), headers={
            "Content-Disposition": f'attachment; filename="post-{quote(post_id, safe="")}.html"'})
    return render_card(request, ex, data)
