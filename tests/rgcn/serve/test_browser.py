"""The page in Debian's headless Chromium (Playwright, ``executable_path``), served by a real
``python -m rgcn serve`` subprocess over a tiny trained rgcn run: paste a post, drop a photo,
see the entity highlighted with its type and the neighbours; an oversize upload shows its
error; and the page asks nothing of any host but its own server."""
import base64
import json
import os

import httpx
import pytest

from benchmarks.serve_process import ServeProcess
from tests.browser import launched, own_server_page


@pytest.fixture(scope="module")
def server(tiny_rgcn, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve_log") / "serve.log"
    with ServeProcess(["--run", tiny_rgcn / "runs" / "rgcn", "--images", tiny_rgcn / "data" / "images",
                       "--max-upload-mb", "1"], imports=("tests.colour",), log=log) as s:
        yield s
    assert s.proc.poll() is not None                    # stopped by its pid


@pytest.fixture
def page(chromium, server):
    with launched(chromium) as browser, own_server_page(browser, server.url) as pg:
        yield pg


def drop_file(page, selector, name, data: bytes, mime):
    dt = page.evaluate_handle("""([name, b64, mime]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type: mime}));
        return dt; }""", [name, base64.b64encode(data).decode(), mime])
    page.dispatch_event(selector, "drop", {"dataTransfer": dt})


@pytest.mark.browser
def test_paste_a_post_drop_a_photo_see_entities_and_neighbours(page, server, tiny_rgcn):
    post = json.loads((tiny_rgcn / "post.json").read_text())
    text, photo = post["text"], (tiny_rgcn / "data" / "images" / post["image"]).read_bytes()
    expected = httpx.post(server.url + "/tag", data={"text": text},
                          files={"image": ("p.png", photo, "image/png")}, timeout=60).json()
    assert expected["entities"], "the tiny run found no entity in a training post"
    page.goto(server.url + "/")
    page.fill("#text", text)
    drop_file(page, "#drop", "photo.png", photo, "image/png")
    assert page.eval_on_selector("#image", "e => e.files.length") == 1
    assert "photo.png" in page.inner_text("#drop-label")
    page.click("#submit")
    page.wait_for_selector("#result", timeout=60_000)
    marks = page.query_selector_all("#post mark.ent")
    assert [(m.evaluate("e => e.firstChild.textContent"), m.get_attribute("data-type")) for m in marks] == \
        [(e["text"], e["type"]) for e in expected["entities"]]
    for m, e in zip(marks, expected["entities"]):
        assert e["type"] in m.inner_text()                                     # the type is written on it
        assert m.evaluate("e => getComputedStyle(e).backgroundColor") not in ("rgba(0, 0, 0, 0)", "transparent")
    assert "embedded" in page.inner_text("#image-status")
    inter = expected["evidence"]["relations"]["inter"]
    shown = page.query_selector_all('#evidence .relation[data-relation="inter"] li.neighbour')
    assert [li.get_attribute("data-image") for li in shown] == [n["image"] for n in inter]
    page.wait_for_function("() => [...document.querySelectorAll('.neighbour img')].every(i => i.complete)")
    assert page.evaluate("() => [...document.querySelectorAll('.neighbour img')].every(i => i.naturalWidth > 0)")
    assert any("/thumb/" in u for u in page.requested)


@pytest.mark.browser
def test_an_oversize_upload_shows_its_error_on_the_page(page, server):
    page.goto(server.url + "/")
    page.fill("#text", "look at Zelby now")
    page.set_input_files("#image", files=[{"name": "big.jpg", "mimeType": "image/jpeg",
                                           "buffer": b"\xff\xd8\xff" + os.urandom(1_500_000)}])
    page.click("#submit")
    page.wait_for_selector("#error", timeout=60_000)
    assert "over the limit of 1.0 MB" in page.inner_text("#error")
    page.fill("#text", "look at Zelby now")                          # the next post is served normally
    page.click("#submit")
    page.wait_for_selector("#result", timeout=60_000)


@pytest.mark.browser
def test_the_docs_page_asks_nothing_of_another_host(page, server):
    page.goto(server.url + "/docs")
    assert "/tag/batch" in page.inner_text("main")
    assert httpx.get(server.url + "/openapi.json").json()["paths"]["/tag"]
