"""The linear-chain CRF's inference, as pure functions of its potentials.

The tagger's CRF layer is pytorch-crf's :class:`torchcrf.CRF` (its parameters and its
log-likelihood for training); what the tagger reads from it at inference lives here:

- :func:`viterbi_decode`: the best tag path of every post, batched: the backtrace follows
  the back-pointers of the whole batch with :func:`torch.gather`, with no host round trip per
  word (pytorch-crf's own decoder calls ``.item()`` per word and post). Equal to
  :meth:`torchcrf.CRF.decode`.
- :func:`forward_scores`, :func:`backward_scores`: the forward and backward messages
  ``log alpha``, ``log beta``, and :func:`span_probabilities`: the exact probability of a
  labelled span, ``P(y_s = B-X, y_{s+1..e-1} = I-X, y_e != I-X | x)``, from them.
- :func:`crf_marginals`: per-word marginals at a temperature, differentiable (ITA's
  cross-view alignment trains with them).
- :func:`bio_allowed`, :func:`constrained_crf`: BIO-constrained decoding.

Notation: ``e_t`` the emission scores of word ``t``, ``A[i, j]`` the score of tag ``j``
after tag ``i``, ``pi`` the start and ``omega`` the end scores; a path's score is
``pi[y_0] + e_0[y_0] + sum_t (A[y_{t-1}, y_t] + e_t[y_t]) + omega[y_{n-1}]`` and its
probability ``exp(score) / Z``.
"""
from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Sequence

import torch
from torchcrf import CRF

from data.spans import get_spans

FORBIDDEN = -1e4
"""The score of a forbidden transition in the constrained decoder: far below any path's."""


