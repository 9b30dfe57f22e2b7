"""benchmarks/calibration.py: the reliability table by hand, and main() end to end on a tiny run."""
import json

import pytest

import train
from benchmarks.calibration import main, reliability
from tests.rgcn.test_training import _args


def test_reliability_by_hand():
    conf = [0.05, 0.95, 0.91, 1.0, 0.5, 0.55]
    right = [False, True, False, True, True, False]
    r = reliability(conf, right, bins=10)
    assert [b["n"] for b in r["bins"]] == [1, 0, 0, 0, 0, 2, 0, 0, 0, 3]     # 1.0 falls in the last bin
    last = r["bins"][9]
    assert last["mean_confidence"] == pytest.approx((0.95 + 0.91 + 1.0) / 3)
    assert last["share_correct"] == pytest.approx(2 / 3)
    expected = (1 / 6) * 0.05 + (2 / 6) * abs(0.5 - 0.525) + (3 / 6) * abs(2 / 3 - (0.95 + 0.91 + 1.0) / 3)
    assert r["ece"] == pytest.approx(expected)
    assert reliability([0.7, 0.7], [True, False], bins=10)["ece"] == pytest.approx(0.2)
    assert reliability([], [], bins=10)["ece"] is None
    with pytest.raises(ValueError):
        reliability([1.2], [True])


def test_main_writes_json_and_markdown(tmp_path, tiny_encoder):
    train.main(_args(tmp_path, tiny_encoder, "train.epochs=1"))
    out = tmp_path / "cal.json"
    res = main(["--runs", str(tmp_path / "runs" / "r"), "--split", str(tmp_path / "d.txt"), "--output", str(out),
                "--bins", "5"])
    saved = json.loads(out.read_text())
    assert saved["runs"][0]["head"] == "text" and len(saved["runs"][0]["bins"]) == 5
    assert sum(b["n"] for b in saved["runs"][0]["bins"]) == saved["runs"][0]["n"]
    md = out.with_suffix(".md").read_text()
    assert md.startswith("`python benchmarks/calibration.py") and "| text |" in md
    assert res["provenance"]["command"] in md
