"""The error contract of every command (data/errors.py), as a battery.

Every entry point (each ``__main__.py``, each package module run with ``python -m``, train.py,
each benchmarks/*.py script) is run with wrong arguments, paths, config values and files: it
must exit with status 2, print one ``error: ...`` line that names what is wrong, and no
traceback. Most cases call ``main(argv)`` in the test process (the decorated ``main`` is the
shared runner, :func:`data.errors.run_command`); a few run the real commands as processes.
A new entry point fails :func:`test_every_entry_point_is_in_the_battery` until it is added to
:data:`ENTRY_POINTS`.
"""
from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data.errors import UserError, command, wants_traceback

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data", "index", "retrieval", "rgcn")

# entry point (as a user types it) -> the module whose main(argv) it runs
ENTRY_POINTS = {
    "python -m data": "data.__main__",
    "python -m data.demo": "data.demo",
    "python -m index": "index.__main__",
    "python -m retrieval": "retrieval.__main__",
    "python -m rgcn": "rgcn.__main__",
    "python train.py": "train",
    **{f"python benchmarks/{p.name}": f"benchmarks.{p.stem}"
       for p in sorted((ROOT / "benchmarks").glob("*.py"))
       if p.stem in {
           "accuracy", "accuracy_table", "allocator", "bga_head_speed", "calibration", "crf_decode", "doc_commands", "error_table",
           "explore_counterfactuals", "explore_speed", "gpu_check", "head_params", "heads", "index_embed", "index_knn",
           "index_large", "ita_attention", "levers", "maf_matching", "make_demo", "new_posts",
           "ocr_accuracy", "results_page", "retrieval_graphs", "scale", "seeds", "serve_bad_inputs", "serve_load",
           "shard_demo", "text_baseline", "text_speed", "tokenizer_roundtrip", "visual_text_misses"}},
}


