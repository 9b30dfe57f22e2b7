"""benchmarks/maf_matching.py: the AUC and the swapped partners, on hand-made inputs (no training)."""
import random

import numpy as np
import pytest

from benchmarks.maf_matching import auc, partners


def test_auc_by_hand():
    assert auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auc([0.1], [0.9]) == 0.0
    assert auc([0.5, 0.7], [0.5, 0.6]) == pytest.approx((0.5 + 0 + 1 + 1) / 4)   # a tie counts half
    assert np.isnan(auc([], [0.1]))


def test_partners_never_show_a_post_its_own_image():
    rows = [0, 1, 2, 3, 3, 5, 6, 7]                                     # posts 3 and 4 share an image
    for seed in range(20):
        other = partners(rows, random.Random(seed))
        assert all(rows[j] != rows[i] for i, j in enumerate(other))
