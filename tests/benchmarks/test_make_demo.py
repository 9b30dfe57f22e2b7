"""benchmarks/make_demo.py on a fake `make`: the clone, the command it runs there, the wall
and CPU seconds, the load averages, the heads' epoch lines and the last lines."""
import json
import os
import shutil

import pytest

import benchmarks.make_demo as make_demo


@pytest.mark.skipif(not shutil.which("git"), reason="no git")
def test_make_demo_records_wall_and_cpu_seconds_and_the_epoch_lines(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "make"
    fake.write_text('#!/bin/sh\n'
                    'test -L .venv && test -f Makefile || exit 3\n'          # in the clone, the venv linked
                    'echo "make $*"\n'
                    'echo "seed 13 bga: test F1 81.30 (no test images 81.30), 12.5 s/epoch"\n'
                    'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done\n'  # some CPU time
                    'echo "last" >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = make_demo.main(["--output", str(tmp_path / "md.json")])
    assert out["returncode"] == 0 and out["last_lines"][0] == "make -o .venv/.installed demo"
    assert len(out["clone_commit"]) == 40
    assert out["epoch_lines"] == ["seed 13 bga: test F1 81.30 (no test images 81.30), 12.5 s/epoch"]
    assert 0 < out["cpu_seconds"] <= out["seconds"] + 0.5 and len(out["load_avg_before"]) == 3
    written = json.loads((tmp_path / "md.json").read_text())
    assert written["provenance"]["command"].startswith("python benchmarks/make_demo.py --output")
    assert written["last_lines"][-1] == "last"


@pytest.mark.skipif(not shutil.which("git"), reason="no git")
def test_a_make_demo_past_its_timeout_is_stopped_and_recorded(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text('#!/bin/sh\necho started\nsleep 30\necho never\n')
    (bin_dir / "make").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = make_demo.main(["--output", str(tmp_path / "md.json"), "--timeout", "1"])
    assert out["returncode"] == -15 and out["seconds"] < 20 and out["stopped_after_seconds"] == 1
    assert out["last_lines"] == ["started"]
