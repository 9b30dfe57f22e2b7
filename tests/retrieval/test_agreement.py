import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.agreement import entity_types, label_agreement, random_agreement

PER, LOC, ORG = frozenset({"PER"}), frozenset({"LOC"}), frozenset({"ORG"})


def test_entity_types():
    assert entity_types(["B-PER", "I-PER", "O", "B-LOC"]) == {"PER", "LOC"}
    assert entity_types(["O"]) == frozenset() and entity_types(None) is None


def test_agreement_by_hand():
    qt = [PER, LOC, None, frozenset()]
    rows = np.array([[1, 2], [0, -1], [0, 1], [0, 1]])
    rt = [PER, PER | LOC, ORG]
    a = label_agreement(qt, rows, rt)
    assert a == {"agreement": 0.25, "micro": pytest.approx(1 / 3), "queries": 2, "pairs": 3}
    r = random_agreement(qt, np.array([0, 1, -1, -1]), np.array([0, 1, 2]), rt)
    assert r == {"agreement": 0.25, "queries": 2}


@given(st.lists(st.sampled_from([PER, LOC, ORG, PER | LOC]), min_size=3, max_size=12))
def test_neighbours_that_are_everyone_else_match_the_random_baseline(types):
    n = len(types)
    rows = np.array([[j for j in range(n) if j != i] for i in range(n)])
    a = label_agreement(types, rows, types)
    r = random_agreement(types, np.arange(n), np.arange(n), types)
    assert a["agreement"] == pytest.approx(r["agreement"])
