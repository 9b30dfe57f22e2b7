"""How many parameters each fusion head adds: counted in trained runs' checkpoints.

For each run folder (its ``best/`` checkpoint), reads the tensor shapes of
``model.safetensors`` (no weights are loaded) and sums them by part of the tagger: the
word ``encoder`` (backbone and casing embedding), the fusion ``head``, the ``emission``
layer and the ``crf``. ``added`` is a run's total minus the first run's (give the text
head's run first).

    python benchmarks/head_params.py runs/heads_ocr/text/seed13 runs/heads_ocr/maf/seed13 runs/heads_bga/bga/seed13

Writes ``benchmarks/results/head_params.json`` (``--output``) through ``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402

from benchmarks.provenance import RESULTS, write_result  # noqa: E402

PARTS = ("encoder", "head", "emission", "crf")


def count(run: str | Path) -> dict:
    """``{"head_name", "parts": {part: n}, "total"}`` of the run's best checkpoint."""
    from safetensors import safe_open

    ckpt = Path(run) / "best" if (Path(run) / "best" / "model.safetensors").is_file() else Path(run)
    if not (ckpt / "model.safetensors").is_file():
        raise UserError(f"{run}: no model.safetensors in it or in its best/ folder (is it a run folder?)")
    parts = dict.fromkeys(PARTS, 0)
    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        for key in f.keys():
            part = key.split(".", 1)[0]
            parts[part] = parts.get(part, 0) + math.prod(f.get_slice(key).get_shape())
    head = json.loads((ckpt / "checkpoint.json").read_text())["config"]["head"]["name"]
    return {"run": str(run), "head_name": head, "parts": parts, "total": sum(parts.values())}


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/head_params.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders, the baseline (text) first")
    p.add_argument("--output", default=str(RESULTS / "head_params.json"))
    a = p.parse_args(argv)
    rows = [count(r) for r in a.runs]
    for r in rows:
        r["added"] = r["total"] - rows[0]["total"]
    out = write_result(a.output, {"baseline": rows[0]["run"], "runs": rows}, __file__, argv)
    print(f"{'run':<40} {'head':>6} {'encoder':>12} {'head':>12} {'emission+crf':>13} {'total':>12} {'added':>12}")
    for r in rows:
        q = r["parts"]
        print(f"{r['run'][-40:]:<40} {r['head_name']:>6} {q['encoder']:>12,} {q['head']:>12,} "
              f"{q['emission'] + q['crf']:>13,} {r['total']:>12,} {r['added']:>+12,}")
    print(f"written {a.output}")
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
