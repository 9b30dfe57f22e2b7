"""The triage lists on eight hand-placed posts (tests/retrieval/explore/lists_world.py): every
expected row is counted by hand from the tables there."""
import numpy as np
import pytest

from retrieval.agreement import entity_types, label_agreement
from retrieval.explore.tables import agreement_per_post, build_table, post_f1
from retrieval.explore.triage import Filters, TriageContext, file_hashes, sort_order, sort_rows, triage_list

from .lists_world import graphs, samples


@pytest.fixture
def ctx():
    g = graphs()
    return TriageContext(g, build_table(g, samples()))


def rows(ctx, name, **kw):
    return triage_list(ctx, name, Filters(**{k: v for k, v in kw.items() if k in Filters.__dataclass_fields__}),
                       **{k: v for k, v in kw.items() if k not in Filters.__dataclass_fields__})["rows"]


def test_agreement_per_post_is_label_agreement_post_by_post(ctx):
    share = agreement_per_post(ctx.table, ctx.graphs.tables["intra"].rows)
    assert np.allclose(share, [0.5, 0.0, 1.0, np.nan, 1.0, 0.0, 0.0, np.nan], equal_nan=True)
    types = [entity_types(s.tags) for s in samples()]
    row_types = [ctx.table.types[o] if o >= 0 else None for o in ctx.table.row_owner]
    ref = label_agreement(types, ctx.graphs.tables["intra"].rows, row_types)
    assert np.nanmean(share) == pytest.approx(ref["agreement"]) and (~np.isnan(share)).sum() == ref["queries"]


def test_posts_without_neighbours_say_why(ctx):
    got = {(r["post"], r["relation"], r["reason"]) for r in rows(ctx, "no_neighbours")}
    assert got == {("t2", "inter", "none above the threshold"), ("q2", "inter", "none above the threshold"),
                   ("q3", "intra", "no image")}
    assert [r["post"] for r in rows(ctx, "no_neighbours", split="train")] == ["t2"]
    assert [r["post"] for r in rows(ctx, "no_neighbours", kind="text_decided")] == ["q2"]


def test_lowest_agreement_first_and_filters(ctx):
    got = rows(ctx, "low_agreement", relation="intra")
    assert [(r["post"], r["agreement"]) for r in got] == [("q1", 0.0), ("q2", 0.0), ("t1", 0.0), ("t0", 0.5),
                                                         ("q0", 1.0), ("t2", 1.0)]
    assert got[0]["sharing"] == 0 and got[0]["neighbours"] == 2
    assert [r["post"] for r in rows(ctx, "low_agreement", relation="intra", etype="PER")] == ["t0", "q0", "t2"]
    assert [r["post"] for r in rows(ctx, "low_agreement", relation="intra", split="test", kind="image_decided")] \
        == ["q1", "q0"]
    desc = rows(ctx, "low_agreement", relation="intra", sort="agreement", descending=True)
    assert [r["agreement"] for r in desc] == [1.0, 1.0, 0.5, 0.0, 0.0, 0.0]


def test_hubs_count_the_selected_posts_that_retrieve_each_image(ctx):
    got = rows(ctx, "hubs", relation="intra")
    assert [(r["image"], r["retrieved_by"]) for r in got] == [("i0", 4), ("i2", 3), ("i1", 2), ("i3", 1)]
    assert got[0]["post"] == "t0" and got[0]["types"] == "PER" and got[0]["agreement"] == 0.5
    test = rows(ctx, "hubs", relation="intra", split="test")
    assert [(r["image"], r["retrieved_by"]) for r in test] == [("i0", 3), ("i2", 2)]


def test_near_duplicate_groups(ctx):
    ctx.hashes = {"t1": "aa", "q1": "aa", "t0": "bb"}
    got = {r["group"]: r for r in rows(ctx, "duplicates")}
    assert set(got) == {"t0", "t1", "t2"}
    assert got["t0"]["posts"] == ["t0", "q0"] and got["t0"]["why"] == "cosine" and got["t0"]["cosine"] == 0.99
    assert got["t1"]["why"] == "same file" and got["t1"]["cross_split"]
    assert got["t2"]["posts"] == ["t2", "q2"] and got["t2"]["why"] == "same image"
    assert [r["group"] for r in rows(ctx, "duplicates", kind="text_decided")] == ["t1", "t2"]
    assert {r["group"] for r in rows(ctx, "duplicates", etype="ORG")} == {"t2"}


def test_a_cosine_under_098_is_no_duplicate():
    from .lists_world import INTRA

    g = graphs(intra={**INTRA, "q0": [(0, .97), (2, .6)]})
    c = TriageContext(g, build_table(g, samples()))
    assert {r["group"] for r in rows(c, "duplicates")} == {"t2"}


