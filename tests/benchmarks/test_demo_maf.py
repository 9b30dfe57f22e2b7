"""benchmarks/demo_maf.py and benchmarks/maf_matching.py: per-kind scoring, the summary over
seeds, the AUC and the swapped partners, on hand-made inputs (no training)."""
import random

import numpy as np
import pytest

from benchmarks.demo_maf import KINDS, over_text, parse_args, score_by_kind, summarise, table
from benchmarks.maf_matching import auc, partners
from data.corpus import Sample


def post(kind, tags, target):
    return Sample(f"{kind}-{len(tags)}", ["w"] * len(tags), tags, meta={"kind": kind, "target": [target]})


def test_score_by_kind_counts_the_target_names_only():
    gold = [post("image_decided", ["B-PER", "O", "B-LOC"], [0, 1]),       # B-LOC is not a target
            post("image_decided", ["O", "B-ORG", "I-ORG"], [1, 3]),
            post("no_image", ["B-MISC", "O"], [0, 1])]
    pred = [["B-PER", "O", "O"], ["O", "B-PER", "I-PER"], ["B-MISC", "O"]]
    s = score_by_kind(gold, pred)
    assert s["image_decided_f1"] == pytest.approx(0.5) and s["image_decided_gold"] == 2
    assert s["no_image_f1"] == 1.0 and s["conflicting_image_gold"] == 0
    assert s["f1"] == pytest.approx(4 / 7)                               # 2 right; 4 gold, 3 predicted


def test_summary_and_ratios_over_seeds():
    def rows(x):
        return {"f1": x, **{f"{k}_f1": x for k in KINDS}, **{f"{k}_gold": 10 for k in KINDS}}

    per_seed = {s: {"rows": {"text": rows(0.5), "maf": rows(v)},
                    "timing": {"text": {"seconds_per_epoch": 10.0, "tagging_posts_per_second": 100.0},
                               "maf": {"seconds_per_epoch": t, "tagging_posts_per_second": 50.0}}}
                for s, v, t in (("13", 0.8, 11.0), ("14", 0.9, 13.0))}
    s = summarise(per_seed)
    assert s["maf"]["image_decided_f1"]["mean"] == pytest.approx(0.85) and "image_decided_gold" not in s["maf"]
    r = over_text(per_seed)
    assert r["maf"]["epoch_time"]["mean"] == pytest.approx(1.2) and r["maf"]["tagging_speed"]["mean"] == 0.5
    assert "85.0 ± 7.1" in table(s)
    assert parse_args([]).seeds == [13, 14, 15]


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
