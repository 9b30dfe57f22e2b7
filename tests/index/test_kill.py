"""`index build` and `index add` killed (SIGKILL) at random points: no half artifact is ever
read, and a rerun resumes from the images already embedded and gives the same artifact."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.artifact import load_index
from tests.colour import colour_image

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("MNER_KILL_TRIALS", "3"))
"""Kills per test (raise it for a longer soak: MNER_KILL_TRIALS=20 pytest tests/*/test_kill.py -s)."""
RUN = ("import sys, tests.colour as c; c.slow_down_from_env(); from index.__main__ import main; "
       "sys.exit(main(sys.argv[1:]))")


def index_cli(args, sleep: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "TEST_COLOUR_SLEEP": str(sleep), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", RUN, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120.0) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False when it ended first."""
    end = time.time() + timeout
    while proc.poll() is None and time.time() < end:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.wait()
    return False


def same_artifact(a, b) -> bool:
    return a.ids == b.ids and np.array_equal(a.embeddings, b.embeddings) and a.tags == b.tags


@pytest.fixture
def folder(tmp_path):
    rng = random.Random(0)
    (tmp_path / "images").mkdir()
    for i in range(48):
        colour_image(tmp_path / "images" / f"{i:03d}.png", ["red", "blue"][i % 2], rng)
    return tmp_path


@pytest.mark.parametrize("command", ["build", "add"])
def test_killed_runs_leave_no_half_artifact_and_resume(folder, command):
    rng = random.Random(1)
    out = folder / "index"
    common = ["--quiet", "--embedder", "test_colour", "--images", folder / "images", "--batch-size", "4",
              "--save-every", "8", "--workers", "0"]
    ref = folder / "reference"
    assert index_cli(["build", *common, "--out", ref]).wait() == 0
    if command == "add":                                      # an artifact of the first 8 images, then add the rest
        subset = folder / "first"
        subset.mkdir()
        for p in sorted((folder / "images").iterdir())[:8]:
            os.link(p, subset / p.name)
        assert index_cli(["build", *[a if a != folder / "images" else subset for a in common], "--out", out]).wait() == 0
        args = ["add", out, "--quiet", "--images", folder / "images", "--batch-size", "4", "--save-every", "8",
                "--workers", "0"]
    else:
        args = ["build", *common, "--out", out]
    partial = folder / f".{out.name}.partial"
    kills = 0
    for _ in range(TRIALS):
        target = rng.randint(1, 4)
        proc = index_cli(args, sleep=0.05)
        killed = kill_when(proc, lambda: len(list(partial.glob("chunk-*.npz"))) >= target)
        kills += killed
        if out.exists():                                      # what exists is whole: the old one or the new one
            art = load_index(out, gpu=False)
            assert len(art.ids) in (8 if command == "add" else -1, 48)
        assert not list(folder.glob(f".{out.name}.tmp-*")) or killed
        if not killed:
            break
    print(f"index {command}: {kills} kill(s), every artifact read whole")
    assert kills >= 1
    chunks_before = len(list(partial.glob("chunk-*.npz")))
    assert chunks_before >= 1                                 # progress was kept
    proc = index_cli(args)
    assert proc.wait() == 0
    assert f"resumed: {chunks_before} of " in proc.stderr.read().decode()   # only the rest was embedded
    assert same_artifact(load_index(out, gpu=False), load_index(ref, gpu=False))
    assert not partial.exists() and not list(folder.glob(f".{out.name}.tmp-*"))
