"""The parts benchmarks/ita_attention.py splits a window into, and the mass on each."""
import pytest
import torch

from benchmarks.ita_attention import positions, shares


def test_positions_split_the_window_into_the_name_copy_the_sign_the_rest_and_the_post():
    # [CLS] look at mar ##ova [SEP] dr . mar ##ova . cup [SEP]
    ids = [101, 1, 2, 30, 31, 102, 40, 41, 30, 31, 41, 50, 102]
    parts = positions(ids, query=3, sep_id=102, sign_pieces=4)           # the sign: dr . mar ##ova
    assert parts == {"name_copy": [8], "sign_other": [6, 7, 9], "context_rest": [10, 11], "post": [1, 2, 3, 4]}
    # with the tags read first nothing counts as the sign
    assert positions(ids, 3, 102, 0)["sign_other"] == [] and positions(ids, 3, 102, 0)["context_rest"] == [6, 7, 9, 10, 11]


def test_shares_sum_each_part_per_layer():
    rows = [torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.0, 0.5, 0.25, 0.25])]
    got = shares(rows, {"a": [1, 2], "b": [3], "none": []})
    assert got["a"] == pytest.approx([0.5, 0.75]) and got["b"] == pytest.approx([0.4, 0.25])
    assert got["none"] == [0.0, 0.0]
