"""The explorer's web app: :func:`create_app` mounts the static files, the templates and the
routers of the page modules, and serves thumbnails from the image folders given only.

It binds 127.0.0.1 by default and has no authentication (:func:`serve` warns when told to
listen on another address).
"""
from __future__ import annotations

import importlib
import logging
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from data.errors import UserError
from data.web import BadInput, find_image, thumbnail

from .collection import Explorer
from .pagekit import base_of
from .render import templates

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PAGES = ("card", "triage", "ab", "charts", "atlas")
"""Page modules of this package whose ``router`` the app includes (those that exist)."""
THUMB_SIDE = 160
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def page_modules() -> list:
    """The page modules present (a missing one is left out of the app and of the nav's checks)."""
    out = []
    for name in PAGES:
        try:
            out.append(importlib.import_module(f"{__package__}.{name}"))
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{name}":
                raise
    return out


def create_app(explorer: Explorer, home: tuple[str, str] | None = None) -> FastAPI:
    """The app over ``explorer``; pages find it as ``request.app.state.explorer``.

    The app may be mounted under a path of another app (``outer.mount("/explore", app)``):
    its pages then link under that path. ``home``: ``(label, href)`` of the outer app's page,
    put first in the nav."""
    app = FastAPI(title="retrieval explorer", docs_url=None, redoc_url=None)
    app.state.explorer = explorer
    app.state.home = home
    app.state.templates = templates()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        status = getattr(exc, "status", None) or (404 if "none of the splits" in str(exc) else 400)
        if request.query_params.get("format") == "json" or "text/html" not in request.headers.get("accept", ""):
            return JSONResponse({"error": str(exc)}, status_code=status)
        return app.state.templates.TemplateResponse(request, "error.html", {"error": str(exc)}, status_code=status)

    @lru_cache(maxsize=4096)
    def thumb_bytes(image_id: str) -> bytes:
        return thumbnail(find_image(explorer.image_folders(), image_id), THUMB_SIDE)

    @app.get("/thumb/{image_id}")
    def thumb(image_id: str):
        """A JPEG thumbnail of an image of the image folders (by id; no path leaves them)."""
        if not explorer.image_folders():
            raise BadInput(404, f"image {image_id!r}", "the explorer was given no image folder",
                           "start it with --images DIR")
        return Response(thumb_bytes(image_id), media_type="image/jpeg",
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/health")
    def health():
        """What is loaded: posts per split, the graph settings, the runs."""
        return {"posts": {n: len(c) for n, c in explorer.splits.items()}, "settings": explorer.settings.as_dict(),
                "settings_b": explorer.settings_b.as_dict() if explorer.settings_b else None,
                "run": getattr(explorer.retagger, "name", None), "run_b": getattr(explorer.retagger_b, "name", None)}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon(request: Request):
        return RedirectResponse(base_of(request) + "/static/favicon.svg")

    for module in page_modules():
        app.include_router(module.router)
    return app


def serve(explorer: Explorer, host: str = "127.0.0.1", port: int = 8001) -> None:
    """Run the app with uvicorn (blocks until stopped)."""
    import uvicorn

    if host not in LOCAL_HOSTS:
        log.warning("the explorer listens on %s: it has no authentication, so anyone who can reach this "
                    "address can read the posts, the images and the gold labels", host)
    print(f"retrieval explorer on http://{'[' + host + ']' if ':' in host else host}:{port}/", flush=True)
    uvicorn.run(create_app(explorer), host=host, port=port, log_level="warning")
