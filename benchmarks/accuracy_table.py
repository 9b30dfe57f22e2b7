"""One table of the text tagger's accuracy sweeps, drawn from their result files.

Each row is one ``benchmarks/accuracy.py`` sweep (``benchmarks/results/accuracy_<name>.json``):
its seeds, dev and test entity micro-F1 (mean ± sample sd over the seeds, with the range),
the seeds' ensemble on dev and test when the sweep scored it (``--ensemble``; with
``--ensemble K``, mean ± sd over its disjoint ensembles of K seeds), the chosen
epochs and the minutes per epoch. Nothing is recomputed: every figure is the sweep's own.

    python benchmarks/accuracy_table.py                     # make accuracy's sweeps and the 6-seed one
    python benchmarks/accuracy_table.py --sweeps twitter2015_mpnet runs/levers/t15_mpnet_epochs8.json --out /tmp/t.json

Writes ``benchmarks/results/accuracy_table.json`` (``--out``) and ``.md`` beside it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402
from benchmarks.provenance import RESULTS, write_rendering, write_result  # noqa: E402

SWEEPS = ("twitter2015_mpnet", "twitter2015_mpnet_6seeds", "twitter2015_minilm", "twitter2017_mpnet", "twitter2017_minilm")
HEADER = ("sweep", "seeds", "dev F1", "test F1", "ensemble dev / test", "epochs chosen", "min/epoch")


def spread(s: dict | None, with_range: bool = False) -> str:
    """``mean ± sd`` of a summary figure (``-`` when missing; no sd for one seed)."""
    if not s:
        return "-"
    text = f"{s['mean']:.2f}" if s.get("sd") is None else f"{s['mean']:.2f} ± {s['sd']:.2f}"
    return text + (f" ({s['min']:.2f}-{s['max']:.2f})" if with_range and s.get("n", 1) > 1 else "")


def row(result: dict, label: str) -> dict:
    """The table's figures of one sweep's result file, named ``label`` (its file's stem)."""
    s, groups = result["summary"], result.get("ensembles")
    # disjoint ensembles of `size` seeds (one when the sweep ran plain --ensemble): their F1 spread
    ensemble = groups and {"size": groups["size"], "count": len(groups["groups"]),
                           **{k: v["f1"] for k, v in groups["summary"].items()}}
    return {"sweep": label, "seeds": [r["seed"] for r in result["runs"]],
            "dev_f1": s["dev"]["f1"], "test_f1": (s.get("test") or {}).get("f1"), "ensemble": ensemble,
            "epochs_chosen": [r["best_epoch"] for r in result["runs"]],
            "epochs": result["runs"][0]["epochs"] if result["runs"] else None,
            "minutes_per_epoch": s["minutes_per_epoch"], "command": result["provenance"]["command"]}


def render(rows: list[dict]) -> str:
    def ensemble(r: dict) -> str:
        e = r["ensemble"]
        if not e:
            return "-"
        size = f"{e['count']} x {e['size']} seeds" if e["count"] > 1 else f"{e['size']} seeds"
        return f"{spread(e.get('dev'))} / {spread(e.get('test'))} ({size})"

    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        m = r["minutes_per_epoch"]
        cells = (f"`{r['sweep']}`", str(len(r["seeds"])), spread(r["dev_f1"]), spread(r["test_f1"], True),
                 ensemble(r), f"{', '.join(map(str, r['epochs_chosen']))} of {r['epochs']}",
                 f"{m['mean']:.1f} ({m['min']:.1f}-{m['max']:.1f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> dict:
    p = ArgumentParser(prog="python benchmarks/accuracy_table.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--sweeps", nargs="+", default=list(SWEEPS),
                   help="sweep names (benchmarks/results/accuracy_<name>.json) or result file paths")
    p.add_argument("--out", default=str(RESULTS / "accuracy_table.json"))
    a = p.parse_args(argv)
    rows = []
    for name in a.sweeps:
        path = Path(name) if name.endswith(".json") else RESULTS / f"accuracy_{name}.json"
        if not path.is_file():
            raise UserError(f"{path} not found: run `python benchmarks/accuracy.py --config ...` for that sweep "
                            "first (`make accuracy` runs the four default ones)")
        rows.append(row(json.loads(path.read_text()), path.stem.removeprefix("accuracy_")))
    out = Path(a.out)
    result = write_result(out, {"rows": rows}, __file__, argv)
    text = (f"`{result['provenance']['command']}`\n\n"
            "Entity micro-F1 in percent; mean ± sample sd over seeds (range); each seed's epoch chosen on dev, "
            "test scored once; ensemble: the seeds' mean emissions.\n\n" + render(rows) + "\n")
    write_rendering(out.with_suffix(".md"), result, text)
    print(render(rows))
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
