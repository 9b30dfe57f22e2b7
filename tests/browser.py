"""What the browser tests share: Debian's Chromium and the flags it is launched with."""
import os
import shutil
from contextlib import contextmanager
from urllib.parse import urlsplit

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


@contextmanager
def launched(chromium: str):
    """Debian's chromium launched headless through Playwright, closed on leaving."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def own_server_page(browser, url: str):
    """A new page of ``browser`` that records every request it makes; on leaving, it fails
    unless it requested something and everything it requested came from the server at ``url``."""
    page = browser.new_page()
    page.requested = []
    page.on("request", lambda r: page.requested.append(r.url))
    yield page
    own = urlsplit(url).netloc
    elsewhere = [u for u in page.requested if urlsplit(u).netloc != own or urlsplit(u).scheme != "http"]
    assert page.requested and not elsewhere, f"the page asked other hosts: {elsewhere}"
