"""rgcn/schedules.py: the learning rate of each schedule, step by step."""
import math

import pytest
import torch

from rgcn.config import ConfigError, load_config
from rgcn.schedules import make_scheduler


def lrs(name, warmup=0, total=4):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, name, warmup, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_each_schedule_by_hand():
    assert lrs("linear") == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert lrs("cosine") == pytest.approx([0.5 * (1 + math.cos(math.pi * s / 4)) for s in range(4)])
    assert lrs("constant") == pytest.approx([1.0] * 4)
    # the warm-up rises linearly first, whatever comes after
    assert lrs("constant", warmup=2) == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert lrs("cosine", warmup=2)[:2] == pytest.approx([0.0, 0.5])


def test_the_default_is_linear_and_an_unknown_name_lists_the_valid_ones():
    assert load_config(None, ["data.train=a", "data.valid=b"]).train.schedule == "linear"
    with pytest.raises(ConfigError, match="linear, cosine, constant"):
        load_config(None, ["data.train=a", "data.valid=b", "train.schedule=step"])
