"""Weight averaging over the last epochs (``train.average_last``), as in stochastic weight
averaging (Izmailov et al., 2018) with one snapshot per epoch.

The average is a running mean of the parameters' snapshots, ``mean_n = mean_{n-1} +
(w_n - mean_{n-1}) / n``, so it costs one copy of the weights whatever the number of epochs.
Training itself always continues from the raw weights; the average is what is evaluated on
dev and saved as the best checkpoint while it is being taken.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


@torch.no_grad()
def update_average(mean: dict[str, torch.Tensor] | None, model: nn.Module, n: int) -> dict[str, torch.Tensor]:
    """The running mean of ``n`` earlier snapshots (``mean``, None when ``n`` is 0) and the
    model's current parameters, a new dict of fp32 tensors keyed by parameter name, on the
    parameters' device (a mean read back from a checkpoint on the CPU joins them there)."""
    params = {k: p.detach().float() for k, p in model.named_parameters()}
    if mean is None or n == 0:
        return {k: v.clone() for k, v in params.items()}
    mean = {k: mean[k].to(device=v.device, dtype=torch.float32) for k, v in params.items()}
    return {k: mean[k] + (v - mean[k]) / (n + 1) for k, v in params.items()}


@contextmanager
def swapped_weights(model: nn.Module, weights: dict[str, torch.Tensor] | None):
    """Inside the block the model's parameters hold ``weights`` (nothing changes for None);
    the previous values come back after it, even on an error."""
    if weights is None:
        yield model
        return
    params = dict(model.named_parameters())
    saved = {k: params[k].detach().clone() for k in weights}
    with torch.no_grad():
        for k, v in weights.items():
            params[k].copy_(v)
    try:
        yield model
    finally:
        with torch.no_grad():
            for k, v in saved.items():
                params[k].copy_(v)
