"""The web app: one FastAPI object built by :func:`create_app` from :class:`Settings`.

Routes (every asset is served by the app itself; nothing is fetched from another host):

- ``GET /``: the page: paste a post, drop a photo; ``POST /`` (the page's form) renders the
  post with its entities highlighted by type, their confidence, and the evidence the head used.
- ``POST /tag``: one post, as JSON ``{"text": ..., "image": PATH}`` (a path inside ``--images``)
  or as a multipart form with fields ``text`` and ``image`` (an uploaded photo).
- ``POST /tag/batch``: a JSON list of such posts (or ``{"posts": [...]}``).
- ``GET /thumb/{image_id}``: a thumbnail of a neighbour image, from the runs' image folders only.
- ``GET /health``, ``GET /openapi.json``, ``GET /docs`` (the OpenAPI schema rendered here).
- ``/explore/...``: the retrieval explorer (:mod:`retrieval.explore`), when the app is given one
  (``python -m rgcn serve --index IDX --data ...``); its nav links back to ``/``.

Every bad input is answered with a 4xx whose ``detail`` says what to change (on the page:
the page with the message); the next request is served as usual.
"""
from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from data.errors import UserError

from .batcher import Busy, MicroBatcher
from .worker import ModelProcess, ModelProcessDied
from .cli import EXPLORER_PATH
from .images import (MAX_PIXELS, BadInput, check_image_file, check_size, check_upload, find_image,
                     resolve_inside, run_image_folders, thumbnail)

HERE = Path(__file__).parent
EXAMPLE = "Look at Zelby today in Paris"


@dataclass
class Settings:
    """What ``python -m rgcn serve`` was told.

    Args:
        runs: run folders (several: an ensemble).
        images: folder that JSON requests' ``image`` paths are read from (default: none allowed).
        max_upload_mb: largest uploaded photo, in MB (default 20).
        max_chars: longest post, in characters (default 2,000).
        max_batch: most posts the model tags at once (default 32).
        batch_wait_ms: longest a post waits for others to join its batch (default 5).
        max_posts: most posts in one ``/tag/batch`` request (default 256).
        max_pixels: most pixels an image may declare (default 40 million).
        device, view, head_options, constrained: as for ``load_tagger``.
        model_process: load and run the model in a process of its own (default; see
            :mod:`rgcn.serve.worker`), else on a thread of this one.
        threads: CPU threads of the model (``None``: torch's default).
    """

    runs: list[str] = field(default_factory=list)
    images: str | None = None
    max_upload_mb: float = 20.0
    max_chars: int = 2000
    max_batch: int = 32
    batch_wait_ms: float = 5.0
    max_posts: int = 256
    max_pixels: int = MAX_PIXELS
    device: str = "auto"
    view: str | None = None
    head_options: dict | None = None
    constrained: bool | None = None
    model_process: bool = True
    threads: int | None = None

    def __post_init__(self):
        if self.max_upload_mb <= 0:
            raise UserError("--max-upload-mb", f"must be positive, got {self.max_upload_mb}", "give e.g. 20")
        for name in ("max_chars", "max_batch", "max_posts", "max_pixels"):
            if getattr(self, name) < 1:
                raise UserError(name, f"must be at least 1, got {getattr(self, name)}", "give a positive number")
        if self.batch_wait_ms < 0:
            raise UserError("--batch-wait-ms", f"must be >= 0, got {self.batch_wait_ms}", "give e.g. 5")
        if self.images is not None and not Path(self.images).is_dir():
            raise UserError(f"--images {self.images}", "not a folder", "give the folder the posts' photos are in")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    @property
    def max_body_bytes(self) -> int:
        """A request body: one photo, or a batch of posts, with room for the form's other fields."""
        return self.max_upload_bytes + 8 * self.max_chars * min(self.max_posts, 64) + 65_536


