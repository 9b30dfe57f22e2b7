"""Which levers help the text tagger, judged on dev only.

Every lever is one change to a base config (``benchmarks/accuracy.py --dev-only`` runs it
over the same seeds and epochs as the base); two more are decoding choices tried on the base
runs themselves, with no training:

- ``constrained``: the base runs decoded with valid BIO paths only (``crf.constrained``);
- ``ensemble``: the base runs' mean emissions, decoded by the first run's CRF
  (``predict --run A B C``), with two or more seeds.

The table gives each lever's dev F1 (mean ± sd over seeds), its gain over the base, and the
verdict: a lever is kept when its mean dev gain is at least ``--min-gain`` points. Test is
never read. The data's own answer to the BIO question is printed beside it: how many ``I-``
tags of the training split break BIO (an ``I-X`` that opens a post, follows ``O`` or follows
another type), i.e. how often the standard scorer's tolerance of them is needed.

    python benchmarks/levers.py --config configs/twitter2015_text.yaml --epochs 6 --seeds 13 --threads 1 --lanes 2
    python benchmarks/levers.py --config configs/twitter2015_text.yaml --levers base cosine --name t15_minilm

Lever sweeps go to ``OUT_DIR/<NAME>_<lever>/seed<N>`` and resume like ``accuracy.py``'s (a
finished run is reused, so running the command again only redraws the table). Results:
``benchmarks/results/levers_<NAME>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from benchmarks.accuracy import spread  # noqa: E402
from benchmarks.provenance import RESULTS, write_rendering, write_result  # noqa: E402

# name -> config overrides against the base; every value differs from the trainer's default
LEVERS: dict[str, list[str]] = {
    "base": [],
    "cosine": ["train.schedule=cosine"],
    "mean": ["encoder.pooling=mean"],
    "mix4": ["encoder.layer_mix=4"],
    "avg2": ["train.average_last=2"],
    "casing32": ["encoder.casing_dim=32"],
    "epochs8": ["train.epochs=8"],
}
DECODING = ("constrained", "ensemble")
ACCURACY = ROOT / "benchmarks" / "accuracy.py"


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/levers.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the base run config")
    p.add_argument("--name", help="sweep prefix (default: the config file's stem)")
    p.add_argument("--levers", nargs="+", default=[*LEVERS, *DECODING],
                   choices=[*LEVERS, *DECODING], help="levers to try (default: all); base is always run")
    p.add_argument("--seeds", type=int, nargs="+", default=[13])
    p.add_argument("--epochs", type=int, help="train.epochs of the base (default: the config's)")
    p.add_argument("--threads", type=int, help="torch CPU threads per run")
    p.add_argument("--lanes", type=int, default=1, help="levers trained side by side (default 1)")
    p.add_argument("--min-gain", type=float, default=0.2, help="dev F1 points a lever must add to be kept")
    p.add_argument("--out-dir", default="runs/levers", help="lever sweeps' folder (relative: to the repository)")
    p.add_argument("--output", help="result JSON (default: benchmarks/results/levers_<NAME>.json)")
    return p.parse_args(argv)


def at_root(path) -> Path:
    """A path as the sweeps see it: relative paths are taken from the repository root."""
    return Path(path) if Path(path).is_absolute() else ROOT / path


def sweep_command(a, name: str, lever: str) -> list[str]:
    """The ``accuracy.py --dev-only`` command line of one lever's sweep."""
    cmd = [sys.executable, str(ACCURACY), "--config", a.config, "--dev-only", "--seeds", *map(str, a.seeds),
           "--name", f"{name}_{lever}", "--out-dir", a.out_dir,
           "--output", str(Path(a.out_dir) / f"{name}_{lever}.json")]
    if a.epochs is not None:
        cmd += ["--epochs", str(a.epochs)]
    if a.threads is not None:
        cmd += ["--threads", str(a.threads)]
    return cmd + LEVERS[lever]


def run_sweep(a, name: str, lever: str) -> dict:
    """Train (or reuse) one lever's runs; its ``accuracy.py`` result. The sweep's own output
    goes to ``OUT_DIR/<NAME>_<lever>.log``."""
    log = at_root(a.out_dir) / f"{name}_{lever}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        done = subprocess.run(sweep_command(a, name, lever), stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode != 0:
        sys.exit(f"lever {lever} failed (exit {done.returncode}); its output is in {log}")
    return json.loads((at_root(a.out_dir) / f"{name}_{lever}.json").read_text())


