"""Training on several processes: PyTorch's own runtime (``torchrun``) and DistributedDataParallel.

Under ``torchrun --nproc_per_node N train.py ...`` every process reads its place from the
environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, the rendezvous
address) and joins one process group: gloo on CPU, NCCL on GPU. Without torchrun (or with
a world of one process) nothing here starts a process group and every helper is a no-op,
so a plain ``python train.py`` runs exactly as before.

How a step is shared (:func:`shard`). Every process builds the same list of
length-bucketed batches (one seed, one sampler), so ``train.batch_size`` stays the
*global* batch: what one process would take for one optimizer step. Each batch is cut
into ``N`` contiguous slices whose sizes differ by at most one post; process ``r`` takes
slice ``r``. Every post is seen once an epoch, and the number of steps, the learning-rate
schedule and the meaning of ``train.batch_size`` do not depend on ``N``.

Why the gradient is the one-process gradient. A process's loss is a mean over its slice
of ``n_r`` posts; DistributedDataParallel averages the gradients over the ``N`` processes.
Scaling each process's loss by ``N * n_r / B`` (:func:`backward_weight`) makes that average
``sum_r (n_r / B) grad L_r``: the gradient of the mean over the ``B`` posts of the batch,
whatever the slice sizes. The CRF's loss, a mean over posts, is therefore exact. A head's
auxiliary loss normalised otherwise (ITA's cross-view term, a mean over words; MAF's and
BGA's, over the posts with a photo) or taken over the batch as a set (MAF's contrastive
alignment, whose negatives are the other posts with a photo) is computed within each
slice and weighted by the slice's share of posts, as gradient accumulation over the
slices would: close to the one-process value, not equal to it.
A process whose slice is empty (a batch shorter than ``N``) tags one post of the batch
with weight 0, so it still joins the gradient all-reduce.
"""
from __future__ import annotations

import dataclasses
import os
import random
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, Sequence

import torch
from torch import nn

TIMEOUT = timedelta(minutes=60)
"""How long a collective (a barrier) may wait: the other processes wait at one while the
first evaluates dev, writes checkpoints and scores the test split."""


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_rank`` on its
    machine, and the process group's ``backend`` (gloo, nccl; empty before :func:`init`)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        """Whether a process group is running (more than one process)."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Whether this is the process that evaluates and writes the run folder (rank 0)."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier(device_ids=[torch.cuda.current_device()] if dist.get_backend() == "nccl" else None)


SINGLE = Dist()
"""One process, no process group."""


def env_world() -> Dist:
    """The place torchrun gave this process (:data:`SINGLE` when it was not started by torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError as e:
        raise RuntimeError(f"WORLD_SIZE, RANK and LOCAL_RANK must be integers (torchrun sets them): {e}") from None
    if world <= 1:
        return SINGLE
    if not 0 <= rank < world:
        raise RuntimeError(f"RANK={rank} is outside WORLD_SIZE={world}")
    return Dist(rank, world, local_rank)


def process_device(device: torch.device, d: Dist) -> torch.device:
    """The device of this process: a GPU run gives each process its own GPU,
    ``cuda:(LOCAL_RANK % device_count)`` (more processes than GPUs on a machine share them)."""
    if d.enabled and device.type == "cuda":
        return torch.device("cuda", d.local_rank % max(torch.cuda.device_count(), 1))
    return device


def backend_for(device: torch.device) -> str:
    """NCCL for GPUs, gloo for CPUs."""
    return "nccl" if device.type == "cuda" else "gloo"


def init(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes (no-op without torchrun); returns this
    process's place and device."""
    d = env_world()
    if not d.enabled:
        return d, device
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; train with one process (python train.py)")
    device = process_device(device, d)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = backend_for(device)
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=TIMEOUT)
    return dataclasses.replace(d, backend=backend), device