def test_wrong_predictions_whose_neighbours_disagree(ctx):
    ctx.gold = {s.id: s.tags for s in samples()}
    ctx.predictions = {**ctx.gold, "q1": ["B-PER"], "q2": ["B-PER"], "t0": ["O"], "q3": ["B-LOC"]}
    got = {(r["post"], r["relation"]): r for r in rows(ctx, "wrong")}
    # q1's inter neighbour (t1, LOC) agrees: not listed there; q3 has no intra neighbour
    assert set(got) == {("q1", "intra"), ("q2", "intra"), ("t0", "intra"), ("t0", "inter"), ("q3", "inter")}
    assert got["q3", "inter"]["agreement"] == 0.5 and got["q3", "inter"]["back_the_error"] == 1
    assert got["q1", "intra"]["back_the_error"] == 2 and got["q1", "intra"]["predicted"] == "PER"
    assert got["q2", "intra"]["back_the_error"] == 1 and got["t0", "intra"]["f1"] == 0.0
    assert {r["post"] for r in triage_list(ctx, "wrong", Filters(split="test", relation="intra"))["rows"]} == {"q1", "q2"}


def test_a_list_needing_a_run_says_so(ctx):
    with pytest.raises(ValueError, match="--run"):
        triage_list(ctx, "wrong")


def test_unknown_list_sort_or_relation_name_the_valid_ones(ctx):
    with pytest.raises(KeyError, match="hubs"):
        triage_list(ctx, "nope")
    with pytest.raises(KeyError, match="agreement"):
        triage_list(ctx, "low_agreement", sort="nope")
    with pytest.raises(KeyError, match="inter, intra"):
        triage_list(ctx, "hubs", Filters(relation="tags"))


def test_paging_and_missing_values_last():
    rs = [{"a": 2}, {"a": None}, {"a": 1}, {"a": float("nan")}, {"a": 3}]
    assert [r["a"] for r in sort_rows(rs, "a")][:3] == [1, 2, 3]
    assert [r["a"] for r in sort_rows(rs, "a", True)][:3] == [3, 2, 1]
    cols = {"a": np.asarray([2, np.nan, 1, np.nan, 3]), "t": np.asarray(["x", "y", "z", "w", "v"], dtype=object),
            "s": np.asarray(["b", None, "a", "b", "c"], dtype=object)}
    assert sort_order(cols, "a").tolist()[:3] == [2, 0, 4] and set(sort_order(cols, "a", True)[3:]) == {1, 3}
    assert sort_order(cols, "a", True).tolist()[:3] == [4, 0, 2]
    assert sort_order(cols, "s", tie="t").tolist() == [2, 3, 0, 4, 1]          # b, b by t: w before x; None last
    assert sort_order(cols, "s", True, tie="t").tolist() == [4, 3, 0, 2, 1]


def test_post_f1():
    assert post_f1(["B-PER", "O"], ["B-PER", "O"]) == 1.0
    assert post_f1(["B-PER", "B-LOC"], ["B-PER", "O"]) == pytest.approx(2 / 3)
    assert post_f1(["O"], ["O"]) == 1.0 and np.isnan(post_f1(None, ["O"]))


def test_file_hashes_are_cached_by_path_size_and_time(tmp_path):
    from data.corpus import Sample

    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"x" * 10)
    b.write_bytes(b"x" * 10)
    ss = [Sample("p", ["w"], image=str(a)), Sample("q", ["w"], image=str(b)), Sample("r", ["w"])]
    h = file_hashes(ss, tmp_path / "c")
    assert set(h) == {"p", "q"} and h["p"] == h["q"]
    assert (tmp_path / "c" / "explore" / "file_hashes.json").is_file()
    b.write_bytes(b"y" * 11)
    assert file_hashes(ss, tmp_path / "c")["q"] != h["p"]


# ---- the page, over the tiny synthetic collection of conftest.py --------------------------------------


@pytest.fixture(scope="module")
def client(explorer):
    from fastapi.testclient import TestClient

    from retrieval.explore.app import create_app

    return TestClient(create_app(explorer))


