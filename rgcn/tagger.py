"""The tagger: word encoder -> fusion head -> emissions -> CRF.

Its contract is three verbs: :meth:`Tagger.forward_loss` on a batch, :meth:`Tagger.predict`
on samples, :meth:`Tagger.evaluate` on a labelled split. Both of the last two can tag with an
ensemble: the mean of several taggers' emission scores, decoded once by the first one's CRF.

With ``constrained`` (``crf.constrained``) decoding keeps to valid BIO paths: a copy of the
CRF whose transitions into ``I-X`` from the start, from ``O`` and from another type score
:data:`rgcn.crf.FORBIDDEN` does the Viterbi search (:func:`rgcn.crf.viterbi_decode`, batched).
Training is unchanged (the learned transitions are the unconstrained ones), so the option can
be switched on for a model already trained.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torchcrf import CRF
from tqdm.auto import tqdm

from .batching import BucketSampler, TaggingDataset
from .crf import FORBIDDEN, bio_allowed, constrained_crf, decode  # noqa: F401  (FORBIDDEN, bio_allowed: re-exported)
from data.corpus import ENTITY_TYPES, Sample
from data.errors import UserError
from .encoder import TextBatch, WordEncoder, WordTokenizer
from .heads import FusionHead, HeadOutput
from .metrics import Scores, score


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 autocast where the hardware computes it natively (CPUs with
    AVX512-BF16 or AMX, GPUs of compute capability 8.0 or later: Ampere on), else fp32.
    Returns the autocast dtype.

    ``torch.cuda.is_bf16_supported()`` is not asked: it also answers yes for older GPUs,
    which emulate bf16 slowly."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else None
    return torch.bfloat16 if cpu_has_bf16() else None


def label_set(samples: Sequence[Sample]) -> list[str]:
    """``O`` plus ``B-``/``I-`` of every entity type seen (the four standard ones always)."""
    types = set(ENTITY_TYPES)
    for s in samples:
        for t in s.tags or ():
            if t != "O":
                types.add(t[2:])
    return ["O"] + [f"{p}-{t}" for t in sorted(types) for p in "BI"]


class EnsembleMismatch(UserError, ValueError):
    """Runs given as one ensemble whose emissions do not line up."""


def check_ensemble(models: Sequence["Tagger"], names: Sequence[str] | None = None) -> None:
    """Raise :class:`EnsembleMismatch` (a ``ValueError``) unless every tagger has the first one's
    labels (in the same order) and the same tokenizer (class, vocabulary and window size), so
    their emissions line up."""
    names = list(names or [f"model {i + 1}" for i in range(len(models))])
    first = models[0]
    for m, name in zip(models[1:], names[1:]):
        if m.labels != first.labels:
            raise EnsembleMismatch(f"an ensemble needs one label set: {names[0]} has {first.labels}, {name} has {m.labels}")
        a, b = first.tokenizer, m.tokenizer
        if (type(a.tok) is not type(b.tok) or a.tok.get_vocab() != b.tok.get_vocab()
                or a.max_subwords != b.max_subwords):
            raise EnsembleMismatch(f"an ensemble needs one encoder tokenizer: {name} does not tokenize as {names[0]} "
                             f"({type(b.tok).__name__}, {len(b.tok)} tokens, max_subwords {b.max_subwords} against "
                             f"{type(a.tok).__name__}, {len(a.tok)} tokens, max_subwords {a.max_subwords})")


@dataclass
class Prediction:
    tags: list[list[str]]
    seconds: float

    @property
    def posts_per_second(self) -> float:
        return len(self.tags) / self.seconds if self.seconds else float("inf")


class Tagger(nn.Module):
    """Sequence tagger with a pluggable fusion head and a CRF on top.

    Args:
        encoder (WordEncoder): word states from the text encoder.
        tokenizer (WordTokenizer): turns posts into batches.
        head (FusionHead): fuses multimodal inputs into the word states.
        labels (list[str]): tag vocabulary, ``O`` first.
        constrained (bool, default False): decode valid BIO paths only (see the module's docstring).
    """

    def __init__(self, encoder: WordEncoder, tokenizer: WordTokenizer, head: FusionHead, labels: Sequence[str],
                 constrained: bool = False):
        super().__init__()
        self.constrained = constrained
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.head = head
        self.labels = list(labels)
        self.emission = nn.Linear(head.out_dim, len(self.labels))
        self.crf = CRF(len(self.labels), batch_first=True)
        #: autocast dtype for the encoder and head (``None``: full fp32); see :func:`resolve_precision`
        self.autocast_dtype: torch.dtype | None = None

    @property
    def device(self) -> torch.device:
        return self.emission.weight.device

    # ------------------------------------------------------------------ batches
    def make_batch(self, dataset: TaggingDataset, indices: Sequence[int], training: bool) -> TextBatch:
        """The batch of the head's first view; its other views (:meth:`FusionHead.views`) in
        ``batch.views``, each with the context the head gives it and the same ``extras``."""
        posts = [dataset.encoded[i] for i in indices]
        tags = [dataset.tag_ids[i] for i in indices] if dataset.tag_ids is not None else None
        samples = [dataset.samples[i] for i in indices]
        extras = self.head.prepare(samples, training)
        batches = []
        for view in self.head.views(training):
            words = self.head.context_words(samples, view)
            contexts = None if words is None else [self.tokenizer.encode(w) for w in words]
            batch = self.tokenizer.collate(posts, tags, contexts)
            batch.extras = extras
            batches.append((view, batch))
        first = batches[0][1]
        first.views = dict(batches[1:])
        return first

    def head_output(self, batch: TextBatch) -> tuple[torch.Tensor, HeadOutput]:
        """Emission scores in fp32 (the encoder and head may run under bf16 autocast) and
        what the head returned."""
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            states = self.encoder(batch)  # (B, W, D)
            out = self.head(states, batch.word_mask, batch.extras)
            em = self.emission(out.states)  # (B, W, n_labels)
        return em.float(), out

    def emissions(self, batch: TextBatch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Emission scores in fp32 and the head's auxiliary loss (``None`` when it has none)."""
        em, out = self.head_output(batch)
        return em, out.aux_loss.float() if out.aux_loss is not None else None

    # ------------------------------------------------------------------ verbs
    def forward_loss(self, batch: TextBatch) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tags, weighted and joined by the head's
        auxiliary loss as the head says (:class:`rgcn.heads.HeadOutput`)."""
        if batch.tag_ids is None:
            raise ValueError("forward_loss needs a labelled batch")
        emissions, out = self.head_output(batch)
        loss = -self.crf(emissions, batch.tag_ids, mask=batch.word_mask, reduction="mean")
        if out.crf_weight != 1.0:
            loss = out.crf_weight * loss
        if batch.views:                  # the head's other views: their emissions go to its views_loss
            names = self.head.views(training=True)
            per_view = {names[0]: emissions, **{v: self.emissions(b)[0] for v, b in batch.views.items()}}
            tie = self.head.views_loss(per_view, batch.word_mask, self.crf)
            loss = loss + tie if tie is not None else loss
        return loss + out.aux_loss.float() if out.aux_loss is not None else loss

    def decoding_crf(self) -> CRF:
        """The CRF that decodes (and scores spans): this tagger's, or its BIO-constrained copy."""
        return constrained_crf(self.crf, self.labels) if self.constrained else self.crf

    @torch.inference_mode()
    def decode_emissions(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
        """The best tag path of each post under this tagger's CRF (constrained or not).

        Shapes:
            emissions: ``(B, W, n_labels)``; mask: ``(B, W)``.
        """
        paths = decode(self.decoding_crf(), emissions, mask)
        return [[self.labels[t] for t in p] for p in paths]

    @torch.inference_mode()
    def decode(self, batch: TextBatch) -> list[list[str]]:
        return self.decode_emissions(self.emissions(batch)[0], batch.word_mask)

    @torch.inference_mode()
    def predict(self, samples: Sequence[Sample] | TaggingDataset, batch_size: int = 64,
                progress: bool = False, ensemble: Sequence["Tagger"] = ()) -> Prediction:
        """Tag posts; returns tags in the input order and the time it took. With ``ensemble``
        (other taggers, see :func:`check_ensemble`) each post's emissions are the mean of this
        tagger's and theirs, decoded once by this tagger's CRF."""
        models = [self, *ensemble]
        if ensemble:
            check_ensemble(models)
        was_training = [m.training for m in models]
        for m in models:
            m.eval()
        dataset = samples if isinstance(samples, TaggingDataset) else TaggingDataset(samples, self.tokenizer)
        start = time.perf_counter()
        out: list[list[str] | None] = [None] * len(dataset)
        sampler = BucketSampler(dataset.lengths(), batch_size, shuffle=False)
        for idx in tqdm(sampler, desc="tagging", unit="batch", disable=not progress, leave=False):
            batch = self.make_batch(dataset, idx, training=False).to(self.device)
            emissions = self.emissions(batch)[0]  # (B, W, n_labels)
            for m in ensemble:
                emissions = emissions + m.emissions(m.make_batch(dataset, idx, training=False).to(m.device))[0].to(
                    self.device)
            for i, tags in zip(idx, self.decode_emissions(emissions / len(models), batch.word_mask)):
                out[i] = tags
        elapsed = time.perf_counter() - start
        for m, was in zip(models, was_training):
            m.train(was)
        return Prediction(out, elapsed)  # type: ignore[arg-type]

    def evaluate(self, samples: Sequence[Sample] | TaggingDataset, batch_size: int = 64,
                 progress: bool = False, ensemble: Sequence["Tagger"] = ()) -> tuple[Scores, Prediction]:
        """Entity-level scores over the whole split, and the predictions behind them (of the
        ensemble with ``ensemble``, see :meth:`predict`)."""
        pred = self.predict(samples, batch_size, progress, ensemble)
        gold_samples = samples.samples if isinstance(samples, TaggingDataset) else samples
        return score([s.tags for s in gold_samples], pred.tags), pred