def shutdown(d: Dist) -> None:
    if d.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def check_batch_size(batch_size: int, d: Dist) -> None:
    """Refuse a global batch smaller than the number of processes (some would have no post at
    any step) with a :class:`rgcn.config.ConfigError`."""
    from .config import ConfigError

    if batch_size < d.world:
        raise ConfigError(f"train.batch_size={batch_size} is the global batch, shared by {d.world} processes, "
                         f"so it must be at least {d.world}: raise train.batch_size or start fewer processes")


def shard(batch: Sequence[int], rank: int, world: int) -> tuple[list[int], float]:
    """Process ``rank``'s slice of ``batch`` and its share of the batch's posts.

    The batch is cut into ``world`` contiguous slices, the first ``len(batch) % world`` one
    post longer. An empty slice is given the batch's first post with share 0 (the process
    joins the all-reduce with a zero gradient).

    >>> shard([5, 6, 7], 0, 2), shard([5, 6, 7], 1, 2), shard([5], 1, 2)
    (([5, 6], 0.6666666666666666), ([7], 0.3333333333333333), ([5], 0.0))
    """
    n = len(batch)
    q, extra = divmod(n, world)
    start = rank * q + min(rank, extra)
    size = q + (rank < extra)
    if size == 0:
        return list(batch[:1]), 0.0
    return list(batch[start: start + size]), size / n


def backward_weight(share: float, d: Dist) -> float:
    """The factor on a process's slice loss so that the all-reduced (averaged) gradient is
    the gradient of the global batch's mean loss: ``world * share``."""
    return d.world * share


class _Loss(nn.Module):
    """The tagger's ``forward_loss`` as a module's ``forward``: DistributedDataParallel
    synchronises the gradients of what runs inside its wrapped module's forward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.forward_loss(batch)


def loss_function(model: nn.Module, d: Dist) -> Callable:
    """``batch -> loss``: the model's own ``forward_loss`` in one process; under a process
    group the same behind DistributedDataParallel, which all-reduces the gradients.

    ``find_unused_parameters`` is on: some parameters take no part in some steps' loss (the
    backbone's pooler never does; heads that read photos use their image-side layers only
    on slices with a photo), and DDP must know them to finish the all-reduce.
    """
    if not d.enabled:
        return model.forward_loss
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(_Loss(model), find_unused_parameters=True)


def sum_over_processes(values: Sequence[float], d: Dist) -> list[float]:
    """Element-wise sums of ``values`` over the processes (``values`` unchanged in one process)."""
    if not d.enabled:
        return list(values)
    import torch.distributed as dist

    device = torch.cuda.current_device() if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather(obj, d: Dist) -> list:
    """``obj`` of every process, in rank order (``[obj]`` in one process)."""
    if not d.enabled:
        return [obj]
    import torch.distributed as dist

    out = [None] * d.world
    dist.all_gather_object(out, obj)
    return out


def from_main(obj, d: Dist):
    """The main process's ``obj`` on every process (``obj`` itself in one process)."""
    if not d.enabled:
        return obj
    import torch.distributed as dist

    box = [obj if d.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextmanager
def main_first(d: Dist):
    """The block runs on the main process first and on the others once it is done (e.g. a
    head's setup, which builds a cache the others then load instead of building it again)."""
    if not d.is_main:
        d.barrier()
    yield
    if d.is_main:
        d.barrier()


def cuda_rng_state() -> list[torch.Tensor] | None:
    """The random states of CUDA's generators (one per GPU) when this process uses CUDA
    (dropout and sampling on a GPU draw from them, not from the CPU's), else ``None``."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.get_rng_state_all()
    return None


def rng_state() -> tuple:
    """This process's torch, Python and CUDA (:func:`cuda_rng_state`) random states."""
    return torch.get_rng_state(), random.getstate(), cuda_rng_state()


def set_rng_state(state: tuple) -> None:
    """Restore :func:`rng_state`; a state saved without CUDA's (on a CPU, or by an older
    version) leaves CUDA's generators as they are, and one saved with more GPUs than this
    machine has restores the GPUs it has."""
    torch.set_rng_state(state[0])
    random.setstate(state[1])
    cuda = state[2] if len(state) > 2 else None
    if cuda is not None and torch.cuda.is_available():
        for i, s in enumerate(list(cuda)[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, i)