def test_hub_counts_are_the_times_the_selected_posts_retrieve_an_image(client, explorer):
    got = client.get("/triage?list=hubs&split=test&relation=intra&limit=1000&format=json").json()
    g = explorer.graphs
    test = [i for i, p in enumerate(g.post_ids) if g.split_of[p] == "test"]
    counts = {}
    for i in test:
        for r in g.tables["intra"].rows[i]:
            if r >= 0:
                counts[g.ids[r]] = counts.get(g.ids[r], 0) + 1
    assert {r["image"]: r["retrieved_by"] for r in got["rows"]} == counts
    assert [r["retrieved_by"] for r in got["rows"]] == sorted(counts.values(), reverse=True)
    html = client.get("/triage?list=hubs&split=test&relation=intra", headers={"accept": "text/html"}).text
    top = got["rows"][0]["image"]
    assert f'src="/thumb/{top}"' in html and client.get(f"/thumb/{top}").status_code == 200


def test_the_page_filters_sorts_and_pages_by_query_parameters(client):
    url = "/triage?list=low_agreement&kind=image_decided&sort=post&order=desc&format=json"
    got = client.get(url).json()
    assert got["total"] > 0 and {r["kind"] for r in got["rows"]} == {"image_decided"}
    assert [r["post"] for r in got["rows"]] == sorted((r["post"] for r in got["rows"]), reverse=True)
    page2 = client.get(url + "&limit=2&offset=2").json()
    assert page2["rows"] == got["rows"][2:4]
    html = client.get("/triage?list=low_agreement&kind=image_decided", headers={"accept": "text/html"}).text
    assert 'href="/post/' in html and '<option value="image_decided" selected>' in html


def test_bad_parameters_are_a_400_naming_what_is_valid(client):
    r = client.get("/triage?list=nope&format=json")
    assert r.status_code == 400 and "no_neighbours" in r.json()["error"]
    assert client.get("/triage?list=hubs&relation=nope&format=json").status_code == 400
    assert client.get("/triage?order=up&format=json").status_code == 400
    r = client.get("/triage?list=wrong&format=json")
    assert r.status_code == 400 and "--run" in r.json()["error"]


def test_the_duplicate_photo_makes_a_same_file_group(client):
    from .conftest import DUPLICATE

    groups = client.get("/triage?list=duplicates&format=json").json()["rows"]
    hit = [g for g in groups if set(DUPLICATE) <= set(g["posts"])]
    assert len(hit) == 1 and "same file" in hit[0]["why"]


def test_predictions_use_retag_many_when_the_run_has_it(collection, tmp_path, monkeypatch):
    from retrieval.explore.predictions import predictions

    from .conftest import make_explorer
    from .fake_run import BatchingRetagger

    run = BatchingRetagger()
    ex = make_explorer(collection, retagger=run)
    ex.cache_dir = str(tmp_path)
    monkeypatch.setattr("retrieval.explore.predictions.CHUNK", 5)
    ids = list(ex.samples)[:12]
    got = predictions(ex, ids)
    assert run.batches == [5, 5, 2] and sorted(run.tagged) == sorted(ids)
    assert all(got[p] != ex.samples[p].tags for p in ids if run.wrong(p))
    assert all(got[p] == ex.samples[p].tags for p in ids if not run.wrong(p))


