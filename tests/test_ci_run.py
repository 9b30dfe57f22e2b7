"""``.ci/run`` refuses to run the tests when chromium cannot be installed, so the browser
test is never skipped in CI. Run with a PATH holding only fakes: apt-get, make and, or
not, chromium."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASH = shutil.which("bash")


def _run_ci(tmp_path, apt_rc: int, chromium: bool) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    fakes = {"apt-get": f"exit {apt_rc}", "make": 'echo "make $* CI=$CI"'}
    if chromium:
        fakes["chromium"] = "exit 0"
    for tool, body in fakes.items():
        (bin_dir / tool).write_text(f"#!{BASH}\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PATH"] = str(bin_dir)
    return subprocess.run([BASH, str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("apt_rc", [100, 0], ids=["apt fails", "apt installs no chromium"])
def test_stops_with_a_message_without_chromium(tmp_path, apt_rc):
    r = _run_ci(tmp_path, apt_rc, chromium=False)
    assert r.returncode == 1
    assert "error: could not install Debian's chromium" in r.stderr
    assert r.stdout == ""                                   # make test never ran


def test_runs_make_test_with_ci_set(tmp_path):
    r = _run_ci(tmp_path, 0, chromium=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "make test CI=true\n"
