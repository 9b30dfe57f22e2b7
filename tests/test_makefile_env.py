"""The environment `make` gives its commands: offline hub, and OpenMP threads that sleep
instead of spinning when idle (on shared cores spinning threads slow an epoch many times)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_env(var: str, **env) -> str:
    base = {k: v for k, v in os.environ.items() if k != var}
    out = subprocess.run(["make", "-s", "--no-print-directory", "--eval", f"show: ; @echo \"[$${var}]\"", "show"],
                         cwd=ROOT, capture_output=True, text=True, env={**base, **env}, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not shutil.which("make"), reason="no make")
def test_make_runs_its_commands_with_passive_openmp_threads_unless_told_otherwise():
    assert make_env("OMP_WAIT_POLICY") == "[PASSIVE]"
    assert make_env("OMP_WAIT_POLICY", OMP_WAIT_POLICY="ACTIVE") == "[ACTIVE]"
    assert make_env("HF_HUB_OFFLINE") == "[1]"


@pytest.mark.skipif(not shutil.which("make"), reason="no make")
def test_make_demo_builds_the_demo_index_with_ocr(tmp_path):
    """On a fresh clone (no index yet) make demo's index build reads the text in the photos."""
    out = subprocess.run(["make", "-n", "-s", "demo", "STAMP=/dev/null", f"DEMO_INDEX={tmp_path}/index"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    build = [line for line in out.stdout.splitlines() if " -m index build " in line]
    assert len(build) == 1 and " --ocr " in build[0] and f"--out {tmp_path}/index" in out.stdout