# --------------------------------------------------------------------------- BIO constraints
def bio_allowed(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Which tags may open a post and follow each tag under BIO: ``I-X`` only after ``B-X``
    or ``I-X``; every other tag anywhere.

    Shapes:
        output: ``start (L,)`` and ``transition (L, L)`` booleans, ``transition[i, j]``: tag
        ``j`` may follow tag ``i``.
    """
    L = len(labels)
    start = torch.ones(L, dtype=torch.bool)
    trans = torch.ones(L, L, dtype=torch.bool)
    for j, tag in enumerate(labels):
        if tag.startswith("I-"):
            start[j] = False
            for i, prev in enumerate(labels):
                trans[i, j] = prev[2:] == tag[2:] and prev[:2] in ("B-", "I-")
    return start, trans


def constrained_crf(crf: CRF, labels: Sequence[str]) -> CRF:
    """A copy of ``crf`` whose forbidden BIO transitions (:func:`bio_allowed`) score :data:`FORBIDDEN`."""
    start, trans = bio_allowed(labels)
    out = copy.deepcopy(crf)
    with torch.no_grad():
        out.start_transitions.masked_fill_(~start.to(crf.start_transitions.device), FORBIDDEN)
        out.transitions.masked_fill_(~trans.to(crf.transitions.device), FORBIDDEN)
    return out


# --------------------------------------------------------------------------- decoding
def viterbi_decode(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                   transitions: torch.Tensor) -> list[list[int]]:
    """The highest-scoring tag path of each post.

    The forward pass keeps, per word and tag, the best previous tag (the back-pointers);
    the backtrace starts each post at its own last word and walks back through the
    back-pointers of every post at once (one :func:`torch.gather` per word position), so
    the paths reach the host once, at the end.

    Args:
        emissions (Tensor): emission scores ``e``.
        mask (Tensor): the words (``True``); the first word of every post must be on, and
            each post's words come first (a prefix).
        start, end (Tensor): ``pi`` and ``omega``.
        transitions (Tensor): ``A``, ``A[i, j]`` the score of tag ``j`` after tag ``i``.

    Shapes:
        ``emissions (B, W, L)``, ``mask (B, W)``, ``start (L,)``, ``end (L,)``,
        ``transitions (L, L)`` -> ``B`` lists of tag ids, each as long as its post.
    """
    B, W, L = emissions.shape
    if W == 0 or B == 0:
        return [[] for _ in range(B)]
    mask = mask.bool()
    score = start + emissions[:, 0]                                   # (B, L)
    pointers = []
    for t in range(1, W):
        nxt, best_prev = (score.unsqueeze(2) + transitions).max(dim=1)   # (B, L), (B, L)
        nxt = nxt + emissions[:, t]
        score = torch.where(mask[:, t:t + 1], nxt, score)
        pointers.append(best_prev)
    score = score + end
    lengths = mask.sum(dim=1)                                         # (B,)
    last = lengths - 1
    tag = score.argmax(dim=1)                                         # (B,): the best tag at each post's last word
    paths = torch.zeros(B, W, dtype=torch.long, device=emissions.device)
    paths[:, W - 1] = tag
    for t in range(W - 2, -1, -1):
        back = pointers[t].gather(1, tag.unsqueeze(1)).squeeze(1)     # (B,): best tag at t given the tag at t + 1
        tag = torch.where(t < last, back, tag)                        # beyond a post's end: keep its last tag
        paths[:, t] = tag
    rows = paths.tolist()
    return [row[:n] for row, n in zip(rows, lengths.tolist())]


def decode(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
    """:func:`viterbi_decode` with a pytorch-crf layer's potentials (``batch_first`` shapes)."""
    return viterbi_decode(emissions.float(), mask, crf.start_transitions.float(), crf.end_transitions.float(),
                          crf.transitions.float())


# --------------------------------------------------------------------------- forward-backward
def forward_scores(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor,
                   transitions: torch.Tensor) -> torch.Tensor:
    """``log alpha_t(j)``: the log of the summed scores of all paths over words ``0..t``
    ending in tag ``j``, emissions up to ``t`` included. Beyond a post's end it keeps the
    value of the post's last word.

    Shapes: ``emissions (B, W, L)``, ``mask (B, W)``, ``start (L,)``, ``transitions (L, L)``
    -> ``(B, W, L)``.
    """
    alpha = [start + emissions[:, 0]]                                 # (B, L)
    for t in range(1, emissions.shape[1]):
        nxt = torch.logsumexp(alpha[-1].unsqueeze(2) + transitions, dim=1) + emissions[:, t]   # (B, L)
        alpha.append(torch.where(mask[:, t:t + 1].bool(), nxt, alpha[-1]))
    return torch.stack(alpha, dim=1)                                  # (B, W, L)


def backward_scores(emissions: torch.Tensor, mask: torch.Tensor, end: torch.Tensor,
                    transitions: torch.Tensor) -> torch.Tensor:
    """``log beta_t(i)``: the log of the summed scores of all continuations after word ``t``
    given tag ``i`` at ``t`` (the emission of ``t`` excluded, the end score included); at a
    post's last word (and beyond) it is ``omega``.

    Shapes: ``emissions (B, W, L)``, ``mask (B, W)``, ``end (L,)``, ``transitions (L, L)``
    -> ``(B, W, L)``.
    """
    B, W, L = emissions.shape
    omega = end.expand(B, L)
    beta = [omega]
    for t in range(W - 2, -1, -1):
        nxt = torch.logsumexp(transitions + (emissions[:, t + 1] + beta[-1]).unsqueeze(1), dim=2)   # (B, L)
        beta.append(torch.where(mask[:, t + 1:t + 2].bool(), nxt, omega))
    return torch.stack(beta[::-1], dim=1)                             # (B, W, L)


def log_partition(alpha: torch.Tensor, mask: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """``log Z`` of each post from its forward messages.

    Shapes: ``alpha (B, W, L)``, ``mask (B, W)``, ``end (L,)`` -> ``(B,)``.
    """
    last = mask.long().sum(dim=1) - 1                                 # (B,)
    a = alpha[torch.arange(alpha.shape[0], device=alpha.device), last]  # (B, L)
    return torch.logsumexp(a + end, dim=1)


def span_probabilities(emissions: torch.Tensor, mask: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                       transitions: torch.Tensor, spans: Sequence[tuple[int, int, int, int, int]]) -> list[float]:
    """The exact probability of each labelled span under the CRF:

        P(y_s = first, y_{s+1..e-1} = inside, y_e != inside | x)

    (``y_e`` unconstrained when ``e`` is the post's end), from the forward and backward
    messages:

        alpha_s(first) + sum_{t=s+1}^{e-1} (A[y_{t-1}, inside] + e_t[inside])
            + [omega(y_{e-1})  if e = n  else  logsumexp_{j != inside} (A[y_{e-1}, j] + e_e[j] + beta_e(j))]
            - log Z.

    ``first`` is ``B-X`` for a span opened the BIO way. A span the lenient scorer opens at
    ``I-X`` (``first == inside``, after ``O``, another type or at the start) also needs
    ``y_{s-1}`` to be neither ``B-X`` nor ``I-X``; ``begin`` (the id of ``B-X``) names the
    tag to exclude besides ``inside``, and ``alpha_s`` is summed over the other previous tags.

    Args:
        spans: ``(post, s, e, first, inside, begin)`` each: the post's row, the span's words
            ``[s, e)``, and the ids of its first tag, of ``I-X`` and of ``B-X``
            (:func:`labelled_spans` makes them from a tag sequence).

    Shapes: ``emissions (B, W, L)``, ``mask (B, W)``, ``start, end (L,)``,
    ``transitions (L, L)`` -> one float per span.
    """
    if not spans:
        return []
    alpha = forward_scores(emissions, mask, start, transitions)       # (B, W, L)
    beta = backward_scores(emissions, mask, end, transitions)         # (B, W, L)
    log_z = log_partition(alpha, mask, end)                           # (B,)
    lengths = mask.long().sum(dim=1).tolist()
    out = []
    for post, s, e, first, inside, begin in spans:
        em = emissions[post]                                          # (W, L)
        if first == inside and s > 0:                                 # opened at I-X: no B-X/I-X before it
            prev = alpha[post, s - 1] + transitions[:, inside]         # (L,)
            keep = torch.ones_like(prev, dtype=torch.bool)
            keep[[begin, inside]] = False
            score = torch.logsumexp(prev[keep], dim=0) + em[s, inside]
        else:
            score = alpha[post, s, first]
        if e - s > 1:
            score = score + transitions[first, inside] + transitions[inside, inside] * (e - s - 2) \
                + em[s + 1:e, inside].sum()
        tail_tag = inside if e - s > 1 else first
        if e >= lengths[post]:
            score = score + end[tail_tag]
        else:
            nxt = transitions[tail_tag] + em[e] + beta[post, e]       # (L,)
            nxt = torch.cat([nxt[:inside], nxt[inside + 1:]])
            score = score + torch.logsumexp(nxt, dim=0)
        out.append(score - log_z[post])
    return torch.stack(out).exp().clamp(0.0, 1.0).tolist()


def labelled_spans(tags: Sequence[str], labels: Sequence[str]) -> list[tuple[str, int, int, int, int, int]]:
    """The entity spans of a tag sequence as :func:`data.spans.get_spans` reads them, each
    ``(type, s, e, first, inside, begin)``: the tag ids :func:`span_probabilities` takes.
    A type outside ``labels`` (no ``B-X``/``I-X`` there) raises ``KeyError``."""
    index = {t: i for i, t in enumerate(labels)}
    return [(etype, s, e, index[tags[s]], index[f"I-{etype}"], index[f"B-{etype}"])
            for etype, s, e in get_spans(tags)]


def crf_span_probabilities(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor,
                           spans: Sequence[tuple[int, int, int, int, int, int]]) -> list[float]:
    """:func:`span_probabilities` with a pytorch-crf layer's potentials."""
    with torch.no_grad():
        return span_probabilities(emissions.float(), mask, crf.start_transitions.float(), crf.end_transitions.float(),
                                  crf.transitions.float(), spans)


def crf_marginals(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0,
                  create_graph: bool = False) -> torch.Tensor:
    """Per-word marginals ``p_T(y_i = t | x)`` of a linear-chain CRF whose potentials
    (emissions, transitions, start and end scores) are divided by ``temperature``: the
    gradient of the log-partition ``log Z`` (pytorch-crf's forward algorithm) with respect to
    the tempered emissions, ``p_T(y_i = t) = d log Z(theta / T) / d(e_it / T)``.

    Args:
        crf (CRF): a ``batch_first`` pytorch-crf layer.
        emissions (Tensor): emission scores.
        mask (Tensor): the words (``True``), the first word of every row on.
        temperature (float, default 1.0): ``T``; above 1 flattens the distribution.
        create_graph (bool, default False): keep the result differentiable with respect to
            ``emissions`` and the CRF (a student); otherwise the emissions are detached (a
            teacher). Needs autograd: not under ``torch.inference_mode``.

    Shapes:
        ``emissions (B, W, L)``, ``mask (B, W)`` -> ``(B, W, L)``, rows summing to 1 on the
        words and 0 on the padding.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    T = float(temperature)
    with torch.enable_grad():
        e = emissions if create_graph and emissions.requires_grad else emissions.detach().requires_grad_(True)
        potentials = e.float() / T                                         # (B, W, L)
        scaled = crf if T == 1 else SimpleNamespace(
            num_tags=crf.num_tags, start_transitions=crf.start_transitions / T,
            end_transitions=crf.end_transitions / T, transitions=crf.transitions / T)
        log_z = CRF._compute_normalizer(scaled, potentials.transpose(0, 1), mask.transpose(0, 1).bool())  # (B,)
        (marginals,) = torch.autograd.grad(log_z.sum(), potentials, create_graph=create_graph)
    return marginals                                                       # (B, W, L)
