"""`make demo` as a new user runs it: wall time and console lines on a fresh clone.

Clones the repository's HEAD into a temporary folder, links this checkout's `.venv` into it
(the environment is installed; `make` is told not to reinstall it), runs `make demo` there
and records the seconds it took, the lines it printed (stdout and stderr together) and
the last of them.

    python benchmarks/make_demo.py

Writes ``benchmarks/results/make_demo.json`` (``--output``) through ``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402

from benchmarks.provenance import RESULTS, write_result  # noqa: E402


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/make_demo.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=str(RESULTS / "make_demo.json"))
    a = p.parse_args(argv)
    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists():
        raise UserError(f"{venv} is missing: run `make test` or `make demo` once first")
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        (clone / ".venv").symlink_to(venv)
        t0 = time.perf_counter()
        proc = subprocess.run(["make", "-o", ".venv/.installed", "demo"], cwd=clone, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    lines = (proc.stdout + proc.stderr).splitlines()
    out = {"returncode": proc.returncode, "seconds": round(seconds, 1), "console_lines": len(lines),
           "last_lines": lines[-12:]}
    write_result(a.output, out, __file__, argv)
    print(f"make demo: exit {proc.returncode}, {seconds:.0f} s, {len(lines)} console lines -> {a.output}")
    if proc.returncode:
        print("\n".join(lines[-30:]), file=sys.stderr)
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
