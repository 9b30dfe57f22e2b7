"""ITA: image-to-text alignment (Wang et al., "ITA: Image-Text Alignments for Multi-Modal
Named Entity Recognition", NAACL 2022).

Instead of fusing vectors, the image is turned into words, its visual context ``V``
(object tags, the text read in it, a caption; :mod:`index.visual_context`), and the encoder
reads the post ``x`` followed by it, ``[CLS] x [SEP] V [SEP]``: its own attention relates the
two. ``V`` is encoded but never tagged or scored, and when the window is full it is cut
before any word of the post (:meth:`rgcn.encoder.WordTokenizer.collate`).

Cross-view alignment (CVA) makes the text-only view ``x`` behave like the multimodal view
``x' = [x; V]``: the CRF's per-word marginal distributions on ``x'``, detached, teach those
on ``x``, both at temperature ``T``,

    L = L_CRF(x') + lambda * T^2 * mean_words KL( p_T(y_i | x') || p_T(y_i | x) ),

so the model also tags well with no image at all (``view: text``). The marginals are the
gradient of the CRF's log-partition with respect to its potentials (:func:`rgcn.crf.crf_marginals`).

A post without an image, whose image is missing, or whose image was dropped
(``meta["image_dropped"]``, :func:`data.corpus.drop_images`) has an empty context: its
multimodal view is its text view.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Sequence

import torch
from torchcrf import CRF

from index.artifact import IndexArtifact, visual_context_like_index
from index.visual_context import PARTS, VisualContext

from ..crf import crf_marginals
from .base import FusionHead, HeadOutput, register_head
from .blocks import PhotoReader

log = logging.getLogger(__name__)

MULTIMODAL, TEXT = "multimodal", "text"
VIEWS = (MULTIMODAL, TEXT)


def cva_loss(teacher: torch.Tensor, student: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * mean over the words of KL(teacher || student)``, from per-word marginals.

    Shapes: ``teacher, student (B, W, L)``, ``mask (B, W)`` -> scalar.
    """
    log_s = student.clamp_min(1e-12).log()                                 # (B, W, L)
    kl = (torch.xlogy(teacher, teacher) - teacher * log_s).sum(-1)         # (B, W)
    m = mask.to(kl.dtype)
    return temperature ** 2 * (kl * m).sum() / m.sum().clamp_min(1)


@dataclass
class ITAOptions:
    """The ITA head's options (``head.options``).

    Attributes:
        index (str | None): the index artifact holding the images' visual context
            (``None``: no images, every post is read alone).
        view (str, default "multimodal"): the view posts are tagged with, ``multimodal``
            (the post and its visual context) or ``text`` (the post alone); may be changed
            when a run is loaded (``python -m rgcn predict --head-option view=text``).
        order (list, default [tags, ocr, caption]): the parts of the visual context, in
            reading order; leave one out to drop it.
        max_tags (int | None, default None): at most this many object tags (best first).
        min_tag_score (float | None, default None): the score a tag needs (default: the
            index's ``--tag-min-score``).
        max_context_words (int, default 64): the context's budget in words, before the
            encoder window cuts it further.
        cva (bool, default True): train the text view to match the multimodal one.
        temperature (float, default 2.0): CVA's ``T`` (the authors: 4 on Twitter-2015,
            2 on Twitter-2017).
        cva_weight (float, default 0.5): CVA's weight ``lambda``.
    """

    index: str | None = None
    view: str = MULTIMODAL
    order: tuple[str, ...] = PARTS
    max_tags: int | None = None
    min_tag_score: float | None = None
    max_context_words: int = 64
    cva: bool = True
    temperature: float = 2.0
    cva_weight: float = 0.5

    def __post_init__(self):
        if self.view not in VIEWS:
            raise ValueError(f"ita head: options.view must be one of {', '.join(VIEWS)}, found {self.view!r}")
        self.order = tuple([self.order] if isinstance(self.order, str) else self.order)
        bad = [p for p in self.order if p not in PARTS]
        if bad or len(set(self.order)) != len(self.order):
            raise ValueError(f"ita head: options.order must list distinct parts of {', '.join(PARTS)}, "
                             f"found {list(self.order)}")
        if self.max_tags is not None and int(self.max_tags) < 0:
            raise ValueError(f"ita head: options.max_tags must be at least 0 or null, found {self.max_tags}")
        if int(self.max_context_words) < 0:
            raise ValueError(f"ita head: options.max_context_words must be at least 0, found "
                             f"{self.max_context_words}")
        if float(self.temperature) <= 0:
            raise ValueError(f"ita head: options.temperature must be positive, found {self.temperature}")
        if float(self.cva_weight) < 0:
            raise ValueError(f"ita head: options.cva_weight must be at least 0, found {self.cva_weight}")
        self.max_context_words, self.temperature = int(self.max_context_words), float(self.temperature)
        self.cva_weight, self.cva = float(self.cva_weight), bool(self.cva)

    @classmethod
    def from_dict(cls, options: dict) -> "ITAOptions":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"ita head: unknown option(s) {', '.join(unknown)}; valid options: "
                             f"{', '.join(sorted(known))}")
        return cls(**options)