# --------------------------------------------------------------------------- request and response models
class PostIn(BaseModel):
    """One post to tag. ``image``: a path relative to the server's ``--images`` folder."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": EXAMPLE, "image": "cat.jpg"}]})
    text: str = Field(description="the post's text")
    image: str | None = Field(None, description="a photo inside the server's --images folder (relative path)")
    id: str | None = Field(None, description="echoed back in the result")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    posts: list[PostIn]


class EntityOut(BaseModel):
    text: str
    type: str
    start: int = Field(description="character offset into the post's text")
    end: int = Field(description="exclusive; text[start:end] is the entity")
    token_start: int | None = None
    token_end: int | None = None
    confidence: float = Field(description="the CRF's marginal probability of this labelled span")


class TagOut(BaseModel):
    id: Any = None
    text: str
    entities: list[EntityOut]
    image: Literal["used", "embedded", "none", "unreadable"] = Field(
        description="used: found in the run's index; embedded: embedded now; none: no image given; "
                    "unreadable: given but not decodable (tagged as image-less)")
    tokens: list[dict] = []
    tags: list[str] = []
    evidence: Any = Field(None, description="what the head read (per run for an ensemble)")
    timings: dict = Field(description="queue_ms, model_ms, batch_size (posts in the model batch), total_ms")


class BatchOut(BaseModel):
    results: list[TagOut]
    timings: dict


class ErrorOut(BaseModel):
    detail: str = Field(description="what was wrong and what to change")


ERRORS = {s: {"model": ErrorOut} for s in (400, 403, 404, 413, 415, 422, 503)}


# --------------------------------------------------------------------------- request body limit
class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused (413) once read past
    the limit (or at once when its Content-Length says so); the rest is read and dropped,
    so the client gets the answer rather than a reset connection."""

    DRAIN_CAP = 1 << 30

    def __init__(self, app, max_bytes: int, upload_bytes: int):
        self.app, self.max_bytes, self.upload_bytes = app, max_bytes, upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        try:
            declared = int(declared) if declared is not None else None
        except ValueError:
            declared = None
        seen = 0

        async def drain_and_refuse(n: int):
            more, total = True, n
            while more and total < self.DRAIN_CAP:
                msg = await receive()
                more = msg.get("more_body", False) and msg["type"] == "http.request"
                total += len(msg.get("body", b""))
            check_size(max(total, self.upload_bytes + 1), self.upload_bytes, "the request body")

        async def limited():
            nonlocal seen
            if declared is not None and declared > self.max_bytes:
                await drain_and_refuse(0)
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    await drain_and_refuse(seen) if msg.get("more_body") else check_size(
                        max(seen, self.upload_bytes + 1), self.upload_bytes, "the request body")
            return msg

        await self.app(scope, limited, send)


