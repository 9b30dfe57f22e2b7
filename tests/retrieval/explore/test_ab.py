"""A/B of two graph settings on the eight hand-placed posts (lists_world.py): B drops t0's
weaker intra neighbour (a higher threshold) and gives q1 the LOC post's image."""
import numpy as np
import pytest

from retrieval.explore.ab import Side, compare, jaccard_rows, most_changed, same_id_codes
from retrieval.explore.tables import build_table
from retrieval.explore.triage import Filters

from .lists_world import IDS, INTER, INTRA, graphs, samples

INTRA_B = {**INTRA, "t0": [(2, .9)], "q1": [(1, .8)]}


def side(g, preds=None):
    return Side(g, build_table(g, samples()), preds)


def test_jaccard_rows_by_hand():
    a = np.asarray([[1, 2, -1], [1, 2, 3], [-1, -1, -1], [4, -1, -1]])
    b = np.asarray([[2, 1], [3, 9], [-1, -1], [5, -1]])
    assert jaccard_rows(a, b).tolist() == [1.0, 0.25, 1.0, 0.0]


def test_overlap_and_agreement_change_per_post():
    res = compare(side(graphs()), side(graphs(intra=INTRA_B)))
    by = {r["post"]: r for r in res["rows"]}
    assert by["t0"]["jaccard_intra"] == 0.5 and by["q1"]["jaccard_intra"] == 0.0
    assert all(by[p]["jaccard_intra"] == 1.0 for p in ("t1", "t2", "t3", "q0", "q2", "q3"))
    assert all(r["jaccard_inter"] == 1.0 for r in res["rows"])
    assert by["q1"]["agreement_a"] == pytest.approx(1 / 3, abs=1e-4) and by["q1"]["agreement_b"] == 1.0
    assert by["q1"]["delta_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert by["t0"]["agreement_a"] == 0.25 and by["t0"]["agreement_b"] == pytest.approx(1 / 3, abs=1e-4)
    assert by["q1"]["agreement_intra_a"] == 0.0 and by["q1"]["agreement_intra_b"] == 1.0
    assert by["t3"]["agreement_a"] is None                        # no entity: not counted
    assert res["summary"]["relations"]["intra"]["changed"] == 2
    assert res["summary"]["relations"]["inter"]["jaccard"] == 1.0


def test_most_changed_lists_the_lowest_overlap_first_and_filters():
    res = compare(side(graphs()), side(graphs(intra=INTRA_B)))
    assert [r["post"] for r in most_changed(res)["rows"][:2]] == ["q1", "t0"]
    assert [r["post"] for r in most_changed(res, "agreement")["rows"][:2]] == ["q1", "t0"]
    assert [r["post"] for r in most_changed(res, filters=Filters(split="train"))["rows"][:1]] == ["t0"]
    assert most_changed(res, filters=Filters(relation="inter"))["rows"][0]["jaccard"] == 1.0
    with pytest.raises(ValueError, match="--b-run"):
        most_changed(res, "f1")


def test_graphs_over_another_index_compare_by_image_id():
    ids_b = IDS[::-1]                                             # the same images in another row order
    flip = {p: [(len(IDS) - 1 - r, s) for r, s in v] for p, v in INTRA.items()}
    flip_inter = {p: [(len(IDS) - 1 - r, s) for r, s in v] for p, v in INTER.items()}
    gb = graphs(intra=flip, inter=flip_inter, ids=ids_b)
    gb.image_rows = np.where(gb.image_rows >= 0, len(IDS) - 1 - gb.image_rows, -1)
    res = compare(side(graphs()), side(gb))
    assert all(r["jaccard"] == 1.0 and r["delta_agreement"] in (0.0, None) for r in res["rows"])
    a, b = same_id_codes(["x", "y"], ["z", "y"])
    assert a.tolist() == [0, 1] and b.tolist() == [2, 1]


def test_the_change_in_f1_given_two_runs():
    gold = {s.id: s.tags for s in samples()}
    pa = {**gold, "q1": ["B-PER"]}
    pb = dict(gold)
    res = compare(side(graphs(), pa), side(graphs(intra=INTRA_B), pb), gold)
    by = {r["post"]: r for r in res["rows"]}
    assert by["q1"]["f1_a"] == 0.0 and by["q1"]["f1_b"] == 1.0 and by["q1"]["delta_f1"] == 1.0
    assert most_changed(res, "f1")["rows"][0]["post"] == "q1"
    assert res["summary"]["f1_b"] == 1.0 and res["summary"]["f1_a"] == pytest.approx(2 * 7 / (8 + 8))   # 8 gold entities, q1 missed


def test_settings_diff_names_what_differs():
    res = compare(side(graphs()), side(graphs(threshold=0.5)))
    assert res["settings"] == {"threshold": (0.0, 0.5)}


# ---- the pages, over the tiny synthetic collection of conftest.py --------------------------------------


@pytest.fixture(scope="module")
def ab_client(collection, tmp_path_factory):
    from fastapi.testclient import TestClient

    from retrieval.cache import GraphSettings
    from retrieval.explore.app import create_app

    from .conftest import make_explorer
    from .fake_run import SwappingRetagger

    ex = make_explorer(collection, settings_b=GraphSettings(k=2), retagger_b=SwappingRetagger(),
                       retagger=SwappingRetagger(suffix="-002"))
    ex.cache_dir = str(tmp_path_factory.mktemp("ab_cache"))
    return TestClient(create_app(ex)), ex


def test_the_ab_page_lists_the_posts_whose_neighbours_changed_most(ab_client):
    c, ex = ab_client
    got = c.get("/ab?limit=1000&format=json").json()
    assert got["settings"] == {"k": [3, 2]}
    # k 3 -> 2 keeps the first two of three neighbours: overlap 2/3 where A had three, 1 where it had none
    for r in got["rows"]:
        for rel in got["relations"]:
            n = int((ex.graphs.tables[rel].rows[ex.graphs.post_index[r["post"]]] >= 0).sum())
            assert r[f"jaccard_{rel}"] == pytest.approx({0: 1.0, 1: 1.0, 2: 1.0, 3: 2 / 3}[n], abs=1e-4)
    assert [r["jaccard"] for r in got["rows"]] == sorted(r["jaccard"] for r in got["rows"])


def test_the_change_in_f1_between_two_runs(ab_client):
    c, _ = ab_client
    got = c.get("/ab?by=f1&split=test&format=json").json()
    top = [r for r in got["rows"] if r["delta_f1"]]
    assert top and all(r["post"].endswith(("-001", "-002")) for r in top)
    # A's run is wrong on the -002 posts, B's on the -001 posts
    assert all((r["delta_f1"] < 0) == r["post"].endswith("-001") for r in top)
    assert {r["post"][-4:] for r in top} == {"-001", "-002"}
    assert got["summary"]["f1_a"] is not None and got["summary"]["f1_b"] is not None


def test_the_pair_page_shows_both_cards(ab_client):
    c, ex = ab_client
    post = ex.graphs.post_ids[0]
    got = c.get(f"/ab/{post}?format=json").json()
    assert set(got["sides"]) == {"a", "b"}
    assert all(len(n["neighbours"]) <= 2 for n in got["sides"]["b"]["relations"].values())
    html = c.get(f"/ab/{post}", headers={"accept": "text/html"}).text
    assert 'id="side-a"' in html and 'id="side-b"' in html and html.count('class="card"') == 2
    assert f'/post/{post}?which=b' in html or "which=b" in html


def test_without_a_second_setting_the_page_says_how_to_give_one(explorer):
    from fastapi.testclient import TestClient

    from retrieval.explore.app import create_app

    r = TestClient(create_app(explorer)).get("/ab?format=json")
    assert r.status_code == 400 and "--b-k" in r.json()["error"]
