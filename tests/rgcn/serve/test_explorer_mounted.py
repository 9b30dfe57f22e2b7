"""The retrieval explorer as pages of the tagging service: ``python -m rgcn serve --run RUN
--index IDX --data ...`` mounts it under /explore, with the run as its re-tagger. Every link,
form action and asset of its pages stays under /explore and answers; the two navs link to
each other; /health says whether the explorer is there; --index without --data (and the
reverse) is refused by name.

The collection and the tiny trained rgcn run are the explorer tests' (tests/retrieval/explore/
conftest.py: ``decided``)."""
from __future__ import annotations

import argparse
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from data.errors import UserError
from tests.retrieval.explore.conftest import decided  # noqa: F401  (the fixture)

PAGES = ("/explore/post/test-000", "/explore/triage", "/explore/map", "/explore/agreement")
STATIC_JS = Path(__file__).parents[3] / "retrieval" / "explore" / "static"


class Links(HTMLParser):
    """Every URL a page points at: ``(tag, attribute, url, id)`` of href, src and form action."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str, str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        ident = dict(attrs).get("id")
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None:
                self.found.append((tag, name, value, ident))


def links_of(html: str) -> list[tuple[str, str, str, str | None]]:
    p = Links()
    p.feed(html)
    return p.found


def serve_args(*argv: str) -> argparse.Namespace:
    """``argv`` parsed as ``python -m rgcn serve`` parses them."""
    from rgcn.serve.cli import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


@pytest.fixture(scope="module")
def mounted(decided, tmp_path_factory):  # noqa: F811
    import tests.colour  # noqa: F401  (registers the test_colour embedder)
    from rgcn.serve.cli import build_app

    cache = tmp_path_factory.mktemp("mounted_cache")
    args = serve_args("--run", str(decided["run"]), "--images", str(decided["images"]), "--device", "cpu",
                      "--index", str(decided["index"]), "--data", *map(str, decided["files"].values()),
                      "--k", "3", "--relations", "inter", "intra", "--b-k", "2", "--cache", str(cache),
                      "--quiet")
    app = build_app(args)
    with TestClient(app) as client:
        yield client


def test_every_link_and_asset_stays_under_explore_and_answers(mounted):
    followed: dict[str, int] = {}
    home_links = []
    for page in PAGES:
        r = mounted.get(page, headers={"accept": "text/html"})
        assert r.status_code == 200, (page, r.text[:300])
        found = links_of(r.text)
        assert any(tag == "link" for tag, *_ in found) and any(tag == "form" for tag, *_ in found), page
        for tag, attr, url, ident in found:
            if ident == "home":
                assert (tag, url) == ("a", "/")
                home_links.append(page)             # the nav's link back to the tagging page
                continue
            full = urljoin("http://testserver" + page, url)
            path = urlsplit(full).path
            assert path == "/explore" or path.startswith("/explore/"), f"{page}: <{tag} {attr}={url!r}> leaves /explore"
            if full not in followed:
                followed[full] = mounted.get(full, headers={"accept": "text/html"}).status_code
    bad = {u: s for u, s in followed.items() if s != 200}
    assert not bad, bad
    kinds = {urlsplit(u).path.split("/")[2] for u in followed}
    assert {"static", "thumb", "post", "triage", "map", "agreement", "ab", "search"} <= kinds, kinds
    assert home_links == list(PAGES)


def test_the_map_points_link_under_explore(mounted):
    svg = mounted.get("/explore/map").text.split('<div id="atlas">', 1)[1]
    hrefs = re.findall(r'<a href="([^"]+)"><circle', svg)
    assert hrefs and all(h.startswith("/explore/post/") for h in hrefs)
    assert mounted.get(hrefs[0]).status_code == 200


def test_search_redirects_and_favicon_stay_under_explore(mounted):
    r = mounted.get("/explore/search", params={"id": "test-001"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/explore/post/test-001"
    r = mounted.get("/explore/search", params={"id": ""}, follow_redirects=False)
    assert r.headers["location"] == "/explore/"
    r = mounted.get("/explore/favicon.ico", follow_redirects=False)
    assert r.headers["location"] == "/explore/static/favicon.svg"


def test_the_navs_link_to_each_other(mounted):
    page = mounted.get("/").text
    assert ("a", "href", "/explore/", "explorer") in links_of(page)
    assert "Retrieval explorer" in mounted.get("/explore/").text
    card = mounted.get("/explore/post/test-000").text
    assert re.search(r'<a id="home" href="/">Tagging</a>', card)


def test_health_says_the_explorer_is_mounted_and_the_run_retags(mounted, decided):  # noqa: F811
    assert mounted.get("/health").json()["explorer"] == {"mounted": True, "path": "/explore"}
    inner = mounted.get("/explore/health").json()
    assert inner["run"] == str(decided["run"]) and inner["settings"]["k"] == 3 and inner["settings_b"]["k"] == 2
    card = mounted.get("/explore/post/test-000", params={"cf": 1, "format": "json"}).json()
    assert card["run"] == str(decided["run"]) and card["counterfactuals"]["variants"]


def test_an_exported_page_fetches_nothing_from_the_mount(mounted):
    """The A/B pair's thumbnails are links under /explore on the page; exported, data URIs."""
    live = mounted.get("/explore/ab/test-000").text
    assert 'src="/explore/thumb/' in live
    page = mounted.get("/explore/ab/test-000", params={"format": "html"}).text
    assert "/explore/thumb/" not in page and "/explore/static/" not in page
    assert "data:image/jpeg;base64," in page


def test_without_index_and_data_serve_is_as_before(tmp_path):
    from rgcn.serve.app import Settings, create_app
    from rgcn.serve.cli import explorer_of
    from tests.rgcn.serve.fake import FakeTagger

    args = serve_args("--run", str(tmp_path))
    assert args.index is None and args.data is None and explorer_of(args) is None
    with TestClient(create_app(Settings(), FakeTagger())) as c:
        assert c.get("/health").json()["explorer"] == {"mounted": False, "path": None}
        assert "/explore" not in c.get("/").text
        assert c.get("/explore/").status_code == 404


@pytest.mark.parametrize("given, missing", [("--index", "--data"), ("--data", "--index")])
def test_index_or_data_alone_is_refused_by_name(tmp_path, given, missing):
    from rgcn.serve.cli import explorer_of

    value = str(tmp_path) if given == "--index" else "train=x.txt"
    args = serve_args("--run", str(tmp_path), given, value)
    with pytest.raises(UserError) as e:
        explorer_of(args)
    assert e.value.what == missing and given in e.value.why


def test_the_explorer_scripts_fetch_no_absolute_path():
    """A script that fetched "/..." would leave the mount: the explorer's scripts name none."""
    scripts = list(STATIC_JS.glob("*.js"))
    assert scripts
    for js in scripts:
        assert not re.search(r"""(fetch\(|["'`])/[A-Za-z]""", js.read_text()), js.name
