"""The trainer's GPU code paths, checked on the CPU with CUDA's queries mocked: the automatic
precision, each torchrun process's GPU, and the CUDA generators a resume restores."""
import pytest
import torch

from rgcn import distributed
from rgcn.distributed import Dist
from rgcn.tagger import resolve_precision

CUDA = torch.device("cuda")


@pytest.mark.parametrize("capability, dtype", [((7, 0), None), ((7, 5), None), ((8, 0), torch.bfloat16),
                                               ((9, 0), torch.bfloat16)])
def test_auto_precision_is_bf16_only_from_compute_capability_8(monkeypatch, capability, dtype):
    # torch.cuda.is_bf16_supported() says yes on a V100 or T4 too (emulated bf16): it is not asked
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    assert resolve_precision("auto", CUDA) is dtype
    assert resolve_precision("bf16", CUDA) is torch.bfloat16 and resolve_precision("fp32", CUDA) is None


@pytest.mark.parametrize("local_rank, gpus, ordinal", [(0, 2, 0), (1, 2, 1), (3, 2, 1), (5, 4, 1)])
def test_each_torchrun_process_takes_a_gpu_the_machine_has(monkeypatch, local_rank, gpus, ordinal):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    d = Dist(rank=local_rank, world=8, local_rank=local_rank)
    assert distributed.process_device(CUDA, d) == torch.device("cuda", ordinal)
    assert distributed.process_device(torch.device("cpu"), d) == torch.device("cpu")


class FakeCudaGenerators:
    """CUDA's generator queries on a machine with ``n`` GPUs whose states are ``states``."""

    def __init__(self, monkeypatch, states):
        self.states, self.restored = list(states), []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.states))
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in self.states])
        monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, i="cuda": self.restored.append((s.tolist(), i)))


def test_the_rng_state_carries_cuda_generators_and_restores_them(monkeypatch):
    gens = FakeCudaGenerators(monkeypatch, [torch.tensor([1, 2], dtype=torch.uint8),
                                            torch.tensor([3, 4], dtype=torch.uint8)])
    state = distributed.rng_state()
    assert [s.tolist() for s in state[2]] == [[1, 2], [3, 4]]
    distributed.set_rng_state(state)
    assert gens.restored == [([1, 2], 0), ([3, 4], 1)]
    gens.restored.clear()
    distributed.set_rng_state(state[:2])                      # a checkpoint without CUDA's states
    distributed.set_rng_state((*state[:2], None))             # one saved on a CPU
    assert gens.restored == []
    gens.states = gens.states[:1]                             # resumed on a machine with one GPU
    distributed.set_rng_state(state)
    assert gens.restored == [([1, 2], 0)]


def test_resume_restores_the_cuda_generators_of_the_run(tmp_path, tiny_encoder, monkeypatch):
    import train
    from rgcn.tagger import Tagger

    from .test_training import _args

    args = [*_args(tmp_path, tiny_encoder), "train.device=cpu"]
    monkeypatch.setattr(distributed, "cuda_rng_state", lambda: [torch.tensor([7, 8], dtype=torch.uint8)])
    calls, real = [], Tagger.forward_loss

    def crash_in_epoch_two(self, batch):                    # 3 steps an epoch
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(Tagger, "forward_loss", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.main(args)
    monkeypatch.setattr(Tagger, "forward_loss", real)
    state = torch.load(tmp_path / "runs" / "r" / "last" / "trainer_state.pt", weights_only=True)
    assert [s.tolist() for s in state["cuda_rng"]] == [[7, 8]]
    restored, real_set = [], distributed.set_rng_state

    def set_with_one_gpu(state):                            # CUDA "present" while the states are restored
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch.cuda, "is_available", lambda: True)
            mp.setattr(torch.cuda, "device_count", lambda: 1)
            mp.setattr(torch.cuda, "set_rng_state", lambda s, i="cuda": restored.append((s.tolist(), i)))
            real_set(state)

    monkeypatch.setattr(distributed, "set_rng_state", set_with_one_gpu)
    train.main([*args, "--resume"])
    assert restored == [([7, 8], 0)]
