"""The head leaderboard: every registered fusion head on one dataset, over several seeds.

Trains each head of :func:`rgcn.heads.list_heads` (or ``--heads``) once per seed with the
same encoder, batch size, epochs and seeds; scores its test predictions as
``python -m rgcn compare`` does: F1 overall, on each kind of post (F1 on the kind's target
names: ``image_decided``, ``conflicting_image``, ...) and on the entities outside every
target (``other``); scores it again with every test image removed (``drop_images``, the
modality-missing setting), and in every other view its head can tag with
(``tagging_views``, e.g. ita's text-only view: row ``ita (text view)``); records seconds per
epoch and tagging posts/s. Adds
``photo_knn``, the text head's predictions with every target name retyped by the vote of
its photo's nearest training images (:mod:`retrieval.photo_baseline`): the baseline that
types every ambiguous name by its photo alone, right where the photo decides and wrong
where it contradicts the sentence. Reports the mean and spread (sample standard deviation,
min, max) over seeds of every column.

A head is run with ``configs/<prefix>_<head>.yaml`` when that file exists, otherwise with
the text config ``configs/<prefix>_text.yaml`` and ``head.name=<head>``; a head whose class
says ``reads_index = True`` also gets ``head.options.index=<--index>``. Every run takes the
encoder and batch size of the text config. So a newly registered head joins the board with
no change here (its own config, if it needs options, is the one file to add).

    python benchmarks/heads.py --threads 1    # needs data/demo and .cache/demo/index (make demo makes both)
    python benchmarks/heads.py --seeds 13 --heads text rgcn --epochs 2 --output /tmp/heads.json
    python benchmarks/heads.py --heads text rgcn --variant rgcn_no_intra rgcn 'head.options.relations=[inter]'
    python benchmarks/heads.py --seeds 13 --jobs 2 --threads 1   # two runs at once, one thread each (make demo)

A run folder that already holds a finished run of the same config (its ``results.json``
and ``config.json``) is reused, not retrained: a board stopped half-way resumes there.

``--variant NAME HEAD KEY=VALUE...`` adds a row: a head trained with its config and these
overrides (an ablation), in ``--out-dir``/NAME/seed<N>.

Writes ``benchmarks/results/heads_<prefix>.json`` (``--output``) through
``benchmarks/provenance.py`` with every seed's rows, the table as Markdown beside it
(``.md``, headed by the command) and a heatmap of mean F1 per row and kind, each cell's
value written in it, the rows without the test images in a block below (``.png``;
``--chart``, ``--no-chart``), and prints the table. ``--render RESULT.json`` redraws the
Markdown and chart of a result without training anything. Run folders
go to ``--out-dir``/<head>/seed<N>. Paths given are read from where the command runs; the
defaults, and the configs, from the repository root. Each run's console output is held
back (its ``train.log`` keeps it; ``-v`` shows it), warnings and errors excepted.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status, raising  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import train  # noqa: E402
from benchmarks.provenance import RESULTS, command_line, write_rendering, write_result  # noqa: E402
from data.corpus import drop_images, read_corpus, read_predictions  # noqa: E402
from data.logs import setup_logging  # noqa: E402
from index.artifact import load_index  # noqa: E402
from retrieval.photo_baseline import photo_knn_types, retype_targets  # noqa: E402
from retrieval.search import RetrievalError  # noqa: E402
from rgcn.compare import OTHER, score_by_kind  # noqa: E402
from rgcn.config import load_config  # noqa: E402

CONFIGS = ROOT / "configs"
TEXT = "text"
PHOTO_KNN = "photo_knn"
NO_IMAGES = "{} (no test images)"
OTHER_VIEW = "{} ({} view)"
TIMING = ("seconds_per_epoch", "cpu_seconds_per_epoch", "tagging_posts_per_second")
RATIO = "_vs_text"        # a timing divided by the text head's in the same seed


def parse_args(argv=None):
    from rgcn.heads import list_heads

    p = ArgumentParser(prog="python benchmarks/heads.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset-prefix", default="demo",
                   help="names the configs (configs/PREFIX_HEAD.yaml), the default data (data/PREFIX/), "
                        "index (.cache/PREFIX/index) and result (heads_PREFIX.json); default demo")
    p.add_argument("--heads", nargs="+", choices=list_heads(), help="default: every registered head")
    p.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15], help="train every head once per seed")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once, each in its own process (default 1: "
                   "one after another, in this one); with 2 cores, --jobs 2 --threads 1 keeps both busy, which "
                   "one run's two threads do not on models this small")
    for split in ("train", "valid", "test"):
        p.add_argument(f"--{split}", help=f"{split} split (default data/PREFIX/{split}.jsonl)")
    p.add_argument("--images", help="image folder (default data/PREFIX/images)")
    p.add_argument("--index", help="index artifact of the images, for the heads that read one and for "
                   "photo_knn (default .cache/PREFIX/index)")
    p.add_argument("--knn-k", type=int, default=5, help="neighbour photos that vote in photo_knn (default 5)")
    p.add_argument("--set", nargs="+", default=[], metavar="[HEAD:]KEY=VALUE",
                   help="config overrides for every run, or for one head's runs with HEAD: "
                        "(e.g. train.lr=1e-4 rgcn:head.options.k=3)")
    p.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME HEAD [KEY=VALUE ...]",
                   help="one more row: HEAD trained with these config overrides under NAME, e.g. "
                        "--variant rgcn_no_intra rgcn 'head.options.relations=[inter]' (repeatable)")
    p.add_argument("--out-dir", default="runs/heads", help="run folders: OUT_DIR/<name>/seed<N>")
    p.add_argument("--output", help="result JSON (default benchmarks/results/heads_PREFIX.json)")
    p.add_argument("--chart", help="heatmap PNG (default: the result JSON with .png)")
    p.add_argument("--no-chart", action="store_true", help="write no chart")
    p.add_argument("-v", "--verbose", action="store_true", help="show each run's console output")
    p.add_argument("--render", metavar="RESULT.json", help="train nothing: print the table of this result and "
                   "write its Markdown (.md) and chart (.png) again")
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error(f"--jobs {a.jobs}: give at least 1")
    a.heads = a.heads or list_heads()
    a.rows = [(head, head, []) for head in a.heads]             # (row name, head, overrides)
    for v in a.variant:
        if len(v) < 2 or v[1] not in list_heads() or any("=" not in x for x in v[2:]):
            p.error(f"--variant {' '.join(v)}: expected NAME HEAD [KEY=VALUE ...] with HEAD one of "
                    f"{', '.join(list_heads())}")
        if v[0] in {r[0] for r in a.rows}:
            p.error(f"--variant {v[0]}: the name is taken")
        a.rows.append((v[0], v[1], v[2:]))
    prefix = a.dataset_prefix
    defaults = {"train": f"data/{prefix}/train.jsonl", "valid": f"data/{prefix}/valid.jsonl",
                "test": f"data/{prefix}/test.jsonl", "images": f"data/{prefix}/images",
                "index": f".cache/{prefix}/index", "output": RESULTS / f"heads_{prefix}.json"}
    for key, default in defaults.items():                       # given: from here; default: from the root
        setattr(a, key, str(Path(getattr(a, key)).resolve() if getattr(a, key) else ROOT / default))
    a.out_dir = str(Path(a.out_dir).resolve())
    beside = Path(a.render or a.output)                          # the chart goes beside the result by default
    a.chart = None if a.no_chart else str(Path(a.chart).resolve() if a.chart else beside.with_suffix(".png"))
    for item in a.set:
        key = item.partition("=")[0]
        trained = sorted({h for _, h, _ in a.rows})
        if "=" not in item or (":" in key and key.split(":")[0] not in trained):
            p.error(f"--set {item!r}: expected KEY=VALUE or HEAD:KEY=VALUE with HEAD one of {', '.join(trained)}")
    return a


# --------------------------------------------------------------------------- configs
def head_args(head: str, prefix: str, index: str, config_dir: Path = CONFIGS) -> list[str]:
    """``train.py`` arguments that pick ``head``'s config: ``configs/<prefix>_<head>.yaml``
    when it exists, else the text config with ``head.name=<head>``; plus
    ``head.options.index=<index>`` when the head class reads the index."""
    from rgcn.heads import head_class

    own = config_dir / f"{prefix}_{head}.yaml"
    if own.is_file():
        args = ["--config", str(own)]
    else:
        args = ["--config", str(text_config(prefix, config_dir)), f"head.name={head}"]
    if head_class(head).reads_index:
        args.append(f"head.options.index={index}")
    return args


def text_config(prefix: str, config_dir: Path = CONFIGS) -> Path:
    path = config_dir / f"{prefix}_{TEXT}.yaml"
    if not path.is_file():
        raise UserError(f"{path} not found: the board runs every head without its own config "
                        f"({config_dir}/{prefix}_<head>.yaml) from the text config, and takes the shared "
                        "encoder and batch size from it")
    return path


def overrides_for(head: str, sets: list[str]) -> list[str]:
    """The ``--set`` items for ``head``'s runs: the plain ones and those prefixed ``head:``."""
    out = []
    for item in sets:
        key, _, value = item.partition("=")
        only, colon, key = key.rpartition(":")
        if not colon or only == head:
            out.append(f"{key}={value}")
    return out


