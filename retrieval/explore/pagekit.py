"""What the list pages (triage, A/B, agreement, map) share: answering HTML or JSON from one
dict, links that keep a page's query parameters, and turning a bad parameter into a
:class:`data.errors.UserError` (a 400 page, or ``{"error": ...}`` as JSON)."""
from __future__ import annotations

import math
from urllib.parse import urlencode

import numpy as np
from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse

from data.errors import UserError

from .export import self_contained
from .render import base_of  # noqa: F401  (the pages import it from here)


class BadParameter(UserError):
    """A query parameter a page cannot use."""

    status = 400


def plain(x):
    """``x`` with numpy scalars made Python ones and NaN made ``None`` (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return plain(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def respond(request: Request, template: str, data: dict, **extra):
    """``data`` as JSON with ``?format=json``; with ``?format=html`` the page as one
    self-contained file to download (:func:`retrieval.explore.export.self_contained`: styles
    inlined, thumbnails as data URIs, no script, no form); else ``template`` rendered with
    ``data`` (as ``data`` and its keys) and ``extra``."""
    fmt = request.query_params.get("format")
    if fmt == "json":
        return JSONResponse(plain(data))
    context = {**data, "data": data, **extra}
    if fmt == "html":
        page = request.app.state.templates.get_template(template).render(
            {**context, "request": request, "exported": True})
        name = template.rsplit(".", 1)[0]
        return HTMLResponse(self_contained(page, request.app.state.explorer),
                            headers={"Content-Disposition": f'attachment; filename="{name}.html"'})
    return request.app.state.templates.TemplateResponse(request, template, context)


def linker(path: str, params: dict):
    """``link(**changes)``: ``path`` with ``params`` updated by ``changes`` (empty values left out)."""
    def link(**changes) -> str:
        q = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
        return path + ("?" + urlencode(q) if q else "")
    return link


def checked(fn, *args, what: str = "parameter", **kw):
    """``fn(*args, **kw)``, a ``KeyError``/``ValueError`` (an unknown list, column, relation ...)
    raised as :class:`BadParameter`."""
    try:
        return fn(*args, **kw)
    except (KeyError, ValueError) as e:
        msg = e.args[0] if e.args else str(e)
        raise BadParameter(what, str(msg)) from None
