"""benchmarks/accuracy.py: seeds, dev selection, one test scoring per run, resume.

The scripted tests replace training by runs whose dev figures and test predictions are
fixed, so every figure of the summary can be computed by hand; the last one trains a tiny
BERT for real through the whole path.
"""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

import benchmarks.accuracy as accuracy
from data.corpus import read_predictions
from rgcn.config import load_config
from rgcn.metrics import score
from tests.conftest import TINY_CONLL
from data.errors import UserError, raising

# dev F1 and seconds per epoch of each scripted seed; dev chooses epoch 2 of 3
DEV_F1 = {13: 60.0, 14: 70.0, 15: 80.0}
SECONDS = {13: [60.0, 120.0, 90.0], 14: [30.0, 30.0, 30.0], 15: [120.0, 120.0, 120.0]}


def dev_scores(seed):
    f1 = DEV_F1[seed]
    return {"micro": {"precision": f1 + 5, "recall": f1 - 5, "f1": f1},
            "by_type": {"PER": {"f1": f1 + 10}, "LOC": {"f1": f1 - 10}}}


def scripted_test_tags(sample, seed):
    """Seed 13 tags the test split right; the others miss ``Florida`` (LOC)."""
    tags = list(sample.tags)
    if seed != 13 and "Florida" in sample.tokens:
        tags[sample.tokens.index("Florida")] = "O"
    return tags


@pytest.fixture
def data(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.txt").write_text(TINY_CONLL)
    return {k: str(tmp_path / f"{k}.txt") for k in ("train", "valid", "test")}


@pytest.fixture
def scripted(monkeypatch):
    """``train.main`` writes a run folder with scripted results; ``load_for_corpus`` gives a
    model that tags the test split as :func:`scripted_test_tags` says. Records both."""
    calls = SimpleNamespace(train=[], load=[], evaluate=[])

    def fake_main(argv):
        calls.train.append(argv)
        overrides = [x for x in argv[2:] if "=" in x]
        cfg = load_config(argv[1], overrides)
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "config.json").write_text(json.dumps(cfg.to_dict()))
        seed = cfg.train.seed
        results = {"best_epoch": 2, "valid": dev_scores(seed),
                   "history": [{"epoch": e + 1, "train_seconds": s} for e, s in enumerate(SECONDS[seed])]}
        (cfg.run_dir / "results.json").write_text(json.dumps(results))
        return results

    def fake_load(run, corpus, device="auto", head_options=None):
        run = Path(run)
        calls.load.append(run)
        seed = int(run.parent.name[len("seed"):])

        def evaluate(samples, batch_size=64):
            calls.evaluate.append(seed)
            tags = [scripted_test_tags(s, seed) for s in samples]
            return score([s.tags for s in samples], tags), SimpleNamespace(tags=tags)

        cfg = SimpleNamespace(train=SimpleNamespace(eval_batch_size=64))
        return SimpleNamespace(evaluate=evaluate), cfg, {"epoch": 2}

    monkeypatch.setattr(accuracy.train, "main", fake_main)
    monkeypatch.setattr("rgcn.training.load_for_corpus", fake_load)
    return calls


def _args(data, tmp_path, *extra):
    return ["--train", data["train"], "--valid", data["valid"], "--test", data["test"],
            "--out-dir", str(tmp_path / "runs"), "--output", str(tmp_path / "acc.json"), "--name", "sweep", *extra]