@contextlib.contextmanager
def quiet(on: bool = True):
    """Hold back what a run prints (its log file keeps it); let its warnings and errors
    through, and everything when it fails."""
    if not on:
        yield
        return
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    except BaseException:
        sys.stderr.write(out.getvalue() + err.getvalue())
        raise
    for line in err.getvalue().splitlines():
        if line.startswith(("warning:", "error:")):
            print(line, file=sys.stderr)


# --------------------------------------------------------------------------- runs
def train_argv(a, seed: int, shared: list[str], name: str, head: str, extra: list[str]) -> tuple[Path, list[str]]:
    """The run folder of row ``name`` and seed ``seed``, and the ``train.py`` arguments that make it."""
    run = Path(a.out_dir) / name / f"seed{seed}"
    return run, [*head_args(head, a.dataset_prefix, a.index), "--no-progress",
                 f"data.train={a.train}", f"data.valid={a.valid}", f"data.test={a.test}", f"data.images={a.images}",
                 *shared, f"train.epochs={a.epochs}", f"train.seed={seed}", f"train.threads={a.threads}",
                 f"out_dir={run.parent}", f"name={run.name}", *overrides_for(head, a.set), *extra]


def train_in_process(argv: list[str]) -> int:
    """``python train.py ARGV`` in a process of its own, its console output held back (its
    ``train.log`` keeps it); returns its exit status, printing its last lines when it failed."""
    import subprocess

    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        print("\n".join((done.stdout + done.stderr).splitlines()[-20:]), file=sys.stderr)
    return done.returncode


