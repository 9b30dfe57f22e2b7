"""Run every shell command of the README and docs/ as written, and record how each ended.

A command is a line of a fenced block marked ``bash``, ``sh``, ``shell`` or ``console`` in
README.md or a page under docs/ (in a ``console`` block, only the lines that start with
``$ ``; a line ending in a backslash goes on with the next). Blocks of any other kind
(``text`` for a command's synopsis with placeholders, ``python``, ``yaml``) are not run.
The commands run one after another, in the order the pages give them (README first, then
docs/ sorted by path), each in its own ``bash`` in the checkout's root, with the offline
environment ``make`` sets and the checkout's ``.venv`` activated when it has one (``make``
makes it), under a time limit: a command still running at the limit (a long training) is
stopped and recorded so, not as a failure.

    python benchmarks/doc_commands.py --list                              # the commands, numbered
    python benchmarks/doc_commands.py --checkout /tmp/fresh --timeout 900 # run them in a fresh clone
    python benchmarks/doc_commands.py --checkout /tmp/fresh --only 3 4    # just those

Writes ``benchmarks/results/doc_commands.json`` (``--out``) and ``.md`` beside it: per
command its page and line, the exit status (or ``stopped at the limit``), the seconds and
the last lines it printed.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, UserError, command, exit_status, existing_dir, positive_int  # noqa: E402
from benchmarks.provenance import RESULTS, ROOT, write_rendering, write_result  # noqa: E402

SHELLS = ("bash", "sh", "shell", "console")
STOPPED = "still running at the limit, stopped"
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "OMP_WAIT_POLICY": "PASSIVE"}


@dataclass
class Command:
    """One shell command of a page: the page (relative to the checkout), its first line, the text."""

    page: str
    line: int
    text: str


def extract(markdown: str, page: str = "README.md") -> list[Command]:
    """The shell commands of a Markdown text, in order (see the module's docstring)."""
    out: list[Command] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m.group("fence"), len(m.group("indent"))
        info = m.group("info").lower()
        i += 1
        body: list[tuple[int, str]] = []
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append((i + 1, lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i].lstrip()))
            i += 1
        i += 1                                              # past the closing fence
        if info in SHELLS:
            out += _commands(body, page, console=info == "console")
    return out


def _commands(body: list[tuple[int, str]], page: str, console: bool) -> list[Command]:
    out: list[Command] = []
    pending: tuple[int, list[str]] | None = None
    for number, line in body:
        if pending is not None:                              # a continued line
            pending[1].append(line.strip())
            if not line.rstrip().endswith("\\"):
                out.append(Command(page, pending[0], "\n".join(pending[1])))
                pending = None
            continue
        text = line.strip()
        if console:
            if not text.startswith("$ "):
                continue                                     # what the command printed
            text = text[2:].strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            pending = (number, [text])
        else:
            out.append(Command(page, number, text))
    if pending is not None:
        out.append(Command(page, pending[0], "\n".join(pending[1])))
    return out


def pages(checkout: Path) -> list[Path]:
    """README.md, then every page under docs/, sorted."""
    readme = [checkout / "README.md"] if (checkout / "README.md").is_file() else []
    return readme + sorted((checkout / "docs").rglob("*.md"))


def all_commands(checkout: Path) -> list[Command]:
    return [c for p in pages(checkout)
            for c in extract(p.read_text(encoding="utf-8"), p.relative_to(checkout).as_posix())]


def run_one(cmd: Command, checkout: Path, timeout: float, tail: int = 6) -> dict:
    """Run ``cmd`` in ``checkout``: its status (or :data:`STOPPED`), seconds and last lines."""
    env = {**os.environ, **ENV}
    venv = checkout / ".venv"
    if (venv / "bin").is_dir():                             # as with the checkout's venv activated
        env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    t0 = time.perf_counter()
    proc = subprocess.Popen(["bash", "-c", cmd.text], cwd=checkout, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, errors="replace",
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        status: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)                 # the command and whatever it started
        try:
            output, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
        status = STOPPED
    last = [line for line in (output or "").splitlines() if line.strip()][-tail:]
    return {**asdict(cmd), "status": status, "seconds": round(time.perf_counter() - t0, 1), "last_lines": last}


def render(result: dict) -> str:
    """The result as Markdown: its command, then a table of the commands and how they ended."""
    lines = [f"`{result['provenance']['command']}`", "",
             f"{result['ok']} of {len(result['commands'])} commands exited 0, {result['stopped']} were still running "
             f"at the {result['timeout']} s limit and stopped, {result['failed']} failed "
             f"(checkout at {result['checkout_commit'] or 'no git'}).", "",
             "| # | page | command | status | seconds |", "|---|---|---|---|---|"]
    for i, c in enumerate(result["commands"]):
        text = c["text"].replace("\\\n", " ").replace("\n", " ").replace("|", "\\|")
        lines.append(f"| {i} | {c['page']}:{c['line']} | `{text}` | {c['status']} | {c['seconds']} |")
    return "\n".join(lines) + "\n"


def _commit(checkout: Path) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


@command
def main(argv: list[str] | None = None) -> dict | int:
    p = ArgumentParser(prog="python benchmarks/doc_commands.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkout", type=existing_dir, default=str(ROOT),
                   help="the checkout whose pages are read and in which the commands run (default this one; "
                        "give a fresh clone)")
    p.add_argument("--list", action="store_true", help="list the commands, numbered; run nothing")
    p.add_argument("--only", type=int, nargs="+", metavar="N", help="run only these commands (numbers of --list)")
    p.add_argument("--timeout", type=positive_int, default=600,
                   help="seconds a command may run before it is stopped (default 600)")
    p.add_argument("--out", default=str(RESULTS / "doc_commands.json"))
    a = p.parse_args(argv)
    checkout = Path(a.checkout).resolve()
    commands = all_commands(checkout)
    if not commands:
        raise UserError(f"--checkout {a.checkout}", "no shell command in README.md or docs/*.md",
                        "give the root of a checkout of this project")
    if a.list:
        for i, c in enumerate(commands):
            print(f"{i:3d}  {c.page}:{c.line}  {c.text}")
        return 0
    chosen = list(range(len(commands))) if a.only is None else a.only
    bad = [n for n in chosen if not 0 <= n < len(commands)]
    if bad:
        raise UserError(f"--only {' '.join(map(str, bad))}", f"there are {len(commands)} commands (0..{len(commands) - 1})",
                        "see their numbers with --list")
    rows = []
    for n in chosen:
        print(f"[{n}] {commands[n].page}:{commands[n].line}  {commands[n].text}", flush=True)
        rows.append(run_one(commands[n], checkout, a.timeout))
        print(f"    -> {rows[-1]['status']} in {rows[-1]['seconds']} s", flush=True)
    payload = {"checkout": str(checkout), "checkout_commit": _commit(checkout), "timeout": a.timeout,
               "ok": sum(r["status"] == 0 for r in rows), "stopped": sum(r["status"] == STOPPED for r in rows),
               "failed": sum(r["status"] not in (0, STOPPED) for r in rows), "commands": rows}
    out = Path(a.out)
    result = write_result(out, payload, __file__, argv)
    write_rendering(out.with_suffix(".md"), result, render(result))
    print(f"{payload['ok']} ok, {payload['stopped']} stopped at the limit, {payload['failed']} failed -> {out}")
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