# --------------------------------------------------------------------------- the app
def create_app(settings: Settings, tagger=None, explorer=None) -> FastAPI:
    """The app for ``settings``; ``tagger`` (an object with ``tag_many``, ``heads`` and
    ``info()``) defaults to the runs of ``settings.runs`` loaded once by :func:`load_model` (in
    a process of its own unless ``settings.model_process`` is false), and stopped with the app.
    ``explorer``: a :class:`retrieval.explore.Explorer` whose app is mounted under
    :data:`EXPLORER_PATH` (``None``: no explorer)."""
    owned = tagger is None
    if owned:
        tagger = load_model(settings)
    batcher = MicroBatcher(tagger.tag_many, settings.max_batch, settings.batch_wait_ms)
    checks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checks")
    reads_photos = bool(getattr(tagger, "reads_photos", True))
    folders = run_image_folders(settings.runs)
    if settings.images:
        folders.append(Path(settings.images).resolve())

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        try:
            yield
        finally:
            await batcher.stop()
            checks.shutdown(wait=True, cancel_futures=True)
            if owned and hasattr(tagger, "close"):
                tagger.close()

    app = FastAPI(title="rgcn tagger", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Multimodal named entity recognition on social-media posts: POST a post (and "
                              "a photo), get its entities with their type, confidence and character offsets.")
    app.state.settings, app.state.tagger, app.state.batcher, app.state.folders = settings, tagger, batcher, folders
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.explorer = explorer
    templates.env.globals["explorer_path"] = EXPLORER_PATH if explorer is not None else None
    if explorer is not None:
        from retrieval.explore.app import create_app as explorer_app

        app.mount(EXPLORER_PATH, explorer_app(explorer, home=("Tagging", "/")), name="explore")

    def wants_page(request: Request) -> bool:
        return request.url.path == "/"

    def page(request: Request, status: int = 200, **ctx) -> HTMLResponse:
        ctx.setdefault("text", "")
        return templates.TemplateResponse(request, "index.html", {
            "heads": list(getattr(tagger, "heads", [])), "max_upload_mb": settings.max_upload_mb,
            "max_chars": settings.max_chars, "example": EXAMPLE, **ctx}, status_code=status)

    def refuse(request: Request, status: int, message: str):
        if wants_page(request):
            return page(request, status, error=message)
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, e: BadInput):
        return refuse(request, e.status, e.message)

    @app.exception_handler(UserError)
    async def user_error(request: Request, e: UserError):
        return refuse(request, 422, e.message)

    @app.exception_handler(ModelProcessDied)
    async def model_died(request: Request, e: ModelProcessDied):
        return refuse(request, 503, str(e))

    @app.exception_handler(Busy)
    async def busy(request: Request, e: Busy):
        return refuse(request, 503, f"the service is busy: {e}; retry in a moment")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError):
        return refuse(request, *validation_message(e.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return refuse(request, e.status_code, str(e.detail))

    # ------------------------------------------------------------------ parsing
    def check_text(text, where: str = "text") -> str:
        if not isinstance(text, str):
            raise BadInput(422, where, f"expected a string, got {type(text).__name__}", "send the post's text")
        if not text.strip():
            raise BadInput(422, where, "the post is empty", "send the post's text (at least one word)")
        if len(text) > settings.max_chars:
            raise BadInput(413, where, f"the post has {len(text):,} characters, over the limit of "
                           f"{settings.max_chars:,}", "send one post at a time (the limit is the server's "
                           "--max-chars)")
        return text

    def image_path(name: str | None, where: str = "image"):
        if name is None or name == "":
            return None
        if not settings.images:
            raise BadInput(422, where, "the server was started without --images, so it reads no image paths",
                           "upload the photo (multipart field 'image') or restart the server with --images DIR")
        path = resolve_inside(settings.images, name, where)
        if reads_photos:                          # else never opened: the run ignores photos
            check_image_file(path, settings.max_upload_bytes, settings.max_pixels, f"{where} {name!r}")
        return str(path)

    def post_of(item: PostIn, where: str = "") -> dict:
        post = {"text": check_text(item.text, f"{where}text"), "image": image_path(item.image, f"{where}image")}
        if item.id is not None:
            post["id"] = item.id
        return post

    async def read_json(request: Request):
        body = await request.body()
        if not body.strip():
            raise BadInput(400, "the request body", "it is empty",
                           'send a JSON object such as {"text": "%s"}' % EXAMPLE)
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadInput(400, "the request body", f"it is not valid JSON ({e})",
                           'send a JSON object such as {"text": "%s", "image": "photo.jpg"}' % EXAMPLE) from None

    async def read_form(request: Request) -> dict:
        """The form's fields, checked for their names (the photo is checked by :func:`form_post`)."""
        try:
            form = await request.form(max_files=1, max_fields=8, max_part_size=settings.max_body_bytes)
        except StarletteHTTPException as e:
            raise BadInput(400, "the form", str(e.detail), "send the fields 'text' and, optionally, one file "
                           "'image'") from None
        fields = set(form.keys())
        unknown = sorted(fields - {"text", "image", "id"})
        if unknown:
            raise BadInput(422, f"form field {unknown[0]!r}", "this service reads only 'text', 'image' and 'id'",
                           "rename or drop it")
        if "text" not in form:
            raise BadInput(422, "text", "the form has no field 'text'", "add a field 'text' with the post")
        text = form["text"]
        if isinstance(text, UploadFile):
            raise BadInput(422, "text", "it is a file", "send the post's text as a plain form field")
        fields = {"text": check_text(text), "id": str(form["id"]) if form.get("id") else None}
        upload = form.get("image")
        if isinstance(upload, UploadFile) and (upload.filename or upload.size):
            fields["upload"] = await upload.read()
            fields["name"] = f"the uploaded image {upload.filename!r}" if upload.filename else "the uploaded image"
        elif isinstance(upload, str) and upload:
            fields["path"] = upload
        return fields

    def form_post(fields: dict) -> dict:
        """The post of a form read by :func:`read_form`, its photo checked (decoded once: a
        truncated upload fails here)."""
        post = {"text": fields["text"], "image": None}
        if "upload" in fields:
            check_upload(fields["upload"], settings.max_upload_bytes, settings.max_pixels, fields["name"])
            post["image"] = fields["upload"]
        elif "path" in fields:
            post["image"] = image_path(fields["path"])
        if fields["id"]:
            post["id"] = fields["id"]
        return post

    async def form_post_off_loop(fields: dict) -> dict:
        """:func:`form_post`, on the checking thread when it decodes an upload's pixels (the
        event loop keeps serving meanwhile); a path's header is read in place."""
        if "upload" not in fields:
            return form_post(fields)
        return await asyncio.get_running_loop().run_in_executor(checks, form_post, fields)

    async def tag(post: dict, received: float) -> dict:
        result, timing = await batcher.submit(post)
        out = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        out["timings"] = {**timing.as_dict(), "total_ms": round(1000 * (time.perf_counter() - received), 2)}
        return out

    # ------------------------------------------------------------------ routes
    post_schema = PostIn.model_json_schema()
    form_schema = {"type": "object", "required": ["text"], "properties": {
        "text": {"type": "string", "description": "the post's text"},
        "image": {"type": "string", "format": "binary", "description": "a photo (JPEG, PNG, WebP, GIF, BMP)"},
        "id": {"type": "string"}}}

    @app.post("/tag", response_model=None, responses={200: {"model": TagOut}, **ERRORS}, openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": post_schema},
                                                      "multipart/form-data": {"schema": form_schema}}}})
    async def tag_post(request: Request):
        """Tag one post: JSON ``{"text", "image": PATH}`` or a multipart form (``text``, ``image`` file)."""
        received = time.perf_counter()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            fields = await read_form(request)
            post = await form_post_off_loop(fields)
        elif ctype in ("application/json", "") or ctype.endswith("+json"):
            post = post_of(parse_model(PostIn, await read_json(request)))
        else:
            raise BadInput(415, f"content type {ctype!r}", "this route reads JSON or a multipart form",
                           "send Content-Type: application/json or multipart/form-data")
        return JSONResponse(await tag(post, received))          # already JSON-ready: no jsonable_encoder pass

    @app.post("/tag/batch", response_model=None, responses={200: {"model": BatchOut}, **ERRORS}, openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [{"type": "array", "items": post_schema}, BatchIn.model_json_schema()]}}}}})
    async def tag_batch(request: Request):
        """Tag a list of posts (JSON): ``[{"text", "image"}, ...]`` or ``{"posts": [...]}``."""
        received = time.perf_counter()
        body = await read_json(request)
        items = parse_model(BatchIn, {"posts": body} if isinstance(body, list) else body).posts
        if not items:
            raise BadInput(422, "posts", "the list is empty", "send at least one post")
        if len(items) > settings.max_posts:
            raise BadInput(413, "posts", f"{len(items)} posts, over the limit of {settings.max_posts}",
                           "split them into several requests")
        posts = [post_of(item, f"posts[{i}].") for i, item in enumerate(items)]
        results = await asyncio.gather(*(tag(p, received) for p in posts))
        return JSONResponse({"results": results, "timings": {
            "total_ms": round(1000 * (time.perf_counter() - received), 2), "posts": len(results)}})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request):
        return page(request)

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def index_tag(request: Request):
        received = time.perf_counter()
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            raise BadInput(415, f"content type {ctype!r}", "the page's form sends a form", "use the page's form")
        fields = await read_form(request)
        post = await form_post_off_loop(fields)
        res = await tag(post, received)
        return page(request, text=fields["text"], result=res, segments=segments(res["text"], res["entities"]),
                    evidence=res.get("evidence") if isinstance(res.get("evidence"), list)
                    else [res.get("evidence")] if res.get("evidence") else [])

    @app.get("/health")
    async def health():
        """The service is up: its heads, runs and batching so far."""
        info = tagger.info() if hasattr(tagger, "info") else {}
        sizes = batcher.batches
        return {"status": "ok", "heads": list(getattr(tagger, "heads", [])), "info": info,
                "waiting": batcher.waiting,
                "batches": {"count": len(sizes), "mean_size": round(sum(sizes) / len(sizes), 2) if sizes else None},
                "limits": {"max_upload_mb": settings.max_upload_mb, "max_chars": settings.max_chars,
                           "max_batch": settings.max_batch, "batch_wait_ms": settings.batch_wait_ms,
                           "max_posts": settings.max_posts},
                "explorer": {"mounted": explorer is not None,
                             "path": EXPLORER_PATH if explorer is not None else None}}

    @lru_cache(maxsize=1024)
    def thumb_bytes(path: str, mtime: float) -> bytes:
        return thumbnail(Path(path), max_pixels=settings.max_pixels)

    @app.get("/thumb/{image_id}", responses={200: {"content": {"image/jpeg": {}}}, **ERRORS})
    async def thumb(image_id: str):
        """A thumbnail (JPEG, 128 px) of an image of the runs' image folders, by id (file-name stem)."""
        path = find_image(folders, image_id)
        data = thumb_bytes(str(path), os.stat(path).st_mtime)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs(request: Request):
        return templates.TemplateResponse(request, "docs.html", {"api": app.openapi(), "dumps": _pretty})

    return app