def read_contexts(artifact: IndexArtifact | None, samples: Sequence, opts: ITAOptions, progress: bool = False,
                  reader: PhotoReader | None = None) -> tuple[dict[str, VisualContext], dict[str, str]]:
    """The visual context of each post's image, by image key: stored in ``artifact`` for its
    images, extracted now (:func:`index.artifact.visual_context_like_index`) for the others
    whose file exists, with ``reader``'s embedder and OCR engine when given (else made from
    the index's manifest). Returns ``(contexts, how)``, ``how``: image key -> ``index``/``now``."""
    contexts: dict[str, VisualContext] = {}
    how: dict[str, str] = {}
    if artifact is None:
        return contexts, how
    new: dict[str, str] = {}
    for s in samples:
        key = s.image_key
        if key is None or key in contexts or s.meta.get("image_dropped"):
            continue
        if key in artifact.id_to_row:
            contexts[key] = artifact.visual_context(key, opts.min_tag_score, opts.max_tags)
            how[key] = "index"
        elif s.image is not None:
            new[key] = s.image
    if new:
        kept = {"embedder": reader.embedder, "ocr": reader.ocr} if reader is not None else {}
        read = visual_context_like_index(artifact, sorted(new.items()), progress=progress,
                                         min_tag_score=opts.min_tag_score, max_tags=opts.max_tags, **kept)
        contexts.update(read)
        how.update({k: "now" for k in read})
    return contexts, how


def context_summary(samples: Sequence, how: dict[str, str]) -> str:
    """One line: how many posts had their image read, from the index or now, and which named
    an image that could not be read."""
    used = [how.get(s.image_key) for s in samples if not s.meta.get("image_dropped")]
    n_index, n_now = used.count("index"), used.count("now")
    line = (f"{n_index + n_now} of {len(samples)} posts had their image read as visual context "
            f"({n_index} from the index, {n_now} read now)")
    missing = [s for s in samples if s.image_key is not None and not s.meta.get("image_dropped")
               and how.get(s.image_key) is None]
    if missing:
        eg = ", ".join(f"{s.id} ({s.image_key})" for s in missing[:3])
        line += f"; {len(missing)} named an image that is missing or unreadable, e.g. {eg}"
    return line