def train_ahead(a, shared: list[str]) -> int:
    """With ``--jobs N`` above 1: train every run the board needs and does not hold yet, ``N``
    at a time (:func:`train_in_process`); the board then finds them finished and scores them
    as usual. Seed by seed, the rows in order, so that two runs of one head (which share its
    caches, e.g. rgcn's relation graphs) are seldom trained together. A run that failed is
    left to the board, which trains it again in this process and shows its error. Returns
    the runs trained."""
    from concurrent.futures import ThreadPoolExecutor

    todo = [argv for seed in a.seeds for name, head, extra in a.rows
            for run, argv in [train_argv(a, seed, shared, name, head, extra)] if finished_run(run, argv) is None]
    if a.jobs < 2 or not todo:
        return 0
    print(f"training {len(todo)} run(s), {a.jobs} at a time", flush=True)
    with ThreadPoolExecutor(a.jobs) as pool:
        return sum(rc == 0 for rc in pool.map(train_in_process, todo))


def run_seed(a, seed: int, shared: list[str], gold, photo_types) -> dict:
    """Train every head with ``seed`` and score it on ``gold`` (the test corpus), with and
    without the test images; ``photo_knn`` from the text head's predictions when
    ``photo_types`` is given. Returns ``{"rows": {name: score_by_kind row}, "timing": ...}``."""
    rows, timing, dropped_rows, runs = {}, {}, {}, {}
    for name, head, extra in a.rows:
        run, argv = train_argv(a, seed, shared, name, head, extra)
        res = finished_run(run, argv)
        if res is None:
            with quiet(not a.verbose):
                res = raising(train.main)(argv)
        else:
            print(f"seed {seed} {name}: {_rel(str(run))} already holds this run, finished: reused", flush=True)
        hist = res["history"]
        timing[name] = {"seconds_per_epoch": round(statistics.fmean(h["train_seconds"] for h in hist), 2),
                        "cpu_seconds_per_epoch": round(statistics.fmean(h["train_cpu_seconds"] for h in hist), 2)
                        if all("train_cpu_seconds" in h for h in hist) else None,
                        "tagging_posts_per_second": res.get("test_posts_per_second")}
        pred, _ = read_predictions(run / "test_predictions.conll")
        rows[name], runs[name] = score_by_kind(gold.samples, pred, where=a.test), pred
        with quiet(not a.verbose):
            dropped_rows[NO_IMAGES.format(name)] = score_by_kind(gold.samples, predict_test(run, a, drop=True),
                                                                 where=a.test)
            for view in other_views(head, run):
                try:
                    pred = predict_test(run, a, head_options={"view": view})
                except ValueError as e:                          # e.g. bga without generators has no real view
                    print(f"warning: no {view} view of {name}: {e}", file=sys.stderr)
                    continue
                rows[OTHER_VIEW.format(name, view)] = score_by_kind(gold.samples, pred, where=a.test)
        print(f"seed {seed} {name}: test F1 {100 * rows[name]['f1']:.2f} "
              f"(no test images {100 * dropped_rows[NO_IMAGES.format(name)]['f1']:.2f}), "
              f"{timing[name]['seconds_per_epoch']} s/epoch", flush=True)
    if photo_types is not None and TEXT in runs:
        rows[PHOTO_KNN] = score_by_kind(gold.samples, retype_targets(gold.samples, runs[TEXT], photo_types),
                                        where=a.test)
    return {"rows": {**rows, **dropped_rows}, "timing": timing}