def test_mean_and_spread_by_hand(data, scripted, tmp_path, capsys):
    out = accuracy.main(_args(data, tmp_path, "--epochs", "3", "train.lr=1e-4"))
    s = out["summary"]
    assert s["dev"]["f1"] == {"mean": 70.0, "sd": 10.0, "min": 60.0, "max": 80.0, "n": 3}
    assert s["dev"]["precision"]["mean"] == 75.0 and s["dev"]["f1_by_type"]["LOC"]["max"] == 70.0
    # test: 5 gold entities; seeds 14 and 15 find 4 of them, all right: F1 8/9
    f1 = [100.0, round(100 * 8 / 9, 2), round(100 * 8 / 9, 2)]
    assert s["test"]["f1"]["mean"] == pytest.approx(sum(f1) / 3, abs=1e-4)
    assert s["test"]["f1"]["sd"] == pytest.approx((100 - f1[1]) / math.sqrt(3), abs=1e-4)
    assert (s["test"]["precision"]["min"], s["test"]["recall"]["min"]) == (100.0, 80.0)
    # LOC: George's post has Florida, the last post Madrid; missing Florida halves the recall
    assert s["test"]["f1_by_type"]["LOC"]["min"] == pytest.approx(66.67)
    assert s["test"]["f1_by_type"]["PER"] == {"mean": 100.0, "sd": 0.0, "min": 100.0, "max": 100.0, "n": 3}
    # minutes per epoch: 1.5, 0.5, 2.0
    assert s["minutes_per_epoch"]["mean"] == pytest.approx(4 / 3, abs=1e-4)
    assert s["minutes_per_epoch"]["sd"] == pytest.approx(math.sqrt(((1.5 - 4 / 3) ** 2 + (0.5 - 4 / 3) ** 2
                                                                    + (2 - 4 / 3) ** 2) / 2), abs=1e-4)
    assert s["best_epoch"] == [2, 2, 2]
    # each seed trained its own folder with the budget and the overrides, never the test split
    assert len(scripted.train) == 3
    for seed, argv in zip((13, 14, 15), scripted.train):
        opt = dict(x.split("=", 1) for x in argv if "=" in x)
        assert opt["train.seed"] == str(seed) and opt["name"] == f"seed{seed}" and opt["data.test"] == ""
        assert opt["train.epochs"] == "3" and opt["train.lr"] == "1e-4"
        assert opt["out_dir"] == str(tmp_path / "runs" / "sweep") and "--resume" not in argv
    written = json.loads((tmp_path / "acc.json").read_text())
    assert written["provenance"]["command"].startswith("python benchmarks/accuracy.py --train")
    assert written["runs"][1]["test"]["micro"]["f1"] == f1[1]
    printed = capsys.readouterr().out
    assert any(line.split()[:3] == ["test", "f1", f"{sum(f1) / 3:.2f}"] for line in printed.splitlines())


def test_test_is_scored_once_per_run_with_the_dev_chosen_checkpoint(data, scripted, tmp_path):
    accuracy.main(_args(data, tmp_path, "--seeds", "13", "14"))
    assert scripted.evaluate == [13, 14]
    assert scripted.load == [tmp_path / "runs" / "sweep" / f"seed{s}" / "best" for s in (13, 14)]
    # again: nothing trained, nothing scored, same figures
    again = accuracy.main(_args(data, tmp_path, "--seeds", "13", "14"))
    assert len(scripted.train) == 2 and scripted.evaluate == [13, 14]
    assert [r["how"] for r in again["runs"]] == ["reused", "reused"]
    assert again["runs"][1]["test"]["micro"]["f1"] == pytest.approx(88.89)


def test_a_checkpoint_of_another_epoch_is_not_scored(data, scripted, tmp_path, monkeypatch):
    import rgcn.training
    real = rgcn.training.load_for_corpus
    monkeypatch.setattr("rgcn.training.load_for_corpus", lambda *a, **k: (*real(*a, **k)[:2], {"epoch": 3}))
    with pytest.raises(RuntimeError, match="dev chose epoch 2"):
        accuracy.main(_args(data, tmp_path, "--seeds", "13"))
    assert scripted.evaluate == []


def test_resume_skips_finished_runs_and_continues_a_killed_one(data, scripted, tmp_path):
    accuracy.main(_args(data, tmp_path, "--seeds", "13"))
    # seed 14 was killed after its first epoch: a last/ checkpoint but no results.json
    accuracy.main(_args(data, tmp_path, "--seeds", "14"))
    killed = tmp_path / "runs" / "sweep" / "seed14"
    (killed / "results.json").unlink()
    (killed / "test_scores.json").unlink()
    (killed / "last").mkdir()
    (killed / "last" / "trainer_state.pt").write_bytes(b"")
    scripted.train.clear()
    out = accuracy.main(_args(data, tmp_path, "--seeds", "13", "14", "15"))
    assert [r["how"] for r in out["runs"]] == ["reused", "resumed", "trained"]
    assert len(scripted.train) == 2
    assert "--resume" in scripted.train[0] and "--resume" not in scripted.train[1]
    assert out["summary"]["dev"]["f1"]["mean"] == 70.0


def test_a_folder_trained_with_another_config_is_refused(data, scripted, tmp_path):
    accuracy.main(_args(data, tmp_path, "--seeds", "13"))
    with pytest.raises(UserError, match="differs in train.lr"):
        raising(accuracy.main)(_args(data, tmp_path, "--seeds", "13", "train.lr=1e-3"))
    # the thread count says how the run went, not what it learnt: the run is reused
    out = accuracy.main(_args(data, tmp_path, "--seeds", "13", "--threads", "1"))
    assert out["runs"][0]["how"] == "reused"
    # nor does the folder it was written to: a sweep linked in under another name is reused
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "linked").symlink_to(tmp_path / "runs" / "sweep")
    args = _args(data, tmp_path, "--seeds", "13")
    args[args.index("--out-dir") + 1], args[args.index("--name") + 1] = str(tmp_path / "other"), "linked"
    assert accuracy.main(args)["runs"][0]["how"] == "reused"
    with pytest.raises(UserError, match="differs in train.lr"):
        raising(accuracy.main)([*args, "train.lr=1e-3"])