def test_wrong_predictions_with_a_run_are_cached(collection, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    from retrieval.explore.app import create_app

    from .conftest import make_explorer
    from .fake_run import SwappingRetagger

    run = SwappingRetagger()
    ex = make_explorer(collection, retagger=run)
    ex.cache_dir = str(tmp_path)
    c = TestClient(create_app(ex))
    got = c.get("/triage?list=wrong&split=test&limit=1000&format=json").json()["rows"]
    assert got and all(run.wrong(r["post"]) and r["agreement"] <= 0.5 for r in got)
    expected, disagree = set(), set()
    t = build_table(ex.graphs, list(ex.samples.values()))
    for rel in ex.graphs.tables:
        share = agreement_per_post(t, ex.graphs.tables[rel].rows)
        low = {p for i, p in enumerate(t.post_ids) if t.splits[i] == "test" and share[i] <= 0.5}
        expected |= {(p, rel) for p in low if run.wrong(p)}
        disagree |= low
    assert {(r["post"], r["relation"]) for r in got} == expected
    # only the posts whose neighbours disagree are re-tagged, each once
    n = len(run.tagged)
    assert sorted(run.tagged) == sorted(disagree)
    assert n < sum(1 for p, s in ex.samples.items() if ex.split_of[p] == "test")
    assert list((tmp_path / "explore" / "predictions").glob("*.json"))
    ex2 = make_explorer(collection, retagger=run)
    ex2.cache_dir = str(tmp_path)
    TestClient(create_app(ex2)).get("/triage?list=wrong&split=test&format=json")
    assert len(run.tagged) == n                                              # read from the cache
    monkeypatch.setattr("retrieval.explore.predictions.MAX_NEW", 3)          # a request re-tags at most 3
    r = TestClient(create_app(ex2)).get("/triage?list=wrong&split=train&format=json")
    assert r.status_code == 400 and "split=test" in r.json()["error"] and len(run.tagged) == n


def test_the_wrong_list_tags_only_its_candidates_and_equals_the_list_of_every_prediction(collection):
    """Filtering before tagging changes nothing: the list from the candidates' predictions is
    the list from every post's predictions, for each filter."""
    from retrieval.explore.predictions import gold_of, predictions
    from retrieval.explore.triage import explorer_context

    from .conftest import make_explorer
    from .fake_run import SwappingRetagger

    run = SwappingRetagger("")                               # wrong on every post with a PER or LOC
    run.fingerprint = "swap-0"
    ex = make_explorer(collection, retagger=run)
    ex.cache_dir = None                                      # nothing read back: every request tags
    every = TriageContext(ex.graphs, build_table(ex.graphs, list(ex.samples.values())),
                          predictions(ex, list(ex.samples)), gold_of(ex))
    for f in (Filters(split="test"), Filters(), Filters(relation="intra"), Filters(kind="image_decided")):
        ex.__dict__.pop("_run_predictions", None)
        run.tagged = []
        fast = explorer_context(ex, "wrong", f)
        assert len(run.tagged) < len(every.table.select(f.split, f.etype, f.kind).nonzero()[0])
        full = triage_list(every, "wrong", f, limit=10_000)
        assert full["total"] > 0 and triage_list(fast, "wrong", f, limit=10_000) == full


@pytest.mark.parametrize("url", ["/triage?list=hubs", "/agreement?n_boot=50", "/map"])
def test_a_list_page_exports_as_one_self_contained_file(client, url):
    import re

    r = client.get(url + "&format=html" if "?" in url else url + "?format=html")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    page = r.text
    assert "<style>" in page and "<script" not in page and "<form" not in page
    assert not re.search(r'(?<![-\w])(src|href)="/', page), "the exported page still points at the server"


def test_a_trained_run_feeds_the_wrong_list_and_the_map(decided_explorer):
    """The real re-tagger (rgcn/explain.py over a tiny trained run): the wrong-predictions list
    holds exactly the listed posts whose predictions differ from gold, and the map colours
    every drawn test post right or wrong by the same predictions."""
    from fastapi.testclient import TestClient

    from data.spans import get_spans
    from retrieval.explore.app import create_app
    from retrieval.explore.predictions import predictions

    c = TestClient(create_app(decided_explorer))
    r = c.get("/triage?list=wrong&split=test&limit=1000&format=json")
    assert r.status_code == 200
    test = [p for p, s in decided_explorer.split_of.items() if s == "test"]
    pred = predictions(decided_explorer, test)
    gold = {p: decided_explorer.samples[p].tags for p in test}
    wrong = {p for p in test if set(get_spans(pred[p])) != set(get_spans(gold[p]))}
    assert {row["post"] for row in r.json()["rows"]} <= wrong
    got = c.get("/map?colour=error&split=test&format=json").json()
    keys = {pt["post"]: pt["key"] for pt in got["points"]}
    assert keys and all(k == ("wrong" if p in wrong else "right") for p, k in keys.items())


def test_predict_many_is_retag_as_built_from_attached_or_built_graphs(decided, decided_explorer):
    """The tags-only path of the real re-tagger equals its "as built" re-tagging, whether it
    reads the explorer's graphs (attached) or builds the posts' graphs itself."""
    from retrieval.explore.counterfactual import Variant, load_retagger

    attached = decided_explorer.retagger
    fresh = load_retagger(decided["run"], images=decided["images"])            # nothing attached: builds
    posts = [decided_explorer.samples[p] for p, s in decided_explorer.split_of.items() if s != "train"]
    assert attached._built_for(posts) is not None and fresh._built_for(posts) is None
    as_built = [r[0].tags for r in attached.retag_many([(s, [Variant("as built", "built")]) for s in posts])]
    assert any("B-PER" in t for t in as_built) and any("B-LOC" in t for t in as_built)
    assert attached.predict_many(posts, batch_size=5) == as_built
    assert fresh.predict_many(posts) == as_built


def test_a_table_from_known_types_is_the_table_from_the_tags():
    g = graphs()
    ss = samples()
    known = {s.id: entity_types(s.tags) for s in ss}
    a, b = build_table(g, ss), build_table(g, ss, known)
    assert a.type_names == b.type_names and a.types == b.types
    assert all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("post_mask", "post_known", "row_mask", "row_known"))
    known[ss[0].id] = frozenset({"ORG"})                                  # the given types are the ones used
    assert build_table(g, ss, known).types[0] == frozenset({"ORG"})