def finished_run(run: Path, argv: list[str]) -> dict | None:
    """What ``train.main(argv)`` returned when it last finished in ``run`` (its
    ``results.json``), if the run's saved config is the one ``argv`` asks for and its test
    predictions are there; else ``None``. A board stopped half-way thus resumes where it was."""
    results, saved, preds = run / "results.json", run / "config.json", run / "test_predictions.conll"
    if not (results.is_file() and saved.is_file() and preds.is_file()):
        return None
    config = argv[argv.index("--config") + 1]
    wanted = load_config(config, [x for x in argv if "=" in x and not x.startswith("-")]).to_dict()
    return json.loads(results.read_text()) if json.loads(saved.read_text()) == wanted else None


def other_views(head: str, run: Path) -> list[str]:
    """The views ``head``'s trained run can also tag with (:attr:`FusionHead.tagging_views`),
    besides the one it was trained to tag with (its config's ``view``, else the default)."""
    from rgcn.checkpoint import read_meta
    from rgcn.heads import head_class

    views = head_class(head).tagging_views
    if not views:
        return []
    ckpt = run / "best" if (run / "best" / "checkpoint.json").exists() else run
    own = (read_meta(ckpt)["config"]["head"].get("options") or {}).get("view", views[0])
    return [v for v in views if v != own]


def predict_test(run: Path, a, drop: bool = False, head_options: dict | None = None) -> list[list[str]]:
    """The run's tags for the test split, with every image removed (``drop``) and/or other
    inference options of its head (e.g. ``{"view": "text"}``)."""
    from rgcn.training import load_for_corpus

    corpus = read_corpus(a.test, a.images, require_tags=True)
    if drop:
        drop_images(corpus.samples)
    model, _, _ = load_for_corpus(run, corpus, head_options=head_options)
    return model.predict(corpus.samples).tags


