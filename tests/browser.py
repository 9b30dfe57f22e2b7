"""What the browser tests share: Debian's Chromium and the flags it is launched with."""
import os
import shutil

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def chromium_path() -> str:
    """Debian's chromium (no browser is downloaded). Without it a browser test skips, except in
    CI (the ``CI`` variable set, as CI services and ``.ci/run`` do), where it fails: a missing
    browser must not pass for a page that renders."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        msg = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{msg}; CI is set, so the browser test may not be skipped")
        pytest.skip(msg)
    return path