def test_dev_only_never_reads_the_test_file(data, scripted, tmp_path, monkeypatch):
    import data.corpus as corpus_module
    read, real = [], corpus_module.read_corpus
    monkeypatch.setattr(corpus_module, "read_corpus", lambda path, *a, **k: read.append(str(path)) or real(path, *a, **k))
    missing = str(tmp_path / "no_such_test.txt")
    args = _args(data, tmp_path, "--dev-only")
    args[args.index("--test") + 1] = missing
    out = accuracy.main(args)
    assert scripted.load == [] and scripted.evaluate == [] and missing not in read
    assert "test" not in out["summary"] and out["splits"]["test"] is None
    assert all(dict(x.split("=", 1) for x in argv if "=" in x)["data.test"] == "" for argv in scripted.train)
    # without --dev-only a missing test file stops the sweep before any training
    scripted.train.clear()
    with pytest.raises(UserError, match="not found"):
        raising(accuracy.main)(args[:-1])
    assert scripted.train == []


def test_a_real_sweep_of_one_tiny_run(data, tiny_encoder, tmp_path):
    out = accuracy.main(_args(data, tmp_path, "--seeds", "13", "--epochs", "2", f"encoder.name={tiny_encoder}",
                              "train.batch_size=2", "train.threads=1"))
    run = tmp_path / "runs" / "sweep" / "seed13"
    results = json.loads((run / "results.json").read_text())
    kept = json.loads((run / "test_scores.json").read_text())
    assert kept["best_epoch"] == results["best_epoch"] == out["runs"][0]["best_epoch"]
    assert kept["scores"] == out["runs"][0]["test"] and out["summary"]["test"]["f1"]["sd"] is None
    assert len(read_predictions(run / "test_predictions.conll")[0]) == 3
    assert "test" not in results                       # training never saw the test split


def test_the_seeds_ensemble_is_scored_as_predict_run_a_b_would_and_once(data, tiny_encoder, tmp_path, capsys):
    from rgcn.__main__ import main as cli

    args = _args(data, tmp_path, "--seeds", "13", "14", "--epochs", "1", "--ensemble", f"encoder.name={tiny_encoder}",
                 "train.batch_size=2", "train.threads=1")
    out = accuracy.main(args)
    runs = [str(tmp_path / "runs" / "sweep" / f"seed{s}") for s in (13, 14)]
    for split in ("valid", "test"):
        capsys.readouterr()
        assert cli(["evaluate", "--run", *runs, "--split", data[split], "--json"]) == 0
        want = json.loads(capsys.readouterr().out)
        assert out["ensemble"]["dev" if split == "valid" else "test"] == want
    kept = tmp_path / "runs" / "sweep" / "ensemble_scores.json"
    stamp = kept.stat().st_mtime_ns
    assert accuracy.main(args)["ensemble"] == out["ensemble"] and kept.stat().st_mtime_ns == stamp
    assert "test" not in accuracy.main([*args, "--dev-only"])["ensemble"]


def test_disjoint_ensembles_of_k_seeds_are_each_scored_and_spread(data, tiny_encoder, tmp_path, capsys):
    from rgcn.__main__ import main as cli

    common = [f"encoder.name={tiny_encoder}", "train.batch_size=2", "train.threads=1", "--epochs", "1"]
    pair = accuracy.main(_args(data, tmp_path, "--seeds", "13", "14", "--ensemble", *common))["ensemble"]
    out = accuracy.main(_args(data, tmp_path, "--seeds", "13", "14", "15", "16", "17", "--ensemble", "2", *common))
    groups = out["ensembles"]["groups"]
    assert [g["seeds"] for g in groups] == [[13, 14], [15, 16]] and out["ensemble"] is None   # seed 17 left over
    assert groups[0]["scores"] == pair                 # the same set of runs: kept, not scored again
    runs = [str(tmp_path / "runs" / "sweep" / f"seed{s}") for s in (15, 16)]
    capsys.readouterr()
    assert cli(["evaluate", "--run", *runs, "--split", data["test"], "--json"]) == 0
    assert groups[1]["scores"]["test"] == json.loads(capsys.readouterr().out)
    f1 = [g["scores"]["test"]["micro"]["f1"] for g in groups]
    assert out["ensembles"]["summary"]["test"]["f1"]["mean"] == pytest.approx(sum(f1) / 2, abs=1e-4)
    assert len(json.loads((tmp_path / "runs" / "sweep" / "ensemble_scores.json").read_text())["entries"]) == 2
    with pytest.raises(UserError, match="--ensemble 9: an ensemble needs 2 to 5 seeds"):
        raising(accuracy.main)(_args(data, tmp_path, "--seeds", "13", "14", "15", "16", "17", "--ensemble", "9", *common))