@register_head("ita")
class ITAHead(FusionHead):
    """The post read with its image's visual context; CVA aligns the text-only view with it.

    Options: see :class:`ITAOptions`. The contexts reach the head as
    ``context["visual_contexts"]`` (image key -> :class:`VisualContext`) and the index as
    ``context["index_artifact"]``, both from :meth:`setup`; a post whose image is in neither
    has it read when its batch is made. The head passes the word states through unchanged:
    the fusion happens inside the encoder.
    """

    reads_index = True
    inference_options = ("view",)
    tagging_views = VIEWS

    def __init__(self, in_dim: int, options: dict | None = None, context: dict | None = None):
        super().__init__(in_dim, options, context)
        self.opts = ITAOptions.from_dict(self.options)
        context = context or {}
        self.artifact: IndexArtifact | None = context.get("index_artifact")
        self.contexts: dict[str, VisualContext] = dict(context.get("visual_contexts") or {})
        self._tried: set[str] = set(self.contexts)
        self.reader: PhotoReader | None = context.get("photo_reader")

    @classmethod
    def setup(cls, options: dict, splits: dict, run_dir: str | None, progress: bool = True,
              training: bool = True) -> dict:
        """Load the index named by ``options.index`` and read the visual context of every
        post's image in ``splits``.

        The head never searches: the index stays on the CPU, and its FAISS index and vectors
        are released once the contexts are read (the artifact kept for posts seen later
        gives visual contexts only)."""
        opts = ITAOptions.from_dict(options)
        if not opts.index:
            return {"visual_contexts": {}, "index_artifact": None}
        return cls._contexts(PhotoReader(opts.index, search=False), splits, opts, progress)

    @staticmethod
    def _contexts(reader: PhotoReader, splits: dict, opts: ITAOptions, progress: bool) -> dict:
        """The head's context: the visual context of every post's image in ``splits``, read
        with ``reader`` (kept for the posts seen later), and a summary line per split."""
        contexts, how = read_contexts(reader.artifact, [s for split in splits.values() for s in split], opts,
                                      progress, reader=reader)
        return {"visual_contexts": contexts, "index_artifact": reader.artifact, "photo_reader": reader,
                "image_summary": {name: context_summary(split, how) for name, split in splits.items()}}

    @classmethod
    def setup_for_posts(cls, options: dict, train: Sequence, posts: Sequence, run_dir: str | None,
                        memo: dict) -> dict:
        """The visual contexts of a batch of new posts only: the index (without its search
        structures), its embedder and OCR engine are kept in ``memo`` between batches."""
        opts = ITAOptions.from_dict(options)
        if not opts.index:
            return {"visual_contexts": {}, "index_artifact": None}
        return cls._contexts(PhotoReader.kept(memo, opts.index, search=False), {"predict": posts}, opts, False)

    def use_context(self, context: dict) -> bool:
        """Read the new posts' contexts in place of the previous batch's (so a long-running
        tagger keeps no photo's context it no longer needs)."""
        if "visual_contexts" not in context:
            return False
        self.artifact, self.reader = context.get("index_artifact"), context.get("photo_reader")
        self.contexts = dict(context["visual_contexts"])
        self._tried = set(self.contexts)
        return True

    # ------------------------------------------------------------------ views
    def views(self, training: bool) -> tuple[str, ...]:
        if training:
            return (MULTIMODAL, TEXT) if self.opts.cva else (MULTIMODAL,)
        return (self.opts.view,)

    def visual_context(self, sample) -> VisualContext:
        """The sample's visual context (empty without an image or with it dropped)."""
        if sample.image_key is None or sample.meta.get("image_dropped"):
            return VisualContext()
        return self.contexts.get(sample.image_key, VisualContext())

    def context_words(self, samples: Sequence, view: str) -> list[list[str]] | None:
        if view == TEXT:
            return None
        if view != MULTIMODAL:
            raise ValueError(f"ita head: unknown view {view!r}; views: {', '.join(VIEWS)}")
        unseen = [s for s in samples if s.image_key is not None and s.image_key not in self._tried]
        if unseen and self.artifact is not None:      # posts setup() did not see: read their photos now
            self._tried.update(s.image_key for s in unseen)
            self.contexts.update(read_contexts(self.artifact, unseen, self.opts, reader=self.reader)[0])
        return [self.visual_context(s).text(self.opts.order).split()[: self.opts.max_context_words]
                for s in samples]

    def views_loss(self, emissions: dict[str, torch.Tensor], word_mask: torch.Tensor,
                   crf: CRF) -> torch.Tensor | None:
        """CVA: ``lambda * T^2 * mean_words KL(p_T(. | x') || p_T(. | x))``, the teacher
        (multimodal view) detached."""
        if not self.opts.cva or TEXT not in emissions:
            return None
        T = self.opts.temperature
        teacher = crf_marginals(crf, emissions[MULTIMODAL], word_mask, T)                     # (B, W, L)
        student = crf_marginals(crf, emissions[TEXT], word_mask, T, create_graph=True)        # (B, W, L)
        return self.opts.cva_weight * cva_loss(teacher, student, word_mask, T)

    def forward(self, states: torch.Tensor, word_mask: torch.Tensor, inputs: dict) -> HeadOutput:
        return HeadOutput(states)
