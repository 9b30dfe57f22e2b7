"""Learning-rate schedules by name: linear warm-up, then linear decay, cosine decay or constant.

Every schedule rises linearly from 0 over the warm-up steps to each group's learning rate;
after that ``linear`` falls linearly to 0 at the last step (the trainer's original
schedule), ``cosine`` follows half a cosine to 0, and ``constant`` stays.
"""
from __future__ import annotations

import torch
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)

SCHEDULES = {
    "linear": get_linear_schedule_with_warmup,
    "cosine": get_cosine_schedule_with_warmup,
    "constant": lambda optimizer, warmup, total: get_constant_schedule_with_warmup(optimizer, warmup),
}


def make_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int):
    """The ``LambdaLR`` of schedule ``name`` (see :data:`SCHEDULES`) over ``total_steps`` steps."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")
    return SCHEDULES[name](optimizer, warmup_steps, total_steps)
