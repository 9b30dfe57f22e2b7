"""rgcn/crf.py: the batched Viterbi decoder against pytorch-crf's, span probabilities
against enumerating every label path, and the marginals."""
import itertools
import math

import pytest
import torch
from torchcrf import CRF

from data.spans import get_spans
from rgcn.crf import (crf_span_probabilities, decode, labelled_spans, span_probabilities, viterbi_decode)

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def random_crf(n_tags, seed):
    torch.manual_seed(seed)
    crf = CRF(n_tags, batch_first=True)
    with torch.no_grad():                      # pytorch-crf starts near zero: spread them out
        for p in crf.parameters():
            p.normal_(0, 1.5)
    return crf


def prefix_mask(lengths, width):
    return torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)


@pytest.mark.parametrize("seed", range(40))
def test_viterbi_equals_pytorch_crf_decode(seed):
    g = torch.Generator().manual_seed(seed)
    B = int(torch.randint(1, 9, (1,), generator=g))
    W = int(torch.randint(1, 13, (1,), generator=g))
    L = int(torch.randint(1, 8, (1,), generator=g))
    lengths = torch.randint(1, W + 1, (B,), generator=g).tolist()
    lengths[0] = 1 if seed % 3 == 0 else lengths[0]            # posts of one word
    crf = random_crf(L, seed)
    emissions = 3 * torch.randn(B, W, L, generator=g)
    mask = prefix_mask(lengths, W)
    assert decode(crf, emissions, mask) == crf.decode(emissions, mask=mask)
    assert [len(p) for p in decode(crf, emissions, mask)] == lengths


def test_viterbi_of_one_word_posts_and_full_masks():
    crf = random_crf(5, 1)
    for shape in ((7, 1), (3, 6)):
        emissions, mask = torch.randn(*shape, 5), torch.ones(*shape, dtype=torch.bool)
        assert decode(crf, emissions, mask) == crf.decode(emissions, mask=mask)


def test_viterbi_by_hand():
    # two tags; the transition 0 -> 1 is very good, everything else neutral
    start, end = torch.zeros(2), torch.zeros(2)
    trans = torch.tensor([[0.0, 5.0], [0.0, 0.0]])
    em = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
    assert viterbi_decode(em, torch.ones(1, 3, dtype=torch.bool), start, end, trans) == [[0, 1, 0]]


def enumerate_paths(crf, em, n):
    """Every label path of an ``n``-word post with its probability, by brute force."""
    L = crf.num_tags
    scores = {}
    crf, em = crf.requires_grad_(False), em.detach()
    for path in itertools.product(range(L), repeat=n):
        s = crf.start_transitions[path[0]] + em[0, path[0]] + crf.end_transitions[path[-1]]
        for t in range(1, n):
            s = s + crf.transitions[path[t - 1], path[t]] + em[t, path[t]]
        scores[path] = float(s)
    log_z = torch.logsumexp(torch.tensor(list(scores.values()), dtype=torch.float64), 0).item()
    return {p: math.exp(s - log_z) for p, s in scores.items()}


@pytest.mark.parametrize("seed", range(4))
def test_span_probability_equals_enumeration_of_all_paths(seed):
    crf = random_crf(len(LABELS), seed)
    g = torch.Generator().manual_seed(seed)
    lengths = [4, 3, 1]
    emissions = 2 * torch.randn(len(lengths), 4, len(LABELS), generator=g)
    mask = prefix_mask(lengths, 4)
    for post, n in enumerate(lengths):
        probs = enumerate_paths(crf, emissions[post], n)
        spans, expected = [], []
        for s in range(n):
            for e in range(s + 1, n + 1):
                for etype in ("PER", "LOC"):
                    b, i = LABELS.index(f"B-{etype}"), LABELS.index(f"I-{etype}")
                    for first in (b, i):        # opened the BIO way, or at I-X as the scorer reads it
                        spans.append((post, s, e, first, i, b))
                        # the event for B-X; for I-X the scorer's reading of an opening I-X
                        expected.append(sum(p for path, p in probs.items()
                                            if (etype, s, e) in get_spans([LABELS[t] for t in path])
                                            and path[s] == first))
        got = crf_span_probabilities(crf, emissions, mask, spans)
        assert got == pytest.approx(expected, abs=1e-5)
        assert all(0.0 <= p <= 1.0 for p in got)


def test_span_probabilities_of_the_viterbi_path_sum_with_the_rest_to_one():
    # the spans of every path partition the probability mass: for one position, P(a span
    # starts there as B-X) summed over X and ends is P(y_s = B-X) summed over X
    crf = random_crf(len(LABELS), 7)
    em = torch.randn(1, 5, len(LABELS))
    mask = torch.ones(1, 5, dtype=torch.bool)
    from rgcn.crf import crf_marginals
    marg = crf_marginals(crf, em, mask)[0]
    for etype in ("PER", "LOC"):
        b, i = LABELS.index(f"B-{etype}"), LABELS.index(f"I-{etype}")
        total = sum(crf_span_probabilities(crf, em, mask, [(0, 2, e, b, i, b) for e in range(3, 6)]))
        assert total == pytest.approx(marg[2, b].item(), abs=1e-5)


def test_labelled_spans_reads_tags_as_the_scorer_does():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]
    got = labelled_spans(tags, LABELS)
    assert [(t, s, e) for t, s, e, *_ in got] == get_spans(tags)
    assert got[0][3:] == (1, 2, 1) and got[1][3:] == (4, 4, 3)
    with pytest.raises(KeyError):
        labelled_spans(["B-ORG"], LABELS)


def test_no_spans_gives_nothing():
    assert span_probabilities(torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), torch.zeros(3),
                              torch.zeros(3), torch.zeros(3, 3), []) == []
