"""The wrong invocations a new user tried, run again: what each command prints now.

Runs twelve mistaken commands as a user types them (each a process of its own) and writes a
Markdown table of the exit status and the line each printed, beside what was reported for
it before the error contract (data/errors.py). The inputs are made here, in a temporary
folder: two posts with their photos (``python -m data.demo new-posts``), a labelled split, an
index of the two photos, a config ``C`` that trains the rgcn head over it, and a tiny run
(the text head, one epoch) to tag with; ``--run`` takes the demo's run instead when it exists.

    .venv/bin/python benchmarks/error_table.py [--out benchmarks/results/error_table.md]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, command, exit_status, output_file  # noqa: E402

DEMO_RUN = ROOT / "runs" / "demo" / "rgcn" / "seed13"

# (command, with RUN, C, ... standing for the inputs made here; what was reported before)
CASES = [
    ("rgcn predict --run /nonexistent --input posts.jsonl", "traceback, FileNotFoundError: ... is not a checkpoint"),
    ("rgcn evaluate --run /nonexistent --split gold.jsonl", "traceback, same"),
    ("rgcn predict --run RUN --input posts.jsonl --images /nonexistent",
     "exit 0: a warning that 2 posts' images are missing, then the cat post tagged PER (wrong); nothing says "
     "the folder does not exist"),
    ("index build --images /nonexistent --out X", "traceback, FileNotFoundError: image folder ... does not exist"),
    ("index build --images A_FILE --out X", "traceback, says the folder \"does not exist\""),
    ("index build --images EMPTY_DIR --out X", "traceback, EmptyCollectionError"),
    ("index info /nonexistent", "traceback"),
    ("train.py --config C head.name=nope", "traceback, KeyError: unknown fusion head 'nope'; valid heads: ..."),
    ("train.py --config C encoder.name=/nonexistent", "five chained tracebacks before the useful last line"),
    ("train.py --config C head.options.index=/nonexistent", "traceback"),
    ("train.py --config C train.epochs=-1", "a message about train.average_last, not about the epochs"),
    ("rgcn score /nonexistent gold.jsonl", "complains about the second file's format, not the missing first file"),
]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(ROOT)}


def _argv(cmd: str, places: dict[str, str]) -> list[str]:
    """The process's argv for a table command: ``rgcn``/``index`` as ``-m``, ``train.py`` by path."""
    words = [places.get(w, w) for w in cmd.split()]
    if words[0] == "train.py":
        return [sys.executable, str(ROOT / "train.py"), *words[1:]]
    return [sys.executable, "-m", *words]


def _check(args: list[str], what: str) -> None:
    p = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"making {what} failed (status {p.returncode}):\n{p.stderr[-2000:]}")


def make_inputs(d: Path) -> dict[str, str]:
    """The files and folders the commands name, made under ``d``."""
    py = sys.executable
    _check([py, "-m", "data.demo", "new-posts", "--out", str(d / "new")], "the two posts")
    posts = d / "new" / "posts.jsonl"
    gold = d / "gold.jsonl"
    rows = [json.loads(line) for line in posts.read_text().splitlines()]
    for r in rows:       # "Look at Zelby today in Paris": Zelby by its photo, Paris LOC
        r["tags"] = ["O", "O", "B-PER" if r["photo"] == "grace_hopper" else "B-MISC", "O", "O", "B-LOC"]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _check([py, "-m", "index", "build", "--quiet", "--images", str(d / "new" / "images"), "--workers", "0",
            "--data", str(gold), "--out", str(d / "index")], "the index")
    cfg = d / "C.yaml"
    cfg.write_text(f"name: c\nout_dir: {d / 'runs'}\ndata:\n  train: {gold}\n  valid: {gold}\n"
                   f"  images: {d / 'new' / 'images'}\nhead:\n  name: rgcn\n  options:\n    index: {d / 'index'}\n"
                   "train:\n  epochs: 1\n  batch_size: 2\n")
    run = DEMO_RUN
    if not (DEMO_RUN / "best" / "checkpoint.json").is_file():
        _check([py, str(ROOT / "train.py"), "--config", str(cfg), "--no-progress", "head.name=text",
                "head.options={}", "name=text"], "the tiny run")
        run = d / "runs" / "text"
    (d / "empty").mkdir()
    (d / "a_file.txt").write_text("not a folder\n")
    return {"RUN": str(run), "C": str(cfg), "posts.jsonl": str(posts), "gold.jsonl": str(gold),
            "A_FILE": str(d / "a_file.txt"), "EMPTY_DIR": str(d / "empty"), "X": str(d / "x")}


def run_cases(places: dict[str, str]) -> list[dict]:
    rows = []
    for cmd, before in CASES:
        t = time.perf_counter()
        p = subprocess.run(_argv(cmd, places), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        rows.append({"command": cmd, "before": before, "status": p.returncode,
                     "traceback": "Traceback" in p.stderr, "stderr_lines": len(lines),
                     "prints": lines[-1] if lines else "", "seconds": round(time.perf_counter() - t, 2)})
    return rows


def shorten(text: str, places: dict[str, str]) -> str:
    """``text`` with the paths of ``places`` written as their names (``RUN``, ``C`` ...)."""
    for name, path in sorted(places.items(), key=lambda kv: -len(kv[1])):
        text = text.replace(path, name)
    return text


def render(rows: list[dict], command_line: str) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = [f"<!-- written by `{command_line}` -->",
           "# Wrong invocations: what each command prints now", "",
           "Each command run as a process; RUN, C, posts.jsonl, gold.jsonl, A_FILE, EMPTY_DIR and X stand for the "
           "inputs the script made (see its docstring). `status` is the exit status, `lines` the non-empty lines "
           "on stderr.", "",
           "| # | command | reported before | status | traceback | lines | prints now |",
           "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows, 1):
        out.append(f"| {i} | `{r['command']}` | {cell(r['before'])} | {r['status']} | "
                   f"{'yes' if r['traceback'] else 'no'} | {r['stderr_lines']} | ``{cell(r['prints'])}`` |")
    return "\n".join(out) + "\n"


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/error_table.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/results/error_table.md", type=output_file,
                   help="the Markdown table to write (a JSON file with the same rows is written beside it)")
    a = p.parse_args(argv)
    from benchmarks.provenance import write_rendering, write_result

    with tempfile.TemporaryDirectory() as tmp:
        places = make_inputs(Path(tmp))
        rows = [{**r, "prints": shorten(r["prints"], places)} for r in run_cases(places)]
    result = write_result(Path(a.out).with_suffix(".json"), {"rows": rows}, __file__, argv)
    text = render(rows, result["provenance"]["command"])
    write_rendering(a.out, result, text)
    print(text)
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
