"""The real Twitter benchmarks in ../shared/data: the counts their README states."""
import os
from collections import Counter

import pytest

from data.corpus import read_corpus
from data.spans import get_spans

from ..conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="../shared/data is not beside the repo")


def _path(*p):
    return os.path.join(SHARED_DATA, *p)


@pytest.mark.parametrize("ds,split,n", [("twitter2015", "train", 4000), ("twitter2015", "valid", 1000),
                                        ("twitter2015", "test", 3257), ("twitter2017", "train", 3373),
                                        ("twitter2017", "valid", 723)])
def test_post_counts(ds, split, n):
    c = read_corpus(_path(ds, f"{split}.txt"), require_tags=True)
    assert len(c) == n and c.skipped_empty == 0


def test_b_tag_counts_train():
    t15 = Counter(t for s in read_corpus(_path("twitter2015", "train.txt")) for t in s.tags if t.startswith("B-"))
    assert t15 == {"B-PER": 2217, "B-LOC": 2091, "B-ORG": 927, "B-MISC": 931}
    t17 = Counter(t for s in read_corpus(_path("twitter2017", "train.txt")) for t in s.tags if t.startswith("B-"))
    assert t17 == {"B-PER": 2943, "B-LOC": 731, "B-ORG": 1674, "B-MISC": 701}


def test_t15_test_gold_entities_as_the_standard_scorer_counts():
    c = read_corpus(_path("twitter2015", "test.txt"))
    spans = Counter(sp[0] for s in c for sp in get_spans(s.tags))
    assert sum(spans.values()) == 5207
    assert spans == {"PER": 1873, "LOC": 1720, "ORG": 860, "MISC": 754}
    i_starts = sum(1 for s in c for (_, a, _) in get_spans(s.tags) if s.tags[a].startswith("I-"))
    assert i_starts == 135
