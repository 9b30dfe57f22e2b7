"""benchmarks/demo_rgcn.py: the summary over seeds, on hand-made rows (no training)."""
import pytest

from benchmarks.demo_rgcn import DROPPED, metric_keys, parse_args, ratios, spread, summarise, table


def row(f1, inside, outside):
    # the columns compare_runs returns, with the outside-subset column under its newer name
    return {"run": "r", "f1": f1, "precision": f1, "recall": f1, "image_decided_f1": inside,
            "image_decided_gold": 200, "outside_image_decided_f1": outside}


PER_SEED = {
    "13": {"rows": {"text": row(0.60, 0.20, 0.90), "rgcn": row(1.0, 1.0, 1.0), DROPPED: row(0.58, 0.2, 0.88)},
           "timing": {"text": {"seconds_per_epoch": 10.0, "tagging_posts_per_second": 200.0},
                      "rgcn": {"seconds_per_epoch": 12.0, "tagging_posts_per_second": 160.0}}},
    "14": {"rows": {"text": row(0.64, 0.24, 0.92), "rgcn": row(0.98, 0.96, 1.0), DROPPED: row(0.62, 0.2, 0.92)},
           "timing": {"text": {"seconds_per_epoch": 12.0, "tagging_posts_per_second": 180.0},
                      "rgcn": {"seconds_per_epoch": 15.0, "tagging_posts_per_second": 180.0}}},
}


def test_metric_keys_are_generic():
    assert metric_keys(row(1, 1, 1)) == ["f1", "precision", "recall", "image_decided_f1", "outside_image_decided_f1"]
    assert metric_keys({"run": "r", "f1": 1, "other_f1": 1, "x_gold": 3}) == ["f1", "other_f1"]


def test_spread_by_hand():
    s = spread([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["sd"] == pytest.approx(0.2)
    assert (s["min"], s["max"], s["n"]) == (0.5, 0.9, 3)
    assert spread([0.4])["sd"] is None


def test_summarise_every_column_and_timing():
    s = summarise(PER_SEED)
    assert list(s) == ["text", "rgcn", DROPPED]
    assert s["text"]["f1"]["mean"] == pytest.approx(0.62)
    assert s["text"]["outside_image_decided_f1"]["sd"] == pytest.approx(0.0141421356)
    assert s["rgcn"]["seconds_per_epoch"]["mean"] == pytest.approx(13.5)
    assert "image_decided_gold" not in s["text"]
    assert "seconds_per_epoch" not in s[DROPPED]                    # scored, not trained
    r = ratios(PER_SEED)
    assert r["per_seed"]["13"] == {"epoch_time": pytest.approx(1.2), "tagging_speed": pytest.approx(0.8)}
    assert r["epoch_time"]["mean"] == pytest.approx((1.2 + 1.25) / 2)
    t = table(s)
    assert "outside_image_decided_f1" in t and "62.00 ± 2.83" in t and "over 2 seed(s)" in t


def test_three_seeds_by_default():
    a = parse_args([])
    assert a.seeds == [13, 14, 15] and a.output.endswith("benchmarks/results/demo_rgcn.json")