def _is_script(path: Path) -> bool:
    """Whether ``path`` holds an ``if __name__ == "__main__":`` block."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)]
            consts = [n.value for n in ast.walk(node.test) if isinstance(n, ast.Constant)]
            if "__name__" in names and "__main__" in consts:
                return True
    return False


def discover_entry_points() -> dict[str, str]:
    """Every runnable entry point of the repository: the packages' ``__main__.py`` files and
    modules with a ``__main__`` block (``python -m``), train.py, and the benchmarks/*.py scripts."""
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            if path.name == "__main__.py":
                found["python -m " + mod[: -len(".__main__")]] = mod
            elif _is_script(path):
                found["python -m " + mod] = mod
    found["python train.py"] = "train"
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        if _is_script(path):
            found[f"python benchmarks/{path.name}"] = f"benchmarks.{path.stem}"
    return found


def test_every_entry_point_is_in_the_battery():
    found = discover_entry_points()
    missing = sorted(set(found) - set(ENTRY_POINTS))
    assert not missing, f"entry points not covered by the error battery: {missing}; add them to ENTRY_POINTS"
    gone = sorted(set(ENTRY_POINTS) - set(found))
    assert not gone, f"ENTRY_POINTS names commands that no longer exist: {gone}"


def _main(entry: str):
    return importlib.import_module(ENTRY_POINTS[entry]).main


def run(entry: str, argv: list[str], capsys) -> tuple[int, str]:
    """``main(argv)`` of ``entry`` in this process: (exit status, stderr). A ``SystemExit``
    (argparse's own, or a command's) counts as its status."""
    capsys.readouterr()
    try:
        rc = _main(entry)(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    err = capsys.readouterr().err
    return (rc if isinstance(rc, int) else 0), err


def assert_user_error(rc: int, err: str, *names: str) -> None:
    """Status 2, one ``error:`` line, no traceback, and every one of ``names`` in that line."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert rc == 2 and len(lines) == 1, f"status {rc}, stderr:\n{err}"
    for name in names:
        assert name in lines[0], f"{name!r} not named in: {lines[0]}"


# ---- the runner itself ---------------------------------------------------------------------------


def test_the_runner_prints_one_line_a_bug_keeps_its_traceback_and_v_adds_it(capsys):
    @command
    def main(argv=None):
        if argv[-1] == "user":
            raise UserError("--images /x", "no such folder", "give an existing folder")
        raise RuntimeError("a bug")

    assert main(["user"]) == 2
    assert capsys.readouterr().err == "error: --images /x: no such folder; give an existing folder\n"
    assert main(["-v", "user"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and err.endswith("error: --images /x: no such folder; give an existing folder\n")
    with pytest.raises(RuntimeError, match="a bug"):
        main(["bug"])
    assert wants_traceback(["--verbose"]) and wants_traceback(["-vv"]) and not wants_traceback(["-x", "--", "-v"])


def test_a_multi_line_message_is_said_on_one_line(capsys):
    @command
    def main(argv=None):
        raise UserError("first\n\n  second")

    assert main([]) == 2 and capsys.readouterr().err == "error: first second\n"


# ---- every entry point: a wrong option is one line, status 2 -----------------------------------------


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_says_a_wrong_option_in_one_line(entry, capsys):
    main = _main(entry)
    assert hasattr(main, "__wrapped__"), f"{entry}: main is not wrapped by data.errors.command"
    rc, err = run(entry, ["--no-such-option"], capsys)
    assert_user_error(rc, err, entry.split()[-1])


# ---- the cases, entry point by entry point -------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Paths of every kind a user gets wrong: a file, an empty folder, a labelled split, a
    malformed YAML config, a valid config, an index folder without its manifest."""
    d = tmp_path_factory.mktemp("errors")
    (d / "empty").mkdir()
    (d / "a_file.txt").write_text("not a folder\n")
    split = d / "split.txt"
    split.write_text("IMGID:1\nZelby\tB-PER\nin\tO\nParis\tB-LOC\n\nIMGID:2\nhello\tO\n")
    (d / "bad.yaml").write_text("data:\n  train: x\n  valid: y: z\n")
    cfg = d / "ok.yaml"
    cfg.write_text(f"data:\n  train: {split}\n  valid: {split}\nout_dir: {d / 'runs'}\n")
    (d / "no_manifest").mkdir()
    (d / "no_manifest" / "index.faiss").write_bytes(b"")
    return {"dir": d, "empty": str(d / "empty"), "file": str(d / "a_file.txt"), "split": str(split),
            "bad_yaml": str(d / "bad.yaml"), "cfg": str(cfg), "no_manifest": str(d / "no_manifest"),
            "missing": str(d / "nonexistent")}


def case_list(w):
    """(entry, argv, names the error line must hold) for every case of the battery."""
    m, f, e, s = w["missing"], w["file"], w["empty"], w["split"]
    return [
        # python -m rgcn
        ("python -m rgcn", ["predict", "--run", m, "--input", s], ["--run", m]),
        ("python -m rgcn", ["evaluate", "--run", m, "--split", s], ["--run", m]),
        ("python -m rgcn", ["predict", "--run", e, "--input", s, "--images", m], ["--images", m]),
        ("python -m rgcn", ["predict", "--run", e, "--input", s, "--images", f], ["--images", f, "not a folder"]),
        ("python -m rgcn", ["predict", "--run", e, "--input", s], [e, "not a checkpoint"]),
        ("python -m rgcn", ["predict", "--run", f, "--input", s], ["--run", f, "not a folder"]),
        ("python -m rgcn", ["predict", "--run", e, "--input", e], ["--input", e, "not a file"]),
        ("python -m rgcn", ["predict", "--run", e, "--input", s, "--batch-size", "-3"], ["--batch-size", "-3"]),
        ("python -m rgcn", ["predict", "--run", e, "--input", s, "--batch-size", "many"], ["--batch-size", "many"]),
        ("python -m rgcn", ["predict", "--run", e, "--input", s, "--output", f + "/p.conll"], ["--output", f]),
        ("python -m rgcn", ["predict", "--run", e, "--input", s, "--head-option", "view"], ["--head-option", "view"]),
        ("python -m rgcn", ["score", m, s], ["gold", m]),
        ("python -m rgcn", ["score", s, m], ["pred", m]),
        ("python -m rgcn", ["score", e, s], ["gold", e, "not a file"]),
        ("python -m rgcn", ["score", s, f], [f]),
        ("python -m rgcn", ["compare", m, "--gold", s], [m]),
        ("python -m rgcn", ["compare", e, "--gold", s], [e, "test_predictions.conll"]),
        ("python -m rgcn", ["frobnicate"], ["frobnicate"]),
        # python -m index
        ("python -m index", ["build", "--images", m, "--out", str(w["dir"] / "x")], ["--images", m]),
        ("python -m index", ["build", "--images", f, "--out", str(w["dir"] / "x")], ["--images", f, "not a folder"]),
        ("python -m index", ["build", "--images", e, "--out", str(w["dir"] / "x"), "--workers", "0", "--quiet"],
         ["empty"]),
        ("python -m index", ["build", "--images", e, "--out", f], ["--out", f, "not a folder"]),
        ("python -m index", ["build", "--images", e, "--out", f + "/x"], ["--out", f, "cannot be written"]),
        ("python -m index", ["build", "--images", e, "--out", str(w["dir"] / "x"), "--embedder", "nope"],
         ["--embedder", "nope"]),
        ("python -m index", ["build", "--images", e, "--out", str(w["dir"] / "x"), "--batch-size", "0"],
         ["--batch-size", "0"]),
        ("python -m index", ["build", "--images", e, "--out", str(w["dir"] / "x"), "--data", m], ["--data", m]),
        ("python -m index", ["info", m], ["dir", m]),
        ("python -m index", ["info", e], [e, "not an index artifact"]),
        ("python -m index", ["info", w["no_manifest"]], [w["no_manifest"], "manifest.json"]),
        ("python -m index", ["add", e, "--images", e], [e, "not an index artifact"]),
        ("python -m index", ["merge", m, "--out", str(w["dir"] / "x")], ["SHARD", m]),
        # python -m retrieval
        ("python -m retrieval", ["show", "1", "--index", m, "--data", f"train={s}"], ["--index", m]),
        ("python -m retrieval", ["show", "1", "--index", e, "--data", f"train={s}", "--cache", str(w["dir"] / "c")],
         [e, "not an index artifact"]),
        ("python -m retrieval", ["show", "1", "--index", e, "--data", f"train={m}", "--cache", str(w["dir"] / "c")],
         [m, "no such file"]),
        ("python -m retrieval", ["stats", "--index", e, "--data", f"train={s}", "--k", "-1", "--out", e],
         ["--k", "-1"]),
        ("python -m retrieval", ["report", "--index", e, "--data", f"train={s}", "--sample", "x", "--out", "r.html"],
         ["--sample", "x"]),
        ("python -m retrieval", ["show", "1", "--index", e, "--data", f"train={s}", f"train={s}",
                                 "--cache", str(w["dir"] / "c")], ["--data", "twice"]),
        # python -m data, python -m data.demo
        ("python -m data", ["prepare", "--data", s, "--images", m, "--out", str(w["dir"] / "p")], ["--images", m]),
        ("python -m data", ["prepare", "--data", m, "--images", e, "--out", str(w["dir"] / "p")], [m]),
        ("python -m data", ["prepare", "--data", s, "--images", e, "--out", f], ["--out", f]),
        ("python -m data", ["prepare", "--data", s, "--images", e, "--out", "p", "--workers", "0"], ["--workers"]),
        ("python -m data.demo", ["generate", "--n-train", "-1"], ["--n-train", "-1"]),
        ("python -m data.demo", ["generate", "--mix", "nope=1"], ["--mix", "nope=1"]),
        ("python -m data.demo", ["generate", "--out", f], ["--out", f]),
        ("python -m data.demo", ["new-posts", "--out", f + "/x"], ["--out", f]),
        # python benchmarks/results_page.py
        ("python benchmarks/results_page.py", ["--results", m], ["--results", m]),
        ("python benchmarks/results_page.py", ["--results", e, "--page", str(w["dir"] / "r.md"), "--readme", f],
         [f, "results:start"]),
        # python train.py
        ("python train.py", ["--config", m], ["--config", m]),
        ("python train.py", ["--config", w["bad_yaml"]], [w["bad_yaml"] + ":3", "YAML"]),
        ("python train.py", ["--config", w["cfg"], "head.name=nope"], ["head.name", "nope", "rgcn"]),
        ("python train.py", ["--config", w["cfg"], "encoder.name=" + m], ["encoder.name", m]),
        ("python train.py", ["--config", w["cfg"], "head.name=rgcn", "head.options.index=" + m],
         ["head.options.index", m]),
        ("python train.py", ["--config", w["cfg"], "head.name=rgcn", "head.options.index=" + w["no_manifest"]],
         ["head.options.index", "manifest.json"]),
        ("python train.py", ["--config", w["cfg"], "train.epochs=-1"], ["train.epochs", "-1"]),
        ("python train.py", ["--config", w["cfg"], "train.epochs=many"], ["train.epochs", "many"]),
        ("python train.py", ["--config", w["cfg"], "train.epochs=[1, 2]"], ["train.epochs"]),
        ("python train.py", ["--config", w["cfg"], "train.lr=-0.1"], ["train.lr"]),
        ("python train.py", ["--config", w["cfg"], "train.batch_size=0"], ["train.batch_size", "0"]),
        ("python train.py", ["--config", w["cfg"], "train.nope=1"], ["train.nope"]),
        ("python train.py", ["--config", w["cfg"], "train.epochs"], ["train.epochs", "key=value"]),
        ("python train.py", ["--config", w["cfg"], "data.train=" + m], ["data.train", m]),
        ("python train.py", ["--config", w["cfg"], "data.valid=" + e], ["data.valid", e]),
        ("python train.py", ["--config", w["cfg"], "data.images=" + f], ["data.images", f]),
        ("python train.py", ["--config", w["cfg"], "out_dir=" + f + "/runs"], ["out_dir", f]),
        ("python train.py", ["--config", e], ["--config", e]),
    ]


PLACES = ("dir", "empty", "file", "split", "bad_yaml", "cfg", "no_manifest", "missing")
CASES = case_list({k: ("{%s}" % k if k != "dir" else Path("{dir}")) for k in PLACES})


@pytest.mark.parametrize("entry,argv,names", CASES, ids=[f"{c[0].split()[-1]}-{i:02d}" for i, c in enumerate(CASES)])
def test_a_mistake_is_one_line_naming_what_is_wrong(entry, argv, names, world, capsys):
    rc, err = run(entry, [a.format(**world) for a in argv], capsys)
    assert_user_error(rc, err, *(n.format(**world) for n in names))


# ---- the real commands, as a user runs them --------------------------------------------------------------


def _process(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cmd,names", [
    (["-m", "rgcn", "predict", "--run", "/nonexistent", "--input", "{split}"], ["--run", "/nonexistent"]),
    (["-m", "index", "info", "/nonexistent"], ["/nonexistent"]),
    ([str(ROOT / "train.py"), "--config", "{cfg}", "train.epochs=-1"], ["train.epochs"]),
    ([str(ROOT / "benchmarks" / "seeds.py"), "--no-such-option"], ["required", "--group"]),
], ids=["rgcn", "index", "train", "benchmark"])
def test_the_real_commands_exit_2_with_one_line(cmd, names, world):
    p = _process([c.format(**world) for c in cmd], ROOT)
    assert_user_error(p.returncode, p.stderr, *names)


def test_v_adds_the_traceback_to_a_real_command(world):
    p = _process(["-m", "index", "-v", "info", world["empty"]], ROOT)
    assert p.returncode == 2 and "Traceback" in p.stderr and "NotAnArtifact" in p.stderr
    assert p.stderr.rstrip().splitlines()[-1].startswith("error: ")
