"""The evidence card in Debian's headless Chromium (Playwright, ``executable_path``), served by a
real ``python -m retrieval explore`` subprocess over the tiny image-decided set and its rgcn
run: open a card from the search box, follow a neighbour to its card, run the counterfactuals
and see a tag change; the page asks nothing of any host but its own server; and an exported
card opens from a file:// URL with no server at all."""
from urllib.parse import urlsplit

import pytest

from tests.retrieval.explore.conftest import explore_process
from tests.browser import launched, own_server_page


@pytest.fixture(scope="module")
def server(decided, tmp_path_factory):
    d = decided
    tmp = tmp_path_factory.mktemp("explore_server")
    args = ["--index", d["index"], "--data", *(f"{n}={p}" for n, p in d["files"].items()), "--images", d["images"],
            "--k", "3", "--relations", "inter", "intra", "--run", d["run"], "--cache", tmp / "cache", "--quiet"]
    with explore_process(args, log=tmp / "explore.log") as s:
        yield s
    assert s.proc.poll() is not None                    # stopped by its pid


@pytest.fixture
def browser(chromium):
    with launched(chromium) as b:
        yield b


@pytest.fixture
def page(browser, server):
    with own_server_page(browser, server.url) as pg:
        yield pg


def images_loaded(page) -> bool:
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    return page.evaluate("() => document.images.length > 0 && [...document.images].every(i => i.naturalWidth > 0)")


@pytest.mark.browser
def test_open_a_card_from_the_search_box_and_follow_a_neighbour(page, server):
    page.goto(server.url + "/")
    page.fill("#search-id", "test-004")
    page.click("#search-go")
    page.wait_for_url("**/post/test-004")
    assert page.inner_text("h1") == "post test-004"
    assert images_loaded(page)
    rows = page.query_selector_all('table.neighbours[data-relation="intra"] tr.neighbour')
    assert len(rows) == 3
    link = rows[0].query_selector("a.nlink")
    target = link.inner_text()
    link.click()
    page.wait_for_url(f"**/post/{target}")
    assert page.inner_text("h1") == f"post {target}" and images_loaded(page)
    assert "/thumb/" in " ".join(page.requested)


@pytest.mark.browser
def test_run_the_counterfactuals_and_see_a_tag_change(page, server):
    """On the image-decided set the photo types the name: swapping it flips the type (on most
    test posts; the first of three that shows a change is taken)."""
    seen = []
    for pid in ("test-000", "test-001", "test-002"):
        page.goto(f"{server.url}/post/{pid}")
        assert page.query_selector("#cf-table") is None
        page.click("#run-cf")
        page.wait_for_selector("#cf-table", timeout=120_000)
        changed = page.query_selector_all("#cf-table tr.cf.changed")
        seen.append(len(changed))
        if changed:
            break
    assert any(seen), f"no counterfactual changed a tag on {seen}"
    swapped = page.query_selector('#cf-table tr[data-kind="photo_swapped"]')
    assert "changed" in swapped.get_attribute("class")
    change = swapped.query_selector(".tagchange").inner_text()
    assert ("B-PER" in change and "B-LOC" in change), change          # PER <-> LOC
    built = page.query_selector('#cf-table tr[data-kind="built"]')
    assert "changed" not in built.get_attribute("class")
    assert page.query_selector_all("#cf-ranking tr")                 # the neighbours, ranked


@pytest.mark.browser
def test_an_exported_card_opens_from_a_file_with_no_server(browser, decided_explorer, tmp_path):
    from retrieval.explore.card import card_data
    from retrieval.explore.export import export_card, write_page

    out = write_page(export_card(decided_explorer, card_data(decided_explorer, "test-005", with_counterfactuals=True)),
                     tmp_path / "card.html")
    pg = browser.new_page()
    requested = []
    pg.on("request", lambda r: requested.append(r.url))
    pg.goto(out.as_uri())
    assert pg.inner_text("h1") == "post test-005"
    assert images_loaded(pg) and pg.query_selector("#cf-table")
    assert pg.evaluate("() => getComputedStyle(document.querySelector('header')).backgroundColor") == "rgb(36, 49, 63)"
    assert {urlsplit(u).scheme for u in requested} <= {"file", "data"}, requested
