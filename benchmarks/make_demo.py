"""`make demo` as a new user runs it: wall time and console lines on a fresh clone.

Clones the repository's HEAD into a temporary folder, links this checkout's `.venv` into it
(the environment is installed; `make` is told not to reinstall it), runs `make demo` there
and records the seconds it took, the lines it printed (stdout and stderr together) and
the last of them, with the CPU seconds its processes used (user and system: less moved by other
jobs on the cores than the wall time), the load average before and after, and the OpenMP
variables given to make (where OMP_WAIT_POLICY is unset the Makefile exports PASSIVE).

    python benchmarks/make_demo.py

Writes ``benchmarks/results/make_demo.json`` (``--output``) through ``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402

from benchmarks.provenance import RESULTS, write_result  # noqa: E402


def children_cpu_seconds() -> float:
    """User and system CPU seconds of every finished child process so far (``make`` and what it ran)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/make_demo.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=str(RESULTS / "make_demo.json"))
    p.add_argument("--timeout", type=float, default=0, help="stop make demo after this many seconds and record "
                   "how far it got (0: never)")
    a = p.parse_args(argv)
    venv = ROOT / ".venv"
    if not (venv / "bin" / "python").exists():
        raise UserError(f"{venv} is missing: run `make test` or `make demo` once first")
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        (clone / ".venv").symlink_to(venv)
        cloned = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, check=True, capture_output=True,
                                text=True).stdout.strip()          # the commit timed (HEAD may move meanwhile)
        load_before, cpu_before = os.getloadavg(), children_cpu_seconds()
        t0 = time.perf_counter()
        proc = subprocess.Popen(["make", "-o", ".venv/.installed", "demo"], cwd=clone, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=a.timeout or None)
        except subprocess.TimeoutExpired:                       # stop make and what it runs, by its group
            os.killpg(proc.pid, signal.SIGTERM)
            stdout, stderr = proc.communicate()
        seconds = time.perf_counter() - t0
        cpu = children_cpu_seconds() - cpu_before
    lines = (stdout + stderr).splitlines()
    out = {"clone_commit": cloned, "returncode": proc.returncode, "seconds": round(seconds, 1), "stopped_after_seconds": a.timeout or None, "cpu_seconds": round(cpu, 1),
           "load_avg_before": [round(x, 2) for x in load_before],
           "load_avg_after": [round(x, 2) for x in os.getloadavg()],
           "environment_given_to_make": {k: os.environ.get(k, "unset")
                                         for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")},
           "console_lines": len(lines), "epoch_lines": [x for x in lines if "s/epoch" in x and x.startswith("seed ")],
           "last_lines": lines[-12:]}
    write_result(a.output, out, __file__, argv)
    print(f"make demo: exit {proc.returncode}, {seconds:.0f} s ({cpu:.0f} CPU s), {len(lines)} console lines, "
          f"load {out['load_avg_before'][0]} before, {out['load_avg_after'][0]} after -> {a.output}")
    if proc.returncode:
        print("\n".join(lines[-30:]), file=sys.stderr)
    return out


if __name__ == "__main__":
    sys.exit(exit_status(main()))
