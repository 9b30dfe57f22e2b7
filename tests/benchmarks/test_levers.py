"""benchmarks/levers.py: one dev-only sweep per lever, decoding levers on the base runs."""
import json

import benchmarks.levers as levers
from tests.conftest import TINY_CONLL

BROKEN = """a\tI-PER
b\tO
c\tI-LOC

d\tB-PER
e\tI-LOC
f\tI-LOC
g\tB-ORG
h\tI-ORG
"""


def test_bio_breaks_counts_each_kind_by_hand(tmp_path):
    (tmp_path / "x.txt").write_text(BROKEN)
    assert levers.bio_breaks(str(tmp_path / "x.txt")) == {
        "inside_tags": 5, "breaking": 3, "open_a_post": 1, "after_O": 1, "after_another_type": 1}


def test_a_tiny_lever_sweep_compares_each_lever_with_the_base(tmp_path, tiny_encoder):
    for split in ("train", "valid"):
        (tmp_path / f"{split}.txt").write_text(TINY_CONLL)
    config = tmp_path / "c.yaml"
    config.write_text(f"name: x\ndata:\n  train: {tmp_path / 'train.txt'}\n  valid: {tmp_path / 'valid.txt'}\n"
                      f"encoder:\n  name: {tiny_encoder}\ntrain:\n  batch_size: 2\n  threads: 1\n")
    args = ["--config", str(config), "--name", "t", "--levers", "cosine", "constrained", "ensemble",
            "--seeds", "13", "14", "--epochs", "1", "--out-dir", str(tmp_path / "runs"),
            "--output", str(tmp_path / "levers.json")]
    out = levers.main(args)
    assert set(out["levers"]) == {"base", "cosine", "constrained", "ensemble"}
    for lever, schedule in (("base", "linear"), ("cosine", "cosine")):
        sweep = json.loads((tmp_path / "runs" / f"t_{lever}.json").read_text())
        assert sweep["dev_only"] and sweep["seeds"] == [13, 14]
        assert out["levers"][lever]["dev_f1"] == sweep["summary"]["dev"]["f1"]
        for seed in (13, 14):
            cfg = json.loads((tmp_path / "runs" / f"t_{lever}" / f"seed{seed}" / "config.json").read_text())
            assert cfg["train"]["schedule"] == schedule and cfg["train"]["seed"] == seed
    base = out["levers"]["base"]["dev_f1"]["mean"]
    for lever in ("cosine", "constrained", "ensemble"):
        got = out["levers"][lever]
        assert got["gain"] == round(got["dev_f1"]["mean"] - base, 4)
        assert got["kept"] == (got["gain"] >= 0.2)
    assert out["levers"]["ensemble"]["dev_f1"]["n"] == 1 and out["levers"]["constrained"]["dev_f1"]["n"] == 2
    md = (tmp_path / "levers.md").read_text()
    assert md.startswith("`") and "| cosine | train.schedule=cosine |" in md
    # a second call reuses every run: nothing is trained again
    stamp = (tmp_path / "runs" / "t_base" / "seed13" / "results.json").stat().st_mtime_ns
    again = levers.main(args)
    assert (tmp_path / "runs" / "t_base" / "seed13" / "results.json").stat().st_mtime_ns == stamp
    assert again["levers"]["cosine"]["dev_f1"] == out["levers"]["cosine"]["dev_f1"]
