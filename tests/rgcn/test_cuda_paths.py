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
