"""The map's computations: PCA against a hand-made point cloud, edges from the real neighbour
lists (lists_world.py), the sample of a large collection, and the colourings."""
import numpy as np
import pytest

from retrieval.explore.atlas import atlas, colour_keys, knn_edges, pca_2d, pick_points
from retrieval.explore.tables import build_table

from .lists_world import graphs, reversed_graphs, samples


@pytest.fixture
def world():
    g = graphs()
    return g, build_table(g, samples())


def test_pca_finds_the_long_axis_first():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 10, 500), rng.normal(0, 3, 500), rng.normal(0, .1, 500)]
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    xy, explained = pca_2d(x @ rot, x @ rot)
    assert abs(np.corrcoef(xy[:, 0], x[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(xy[:, 1], x[:, 1])[0, 1]) > 0.99
    assert explained[0] > explained[1] > 0 and sum(explained) <= 1


@pytest.mark.parametrize("make", [graphs, reversed_graphs], ids=["rows", "reversed rows"])
def test_edges_come_from_the_neighbour_lists_not_the_projection(make):
    g = make()
    t = build_table(g, samples())
    drawn = np.nonzero(t.image_rows >= 0)[0]                       # q3 has no image
    pos = {t.post_ids[i]: j for j, i in enumerate(drawn)}
    edges = {(t.post_ids[drawn[a]], t.post_ids[drawn[b]]) for a, b in knn_edges(t, g, "intra", drawn)}
    # each post -> the first post owning each of its intra neighbours' images (row 2 belongs to t2)
    assert edges == {("t0", "t2"), ("t0", "t1"), ("t1", "t3"), ("t2", "t0"), ("t3", "t1"), ("q0", "t0"),
                     ("q0", "t2"), ("q1", "t0"), ("q1", "t2"), ("q2", "t0")}
    assert len(pos) == 7


def test_a_large_collection_is_a_sample_plus_its_neighbours(world):
    g, t = world
    picked = pick_points(t, g, "intra", 3, seed=0)
    assert len(picked) == 3 and (t.image_rows[picked] >= 0).all()
    a = atlas(t, g, "intra", max_points=3)
    assert a["drawn"] == 3 and a["eligible"] == 7 and a["without_image"] == 1
    assert a["edges"], "the sample keeps at least one neighbour of its seed"
    full = atlas(t, g, "intra")
    assert full["drawn"] == 7 and len(full["edges"]) == 10
    xs = [p["x"] for p in full["points"]] + [p["y"] for p in full["points"]]
    assert min(xs) == 0.0 and max(xs) == 1.0


def test_colourings(world):
    g, t = world
    drawn = np.arange(len(t))
    assert colour_keys(t, drawn, "type")[:4] == ["PER", "LOC", "several", "none"]
    assert colour_keys(t, drawn, "kind")[:2] == ["image_decided", "text_decided"]
    gold = {s.id: s.tags for s in samples()}
    keys = colour_keys(t, drawn, "error", {**gold, "q1": ["B-PER"]}, gold)
    assert keys[5] == "wrong" and keys.count("right") == 7
    with pytest.raises(ValueError, match="--run"):
        colour_keys(t, drawn, "error")
    with pytest.raises(KeyError, match="type, kind"):
        atlas(t, g, colour="nope")


# ---- the page, over the tiny synthetic collection of conftest.py --------------------------------------


def test_the_map_page_draws_every_post_with_an_image_and_its_neighbour_edges(explorer):
    from fastapi.testclient import TestClient

    from retrieval.explore.app import create_app

    c = TestClient(create_app(explorer))
    got = c.get("/map?format=json").json()
    g = explorer.graphs
    assert got["drawn"] == int((g.image_rows >= 0).sum()) and got["without_image"] == int((g.image_rows < 0).sum())
    owner = {}
    for p, r in zip(g.post_ids, g.image_rows):
        owner.setdefault(int(r), p)
    expected = {(p, owner[int(r)]) for i, p in enumerate(g.post_ids) if g.image_rows[i] >= 0
                for r in g.tables["intra"].rows[i] if r >= 0 and owner.get(int(r), p) != p}
    pts = got["points"]
    assert {(pts[a]["post"], pts[b]["post"]) for a, b in got["edges"]} == expected
    html = c.get("/map?colour=kind", headers={"accept": "text/html"}).text
    assert html.count("<circle") == got["drawn"] and 'src="/static/atlas.js"' in html
    assert c.get("/static/atlas.js").status_code == 200
    assert c.get("/map?colour=error&format=json").status_code == 400
    assert c.get("/map?method=tsne&format=json").status_code == 400
    import importlib.util

    if importlib.util.find_spec("umap") is None:                   # the extra is not installed here
        r = c.get("/map?method=umap&format=json")
        assert r.status_code == 400 and "rgcn-mner[umap]" in r.json()["error"]
        assert "umap" not in got["choices"]["method"]
