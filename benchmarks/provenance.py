"""Write a benchmark result JSON whole, stamped with what produced it.

Every file in ``benchmarks/results/`` is written by :func:`write_result`, never by hand:
the payload goes under a ``provenance`` block that records the command as run
(``python benchmarks/NAME.py ARGS...``, relative to the repository root), the UTC date,
the git commit and whether the code differed from it, the machine (CPU model, cores,
torch threads, load average) and the Python and library versions. The file is written
to a temporary sibling and renamed, so a crash never leaves half a result.

    from benchmarks.provenance import write_result
    write_result(args.out, payload, __file__, argv)
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from data.files import write_atomically

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# distributions whose versions decide the figures (those not installed are left out)
LIBRARIES = ("torch", "numpy", "transformers", "torch-geometric", "faiss-cpu", "faiss-gpu", "open_clip_torch",
             "timm", "safetensors", "pytorch-crf")
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def command_line(script: str | os.PathLike, argv: list[str] | None = None) -> str:
    """``python benchmarks/NAME.py ARGS...`` for ``script`` run with ``argv``
    (default ``sys.argv[1:]``), each argument shell-quoted."""
    argv = sys.argv[1:] if argv is None else list(argv)
    path = Path(script).resolve()
    try:
        path = path.relative_to(ROOT)
    except ValueError:
        pass
    return shlex.join(["python", path.as_posix(), *map(str, argv)])


def git_state(root: Path = ROOT) -> dict | None:
    """``{"commit", "dirty", "dirty_files"}`` of the repository at ``root``, or None
    without git. Changes under ``benchmarks/results/`` do not count as dirty: an earlier
    result written in the same session does not change the code that ran."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return None
    changed = [line[3:] for line in status.splitlines() if line.strip()]
    return {"commit": commit, "dirty": bool(changed), "dirty_files": changed[:20]}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """CPU model, logical cores (all, and usable by this process), torch (and FAISS, when
    loaded) threads, thread variables set in the environment, load average, platform."""
    import torch

    out = {"cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
           "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
           "torch_threads": torch.get_num_threads()}
    if "faiss" in sys.modules:
        out["faiss_threads"] = sys.modules["faiss"].omp_get_max_threads()
    env = {k: os.environ[k] for k in THREAD_ENV if k in os.environ}
    if env:
        out["thread_env"] = env
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    if hasattr(os, "getloadavg"):
        out["load_avg_at_write"] = [round(x, 2) for x in os.getloadavg()]
    out["platform"] = platform.platform()
    return out


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def provenance(script: str | os.PathLike, argv: list[str] | None = None) -> dict:
    """The stamp :func:`write_result` puts in every result file."""
    cwd = Path.cwd().resolve()
    return {"command": command_line(script, argv),
            "cwd": cwd.relative_to(ROOT).as_posix() if cwd.is_relative_to(ROOT) else str(cwd),
            "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "git": git_state(), "machine": machine(), "versions": versions()}


def write_result(path: str | os.PathLike, payload: dict, script: str | os.PathLike,
                 argv: list[str] | None = None) -> dict:
    """Write ``{"provenance": ..., **payload}`` to ``path`` as indented JSON, atomically.

    Args:
        path: the result file (``benchmarks/results/NAME.json`` for a kept result).
        payload: the figures; must not hold a ``provenance`` key.
        script: the benchmark script (its ``__file__``).
        argv: the arguments it parsed (default ``sys.argv[1:]``), for the command line.

    Returns the dict written.
    """
    if "provenance" in payload:
        raise ValueError("payload already holds a 'provenance' key; the stamp is written by write_result")
    out = {"provenance": provenance(script, argv), **payload}
    _write_atomically(path, json.dumps(out, indent=2) + "\n")    # json fails before anything is written
    return out


def write_rendering(path: str | os.PathLike, result: dict, text: str) -> None:
    """Write ``text``, a rendering of ``result`` (a dict :func:`write_result` returned, e.g. its
    table as Markdown), to ``path``, atomically. The text must start with the result's command,
    so that a rendering, too, says what made it."""
    command = result["provenance"]["command"]
    if command not in text.split("\n", 1)[0]:
        raise ValueError(f"a rendering of a result must name its command on its first line: {command}")
    _write_atomically(path, text)


def _write_atomically(path: str | os.PathLike, text: str) -> None:
    write_atomically(path, lambda f: f.write(text.encode()))
