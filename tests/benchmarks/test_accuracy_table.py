"""benchmarks/accuracy_table.py: each sweep's own figures, under the right columns."""
import json
from pathlib import Path

import pytest

from benchmarks import accuracy_table
from data.errors import UserError, raising


def _sweep(path, name, dev, test, ens, epochs):
    def fig(values):
        return None if values is None else {"mean": sum(values) / len(values), "sd": 0.5 if len(values) > 1 else None,
                                            "min": min(values), "max": max(values), "n": len(values)}
    summary = {"dev": {"f1": fig(dev)}, "minutes_per_epoch": fig([2.0, 4.0][:len(dev)])}
    if test:
        summary["test"] = {"f1": fig(test)}
    runs = [{"seed": 13 + i, "best_epoch": e, "epochs": 6} for i, e in enumerate(epochs)]
    result = {"provenance": {"command": f"python benchmarks/accuracy.py --name {name}"}, "name": name,
              "summary": summary, "runs": runs, "ensembles": ens}
    path.write_text(json.dumps(result))
    return str(path)


def test_the_table_holds_each_sweeps_figures(tmp_path):
    one = {"size": 2, "groups": [{}], "summary": {"dev": {"f1": {"mean": 73.5, "sd": None}},
                                                  "test": {"f1": {"mean": 65.25, "sd": None}}}}
    a = _sweep(tmp_path / "accuracy_t15.json", "t15", [70.0, 72.0], [60.0, 64.0], one, [3, 5])
    b = _sweep(tmp_path / "t17.json", "t17", [80.0], None, None, [2])
    c = json.loads(Path(a).read_text())               # two disjoint ensembles of one seed each
    c["ensembles"] = {"size": 1, "groups": [{}, {}], "summary": {
        "dev": {"f1": {"mean": 74.0, "sd": 1.0}}, "test": {"f1": {"mean": 66.0, "sd": 2.0}}}}
    (tmp_path / "groups.json").write_text(json.dumps(c))
    out = accuracy_table.main(["--sweeps", a, b, str(tmp_path / "groups.json"), "--out", str(tmp_path / "table.json")])
    first, second, third = out["rows"]
    assert (first["dev_f1"]["mean"], first["test_f1"]["mean"]) == (71.0, 62.0)
    assert (first["ensemble"]["dev"]["mean"], first["ensemble"]["test"]["mean"], first["epochs_chosen"]) \
        == (73.5, 65.25, [3, 5])
    md = (tmp_path / "table.md").read_text().splitlines()
    assert md[0] == f"`{out['provenance']['command']}`"
    rows = [line for line in md if line.startswith("| `")]
    assert rows[0] == ("| `t15` | 2 | 71.00 ± 0.50 | 62.00 ± 0.50 (60.00-64.00) | 73.50 / 65.25 (2 seeds) "
                       "| 3, 5 of 6 | 3.0 (2.0-4.0) |")
    assert rows[1] == "| `t17` | 1 | 80.00 | - | - | 2 of 6 | 2.0 (2.0-2.0) |"
    assert rows[2].startswith("| `groups` |") and "| 74.00 ± 1.00 / 66.00 ± 2.00 (2 x 1 seeds) |" in rows[2]


def test_a_missing_sweep_says_how_to_make_it(tmp_path):
    with pytest.raises(UserError, match="no_such.json not found: run `python benchmarks/accuracy.py"):
        raising(accuracy_table.main)(["--sweeps", str(tmp_path / "no_such.json"), "--out", str(tmp_path / "t.json")])