def photo_knn_setup(a, gold) -> tuple[list | None, str | None]:
    """The photo vote for each test post, or ``None`` and why not (no text head, no index,
    no training post with a target and an indexed image)."""
    if TEXT not in a.heads:
        return None, "photo_knn retypes the text head's predictions: add text to --heads"
    if not (Path(a.index) / "manifest.json").is_file():
        return None, f"photo_knn needs an index: none at {a.index} (--index)"
    train_corpus = read_corpus(a.train, a.images, require_tags=True)
    try:
        return photo_knn_types(load_index(a.index), train_corpus.samples, gold.samples, k=a.knn_k), None
    except RetrievalError as e:
        return None, f"photo_knn: {e}"


# --------------------------------------------------------------------------- summary
def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (None for one value), min and max of ``values``."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values), "n": len(values)}


def summarise(per_seed: dict) -> dict:
    """``{row: {"f1", "precision", "recall", "kinds": {kind: spread}, "other", timings}}``:
    the spread over seeds of each row's overall scores, of its F1 on each kind's target names
    and outside them, and of the timings a row has in every seed (``per_seed``:
    ``{seed: {"rows": {row: score_by_kind dict}, "timing": {head: ...}}}``)."""
    seeds = list(per_seed.values())
    out = {}
    for name in seeds[0]["rows"]:
        rows = [s["rows"][name] for s in seeds]
        col = {k: spread([r[k] for r in rows]) for k in ("f1", "precision", "recall")}
        col["kinds"] = {k: spread([r["kinds"][k]["f1"] for r in rows]) for k in rows[0]["kinds"]}
        col[OTHER] = spread([r[OTHER]["f1"] for r in rows])
        times = [s["timing"].get(name, {}) for s in seeds]
        col.update({k: spread([t[k] for t in times]) for k in TIMING if all(t.get(k) is not None for t in times)})
        texts = [s["timing"].get(TEXT, {}) for s in seeds]
        for k in TIMING:                  # each seed's runs ran back to back: the ratio to text's, per seed
            if name != TEXT and all(t.get(k) and x.get(k) for t, x in zip(times, texts)):
                col[k + RATIO] = spread([t[k] / x[k] for t, x in zip(times, texts)])
        out[name] = col
    return out


def gold_counts(row: dict) -> dict:
    """Gold target names and posts per kind, and the gold entities outside every target."""
    return {"kinds": {k: {"gold": v["gold"], "posts": v["posts"]} for k, v in row["kinds"].items()},
            OTHER: row[OTHER]["gold"]}


def columns(summary: dict) -> list[tuple]:
    """Table columns: ``(header, row spreads -> the column's spread or None, scale)``."""
    first = next(iter(summary.values()))
    cols = [("overall", lambda s: s["f1"], 100)]
    cols += [(k, lambda s, k=k: s["kinds"].get(k), 100) for k in first["kinds"]]
    cols.append((OTHER, lambda s: s[OTHER], 100))
    cols += [("s/epoch", lambda s: s.get("seconds_per_epoch"), 1),
             ("CPU s/epoch", lambda s: s.get("cpu_seconds_per_epoch"), 1),
             ("tagging posts/s", lambda s: s.get("tagging_posts_per_second"), 1),
             ("s/epoch × text", lambda s: s.get("seconds_per_epoch" + RATIO), 1),
             ("posts/s × text", lambda s: s.get("tagging_posts_per_second" + RATIO), 1)]
    return cols


def table(summary: dict) -> str:
    """Mean ± sample sd over seeds: F1 in percent (overall, per kind on the target names,
    other), then the timings."""
    def cell(s: dict | None, scale: float) -> str:
        if s is None:
            return ""
        mean = f"{scale * s['mean']:.2f}"
        return mean if s["sd"] is None else f"{mean} ± {scale * s['sd']:.2f}"

    cols = columns(summary)
    width = max(len(n) for n in [*summary, "head"])
    cw = [max(15, len(h)) for h, _, _ in cols]
    lines = ["head".ljust(width) + "".join(f"  {h:>{w}}" for (h, _, _), w in zip(cols, cw))]
    for name, s in summary.items():
        cells = (cell(get(s), scale) for _, get, scale in cols)
        lines.append(name.ljust(width) + "".join(f"  {c:>{w}}" for c, w in zip(cells, cw)))
    n = next(iter(summary.values()))["f1"]["n"]
    lines.append(f"mean ± sample standard deviation over {n} seed(s); F1 in percent, per kind on the "
                 f"kind's target names, {OTHER}: the entities outside every target")
    return "\n".join(lines)


