"""Agreement@k, its bootstrap intervals, the random baseline and the sweep, on the eight
hand-placed posts of lists_world.py (counted by hand there), and the SVG they are drawn as."""
import re

import numpy as np
import pytest

from retrieval.agreement import label_agreement
from retrieval.explore.charts import (Query, agreement_at_k, agreement_curve, bootstrap_interval, line_chart,
                                      random_baseline, sweep)
from retrieval.explore.tables import build_table

from .lists_world import graphs, samples


@pytest.fixture
def world():
    g = graphs()
    return g, build_table(g, samples())


def test_agreement_at_k_by_hand_and_as_label_agreement(world):
    g, t = world
    rows = agreement_curve(t, g, "intra", [1, 2], n_boot=200)
    assert rows[0]["agreement"] == pytest.approx(3 / 6) and rows[1]["agreement"] == pytest.approx(2.5 / 6)
    assert [r["queries"] for r in rows] == [6, 6]
    row_types = [t.types[o] if o >= 0 else None for o in t.row_owner]
    for k, r in zip([1, 2], rows):
        ref = label_agreement(t.types, g.tables["intra"].rows[:, :k], row_types)
        assert r["agreement"] == pytest.approx(ref["agreement"])


def test_per_type_and_split(world):
    g, t = world
    per = agreement_curve(t, g, "intra", [2], Query(etype="PER"), n_boot=200)[0]
    assert per["agreement"] == pytest.approx(2.5 / 3) and per["queries"] == 3
    test = agreement_curve(t, g, "intra", [2], Query(split="test"), n_boot=200)[0]
    assert test["agreement"] == pytest.approx(1 / 3) and test["queries"] == 3         # q0 1, q1 0, q2 0


def test_random_baseline_by_hand(world):
    g, t = world
    # PER posts t0, t2 (own image in the train pool: 1 of the 3 others), q0, q3 (2 of 4)
    assert random_baseline(t, g, Query(etype="PER")) == pytest.approx((1 / 3 + 1 / 3 + .5 + .5) / 4)


def test_threshold_sweep_drops_neighbours(world):
    g, t = world
    rows = sweep(t, g, "intra", [0.0, 0.5], n_boot=200)
    by = {(r["threshold"], r["k"]): r for r in rows}
    assert by[0.5, 2]["agreement"] == pytest.approx(0.5) and by[0.5, 2]["queries"] == 5
    assert by[0.5, 2]["without_neighbours"] == 2                                      # q1 (all below), q3
    assert by[0.0, 2]["agreement"] == pytest.approx(2.5 / 6)
    full = agreement_at_k(t, g, n_boot=100)
    assert full["types"] == ["any", "LOC", "ORG", "PER"] and set(full["curves"]["PER"]) == {"inter", "intra"}


def test_bootstrap_interval_is_that_of_resampling_the_posts():
    rng = np.random.default_rng(3)
    v = rng.choice([0.0, 0.5, 1.0], size=300, p=[.3, .3, .4])
    lo, hi = bootstrap_interval(v, 4000, seed=1)
    naive = [v[rng.integers(0, len(v), len(v))].mean() for _ in range(4000)]
    nlo, nhi = np.quantile(naive, [0.025, 0.975])
    assert lo < v.mean() < hi
    assert lo == pytest.approx(nlo, abs=0.01) and hi == pytest.approx(nhi, abs=0.01)
    wide = bootstrap_interval(v[:30], 4000, seed=1)
    assert wide[1] - wide[0] > hi - lo
    assert np.isnan(bootstrap_interval(np.asarray([np.nan]))[0])


def test_line_chart_places_points_and_escapes_names():
    svg = line_chart([{"name": "a<b", "points": [(1, 0.0, None, None), (2, 1.0, 0.5, 1.0)]}], "t", "k", "y")
    assert svg.startswith("<svg") and "a&lt;b" in svg and "<script" not in svg
    ys = [float(y) for y in re.findall(r'<circle cx="[\d.]+" cy="([\d.]+)"', svg)]
    assert ys[0] > ys[1]                                                # 0.0 is drawn below 1.0
    assert svg.count('class="ci"') == 1


# ---- the page, over the tiny synthetic collection of conftest.py --------------------------------------


@pytest.fixture(scope="module")
def client(explorer):
    from fastapi.testclient import TestClient

    from retrieval.explore.app import create_app

    return TestClient(create_app(explorer)), explorer


def test_the_page_answers_label_agreement_and_draws_a_chart_per_type(client):
    from retrieval.explore.tables import build_table
    from retrieval.stats import graph_stats

    c, ex = client
    got = c.get("/agreement?n_boot=200&format=json").json()
    stats = graph_stats(ex.graphs, ex.splits)
    for rel in ex.graphs.tables:
        last = got["curves"]["any"][rel][-1]                               # k = the built k
        assert last["agreement"] == pytest.approx(stats["relations"][rel]["agreement"]["all"]["agreement"])
        assert last["random"] == pytest.approx(stats["relations"][rel]["agreement"]["all"]["random"])
        assert last["lo"] <= last["agreement"] <= last["hi"]
    html = c.get("/agreement?n_boot=200", headers={"accept": "text/html"}).text
    assert html.count("<svg") == len(got["types"]) + 1 and "<script" not in html
    assert 'id="sweep-table"' in html
    assert build_table(ex.graphs, list(ex.samples.values())).type_names == ("LOC", "PER")


def test_the_sweep_takes_thresholds_and_refuses_bad_ones(client):
    c, ex = client
    got = c.get("/agreement?relation=intra&thresholds=0,0.9&n_boot=50&format=json").json()
    assert got["thresholds"] == [0.0, 0.9] and len(got["sweep"]) == 2 * ex.settings.k
    hi = [r for r in got["sweep"] if r["threshold"] == 0.9]
    lo = [r for r in got["sweep"] if r["threshold"] == 0.0]
    assert all(h["neighbours_mean"] <= l["neighbours_mean"] for h, l in zip(hi, lo))
    assert c.get("/agreement?thresholds=x&format=json").status_code == 400
    assert c.get("/agreement?thresholds=2&format=json").status_code == 400
    assert c.get("/agreement?relation=nope&format=json").status_code == 400
