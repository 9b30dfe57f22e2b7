"""The model in a process of its own (rgcn.serve.worker.ModelProcess), on a tiny trained rgcn run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data.errors import UserError
from rgcn.serve.worker import ModelProcess, ModelProcessDied

ROOT = Path(__file__).resolve().parents[3]


def _args(root):
    return {"runs": [str(root / "runs" / "rgcn")], "images": str(root / "data" / "images"), "batch_size": 8}


@pytest.fixture(scope="module")
def model(tiny_rgcn):
    m = ModelProcess(_args(tiny_rgcn), threads=1)
    yield tiny_rgcn, m
    m.close()


def _gone(pid: int) -> bool:
    """No such process, or only its exit status is left (a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_the_child_tags_as_the_tagger_in_this_process_does(model):
    from rgcn import load_tagger

    root, m = model
    post = json.loads((root / "post.json").read_text())
    posts = [post, {"text": "no photo for Zelby"}, {"text": post["text"], "image": (root / "data" / "images" /
                                                                                 post["image"]).read_bytes()}]
    here = [r.to_dict() for r in load_tagger(**_args(root)).tag_many(posts)]
    there = [r.to_dict() for r in m.tag_many(posts)]
    assert [r["image"] for r in there] == ["used", "none", "embedded"] and there[0]["entities"]
    for a, b in zip(here, there):
        assert (a["tags"], a["image"], a["evidence"]) == (b["tags"], b["image"], b["evidence"])
        assert [e["confidence"] for e in a["entities"]] == pytest.approx([e["confidence"] for e in b["entities"]],
                                                                         abs=1e-5)
    assert m.heads == ["rgcn"] and m.reads_photos and m.pid != os.getpid() and m.info()["model_process"]["pid"] == m.pid
    assert m.info()["model_process"]["keeps_freed_memory"] is sys.platform.startswith("linux")
    with pytest.raises(UserError, match="expected a string or a dict"):     # a post's mistake, told as it is
        m.tag_many([42])


def test_a_child_that_dies_is_replaced(model):
    root, m = model
    post = json.loads((root / "post.json").read_text())
    first = m.pid
    os.kill(first, signal.SIGKILL)
    with pytest.raises(ModelProcessDied, match="send it again"):
        m.tag_many([post])
    assert m.tag_many([post])[0].entities and m.restarts == 1
    assert m.pid != first


def test_runs_that_do_not_load_are_a_user_error(tmp_path):
    with pytest.raises(UserError, match="give a trained run folder"):
        ModelProcess({"runs": [str(tmp_path)]})


def test_the_child_does_not_outlive_the_service(tiny_rgcn, tmp_path):
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import tests.colour; "
            "from rgcn.serve.worker import ModelProcess; m = ModelProcess(json.loads(sys.argv[2])); "
            "print(m.pid, flush=True); import time; time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code, str(ROOT), json.dumps(_args(tiny_rgcn))],
                              stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child)
    finally:
        parent.kill()
        parent.wait(timeout=30)
    for _ in range(100):
        if _gone(child):
            break
        time.sleep(0.1)
    assert _gone(child)
