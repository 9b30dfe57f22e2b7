"""benchmarks/seeds.py: mean and spread of single-seed results, by hand."""
import json
import statistics

import pytest

from benchmarks import seeds
from data.errors import UserError, raising


def result(tmp_path, name, seed, test, valid, head="text"):
    r = {"splits": {"train": "t"}, "encoder": "m", "head": head, "head_options": [], "casing_dim": 16, "epochs": 6,
         "precision": "auto", "seed": seed, "test": {"f1": test}, "valid": {"f1": valid},
         "test_by_type": {"PER": {"f1": test + 10}}, "minutes_per_epoch_train": 1.0, "tagging_posts_per_second": 100.0}
    path = tmp_path / f"{name}_{seed}.json"
    path.write_text(json.dumps(r))
    return str(path)


def test_groups_by_hand(tmp_path):
    a = [result(tmp_path, "a", s, t, 70.0) for s, t in ((13, 71.0), (14, 72.0), (15, 74.0))]
    b = [result(tmp_path, "b", s, t, 71.0, head="bga") for s, t in ((13, 70.0), (14, 73.0))]
    out = seeds.main(["--group", "text", *a, "--group", "bga", *b, "--output", str(tmp_path / "o.json")])
    t, g = out["groups"]["text"], out["groups"]["bga"]
    assert t["test_f1"]["mean"] == pytest.approx(72.3333, abs=1e-3)
    assert t["test_f1"]["sd"] == pytest.approx(statistics.stdev([71.0, 72.0, 74.0]), abs=1e-3)
    assert t["test_f1_by_type"]["PER"]["max"] == 84.0 and t["seeds"] == [13, 14, 15]
    assert g["test_f1_minus_first"] == pytest.approx(71.5 - 72.3333, abs=1e-3)


def test_a_group_must_differ_in_the_seed_only(tmp_path):
    mixed = [result(tmp_path, "a", 13, 71.0, 70.0), result(tmp_path, "b", 14, 71.0, 70.0, head="bga")]
    with pytest.raises(UserError, match="differs .* in head"):
        raising(seeds.main)(["--group", "x", *mixed, "--output", str(tmp_path / "o.json")])
    twice = [result(tmp_path, "a", 13, 71.0, 70.0), result(tmp_path, "c", 13, 72.0, 70.0)]
    with pytest.raises(UserError, match="appears twice"):
        raising(seeds.main)(["--group", "x", *twice, "--output", str(tmp_path / "o.json")])
