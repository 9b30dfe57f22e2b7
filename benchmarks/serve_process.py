"""``python -m rgcn serve`` as a subprocess on a free loopback port, for benchmarks and tests.

    with ServeProcess(["--run", "runs/demo/rgcn/seed13"]) as server:
        httpx.post(server.url + "/tag", json={"text": "..."})

The server is started with ``sys.executable``, waited for through ``GET /health`` (a bounded
number of tries), and stopped by its pid: SIGTERM, then SIGKILL when it has not exited in time.
``imports`` names modules the subprocess imports before the command runs (e.g. a test
embedder that registers itself).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServeProcess:
    """A running ``python -m rgcn serve ARGS --port P`` (``url``: ``http://127.0.0.1:P``), or
    any other package's server command (``module``, ``command``: e.g. ``retrieval``, ``explore``)."""

    def __init__(self, args: list[str], imports: tuple[str, ...] = (), start_timeout: float = 180.0,
                 env: dict | None = None, log: str | os.PathLike | None = None, module: str = "rgcn",
                 command: str = "serve"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = "".join(f"import {m}; " for m in imports) + (
            f"import sys; from {module}.__main__ import main; sys.exit(main(sys.argv[1:]))")
        self.cmd = [sys.executable, "-c", code, command, *map(str, args), "--port", str(self.port)]
        self.start_timeout = start_timeout
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT), **(env or {})}
        self.log = Path(log) if log else None
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "ServeProcess":
        out = open(self.log, "wb") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
                                     if self.log else subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = self.log.read_text()[-2000:] if self.log else ""
                raise RuntimeError(f"the server exited with status {self.proc.returncode} before answering: {said}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer /health within {self.start_timeout:.0f} s")

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM to the server's pid, SIGKILL after ``grace`` seconds; its exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=grace)