def decoding_levers(base: dict, wanted: list[str]) -> dict:
    """Dev F1 of the base runs decoded with BIO constraints, and of their ensemble."""
    from data.corpus import read_corpus
    from rgcn.training import load_for_corpus

    corpus = read_corpus(at_root(base["splits"]["valid"]), require_tags=True)
    models = [load_for_corpus(at_root(r["run"]) / "best", corpus)[0] for r in base["runs"]]
    out = {}
    if "constrained" in wanted:
        f1 = []
        for m in models:
            m.constrained = True
            f1.append(m.evaluate(corpus.samples)[0].as_dict()["micro"]["f1"])
            m.constrained = False
        out["constrained"] = {"overrides": ["crf.constrained=true (decoding only)"], "dev_f1": spread(f1)}
    if "ensemble" in wanted and len(models) > 1:
        scores = models[0].evaluate(corpus.samples, ensemble=models[1:])[0]
        out["ensemble"] = {"overrides": [f"predict --run (the {len(models)} base runs)"],
                           "dev_f1": spread([scores.as_dict()["micro"]["f1"]])}
    return out


def bio_breaks(path: str) -> dict:
    """How many ``I-`` tags of a split open a post, follow ``O`` or follow another type."""
    from data.corpus import read_corpus

    n_inside = opens = after_o = other_type = 0
    for s in read_corpus(at_root(path), require_tags=True).samples:
        for i, t in enumerate(s.tags):
            if not t.startswith("I-"):
                continue
            n_inside += 1
            prev = s.tags[i - 1] if i else None
            opens += prev is None
            after_o += prev == "O"
            other_type += prev is not None and prev != "O" and prev[2:] != t[2:]
    return {"inside_tags": n_inside, "breaking": opens + after_o + other_type,
            "open_a_post": opens, "after_O": after_o, "after_another_type": other_type}


def render(result: dict) -> str:
    rows = [f"`{result['provenance']['command']}`", "",
            f"Dev F1 (percent) of each lever against `{result['base_config']}`, seeds "
            f"{' '.join(map(str, result['seeds']))}; kept when the mean gain is at least "
            f"{result['min_gain']} points.", "",
            "| lever | change | dev F1 | gain | best epoch | min/epoch | kept |", "|---|---|---|---|---|---|---|"]
    for name, lever in result["levers"].items():
        f1 = lever["dev_f1"]
        sd = "" if f1["sd"] is None else f" ± {f1['sd']:.2f}"
        gain = "" if name == "base" else f"{lever['gain']:+.2f}"
        kept = "" if name == "base" else ("yes" if lever["kept"] else "no")
        epochs = " ".join(map(str, lever.get("best_epoch", []))) or "-"
        minutes = f"{lever['minutes_per_epoch']:.2f}" if "minutes_per_epoch" in lever else "-"
        rows.append(f"| {name} | {', '.join(lever['overrides']) or '(the config)'} | {f1['mean']:.2f}{sd} "
                    f"| {gain} | {epochs} | {minutes} | {kept} |")
    b = result["bio_breaks_train"]
    rows += ["", f"Training split: {b['breaking']} of {b['inside_tags']} `I-` tags break BIO "
                 f"({b['open_a_post']} open a post, {b['after_O']} follow `O`, "
                 f"{b['after_another_type']} follow another type)."]
    return "\n".join(rows) + "\n"


@command
def main(argv=None) -> dict:
    a = parse_args(argv)
    from rgcn.config import load_config

    name = a.name or Path(a.config).stem
    trained = ["base", *[x for x in a.levers if x in LEVERS and x != "base"]]
    with ThreadPoolExecutor(max(1, a.lanes)) as pool:
        sweeps = dict(zip(trained, pool.map(lambda lever: run_sweep(a, name, lever), trained)))
    levers = {}
    for lever, sweep in sweeps.items():
        s = sweep["summary"]
        levers[lever] = {"overrides": LEVERS[lever], "dev_f1": s["dev"]["f1"], "best_epoch": s["best_epoch"],
                         "minutes_per_epoch": s["minutes_per_epoch"]["mean"],
                         "runs": [r["run"] for r in sweep["runs"]]}
    levers.update(decoding_levers(sweeps["base"], [x for x in a.levers if x in DECODING]))
    base_f1 = levers["base"]["dev_f1"]["mean"]
    for lever_name, lever in levers.items():
        if lever_name != "base":
            lever["gain"] = round(lever["dev_f1"]["mean"] - base_f1, 4)
            lever["kept"] = lever["gain"] >= a.min_gain
    cfg = load_config(a.config)
    out = {"name": name, "base_config": a.config, "seeds": a.seeds, "epochs": a.epochs or cfg.train.epochs,
           "min_gain": a.min_gain, "levers": levers, "bio_breaks_train": bio_breaks(cfg.data.train),
           "valid": cfg.data.valid}
    path = Path(a.output or RESULTS / f"levers_{name}.json")
    result = write_result(path, out, __file__, argv)
    text = render(result)
    write_rendering(path.with_suffix(".md"), result, text)
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
