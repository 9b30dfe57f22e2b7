"""Training and graph-cache writes killed (SIGKILL) at random points: no half checkpoint or
cache is ever read, and a resumed run finishes."""
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.index.test_kill import TRIALS, kill_when

from ..conftest import TINY_CONLL

ROOT = Path(__file__).resolve().parents[2]


def python(code_or_args, env=None) -> subprocess.Popen:
    args = ["-c", code_or_args] if isinstance(code_or_args, str) else list(map(str, code_or_args))
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_training_resumes_and_never_leaves_a_half_checkpoint(tmp_path, tiny_encoder):
    from rgcn.checkpoint import load_checkpoint

    data = tmp_path / "d.txt"
    data.write_text(TINY_CONLL * 6)
    run = tmp_path / "runs" / "r"
    args = ["train.py", "--no-progress", f"data.train={data}", f"data.valid={data}", f"encoder.name={tiny_encoder}",
            "train.epochs=4", "train.batch_size=4", "train.head_lr=0.05", f"out_dir={tmp_path / 'runs'}", "name=r"]
    rng = random.Random(0)
    kills = 0
    for _ in range(max(1, TRIALS - 1)):
        epochs_done = len((run / "metrics.jsonl").read_text().splitlines()) if (run / "metrics.jsonl").exists() else 0
        target = epochs_done + 1
        delay = rng.uniform(0.0, 0.6)
        proc = python([*args, "--resume"])
        kills += kill_when(proc, lambda: (run / "metrics.jsonl").exists() and
                           len((run / "metrics.jsonl").read_text().splitlines()) >= target and
                           not time.sleep(delay))
        for ckpt in ("last", "best"):                           # whatever exists loads whole
            if (run / ckpt).exists():
                load_checkpoint(run / ckpt)
    print(f"training: {kills} kill(s), every checkpoint read whole")
    assert kills >= 1
    proc = python([*args, "--resume"])
    assert proc.wait() == 0, proc.stderr.read().decode()[-2000:]
    history = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert history == [1, 2, 3, 4]
    assert json.loads((run / "results.json").read_text())["best_epoch"] in history


GRAPHS = """
import numpy as np
from data.corpus import Corpus, Sample
from retrieval.cache import GraphSettings, build_graphs
from tests.retrieval.conftest import make_artifact
rng = np.random.default_rng(0)
x = rng.standard_normal((3000, 16)).astype("float32"); x /= np.linalg.norm(x, axis=1, keepdims=True)
art = make_artifact(x, [str(i) for i in range(3000)])
splits = {"train": Corpus("t", [Sample(str(i), ["w"], ["O"]) for i in range(3000)])}
while True:
    build_graphs(splits, art, GraphSettings(k=5, relations=("intra",)), cache_dir=r"%s", progress=False)
    open(r"%s", "a").write("x")
"""


def test_killed_graph_cache_writes_are_never_read_half(tmp_path):
    from retrieval.cache import load_graphs
    from tests.retrieval.conftest import make_artifact

    cache, ticks = tmp_path / "cache", tmp_path / "ticks"
    rng = random.Random(0)
    for trial in range(max(1, TRIALS - 1)):
        start = ticks.stat().st_size if ticks.exists() else 0
        delay = rng.uniform(0.0, 0.3)
        assert kill_when(python(GRAPHS % (cache, ticks)),
                         lambda: ticks.exists() and ticks.stat().st_size > start and not time.sleep(delay))
        x = np.random.default_rng(0).standard_normal((3000, 16)).astype("float32")
        art = make_artifact(x / np.linalg.norm(x, axis=1, keepdims=True), [str(i) for i in range(3000)])
        for folder in cache.iterdir():
            if not folder.name.startswith("."):                 # a published cache loads whole
                assert load_graphs(folder, art).tables["intra"].rows.shape == (3000, 5)
    print(f"graph cache: {trial + 1} kill(s), every published cache read whole")