def markdown(summary: dict, command: str) -> str:
    """The table as Markdown, mean ± sample sd over seeds, headed by the command that made it
    (what the README's tables are copied from)."""
    def cell(s: dict | None, scale: float, ratio: bool) -> str:
        if s is None:
            return ""
        digits = 1 if scale == 1 and not ratio else 2
        mean = f"{scale * s['mean']:.{digits}f}"
        return mean if s["sd"] is None else f"{mean} ± {scale * s['sd']:.{digits}f}"

    cols = columns(summary)
    n = next(iter(summary.values()))["f1"]["n"]
    lines = [f"`{command}`", "",
             f"Test F1 (%), mean ± sample standard deviation over {n} seed(s); per kind on the kind's target "
             f"names; {OTHER}: the entities outside every target.", "",
             "| head | " + " | ".join(h for h, _, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, s in summary.items():
        lines.append(f"| {name} | " + " | ".join(cell(get(s), scale, h.endswith("× text")) for h, get, scale in cols)
                     + " |")
    return "\n".join(lines) + "\n"


CHART_WIDTH_PX = 1200
CHART_DPI = 100


def chart_cell(s: dict | None) -> str:
    """One heatmap cell: the mean F1 in percent, with the sample sd below it over several seeds."""
    if s is None:
        return ""
    return f"{100 * s['mean']:.1f}" + ("" if s["sd"] is None else f"\n± {100 * s['sd']:.1f}")


def chart(summary: dict, path: str | os.PathLike, title: str = "", metadata: dict | None = None) -> dict:
    """A heatmap of mean F1 (%) with the rows (heads, their views and variants, photo_knn)
    down and the columns (overall, each kind, other) across, each cell's mean (and sd over
    seeds) written in it; the rows scored without the test images in a second block below,
    under the same columns. 1,200 pixels wide. ``metadata`` goes into the PNG's text chunks.

    Returns ``{(row, column): text}``, the text written in each cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = [(h, get) for h, get, scale in columns(summary) if scale == 100]
    suffix = NO_IMAGES.format("")
    blocks = [("with the test images", [n for n in summary if not n.endswith(suffix)]),
              ("without the test images (modality missing)", [n for n in summary if n.endswith(suffix)])]
    blocks = [(label, names) for label, names in blocks if names]
    row_in = 0.36 + 0.14 * any((get(summary[n]) or {}).get("sd") is not None for _, names in blocks
                               for n in names for _, get in groups)
    heights = [len(names) * row_in + 0.9 for _, names in blocks]
    width = CHART_WIDTH_PX / CHART_DPI
    fig, axes = plt.subplots(len(blocks), 1, figsize=(width, sum(heights) + 0.6),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    cmap = plt.get_cmap("viridis")
    texts = {}
    for ax, (label, names) in zip(axes[:, 0], blocks):
        spreads = [[get(summary[n]) for _, get in groups] for n in names]
        values = np.array([[np.nan if s is None else 100 * s["mean"] for s in row] for row in spreads])
        ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for i, name in enumerate(names):
            for j, (column, _) in enumerate(groups):
                text = chart_cell(spreads[i][j])
                texts[(name, column)] = text
                if text:
                    dark = values[i, j] < 60                          # white on viridis' dark half
                    ax.text(j, i, text, ha="center", va="center", fontsize=10, linespacing=1.0,
                            color="white" if dark else "black")
        ax.set_xticks(range(len(groups)), [h.replace("_", " ") for h, _ in groups], fontsize=10)
        ax.xaxis.tick_top()
        ax.set_yticks(range(len(names)), [n.removesuffix(suffix) for n in names], fontsize=10)
        ax.tick_params(length=0)
        ax.set_xticks(np.arange(len(groups) + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(len(names) + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="minor", length=0)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_xlabel(f"test F1 (%), {label}", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=CHART_DPI, metadata=metadata or {})
    plt.close(fig)
    return texts


def _rel(path: str) -> str:
    p = Path(path)
    return str(p.relative_to(ROOT) if p.is_relative_to(ROOT) else p)


@command
def main(argv=None) -> dict:
    setup_logging(None)                     # before the heads' imports, so that their warnings are held back
    from rgcn.heads import head_class

    a = parse_args(argv)
    if a.render:                            # redraw a result: its table, Markdown and chart, no training
        result = json.loads(Path(a.render).read_text())
        render(result, a.render, a.chart, command_line(__file__, argv))
        return result
    data_overrides = [f"data.train={a.train}", f"data.valid={a.valid}"]
    base = load_config(text_config(a.dataset_prefix), data_overrides)
    shared = [f"encoder.name={base.encoder.name}", f"train.batch_size={base.train.batch_size}"]
    readers = sorted({h for _, h, _ in a.rows if head_class(h).reads_index})
    if readers and not (Path(a.index) / "manifest.json").is_file():
        raise UserError(f"{', '.join(readers)} read(s) the image index, and there is none at {a.index}: "
                        f"build it (python -m index build --data ... --images {_rel(a.images)} --out "
                        f"{_rel(a.index)}) or pass --index")
    print(f"heads {a.heads}" + (f", variants {[v[0] for v in a.variant]}" if a.variant else "") + f", seeds {a.seeds}, {a.epochs} epochs, threads {a.threads}; every run: "
          f"{' '.join(shared + a.set)}", flush=True)
    cwd = Path.cwd()
    os.chdir(ROOT)                                    # configs name paths from the repository root
    try:
        gold = read_corpus(a.test, a.images, require_tags=True)
        photo_types, why_not = photo_knn_setup(a, gold)
        if why_not:
            print(f"no photo_knn row: {why_not}", flush=True)
        train_ahead(a, shared)
        per_seed = {str(seed): run_seed(a, seed, shared, gold, photo_types) for seed in a.seeds}
    finally:
        os.chdir(cwd)
    summary = summarise(per_seed)
    out = {"dataset_prefix": a.dataset_prefix, "heads": a.heads, "seeds": a.seeds, "epochs": a.epochs,
           "variants": {name: {"head": head, "overrides": extra} for name, head, extra in a.rows[len(a.heads):]},
           "threads": a.threads, "shared": shared, "set": a.set, "knn_k": a.knn_k,
           "data": {k: _rel(getattr(a, k)) for k in ("train", "valid", "test", "images", "index")},
           "configs": {h: [_rel(x) if x.startswith(str(ROOT)) else x
                           for x in head_args(h, a.dataset_prefix, _rel(a.index))] for h in a.heads},
           "gold": gold_counts(next(iter(per_seed.values()))["rows"][a.heads[0]]),
           "summary": summary, "per_seed": per_seed}
    written = write_result(a.output, out, __file__, argv)
    render(written, a.output, a.chart, written["provenance"]["command"])
    return out


def render(result: dict, output: str, chart_path: str | None, drawn_by: str = "") -> None:
    """Print the table of a result and write its Markdown (``output`` with ``.md``) and chart,
    all from its per-seed rows (so a result written before a column existed gets it too); the
    chart's PNG names the result's command and ``drawn_by``, the command that drew it."""
    summary = summarise(result["per_seed"])
    write_rendering(Path(output).with_suffix(".md"), result, markdown(summary, result["provenance"]["command"]))
    if chart_path:
        chart(summary, chart_path, f"{result['dataset_prefix']}: test F1, mean ± sd over {len(result['seeds'])} "
                                   "seed(s)",
              {"Description": f"result of: {result['provenance']['command']}", "Software": drawn_by})
    print("\n" + table(summary))
    print(f"written {output}, its table {Path(output).with_suffix('.md').name}"
          + (f" and chart {Path(chart_path).name}" if chart_path else ""))


if __name__ == "__main__":
    sys.exit(exit_status(main()))
