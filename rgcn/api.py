"""Tag your own posts from Python: entities with character offsets and a confidence.

    from rgcn import load_tagger
    tagger = load_tagger("runs/demo/rgcn/seed13")            # or a list of runs: an ensemble
    res = tagger.tag("Look at Zelby today in Paris", image="cat.jpg")
    res.entities    # [{"text": "Zelby", "type": "MISC", "start": 8, "end": 13, ..., "confidence": 0.97}, ...]
    for res in tagger.tag_many(posts, batch_size=64): ...   # lazily, batch by batch, in input order

A post is a string, or a dict ``{"text": str, "image": ..., "id": ...}`` (or ``"tokens"``: a
list of words instead of the text). An image is a path (relative ones are read from the
``images`` folder given to :func:`load_tagger`), the file's bytes, a ``PIL.Image`` or
``None``. A post without an image works with every head (the modality-missing setting).

Each result lists its entities with their type, their ``[start, end)`` character offsets in
the original string (``text[start:end]`` is the entity's text; for a post given as tokens, the
string is the tokens joined by single spaces), their ``[token_start, token_end)`` word span
and their ``confidence``: the CRF's probability of exactly that labelled span,
``P(y_s = B-X, y_{s+1..e-1} = I-X, y_e != I-X | post)``, computed from the forward and backward
messages (:func:`rgcn.crf.span_probabilities`). Several runs tag as an ensemble, as the
command line does: the mean of their emission scores, decoded and scored by the first run's
CRF (BIO-constrained when asked).

``python -m rgcn predict`` is a thin layer over this module.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from data.corpus import Corpus, Sample, read_corpus
from data.errors import UserError
from data.tweets import tokenize_post_offsets

USED, EMBEDDED, NONE, UNREADABLE, IGNORED = "used", "embedded", "none", "unreadable", "ignored"
"""What happened to a post's image (``TagResult.image``): found in the run's index; embedded
now by the index's embedder; no image given; given but not readable (tagged without one);
given to runs whose heads read no image (the text head)."""

def tokenize_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """A raw post's tokens with their ``[start, end)`` character offsets in ``text``
    (:func:`data.tweets.tokenize_post_offsets`, the way the Twitter benchmarks split posts)."""
    return [(t.text, t.start, t.end) for t in tokenize_post_offsets(text)]


class TaggingError(UserError, ValueError):
    """A post, image or run the tagger cannot take."""


@dataclass
class TagResult:
    """One tagged post. ``tokens``: ``{"text", "start", "end"}`` per word; ``entities``:
    ``{"text", "type", "start", "end", "token_start", "token_end", "confidence"}`` each
    (``token_end`` exclusive); ``image``: one of ``used``, ``embedded``, ``none``,
    ``unreadable``, ``ignored`` (:data:`USED`, ...); ``evidence``: what the head read (a list,
    one per run, for an ensemble)."""

    id: Any
    text: str
    tokens: list[dict]
    tags: list[str]
    entities: list[dict]
    image: str
    evidence: dict | list = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "tokens": self.tokens, "tags": self.tags,
                "entities": self.entities, "image": self.image, "evidence": self.evidence}


@dataclass
class PreparedPost:
    """A post as the tagger reads it, made by :meth:`PostTagger.prepare`: its sample (words,
    image path, an internal id) and what the result reports. :meth:`PostTagger.tag_many`
    takes these as they are, so a program can prepare posts (split the text, check the
    photo) on another thread while the model tags the previous batch."""

    sample: Sample
    id: Any
    text: str
    offsets: list[tuple[int, int]]
    image: str


@dataclass
class _Run:
    """One loaded run: its tagger, config and checkpoint meta, and what its head keeps
    between batches."""

    path: Path
    model: Any
    cfg: Any
    meta: dict
    memo: dict = field(default_factory=dict)
    _train: Corpus | None = None

    @property
    def head(self) -> str:
        return self.cfg.head.name

    def train(self) -> Corpus:
        if self._train is None:
            d = self.cfg.data
            self._train = read_corpus(d.train, d.images, d.format, encoding=d.encoding)
        return self._train


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


class PostTagger:
    """Tags posts with one run or an ensemble of runs; made by :func:`load_tagger`."""

    def __init__(self, runs: Sequence[_Run], images: str | os.PathLike | None = None, batch_size: int = 64):
        self.runs = list(runs)
        self.images = Path(images) if images is not None else None
        self.batch_size = batch_size
        self._tmp = tempfile.TemporaryDirectory(prefix="rgcn-tag-")
        self._count = itertools.count()
        self._index_ids: set[str] | None = None

    @property
    def heads(self) -> list[str]:
        return [r.head for r in self.runs]

    @property
    def labels(self) -> list[str]:
        return list(self.runs[0].model.labels)

    def info(self) -> dict:
        """The runs, their heads and options, the encoder, the labels and the index (for /health)."""
        first = self.runs[0]
        return {"runs": [str(r.path) for r in self.runs], "heads": self.heads,
                "head_options": [dict(r.cfg.head.options) for r in self.runs],
                "encoder": first.cfg.encoder.name, "labels": self.labels,
                "index": next((r.cfg.head.options.get("index") for r in self.runs
                               if r.cfg.head.options.get("index")), None),
                "constrained": bool(first.model.constrained), "device": str(first.model.device)}

    # ------------------------------------------------------------------ posts in
    def _index_keys(self) -> set[str]:
        """The image ids of the first index a run reads (empty when none reads one)."""
        if self._index_ids is None:
            from index.artifact import load_index

            path = self.info()["index"]
            self._index_ids = set(load_index(path).ids) if path else set()
        return self._index_ids

    @staticmethod
    def _reads_train(run: _Run) -> bool:
        """Whether the run's head reads the training split beside new posts (its index's pool)."""
        from .heads import head_class

        return head_class(run.head).reads_index

    @cached_property
    def reads_photos(self) -> bool:
        """Whether any run's head reads a post's photo (through its index and embedder)."""
        from .heads import head_class

        return any(head_class(r.head).reads_index and r.cfg.head.options.get("index") for r in self.runs)

    def _status(self, key: str) -> str:
        """:data:`USED` when the first index a run reads holds ``key``, else :data:`EMBEDDED`."""
        return USED if key in self._index_keys() else EMBEDDED

    def _image(self, image) -> tuple[str | None, str | None, str]:
        """``(path, key, status)`` of a post's image: the file the heads read, the id the
        index would know it by, and :data:`USED` / :data:`EMBEDDED` / :data:`NONE` /
        :data:`UNREADABLE`; :data:`IGNORED`, the file never opened, when no run reads photos."""
        from PIL import Image, UnidentifiedImageError

        if image is None:
            return None, None, NONE
        if not isinstance(image, (bytes, bytearray, str, os.PathLike, Image.Image)):
            raise TaggingError("image", f"expected a path, bytes, a PIL image or None, found {type(image).__name__}",
                               "pass the image file's path or its bytes")
        if not self.reads_photos:                 # no head reads it: not opened, not decoded
            return None, None, IGNORED
        if isinstance(image, (bytes, bytearray)):
            data = bytes(image)
        elif isinstance(image, Image.Image):
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="PNG")
            data = buf.getvalue()
        else:                                     # a path
            p = Path(image)
            if not p.is_absolute() and self.images is not None:
                p = self.images / p
            try:
                with Image.open(p) as im:
                    im.load()
            except (OSError, UnidentifiedImageError, ValueError):
                return None, None, UNREADABLE
            key = p.stem
            return str(p), key, self._status(key)
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                suffix = "." + (im.format or "png").lower()
        except (OSError, UnidentifiedImageError, ValueError):
            return None, None, UNREADABLE
        key = "upload-" + hashlib.sha1(data).hexdigest()[:16]
        path = Path(self._tmp.name) / f"{key}-{next(self._count)}{suffix}"   # one file per post, removed once tagged
        path.write_bytes(data)
        return str(path), key, self._status(key)

    def prepare(self, post, image=None, id=None) -> PreparedPost:
        """A post given as a string or a dict, checked, as the tagger reads it: its words with
        their offsets, and its photo read once (:data:`UNREADABLE` when it does not decode).
        Raises :class:`TaggingError` for a post the tagger cannot take."""
        if isinstance(post, dict):
            unknown = sorted(set(post) - {"text", "tokens", "image", "id"})
            if unknown:
                raise TaggingError(f"post field(s) {', '.join(unknown)}", "not known",
                                   'give "text" (or "tokens"), and optionally "image" and "id"')
            image, id = post.get("image", image), post.get("id", id)
            if "tokens" in post and "text" not in post:
                tokens = post["tokens"]
                if not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() for t in tokens):
                    raise TaggingError('"tokens"', "must be a list of non-empty strings", "give the post's words")
                text, at, spans = " ".join(tokens), 0, []
                for t in tokens:
                    spans.append((t, at, at + len(t)))
                    at += len(t) + 1
            else:
                post = post.get("text")
        if not isinstance(post, dict):
            if not isinstance(post, str):
                raise TaggingError("post", f"expected a string or a dict, found {type(post).__name__}",
                                   'give the text, or {"text": ..., "image": ...}')
            text, spans = post, tokenize_with_offsets(post)
        if not spans:
            raise TaggingError("post text", "has no word to tag", "give a post with at least one word")
        path, key, status = self._image(image)
        n = next(self._count)
        sample = Sample(f"tag:{n}", [t for t, _, _ in spans], image=path, image_missing=status == UNREADABLE,
                        image_key=key)
        return PreparedPost(sample, id, text, [(a, b) for _, a, b in spans], status)

    # ------------------------------------------------------------------ tagging
    def tag(self, text, image=None, id=None) -> TagResult:
        """Tag one post (a string, or a dict as :meth:`tag_many` takes) with its image."""
        return self._tag_posts([self.prepare(text, image, id)], self.batch_size)[0][0]

    def tag_many(self, posts: Iterable, batch_size: int | None = None) -> Iterator[TagResult]:
        """Tag posts lazily: read ``batch_size`` posts from ``posts``, tag them, yield their
        results in input order, then read the next batch. A post may also be one that
        :meth:`prepare` made."""
        size = int(batch_size or self.batch_size)
        if size < 1:
            raise TaggingError("batch_size", f"must be at least 1, found {size}", "give a positive batch size")
        for chunk in _chunks(posts, size):
            yield from self._tag_posts([p if isinstance(p, PreparedPost) else self.prepare(p) for p in chunk], size)[0]

    def tag_samples(self, samples: Sequence[Sample], batch_size: int | None = None, progress: bool = False
                    ) -> tuple[list[TagResult], str | None, float]:
        """Tag posts already read from a split file (:func:`data.corpus.read_corpus`), all
        their images looked up at once (the command line's way); the posts keep their ids
        unless the training split a head reads has the same. Returns the results, the
        first run's one-line image summary (``None`` when its head reads no image) and the
        seconds the tagging took."""
        taken = {t.id for r in self.runs if self._reads_train(r) for t in r.train()}
        posts = []
        for s in samples:
            if s.image is not None or s.image_missing:
                path, key, status = self._image(s.image) if s.image is not None else (None, None, UNREADABLE)
            else:
                path, key, status = None, None, NONE
            if s.meta.get("image_dropped"):
                path, key, status = None, None, NONE
            n = next(self._count)
            sample = replace(s, id=f"tag:{n}" if s.id in taken else s.id, image=path, image_key=key if path else s.image_key,
                             meta=dict(s.meta))
            spans, at = [], 0
            for t in s.tokens:
                spans.append((at, at + len(t)))
                at += len(t) + 1
            posts.append(PreparedPost(sample, s.id, " ".join(s.tokens), spans, status))
        results, summary, seconds = self._tag_posts(posts, batch_size or self.batch_size, progress)
        return results, summary, seconds

    def discard(self, post: PreparedPost) -> None:
        """Remove the copy of an uploaded photo that :meth:`prepare` made for ``post`` (tagging
        removes it too; this is for a prepared post that will not be tagged)."""
        image = post.sample.image
        if image and Path(image).parent == Path(self._tmp.name):
            Path(image).unlink(missing_ok=True)

    def _tag_posts(self, posts: list[PreparedPost], batch_size: int, progress: bool = False
                   ) -> tuple[list[TagResult], str | None, float]:
        """Tag ``posts``; the photos given as bytes or PIL images were written to a temporary
        folder for the heads to read, and are removed once their posts are tagged, so a
        long-running service keeps no upload."""
        try:
            return self._tag_batch(posts, batch_size, progress)
        finally:
            for post in posts:
                self.discard(post)

    @torch.inference_mode()
    def _tag_batch(self, posts: list[PreparedPost], batch_size: int, progress: bool = False
                   ) -> tuple[list[TagResult], str | None, float]:
        from tqdm.auto import tqdm

        from .batching import BucketSampler, TaggingDataset
        from .crf import crf_span_probabilities, labelled_spans
        from .heads import build_head, head_class

        start = time.perf_counter()
        samples = [p.sample for p in posts]
        summary = None
        for i, run in enumerate(self.runs):               # each head's context for these posts
            cls = head_class(run.head)
            ctx = cls.setup_for_posts(dict(run.cfg.head.options), run.train(), samples, str(run.path),
                                      run.memo) if cls.reads_index else {}
            if i == 0 and ctx.get("image_summary"):
                summary = ctx["image_summary"].get("predict")
            if ctx and not run.model.head.use_context(ctx):
                old = run.model.head
                new = build_head(run.head, old.in_dim, run.cfg.head.options,
                                 {**ctx, "head_state": run.meta.get("head_state", {})})
                new.load_state_dict(old.state_dict())
                run.model.head = new.to(run.model.device).eval()
        first = self.runs[0].model
        datasets = [TaggingDataset(samples, r.model.tokenizer) for r in self.runs]
        crf = first.decoding_crf()
        results: list[TagResult | None] = [None] * len(posts)
        batches = BucketSampler(datasets[0].lengths(), batch_size, shuffle=False)
        for idx in tqdm(batches, desc="tagging", unit="batch", disable=not progress, leave=False):
            emissions, mask, evidence = self._emissions(datasets, idx, [samples[k] for k in idx])
            paths = first.decode_emissions(emissions, mask)
            spans = [(j, *sp) for j, tags in enumerate(paths) for sp in labelled_spans(tags, first.labels)]
            conf = crf_span_probabilities(crf, emissions, mask, [(j, s, e, a, b, c) for j, _, s, e, a, b, c in spans])
            by_post: dict[int, list] = {}
            for (j, etype, s, e, *_), p in zip(spans, conf):
                by_post.setdefault(j, []).append((etype, s, e, p))
            for j, k in enumerate(idx):
                results[k] = self._result(posts[k], paths[j], by_post.get(j, []),
                                          evidence[j][0] if len(self.runs) == 1 else evidence[j])
        return results, summary, time.perf_counter() - start   # type: ignore[return-value]

    def _emissions(self, datasets, idx: list[int], samples: list[Sample]
                   ) -> tuple[torch.Tensor, torch.Tensor, list[list[dict]]]:
        """The mean of the runs' emission scores for the posts ``idx`` of ``datasets`` (one
        per run), the first run's word mask, and each post's evidence from every run.

        Shapes: ``emissions (B, W, L)``, ``mask (B, W)``."""
        first = self.runs[0].model
        emissions, mask, evidence = None, None, [[] for _ in idx]
        for run, ds in zip(self.runs, datasets):
            batch = run.model.make_batch(ds, idx, training=False).to(run.model.device)
            em = run.model.emissions(batch)[0].to(first.device)           # (B, W, L)
            emissions = em if emissions is None else emissions + em
            for j, ev in enumerate(head_evidence(run, batch, samples)):
                evidence[j].append(ev)
            if mask is None:
                mask = batch.word_mask.to(first.device)
        return emissions / len(self.runs), mask, evidence

    @staticmethod
    def _result(post: PreparedPost, tags: list[str], spans: list, evidence) -> TagResult:
        offsets = post.offsets
        entities = [{"text": post.text[offsets[s][0]:offsets[e - 1][1]], "type": etype, "start": offsets[s][0],
                     "end": offsets[e - 1][1], "token_start": s, "token_end": e, "confidence": float(p)}
                    for etype, s, e, p in spans]
        tokens = [{"text": post.text[a:b], "start": a, "end": b} for a, b in offsets]
        return TagResult(post.id, post.text, tokens, list(tags), entities, post.image, evidence)


# --------------------------------------------------------------------------- evidence
def _rgcn_evidence(run, batch, samples) -> list[dict]:
    graphs = run.model.head.graphs
    out = []
    for s in samples:
        relations = {}
        for rel in run.model.head.relations:
            try:
                nb = graphs.neighbours(s.id, rel)
            except (KeyError, ValueError, AttributeError):
                nb = []
            relations[rel] = [{"image": i, "score": round(float(sc), 4), "kept": True, "rank": r}
                              for r, (i, sc) in enumerate(nb)]
        out.append({"head": "rgcn", "relations": relations})
    return out


def _ita_evidence(run, batch, samples) -> list[dict]:
    head = run.model.head
    view = head.opts.view
    words = head.context_words(samples, view) or [[] for _ in samples]
    return [{"head": "ita", "view": view, "context": list(w)} for w in words]


def _maf_evidence(run, batch, samples) -> list[dict]:
    head, model = run.model.head, run.model
    if not head.opts.matching:
        return [{"head": "maf", "p_match": None} for _ in samples]
    with torch.autocast(model.device.type, dtype=model.autocast_dtype or torch.float32,
                        enabled=model.autocast_dtype is not None):
        p = head.match_probability(model.encoder(batch), batch.word_mask, batch.extras)   # (B,)
    present = batch.extras["present"].bool().tolist()
    return [{"head": "maf", "p_match": round(float(x), 4) if has else None} for x, has in zip(p.tolist(), present)]


def _bga_evidence(run, batch, samples) -> list[dict]:
    view = run.model.head.opts.view
    return [{"head": "bga", "photo_read": view == "real", "view": view} for _ in samples]


EVIDENCE = {"rgcn": _rgcn_evidence, "ita": _ita_evidence, "maf": _maf_evidence, "bga": _bga_evidence}
"""Head name -> ``(run, batch, samples) -> one evidence dict per post``; other heads: ``{"head": name}``."""


def head_evidence(run, batch, samples) -> list[dict]:
    fn = EVIDENCE.get(run.head)
    return fn(run, batch, samples) if fn else [{"head": run.head} for _ in samples]


# --------------------------------------------------------------------------- loading
def load_tagger(runs, device: str = "auto", images=None, view: str | None = None, head_options: dict | None = None,
                constrained: bool | None = None, batch_size: int = 64) -> PostTagger:
    """Load one run (a folder, its ``best/`` is used) or several (a list: an ensemble).

    Args:
        runs: a run or checkpoint folder, or a list of them.
        device: ``auto`` (CUDA when there is one), ``cpu``, ``cuda``, ...
        images: the folder relative image paths are read from.
        view: the view to tag with (short for ``head_options={"view": view}``).
        head_options: options the trained heads allow to change (their ``inference_options``).
        constrained: decode valid BIO paths only (``None``: the first run's ``crf.constrained``).
        batch_size: posts per batch of :meth:`PostTagger.tag_many`.

    Raises:
        data.errors.UserError: a run folder that holds no checkpoint, runs that cannot tag
            together, an option the head does not allow to change.
    """
    from .checkpoint import load_checkpoint, read_meta, with_head_options
    from .config import config_from_dict
    from .heads import head_class
    from .tagger import check_ensemble
    from .training import resolve_device

    paths = [Path(r) for r in ([runs] if isinstance(runs, (str, os.PathLike)) else list(runs))]
    if not paths:
        raise TaggingError("runs", "none given", "give a run folder, or a list of them")
    if int(batch_size) < 1:
        raise TaggingError("batch_size", f"must be at least 1, found {batch_size}", "give a positive batch size")
    if images is not None and not Path(images).is_dir():
        raise TaggingError(f"images folder {images}", "is not a folder", "give the folder the post images are in")
    options = {**(head_options or {}), **({"view": view} if view else {})}
    dev = resolve_device(device)
    loaded = []
    for path in paths:
        ckpt = path / "best" if (path / "best" / "checkpoint.json").exists() else path
        try:
            read_meta(ckpt)
        except (FileNotFoundError, ValueError) as e:
            raise TaggingError(f"run {path}", str(e), "give a trained run folder (with best/) or a checkpoint "
                               "folder") from None
        cfg = with_head_options(config_from_dict(read_meta(ckpt)["config"]), options)
        run = _Run(path, None, cfg, {})
        cls = head_class(cfg.head.name)
        ctx = cls.setup_for_posts(dict(cfg.head.options), run.train(), [], str(path), run.memo) \
            if cls.reads_index else {}
        run.model, run.cfg, run.meta = load_checkpoint(ckpt, dev, ctx, options)
        run.model.eval()
        loaded.append(run)
    if constrained is not None:
        loaded[0].model.constrained = bool(constrained)
    if len(loaded) > 1:
        check_ensemble([r.model for r in loaded], [str(p) for p in paths])
    return PostTagger(loaded, images, int(batch_size))
