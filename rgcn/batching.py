"""From samples to batches: sub-word ids computed once, length-bucketed batches."""
from __future__ import annotations

import random
from typing import Iterator, Sequence

from torch.utils.data import Dataset, Sampler

from data.corpus import Sample
from .encoder import EncodedPost, WordTokenizer


class TaggingDataset(Dataset):
    """Samples with their sub-word ids, and tag ids when the samples are labelled."""

    def __init__(self, samples: Sequence[Sample], tokenizer: WordTokenizer, labels: Sequence[str] | None = None):
        self.samples = list(samples)
        self.encoded: list[EncodedPost] = [tokenizer.encode(s.tokens) for s in self.samples]
        self.tag_ids = None
        if labels is not None and all(s.tags is not None for s in self.samples):
            index = {t: i for i, t in enumerate(labels)}
            self.tag_ids = []
            for s in self.samples:
                unknown = [t for t in s.tags if t not in index]
                if unknown:
                    raise ValueError(f"post {s.id!r} has tag {unknown[0]!r}, which the model was not "
                                     f"trained on (known: {', '.join(labels)})")
                self.tag_ids.append([index[t] for t in s.tags])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> int:
        return i

    def lengths(self) -> list[int]:
        return [sum(len(p) for p in e.word_pieces) for e in self.encoded]


class BucketSampler(Sampler[list[int]]):
    """Batches of posts of similar length, in random order; seeded and resumable.

    Posts are shuffled, cut into pools of ``pool`` batches, sorted by length inside each
    pool and cut into batches; the batch order is shuffled again. ``shuffle=False`` sorts
    the whole set by length (for evaluation, where order does not matter).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool, seed: int = 0, pool: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.pool = pool
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        idx = list(range(len(self.lengths)))
        if not self.shuffle:
            idx.sort(key=lambda i: self.lengths[i])
            return [idx[i: i + self.batch_size] for i in range(0, len(idx), self.batch_size)]
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        rng.shuffle(idx)
        span = self.batch_size * self.pool
        out = []
        for p in range(0, len(idx), span):
            chunk = sorted(idx[p: p + span], key=lambda i: self.lengths[i])
            out += [chunk[i: i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        rng.shuffle(out)
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size if not self.shuffle else len(self.batches())
