"""The CPU side of benchmarks/gpu_check.py: without CUDA it refuses in one line with status 2;
its arguments, the exact neighbours and the recall it reports, the pytest summary it reads."""
import numpy as np
import pytest
import torch

from benchmarks import gpu_check
from data.errors import UserError


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where there is no CUDA device")
def test_without_cuda_it_says_so_and_exits_2(capsys, tmp_path):
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--parts", "knn", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CUDA: torch sees no CUDA device") and "NVIDIA GPU" in err
    assert not out.exists()


def test_arguments():
    a = gpu_check.parse_args([])
    assert a.parts == list(gpu_check.PARTS) and a.knn_n == 1_000_000 and a.heads == ["text", "rgcn"]
    assert a.encoder == gpu_check.DEFAULT_ENCODER and not a.no_cpu_baseline
    assert gpu_check.parse_args(["--parts", "knn", "--knn-n", "5000", "--knn-sample", "100"]).knn_sample == 100
    with pytest.raises(UserError, match="knn-sample"):
        gpu_check.parse_args(["--knn-n", "100", "--knn-sample", "500"])
    with pytest.raises(UserError):
        gpu_check.parse_args(["--parts", "nothing"])


def _unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_neighbours_are_the_top_k_other_rows():
    x = _unit(60, 8)
    rows = np.array([0, 7, 59])
    I = gpu_check.exact_neighbours(x, rows, k=5, chunk=2)
    for r, got in zip(rows, I):
        sims = x @ x[r]
        sims[r] = -np.inf
        assert list(got) == list(np.argsort(-sims)[:5])
        assert r not in got


def test_recall_against_exact_search():
    x = _unit(400, 16)
    rows = np.arange(0, 400, 7)
    I_ref = gpu_check.exact_neighbours(x, rows)
    idx, _ = gpu_check.build_index(x, "Flat", gpu=False)
    res = gpu_check.knn_against_exact(idx, x, rows, I_ref)
    assert res["recall@10"] == 1.0 and res["seconds"] >= 0
    half = I_ref.copy()
    half[:, 5:] = -1                       # half of each exact list can never be found
    assert gpu_check.knn_against_exact(idx, x, rows, half)["recall@10"] == 0.5


def test_pytest_counts_and_ddp_needs_two_gpus():
    assert gpu_check.pytest_counts("..s\n3 passed, 1 skipped, 2 deselected in 4.1s") == \
        {"passed": 3, "failed": 0, "skipped": 1, "error": 0}
    assert gpu_check.pytest_counts("1 failed, 2 passed, 1 error in 3s")["error"] == 1
    assert "needs two" in gpu_check.run_ddp(gpu_check.parse_args([]), 1)["skipped"]
