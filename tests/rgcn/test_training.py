"""End to end through train.py's main() on a tiny corpus with a tiny encoder."""
import json
import re

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
    # each epoch's CPU seconds beside its wall seconds (every thread of the process counts)
    assert all(0 < h["train_cpu_seconds"] for h in res["history"])
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


def _decay_of(groups):
    """``{id(param): (weight_decay, lr)}``, checking no parameter is in two groups."""
    out = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in out, "a parameter is in two groups"
            out[id(p)] = (g["weight_decay"], g["lr"])
    return out


def test_no_decay_is_chosen_by_module_type_not_by_name():
    import torch
    from torch import nn

    from rgcn.training import param_groups

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.ln_f = nn.LayerNorm(4)          # a LayerNorm whose name says nothing of it
            self.scale = nn.Parameter(torch.ones(4))

    cfg = load_config(None, ["data.train=a", "data.valid=b", "train.weight_decay=0.1"])
    model = Head()
    decay = _decay_of(param_groups(model, cfg))
    assert decay[id(model.ln_f.weight)][0] == 0.0
    assert decay[id(model.ln_f.bias)][0] == 0.0
    assert decay[id(model.proj.bias)][0] == 0.0
    assert decay[id(model.proj.weight)][0] == 0.1
    assert decay[id(model.scale)][0] == 0.1
    assert len(decay) == len(list(model.parameters()))


def test_tagger_param_groups_exempt_every_norm_and_bias(tiny_encoder):
    from torch import nn
    from torch_geometric.nn.dense.linear import Linear as PygLinear

    from rgcn.checkpoint import build_tagger
    from rgcn.heads.rgcn import NoImageGraphs
    from rgcn.training import param_groups

    cfg = load_config(None, ["data.train=a", "data.valid=b", f"encoder.name={tiny_encoder}", "head.name=rgcn",
                             "head.options.gcn_hidden=8", "head.options.heads=2", "train.weight_decay=0.1",
                             "train.lr=1e-4", "train.head_lr=1e-2"])
    model = build_tagger(cfg, ["O", "B-PER", "I-PER"], {"graphs": NoImageGraphs(6)}, encoder_dir=tiny_encoder)
    decay = _decay_of(param_groups(model, cfg))
    assert len(decay) == sum(1 for p in model.parameters() if p.requires_grad)
    norms = biases = linears = 0
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            wd, lr = decay[id(p)]
            assert lr == (1e-4 if mod_name.startswith("encoder.backbone.") else 1e-2), (mod_name, p_name)
            if isinstance(module, nn.LayerNorm):
                assert wd == 0.0, f"{mod_name}.{p_name} is decayed"
                norms += 1
            elif p_name == "bias" or p_name.endswith("_bias"):
                assert wd == 0.0, f"{mod_name}.{p_name} is decayed"
                biases += 1
            elif isinstance(module, (nn.Linear, PygLinear)) and p_name == "weight":
                assert wd == 0.1, f"{mod_name}.{p_name} is not decayed"
                linears += 1
    # the head's own LayerNorms are among those checked
    assert decay[id(model.head.norm1.weight)][0] == decay[id(model.head.norm2.weight)][0] == 0.0
    assert norms > 0 and biases > 0 and linears > 0


def test_training_refuses_entity_types_outside_the_run_set(tmp_path, tiny_encoder, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text(TINY_CONLL + "\nIMGID:104\nBob\tB-PERSON\n")
    a = _args(tmp_path, tiny_encoder)
    a = [x if not x.startswith("data.train=") else f"data.train={bad}" for x in a]
    assert train.main(a) == 2
    assert re.search(rf"error: {bad}:\d+: entity type 'PERSON'.*data.entity_types", capsys.readouterr().err)


def test_a_crafted_trainer_state_is_refused(tmp_path):
    import pickle

    from rgcn.training import load_trainer_state

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "last" / "trainer_state.pt"
    path.parent.mkdir()
    with open(path, "wb") as f:
        pickle.dump({"optimizer": Payload()}, f)
    with pytest.raises(RuntimeError, match="not loaded .*could run code"):
        load_trainer_state(path)
    assert not marker.exists()


def test_a_damaged_checkpoint_is_named_with_the_command_that_remakes_it(tmp_path, tiny_encoder):
    from rgcn.checkpoint import CheckpointDamaged

    train.main(_args(tmp_path, tiny_encoder, "train.epochs=1"))
    run = tmp_path / "runs" / "r"
    for name in ("model.safetensors", "checkpoint.json"):
        f = run / "best" / name
        good = f.read_bytes()
        f.write_bytes(good[: len(good) // 2])
        with pytest.raises(CheckpointDamaged, match=rf"{f} cannot be read .*python train.py --config "
                                                    rf"{run / 'config.json'}"):
            load_checkpoint(run)
        f.write_bytes(good)
    load_checkpoint(run)


def test_train_console_is_short_and_the_log_file_has_the_config(tmp_path, tiny_encoder, capsys):
    train.main(_args(tmp_path, tiny_encoder, "train.epochs=1"))
    captured = capsys.readouterr()
    console = captured.out + captured.err
    assert "resolved config" not in console and '"head_lr"' not in console
    assert "run folder:" in console and "epoch 1:" in console
    log = (tmp_path / "runs" / "r" / "train.log").read_text()
    assert "resolved config" in log and '"head_lr": 0.05' in log


def test_a_window_longer_than_the_encoder_reads_is_refused_naming_the_key(tmp_path, tiny_encoder):
    from transformers import AutoConfig, RobertaConfig

    from data.errors import raising
    from rgcn.checkpoint import check_window

    cfg = AutoConfig.from_pretrained(tiny_encoder)              # 160 positions
    check_window(158, cfg, tiny_encoder)                        # 158 sub-words + 2 separators fit
    with pytest.raises(ConfigError, match=r"encoder.max_subwords=159.*at most 160 positions.*max_subwords=158"):
        check_window(159, cfg, tiny_encoder)
    roberta = RobertaConfig(max_position_embeddings=66)         # two positions reserved below the first token
    check_window(62, roberta, "r")
    with pytest.raises(ConfigError, match="max_subwords=62 or less"):
        check_window(63, roberta, "r")
    with pytest.raises(ConfigError, match="encoder.max_subwords"):  # checked where the tagger is built
        raising(train.main)(_args(tmp_path, tiny_encoder, "encoder.max_subwords=200"))
