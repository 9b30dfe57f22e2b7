"""The fusion-head interface and its name registry."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable, Sequence

import torch
from torch import nn

from data.errors import UserError

_REGISTRY: dict[str, type["FusionHead"]] = {}


@dataclass
class HeadOutput:
    """What a head returns: word states for the emission layer and, optionally, what it
    adds to the training loss. The tagger trains on

        loss = crf_weight * L_crf + aux_loss

    so a head whose method weighs its own losses against the CRF's (e.g. MAF's
    ``alpha L_ca + beta L_cm + (1 - alpha - beta) L_crf``) says so here, and the trainer
    needs to know nothing about it.

    Attributes:
        states: ``(B, W, out_dim)`` word states for the emission layer.
        aux_loss: a scalar added to the loss (e.g. contrastive alignment), or ``None``.
        crf_weight: the weight of the CRF's negative log-likelihood (default 1).
    """

    states: torch.Tensor  # (B, W, out_dim)
    aux_loss: torch.Tensor | None = None
    crf_weight: float = 1.0


class FusionHead(nn.Module):
    """Base class of fusion heads.

    A head sees the batch's word states and whatever it prepared for the batch in
    :meth:`prepare` (called while batches are assembled, outside the autograd graph: the
    place to look up images, graphs or visual text for the posts).

    Args:
        in_dim (int): width of the encoder's word states.
        options (dict): head-specific settings from the run config (``head.options``).
        context (dict): shared resources the trainer hands every head (e.g. run paths,
            the training corpus); heads take what they need.

    Shapes:
        forward input: ``states (B, W, in_dim)``, ``word_mask (B, W)``;
        forward output: :class:`HeadOutput` with ``states (B, W, out_dim)``.
    """

    name: str = "base"
    reads_index: bool = False
    """Whether the head takes the image index as ``options["index"]`` (tools that set up
    runs for every registered head, such as ``benchmarks/heads.py``, pass it then)."""

    def __init__(self, in_dim: int, options: dict | None = None, context: dict | None = None):
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = in_dim
        self.options = dict(options or {})

    @classmethod
    def setup(cls, options: dict, splits: dict, run_dir: str | None, progress: bool = True,
              training: bool = True) -> dict:
        """Resources the head needs before it is built (e.g. relation graphs over the
        splits), returned as entries of the ``context`` passed to ``__init__``. Called by
        the trainer with the training splits (``training``) and by prediction with the
        posts to tag (``training=False``; ``options`` then hold the inference options asked for).
        A head that reads the posts' images may also return ``image_summary``: split name ->
        one line saying how many posts had their image used; the commands print it."""
        return {}

    @classmethod
    def setup_for_posts(cls, options: dict, train: Sequence[Any], posts: Sequence[Any], run_dir: str | None,
                        memo: dict) -> dict:
        """The context to tag ``posts`` (new posts, a batch at a time) with a trained head:
        :meth:`setup` over the training split and the posts (split ``predict``), by default.
        ``memo`` is a dict the caller keeps between batches, for what is costly to remake
        (a loaded index, encoded texts); heads whose setup is costly override this."""
        return cls.setup(options, {"train": train, "predict": posts}, run_dir, progress=False, training=False)

    def use_context(self, context: dict) -> bool:
        """Take the context of new posts to tag (what :meth:`setup_for_posts` returned) in
        place, keeping the trained weights; ``False`` (the default) when the head cannot, and
        the caller builds a new head with it and loads the weights into it."""
        return False

    def prepare(self, samples: Sequence[Any], training: bool) -> dict:
        """Per-batch inputs for :meth:`forward`, built from the batch's samples."""
        return {}

    def forward(self, states: torch.Tensor, word_mask: torch.Tensor, inputs: dict) -> HeadOutput:
        raise NotImplementedError

    # -- views: what the encoder reads besides the post's words -------------------------
    inference_options: tuple[str, ...] = ()
    """Options that may be changed when a trained run is loaded to tag posts
    (``python -m rgcn predict/evaluate --head-option KEY=VALUE``), e.g. the view to tag with."""

    tagging_views: tuple[str, ...] = ()
    """The values of the ``view`` inference option a trained run can tag with, its default
    first (e.g. ita: ``multimodal``, ``text``); empty: the head tags one way. Tools that score
    every view of a run (``benchmarks/heads.py``) read it."""

    def views(self, training: bool) -> tuple[str, ...]:
        """Names of the views of a batch the tagger reads. The first is the one whose emissions
        are tagged and carry the CRF loss; in training, every view's emissions also go to
        :meth:`views_loss`. Default: one view, the post's words alone."""
        return ("main",)

    def context_words(self, samples: Sequence[Any], view: str) -> list[list[str]] | None:
        """Words the encoder reads after each post in ``view`` (behind a separator, cut first
        when the window is full), never tagged or scored; ``None``: no context."""
        return None

    def views_loss(self, emissions: dict[str, torch.Tensor], word_mask: torch.Tensor,
                   crf: nn.Module) -> torch.Tensor | None:
        """The loss that ties the views of a training batch together, added to the first
        view's CRF loss; ``None``: nothing to add. Only called with more than one view.

        Shapes: ``emissions``: view name -> ``(B, W, n_labels)``; ``word_mask (B, W)``.
        """
        return None

    def extra_state(self) -> dict:
        """JSON-able state needed to rebuild the head for prediction (saved with checkpoints)."""
        return {}


class UnknownHead(UserError, KeyError):
    """A fusion head name that is not registered; the message lists the registered ones."""


class HeadOptionError(UserError, ValueError):
    """A head option the head does not have, or a value it refuses."""


def parse_options(cls: type, options: dict | None, head: str):
    """``cls(**options)`` for a head's options dataclass, refusing a name it does not have with
    the list of those it has (``head``: the head's name, for the message)."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options or {}) - known)
    if unknown:
        raise HeadOptionError(f"{head} head: unknown option(s) {unknown}; valid options: {sorted(known)}")
    return cls(**(options or {}))


def register_head(name: str) -> Callable[[type[FusionHead]], type[FusionHead]]:
    def deco(cls: type[FusionHead]) -> type[FusionHead]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"fusion head {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def head_class(name: str) -> type[FusionHead]:
    if name not in _REGISTRY:
        raise UnknownHead(f"fusion head {name!r}", "no such head", f"valid heads: {', '.join(list_heads())}")
    return _REGISTRY[name]


def list_heads() -> list[str]:
    return sorted(_REGISTRY)


def build_head(name: str, in_dim: int, options: dict | None = None, context: dict | None = None) -> FusionHead:
    return head_class(name)(in_dim, options, context)
