"""retrieval/explore/export.py: a card (or any page the explorer rendered) as one file that
needs nothing else: CSS inlined, thumbnails as data URIs, no script that loads a file, no
link into the explorer."""
import base64
import io
import re

from PIL import Image

from retrieval.explore.card import card_data, neighbour_images
from retrieval.explore.export import export_card, export_cards, inline_css, self_contained


def assert_self_contained(page: str):
    assert "http" not in page and "/thumb/" not in page and "/static/" not in page
    assert not re.search(r"<link\b", page) and not re.search(r"<script\b[^>]*\bsrc=", page)
    assert not re.search(r'''\s(href|src|action)=["']/''', page)        # nothing points into the server
    assert "<style>" in page and ".thumb{" in page


def data_uris(page: str) -> list[str]:
    return re.findall(r'src="(data:[^"]*)"', page)


def test_an_exported_card_needs_nothing_else(explorer):
    card = card_data(explorer, "test-image_decided-001")
    page = export_card(explorer, card)
    assert_self_contained(page)
    uris = data_uris(page)
    assert len(uris) == page.count('data-thumb="1"') == 1 + sum(len(r["neighbours"]) for r in card["relations"].values())
    for uri in uris:                                          # every thumbnail is a real JPEG
        assert uri.startswith("data:image/jpeg;base64,")
        Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).verify()
    assert set(neighbour_images(card)) <= set(re.findall(r'alt="([^"]+)"', page)) | {card["image_id"]}
    assert "kind <b>image_decided</b>" in page and 'class="ent gold"' in page
    assert 'data-href="/post/' not in page                      # exported cards carry no links at all
    assert "run the counterfactuals" not in page


def test_several_cards_in_one_file(explorer):
    ids = ["test-image_decided-000", "test-no_image-001"]
    page = export_cards(explorer, [card_data(explorer, i) for i in ids], "Case study", "two posts")
    assert_self_contained(page)
    assert all(f'id="post-{i}"' in page for i in ids) and "<h1>Case study</h1>" in page


def test_any_rendered_page_is_made_self_contained(explorer):
    page = ('<html><head><link rel="stylesheet" href="/static/explore.css"><link rel="icon" href="/static/f.svg">'
            '<script src="/static/lists.js"></script></head><body>'
            '<form action="/search"><input name="id"></form>'
            '<a href="/post/test-image_decided-000">open</a> <a href="#top">top</a>'
            '<img src="/thumb/train-image_decided-000" alt="x"><img src="/thumb/missing-one" alt="y">'
            '<script>var rows = [1, 2];</script></body></html>')
    out = self_contained(page, explorer)
    assert_self_contained(out)
    assert 'data-href="/post/test-image_decided-000"' in out and 'href="#top"' in out
    assert "var rows = [1, 2];" in out                          # inline scripts stay
    uris = data_uris(out)
    assert uris[0].startswith("data:image/jpeg;base64,") and uris[1] == "data:,"   # a missing image: nothing
    assert inline_css() in out


def test_an_exported_card_with_counterfactuals(decided_explorer):
    card = card_data(decided_explorer, "test-002", with_counterfactuals=True)
    page = export_card(decided_explorer, card)
    assert_self_contained(page)
    assert 'id="cf-table"' in page and 'id="pred-text"' in page
    assert page.count('<tr class="cf') == len(card["counterfactuals"]["variants"])


def test_retrieval_report_with_a_run_writes_cards_with_counterfactuals(decided, tmp_path, capsys):
    from retrieval.__main__ import main

    out = tmp_path / "report.html"
    assert main(["report", "--index", str(decided["index"]), "--data", *(f"{n}={p}" for n, p in decided["files"].items()),
                 "--images", str(decided["images"]), "--k", "3", "--relations", "inter", "intra",
                 "--cache", str(tmp_path / "cache"), "--quiet", "--run", str(decided["run"]),
                 "--ids", "test-000", "test-001", "--out", str(out)]) == 0
    page = out.read_text()
    assert_self_contained(page)
    assert page.count('id="cf-table"') == 2 and page.count('id="pred-text"') == 2
    assert "wrote" in capsys.readouterr().out
