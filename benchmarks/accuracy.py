"""How accurate a tagger config is: N seeds, each run's epoch chosen on dev, test scored once.

Each seed trains the config (``train.py``, with ``data.test`` cleared so training never reads
the test split), keeps the epoch with the best dev F1 (the run's ``best/``), and only then
scores the test split once with that checkpoint. The sweep reports mean and spread (sample
sd, min, max) of P/R/F1 and per-type F1, on dev and on test, and minutes per epoch.

    python benchmarks/accuracy.py --dataset twitter2015                    # 3 seeds, MiniLM config
    python benchmarks/accuracy.py --config configs/twitter2015_mpnet.yaml --seeds 13 14 15 16 17
    python benchmarks/accuracy.py --config configs/twitter2015_text.yaml encoder.pooling=mean --dev-only
    python benchmarks/accuracy.py --train A.txt --valid B.txt --test C.txt --name mine
    python benchmarks/accuracy.py --config configs/twitter2015_mpnet.yaml --seeds 13 14 15 16 17 18 --ensemble 3

Run folders go to ``OUT_DIR/NAME/seed<N>``. Running the same command again resumes the
sweep: a finished run (its ``results.json``) is not trained again, a killed one continues
from its ``last/`` checkpoint (``train.py --resume``), and a test split already scored is not
scored again. A run folder made with a different config is refused, not mixed in.
``--dev-only`` scores no test file at all (for choosing levers). ``--ensemble`` scores the
seeds' ensemble (their mean emissions); ``--ensemble K`` splits the seeds, in the order
given, into disjoint ensembles of K and reports each one and their mean and spread, so an
ensemble is judged like a single run: over several independent draws. Results go to
``benchmarks/results/accuracy_<NAME>.json`` (``--output``), stamped by
``benchmarks/provenance.py``, and print as a table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status, raising  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import train  # noqa: E402
from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from rgcn.config import load_config  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_CONFIG = ROOT / "configs" / "twitter2015_text.yaml"
METRICS = ("precision", "recall", "f1")


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/accuracy.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="run config (default: %(default)s)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides as in train.py, e.g. encoder.pooling=mean train.epochs=10 "
                        "(anywhere on the line, also right after --seeds)")
    p.add_argument("--dataset", help="a folder name under ../shared/data (twitter2015, twitter2017): "
                   "its train/valid/test files replace the config's")
    p.add_argument("--train"), p.add_argument("--valid")
    p.add_argument("--test", help="test split (with --dataset or --train: none unless given or found)")
    p.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    p.add_argument("--epochs", type=int, help="train.epochs (default: the config's)")
    p.add_argument("--threads", type=int, help="train.threads, torch CPU threads (default: the config's)")
    p.add_argument("--dev-only", action="store_true", help="score no test file at all (lever exploration)")
    p.add_argument("--name", help="sweep name (default: the config file's stem, with the dataset)")
    p.add_argument("--out-dir", default=str(ROOT / "runs" / "accuracy"), help="where OUT_DIR/NAME/seed<N> go")
    p.add_argument("--output", help="result JSON (default: benchmarks/results/accuracy_<NAME>.json)")
    p.add_argument("--progress", action="store_true", help="show training progress bars")
    p.add_argument("--ensemble", nargs="?", type=int, const=0, default=None, metavar="K",
                   help="also score the seeds' ensemble (mean emissions of their best/ checkpoints, "
                        "`predict --run A B C`) on dev, and on test once; with K: the seeds, in the "
                        "order given, split into disjoint ensembles of K, with mean and spread over them")
    argv = sys.argv[1:] if argv is None else list(argv)
    # KEY=VALUE words are overrides wherever they stand, so `--seeds 13 14 k=v` reads as meant
    overrides = [x for x in argv if "=" in x and not x.startswith("-")]
    a = p.parse_args([x for x in argv if x not in overrides])
    a.overrides = overrides
    return a


# ----------------------------------------------------------------------------- figures
def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value), min and max of ``values``."""
    return {"mean": round(statistics.fmean(values), 4),
            "sd": round(statistics.stdev(values), 4) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "n": len(values)}


