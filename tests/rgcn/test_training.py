"""End to end through train.py's main() on a tiny corpus with a tiny encoder."""
import json

import pytest

import train
from rgcn.__main__ import main as cli
from rgcn.checkpoint import load_checkpoint
from rgcn.config import ConfigError, load_config

from ..conftest import TINY_CONLL


def _args(tmp_path, enc, *extra):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "d.txt"
    data.write_text(TINY_CONLL * 4)
    return ["--no-progress", f"data.train={data}", f"data.valid={data}", f"data.test={data}",
            f"encoder.name={enc}", "train.epochs=2", "train.batch_size=4", "train.head_lr=0.05",
            f"out_dir={tmp_path / 'runs'}", "name=r", *extra]


def test_train_writes_a_complete_run_folder(tmp_path, tiny_encoder, capsys):
    res = train.main(_args(tmp_path, tiny_encoder))
    run = tmp_path / "runs" / "r"
    for f in ("config.json", "metrics.jsonl", "metrics.csv", "curve.png", "results.json",
              "test_predictions.conll", "best/model.safetensors", "best/checkpoint.json", "last/trainer_state.pt"):
        assert (run / f).exists(), f
    assert len(res["history"]) == 2 and "test" in res
    assert res["test"]["micro"]["gold"] == 4 * 5          # every gold entity is scored
    # the CLI scores the written predictions to the same numbers
    capsys.readouterr()
    assert cli(["score", str(tmp_path / "d.txt"), str(run / "test_predictions.conll"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["micro"] == res["test"]["micro"]


def test_same_seed_same_result_and_resume_continues(tmp_path, tiny_encoder, monkeypatch):
    a = train.main(_args(tmp_path / "a", tiny_encoder))
    b = train.main(_args(tmp_path / "b", tiny_encoder))
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    # crash in the middle of epoch 2 (3 steps an epoch), then resume: same losses as the
    # uninterrupted run
    from rgcn.tagger import Tagger
    calls, real = [], Tagger.forward_loss

    def crash_on_fifth_step(self, batch):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(Tagger, "forward_loss", crash_on_fifth_step)
    with pytest.raises(KeyboardInterrupt):
        train.main(_args(tmp_path / "c", tiny_encoder))
    monkeypatch.undo()
    metrics = (tmp_path / "c" / "runs" / "r" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 1
    c = train.main([*_args(tmp_path / "c", tiny_encoder), "--resume"])
    assert [h["train_loss"] for h in c["history"]] == pytest.approx([h["train_loss"] for h in a["history"]])


def test_predict_cli_tags_raw_text(tmp_path, tiny_encoder):
    train.main(_args(tmp_path, tiny_encoder, "train.epochs=1"))
    posts = tmp_path / "posts.txt"
    posts.write_text("George went to Florida\n\nGo Lakers !\n")
    out = tmp_path / "out.jsonl"
    assert cli(["predict", "--run", str(tmp_path / "runs" / "r"), "--input", str(posts), "--output", str(out)]) == 0
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["tokens"] for r in rows] == [["George", "went", "to", "Florida"], ["Go", "Lakers", "!"]]
    assert all(len(r["tags"]) == len(r["tokens"]) for r in rows)
    model, cfg, meta = load_checkpoint(tmp_path / "runs" / "r")
    assert model.labels[0] == "O" and cfg.encoder.name == tiny_encoder


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["data.train=a", "data.valid=b", "train.epoch=3"])
    with pytest.raises(ConfigError, match="data.train and data.valid are required"):
        load_config(None, ["data.train=a"])
    with pytest.raises(ConfigError, match="must be a number"):
        load_config(None, ["data.train=a", "data.valid=b", "train.lr=fast"])
    cfg = load_config(None, ["data.train=a", "data.valid=b", "train.lr=5e-05"])
    assert cfg.train.lr == 5e-5


def test_drop_test_images_removes_the_test_split_images_only(tmp_path, tiny_corpus_file):
    from rgcn.config import RunConfig, DataConfig
    from rgcn.training import read_splits

    images = tmp_path / "img"
    images.mkdir()
    for i in (101, 102, 103):
        (images / f"{i}.jpg").write_bytes(b"")                  # present files (content is not read here)
    d = DataConfig(train=str(tiny_corpus_file), valid=str(tiny_corpus_file), test=str(tiny_corpus_file),
                   images=str(images), drop_test_images=True)
    splits = read_splits(RunConfig(data=d))
    assert all(s.image is None and s.meta.get("image_dropped") for s in splits["test"])
    assert all(s.image is not None and not s.meta.get("image_dropped") for s in splits["train"])
