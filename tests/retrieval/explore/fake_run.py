"""A stand-in for a trained run behind the Retagger protocol (retrieval.explore.counterfactual):
it predicts the gold tags, except that it swaps PER and LOC in the posts whose id ends in
``-001``, and counts the posts it tags. The list pages only need its predictions."""
from __future__ import annotations

from retrieval.explore.counterfactual import Retagged

SWAP = {"B-PER": "B-LOC", "I-PER": "I-LOC", "B-LOC": "B-PER", "I-LOC": "I-PER"}


class SwappingRetagger:
    name, head, reads_neighbours, relations, fingerprint = "swap", "fake", True, ("inter", "intra"), "swap-1"

    def __init__(self, suffix: str = "-001"):
        self.suffix, self.tagged = suffix, []

    def wrong(self, post_id: str) -> bool:
        return post_id.endswith(self.suffix)

    def neighbours(self, sample):
        return {}

    def retag(self, sample, variants):
        self.tagged.append(sample.id)
        tags = [SWAP.get(t, t) for t in sample.tags] if self.wrong(sample.id) else list(sample.tags)
        return [Retagged(tags, []) for _ in variants]


class BatchingRetagger(SwappingRetagger):
    """The same, with the optional ``retag_many`` (several posts in one call), counting its calls."""

    def __init__(self, suffix: str = "-001"):
        super().__init__(suffix)
        self.batches = []

    def retag_many(self, jobs):
        self.batches.append(len(jobs))
        return [self.retag(sample, variants) for sample, variants in jobs]