def summarise_split(scores: list[dict]) -> dict:
    """Spread of micro P/R/F1 and of each type's F1 over runs; ``scores`` are
    :meth:`rgcn.metrics.Scores.as_dict` results (percent)."""
    types = sorted({t for s in scores for t in s["by_type"]})
    return {**{m: spread([s["micro"][m] for s in scores]) for m in METRICS},
            "f1_by_type": {t: spread([s["by_type"].get(t, {}).get("f1", 0.0) for s in scores]) for t in types}}


def summarise(runs: list[dict]) -> dict:
    out = {"dev": summarise_split([r["dev"] for r in runs]),
           "minutes_per_epoch": spread([r["minutes_per_epoch"] for r in runs]),
           "best_epoch": [r["best_epoch"] for r in runs]}
    if all(r.get("test") for r in runs):
        out["test"] = summarise_split([r["test"] for r in runs])
    return out


def table(summary: dict) -> str:
    """One line per split and figure: mean ± sd, min, max (percent)."""
    rows = [("split", "figure", "mean", "sd", "min", "max")]
    for split in ("dev", "test"):
        if split not in summary:
            continue
        s = summary[split]
        cells = [(m, s[m]) for m in METRICS] + [(f"F1 {t}", v) for t, v in s["f1_by_type"].items()]
        for name, v in cells:
            rows.append((split, name, f"{v['mean']:.2f}", "-" if v["sd"] is None else f"{v['sd']:.2f}",
                         f"{v['min']:.2f}", f"{v['max']:.2f}"))
    m = summary["minutes_per_epoch"]
    rows.append(("train", "min/epoch", f"{m['mean']:.2f}", "-" if m["sd"] is None else f"{m['sd']:.2f}",
                 f"{m['min']:.2f}", f"{m['max']:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- runs
def split_paths(a) -> dict[str, str] | None:
    """``--dataset`` / ``--train --valid --test`` as data overrides; None keeps the config's."""
    split = {"train": a.train, "valid": a.valid, "test": a.test}
    if not (a.dataset or a.train or a.valid):
        return None                                       # the config's splits (a --test still replaces its test)
    if a.dataset:
        folder = SHARED / a.dataset
        if not folder.is_dir():
            raise UserError(f"no dataset folder {folder}")
        for k in split:
            if split[k] is None and (folder / f"{k}.txt").exists():
                split[k] = str(folder / f"{k}.txt")
    if not split["train"] or not split["valid"]:
        raise UserError("give --dataset, or both --train and --valid")
    return split


def seed_args(a, seed: int, split: dict | None, sweep_dir: Path) -> list[str]:
    """``train.py`` arguments for one seed: the config, the data and budget flags, the
    user's overrides, then what the sweep owns (run folder, seed, no test split)."""
    args = ["--config", a.config]
    if split:
        args += [f"data.train={split['train']}", f"data.valid={split['valid']}"]
    if a.epochs is not None:
        args.append(f"train.epochs={a.epochs}")
    if a.threads is not None:
        args.append(f"train.threads={a.threads}")
    return [*args, *a.overrides, f"out_dir={sweep_dir}", f"name=seed{seed}", f"train.seed={seed}", "data.test="]


# how and where a run is executed, not what it learns: a sweep may resume or reuse runs made
# with other values (fewer threads; a sweep folder moved, or linked in under another name)
EXECUTION_ONLY = ("train.threads", "out_dir")


def same_config(run: Path, args: list[str]) -> None:
    """Refuse a run folder whose saved config is not the one this sweep would train (apart
    from :data:`EXECUTION_ONLY` settings, so seeds may run side by side on fewer threads)."""
    saved = run / "config.json"
    if not saved.exists():
        return
    want = json.loads(json.dumps(load_config(args[1], args[2:]).to_dict()))
    have = json.loads(saved.read_text())
    if have != want:
        flat_want, flat_have = flatten(want), flatten(have)
        diff = sorted(k for k in set(flat_want) | set(flat_have)
                      if flat_want.get(k) != flat_have.get(k) and k not in EXECUTION_ONLY)
        if not diff:
            return
        raise UserError(f"{run} was trained with another config (it differs in {', '.join(diff)}); "
                        "give the sweep another --name or --out-dir, or delete that folder")


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``."""
    out = {}
    for k, v in d.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v})
    return out


def train_run(run: Path, args: list[str], progress: bool) -> tuple[dict, str]:
    """The run's training results, and how they were had: ``trained``, ``resumed`` (a killed
    run continued from ``last/``) or ``reused`` (already finished)."""
    same_config(run, args)
    if (run / "results.json").exists():
        return json.loads((run / "results.json").read_text()), "reused"
    resume = (run / "last" / "trainer_state.pt").exists()
    flags = [*([] if progress else ["--no-progress"]), *(["--resume"] if resume else [])]
    return raising(train.main)([*args, *flags]), "resumed" if resume else "trained"


def score_test(run: Path, test: str, best_epoch: int) -> dict:
    """The test split scored once with the run's dev-selected checkpoint (``best/``); kept in
    ``test_scores.json`` so a resumed sweep does not score it again."""
    from data.corpus import read_corpus, write_conll
    from rgcn.training import load_for_corpus

    done = run / "test_scores.json"
    if done.exists():
        kept = json.loads(done.read_text())
        if kept["test_file"] == str(test) and kept["best_epoch"] == best_epoch:
            return kept["scores"]
    corpus = read_corpus(test, require_tags=True)
    model, cfg, meta = load_for_corpus(run / "best", corpus)
    if meta.get("epoch") != best_epoch:
        raise RuntimeError(f"{run / 'best'} holds epoch {meta.get('epoch')}, but dev chose epoch {best_epoch}")
    scores, pred = model.evaluate(corpus.samples, cfg.train.eval_batch_size)
    write_conll(run / "test_predictions.conll", corpus.samples, pred.tags)
    result = scores.as_dict()
    write_result(done, {"test_file": str(test), "best_epoch": best_epoch, "scores": result}, __file__)
    return result


def score_ensemble(sweep_dir: Path, runs: list[dict], splits: dict[str, str | None]) -> dict:
    """Dev (and test, when given) scores of the runs' ensemble: the mean of their best/
    checkpoints' emissions, decoded by the first run's CRF. Kept in ``ensemble_scores.json``
    (one entry per set of runs), so a split is scored once for a given set of runs."""
    from data.corpus import read_corpus
    from rgcn.training import load_for_corpus

    done = sweep_dir / "ensemble_scores.json"
    key = {"runs": [r["run"] for r in runs], "best_epoch": [r["best_epoch"] for r in runs],
           "files": {k: str(v) for k, v in splits.items() if v}}
    kept = json.loads(done.read_text()) if done.exists() else {}
    entries = kept.get("entries", [kept] if "key" in kept else [])
    for entry in entries:
        if entry["key"] == key:
            return entry["scores"]
    scores = {}
    for split, path in key["files"].items():
        corpus = read_corpus(path, require_tags=True)
        models = [load_for_corpus(Path(r["run"]) / "best", corpus)[0] for r in runs]
        scores[split] = models[0].evaluate(corpus.samples, ensemble=models[1:])[0].as_dict()
        del models
    write_result(done, {"entries": [*entries, {"key": key, "scores": scores}]}, __file__)
    return scores


def ensemble_groups(runs: list[dict], size: int) -> list[list[dict]]:
    """The runs split, in order, into disjoint groups of ``size`` (0: one group of all);
    runs left over after the last whole group are not used."""
    size = size or len(runs)
    if size < 2 or size > len(runs):
        raise UserError(f"--ensemble {size}: an ensemble needs 2 to {len(runs)} seeds (this sweep has {len(runs)})")
    return [runs[i:i + size] for i in range(0, len(runs) - size + 1, size)]


def score_ensembles(sweep_dir: Path, runs: list[dict], size: int, splits: dict[str, str | None]) -> dict:
    """Each group's ensemble scores (:func:`ensemble_groups`) and their spread over groups."""
    groups = [{"seeds": [r["seed"] for r in g], "scores": score_ensemble(sweep_dir, g, splits)}
              for g in ensemble_groups(runs, size)]
    return {"size": len(groups[0]["seeds"]), "groups": groups,
            "summary": {k: summarise_split([g["scores"][k] for g in groups]) for k in groups[0]["scores"]}}


@command
def main(argv=None) -> dict:
    a = parse_args(argv)
    split = split_paths(a)
    base = load_config(a.config, a.overrides)
    test = None if a.dev_only else (split["test"] if split else a.test or base.data.test)
    if test and not Path(test).is_file():
        raise UserError(f"test split {test} not found (give --test, or --dev-only to score none)")
    stem = Path(a.config).stem
    name = a.name or stem + (f"_{a.dataset}" if a.dataset and a.dataset not in stem else "")
    sweep_dir = Path(a.out_dir) / name
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    t0 = time.time()
    runs = []
    for seed in a.seeds:
        run = sweep_dir / f"seed{seed}"
        args = seed_args(a, seed, split, sweep_dir)
        results, how = train_run(run, args, a.progress)
        hist = results["history"]
        row = {"seed": seed, "run": str(run), "how": how, "best_epoch": results["best_epoch"],
               "epochs": len(hist), "dev": results["valid"],
               "minutes_per_epoch": round(statistics.fmean(h["train_seconds"] for h in hist) / 60, 3)}
        if test:
            row["test"] = score_test(run, test, results["best_epoch"])
        runs.append(row)
        print(f"seed {seed} ({how}): best epoch {row['best_epoch']}, dev F1 {row['dev']['micro']['f1']:.2f}"
              + (f", test F1 {row['test']['micro']['f1']:.2f}" if test else ""), flush=True)
    summary = summarise(runs)
    ensemble = ensembles = None
    if a.ensemble is not None and len(runs) > 1:
        valid = base.data.valid if not split else split["valid"]
        ensembles = score_ensembles(sweep_dir, runs, a.ensemble, {"dev": valid, "test": test})
        ensemble = ensembles["groups"][0]["scores"] if len(ensembles["groups"]) == 1 else None
    out = {"name": name, "config": a.config, "overrides": a.overrides, "seeds": a.seeds,
           "splits": {"train": base.data.train if not split else split["train"],
                      "valid": base.data.valid if not split else split["valid"], "test": test},
           "dev_only": a.dev_only, "summary": summary, "runs": runs, "ensemble": ensemble,
           "ensembles": ensembles,
           "resolved_config": load_config(a.config, seed_args(a, a.seeds[0], split, sweep_dir)[2:]).to_dict(),
           "wall_minutes": round((time.time() - t0) / 60, 2)}
    write_result(a.output or RESULTS / f"accuracy_{name}.json", out, __file__, argv)
    print(f"\n{name}: {len(runs)} seed(s), scores in percent\n{table(summary)}")
    for g in (ensembles or {}).get("groups", []):
        print(f"ensemble of seeds {', '.join(map(str, g['seeds']))}: "
              + ", ".join(f"{k} F1 {v['micro']['f1']:.2f}" for k, v in g["scores"].items()))
    if ensembles and len(ensembles["groups"]) > 1:
        print(f"ensembles of {ensembles['size']}: " + ", ".join(
            f"{k} F1 {v['f1']['mean']:.2f} ± {v['f1']['sd']:.2f}" for k, v in ensembles["summary"].items()))
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
