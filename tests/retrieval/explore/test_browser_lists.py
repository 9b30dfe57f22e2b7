"""The list pages in Debian's headless Chromium (Playwright, ``executable_path``), served by a
real ``python -m retrieval explore`` subprocess over the tiny synthetic collection with a
second graph setting (k 3 -> 2): filter the triage list, open an A/B pair, and load the map
and agreement pages, each asking nothing of any host but its own server."""
from urllib.parse import parse_qs, urlsplit

import pytest

from .conftest import explore_process
from tests.browser import launched, own_server_page


@pytest.fixture(scope="module")
def server(collection, tmp_path_factory):
    data = [f"{name}={path}" for name, path in collection["files"].items()]
    cache = tmp_path_factory.mktemp("lists_cache")
    proc = explore_process(["--index", collection["index"], "--data", *data, "--images", collection["images"],
                            "--k", "3", "--b-k", "2", "--cache", cache, "--quiet"],
                           log=tmp_path_factory.mktemp("lists_log") / "explore.log")
    with proc as s:
        yield s
    assert s.proc.poll() is not None                    # stopped by its pid


@pytest.fixture
def page(chromium, server):
    with launched(chromium) as browser, own_server_page(browser, server.url) as pg:
        yield pg


def column(page, name):
    return [td.inner_text().strip() for td in page.query_selector_all(f"#rows td.col-{name}")]


@pytest.mark.browser
def test_filter_and_sort_the_triage_list(page, server):
    page.goto(server.url + "/triage")
    page.click('#lists a[data-list="low_agreement"]')
    page.wait_for_selector("#rows")
    everything = len(page.query_selector_all("#rows tbody tr"))
    page.select_option("#filter-kind", "conflicting_image")
    page.select_option("#filter-split", "test")
    page.click("#apply")
    page.wait_for_url("**kind=conflicting_image**")
    kinds, splits = column(page, "kind"), column(page, "split")
    assert kinds and set(kinds) == {"conflicting_image"} and set(splits) == {"test"}
    assert len(kinds) < everything
    assert parse_qs(urlsplit(page.url).query)["list"] == ["low_agreement"]
    page.click('#rows th a[data-column="post"]')                        # sort by post, then reverse it
    page.wait_for_url("**sort=post**")
    posts = column(page, "post")
    assert posts == sorted(posts) and set(column(page, "kind")) == {"conflicting_image"}
    page.click('#rows th a[data-column="post"]')
    page.wait_for_url("**order=desc**")
    assert column(page, "post") == sorted(posts, reverse=True)
    first = page.query_selector("#rows td.col-post a")
    target = first.inner_text().strip()
    first.click()
    page.wait_for_url(f"**/post/{target}")
    assert target in page.inner_text("h1")


@pytest.mark.browser
def test_open_an_ab_pair(page, server):
    page.goto(server.url + "/ab")
    assert "k" in page.inner_text("#settings")
    link = page.query_selector("#rows a.pair")
    post = link.get_attribute("href").rsplit("/", 1)[1]
    link.click()
    page.wait_for_selector("#side-b")
    assert post in page.inner_text("h1")
    a = page.query_selector_all('#side-a table.neighbours[data-relation="intra"] tr.neighbour')
    b = page.query_selector_all('#side-b table.neighbours[data-relation="intra"] tr.neighbour')
    assert len(a) == 3 and len(b) == 2                                   # k 3 beside k 2
    page.wait_for_function("() => [...document.querySelectorAll('img.thumb')].every(i => i.complete)")


@pytest.mark.browser
def test_the_map_and_agreement_pages_load_from_their_own_server(page, server):
    page.goto(server.url + "/map")
    page.wait_for_selector("#atlas circle")
    circles = page.query_selector_all("#atlas circle")
    assert len(circles) > 10 and page.query_selector_all("#atlas line.edge")
    top = circles[-1]                          # drawn last: no other point lies over it (duplicates coincide)
    top.hover()
    assert page.query_selector_all("#atlas line.edge.on"), "pointing at a post lights up its neighbour edges"
    assert "neighbour edge" in page.inner_text("#hovered")
    target = top.get_attribute("data-post")
    top.click()
    page.wait_for_url(f"**/post/{target}")
    page.goto(server.url + "/agreement")
    page.wait_for_selector("#charts svg")
    assert len(page.query_selector_all("svg.chart")) >= 2
    assert page.query_selector_all("#chart-any circle[data-series=random]")
    assert any(u.endswith("/static/atlas.js") for u in page.requested)
