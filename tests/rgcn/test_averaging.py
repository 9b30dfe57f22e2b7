"""rgcn/averaging.py and train.average_last: dev sees the mean weights of the last epochs."""
import pytest
import torch
from safetensors.torch import load_file

import train
from rgcn.averaging import swapped_weights, update_average
from rgcn.config import ConfigError, load_config

from .test_training import _args


def test_running_average_by_hand():
    m = torch.nn.Linear(1, 1, bias=False)
    mean, snapshots = None, [1.0, 2.0, 6.0]
    for n, w in enumerate(snapshots):
        m.weight.data.fill_(w)
        mean = update_average(mean, m, n)
        assert mean["weight"].item() == pytest.approx(sum(snapshots[: n + 1]) / (n + 1))
    with swapped_weights(m, mean):
        assert m.weight.item() == pytest.approx(3.0)
    assert m.weight.item() == 6.0                         # the raw weights come back


def _train_recording(tmp_path, monkeypatch, *extra):
    """Train 2 epochs; returns the raw emission weights saved to last/ after each epoch and the
    emission weights the dev evaluation saw each epoch."""
    import rgcn.training
    from rgcn.tagger import Tagger

    raw, seen = [], []
    real_save, real_eval = rgcn.training.save_checkpoint, Tagger.evaluate

    def save(path, model, *a, **k):
        if path.name == "last":
            raw.append(model.emission.weight.detach().clone())
        return real_save(path, model, *a, **k)

    def evaluate(self, *a, **k):
        seen.append(self.emission.weight.detach().clone())
        return real_eval(self, *a, **k)

    monkeypatch.setattr(rgcn.training, "save_checkpoint", save)
    monkeypatch.setattr(Tagger, "evaluate", evaluate)
    return train.main(_args(tmp_path, *extra)), raw, seen


def test_average_last_two_evaluates_the_mean_of_the_two_epochs(tmp_path, tiny_encoder, monkeypatch):
    res, raw, seen = _train_recording(tmp_path, monkeypatch, tiny_encoder, "train.average_last=2")
    assert len(raw) == 2 and not torch.equal(raw[0], raw[1])
    assert torch.equal(seen[0], raw[0])                                  # epoch 1: its own weights
    assert torch.allclose(seen[1], (raw[0] + raw[1]) / 2)                # epoch 2: the mean of both
    state = torch.load(tmp_path / "runs" / "r" / "last" / "trainer_state.pt", weights_only=True)
    assert state["n_averaged"] == 2
    assert torch.allclose(state["average"]["emission.weight"], (raw[0] + raw[1]) / 2)
    assert [h["averaged_epochs"] for h in res["history"]] == [1, 2]
    # last/ keeps the raw weights training continues from
    last = load_file(tmp_path / "runs" / "r" / "last" / "model.safetensors")
    assert torch.equal(last["emission.weight"], raw[1])
    if res["best_epoch"] == 2:
        best = load_file(tmp_path / "runs" / "r" / "best" / "model.safetensors")
        assert torch.allclose(best["emission.weight"], (raw[0] + raw[1]) / 2)


def test_average_last_one_is_the_plain_trainer(tmp_path, tiny_encoder, monkeypatch):
    res, raw, seen = _train_recording(tmp_path, monkeypatch, tiny_encoder)
    assert all(torch.equal(s, r) for s, r in zip(seen, raw)) and "averaged_epochs" not in res["history"][0]
    with pytest.raises(ConfigError, match="average_last"):
        load_config(None, ["data.train=a", "data.valid=b", "train.epochs=2", "train.average_last=3"])


def test_a_mean_read_back_on_the_cpu_joins_the_parameters_device():
    # --resume on a GPU: trainer_state.pt is read with map_location="cpu", the model is on the
    # GPU; a meta-device model stands in for it (mixing meta and CPU tensors raises as CUDA does)
    m = torch.nn.Linear(2, 1, bias=False).to("meta")
    mean = {"weight": torch.ones(1, 2)}                    # what the checkpoint gave back
    new = update_average(mean, m, 1)
    assert new["weight"].device.type == "meta" and new["weight"].dtype == torch.float32