def load_model(settings: Settings):
    """The tagger of ``settings.runs``: in a process of its own (:class:`rgcn.serve.worker.ModelProcess`)
    or, with ``model_process=False``, loaded in this one (:func:`rgcn.load_tagger`)."""
    args = {"runs": settings.runs, "device": settings.device, "images": settings.images, "view": settings.view,
            "head_options": settings.head_options, "constrained": settings.constrained,
            "batch_size": settings.max_batch}
    if settings.model_process:
        return ModelProcess(args, settings.threads)
    from rgcn import load_tagger

    return load_tagger(**args)


def parse_model(model: type[BaseModel], data):
    """``model`` validated from ``data``; the first problem as a 422 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        status, message = validation_message(e.errors(), model)
        raise BadInput(status, message) from None


def validation_message(errors: list[dict], model=None) -> tuple[int, str]:
    """The status and one line for pydantic/FastAPI validation ``errors``: where, what, how to fix."""
    e = errors[0]
    if e.get("type") == "json_invalid":
        return 400, "the request body: it is not valid JSON; send a JSON object"
    loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "the request body"
    loc = loc.replace("posts.", "posts[", 1).replace(".", "].", 1) if loc.startswith("posts.") else loc
    kind = e.get("type", "")
    if kind == "missing":
        fix = f"add the field {loc.rsplit('.', 1)[-1]!r}"
        return 422, f"{loc}: the field is missing; {fix} (a post is {{\"text\": ..., \"image\": PATH (optional)}})"
    if kind == "extra_forbidden":
        return 422, f"{loc}: unknown field; a post has only 'text', 'image' (optional) and 'id' (optional)"
    if kind in ("model_type", "model_attributes_type", "dict_type", "list_type"):
        return 422, (f"{loc}: expected {'a list of posts' if kind == 'list_type' else 'a JSON object'}, got "
                     f"{type(e.get('input')).__name__}; send {{\"text\": ..., \"image\": PATH (optional)}}")
    return 422, f"{loc}: {e.get('msg', 'invalid')}; fix this field"


def segments(text: str, entities: list[dict]) -> list[tuple[str, dict | None]]:
    """``text`` cut into pieces, each with the entity it is (or None), in order."""
    out, at = [], 0
    for ent in sorted(entities, key=lambda e: e["start"]):
        a, b = int(ent["start"]), int(ent["end"])
        if a < at or b > len(text):                 # overlapping or outside: not drawn twice
            continue
        if a > at:
            out.append((text[at:a], None))
        out.append((text[a:b], ent))
        at = b
    if at < len(text):
        out.append((text[at:], None))
    return out


def _pretty(v) -> str:
    return json.dumps(v, indent=2, ensure_ascii=False)


def _version() -> str:
    from rgcn import __version__

    return __version__
