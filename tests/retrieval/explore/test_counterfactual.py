"""retrieval/explore/counterfactual.py and rgcn/explain.py: the edits, their comparison, the
cache, and a real tiny rgcn run re-tagged with edited graphs and photos."""
import random
from dataclasses import replace

import pytest
import torch

from data.errors import UserError
from retrieval.explore.counterfactual import (Retagged, Retagger, Variant, compare, counterfactuals, graph_variants,
                                              load_retagger, neighbour_ranking, oracle_images, photo_variants)

BUILT = {"inter": [("a", 0.9), ("b", 0.5)], "intra": [("c", 0.8)]}
POOL = [("a", frozenset({"PER"})), ("b", frozenset()), ("c", frozenset({"PER", "LOC"})),
        ("d", frozenset({"PER"})), ("e", frozenset({"LOC"})), ("own", frozenset({"PER"}))]


def test_graph_variants_leave_each_neighbour_out_once():
    vs = graph_variants(BUILT, POOL, frozenset({"PER"}), k=2, own_image="own")
    assert [v.kind for v in vs] == ["built", "leave_out", "leave_out", "leave_out", "none", "random", "oracle"]
    assert vs[0].neighbours == BUILT
    for v in vs[1:4]:
        rel, gone = v.left_out
        assert [i for i, _ in v.neighbours[rel]] == [i for i, _ in BUILT[rel] if i != gone]
        other = "intra" if rel == "inter" else "inter"
        assert v.neighbours[other] == BUILT[other]                        # the other relation is untouched
    assert vs[4].neighbours == {"inter": [], "intra": []}


def test_random_and_oracle_neighbours_never_hold_the_own_image_and_keep_the_built_scores():
    for seed in range(20):
        vs = {v.kind: v for v in graph_variants(BUILT, POOL, frozenset({"PER"}), k=2, own_image="own", seed=seed)}
        for kind in ("random", "oracle"):
            for rel, nbs in vs[kind].neighbours.items():
                assert "own" not in [i for i, _ in nbs] and len(nbs) == 2
                # a substituted neighbour takes the built score of its rank (the mean past the end)
                expect = [s for _, s in BUILT[rel]] + [sum(s for _, s in BUILT[rel]) / len(BUILT[rel])]
                assert [s for _, s in nbs] == pytest.approx(expect[:2])
        # oracle: posts holding PER, those with no other type first (a, d before c)
        assert sorted(i for i, _ in vs["oracle"].neighbours["inter"]) == ["a", "d"]


def test_oracle_images_rank_exact_type_sets_first():
    rng = random.Random(0)
    assert oracle_images(frozenset({"PER", "LOC"}), POOL, 5, rng) == ["c"]
    assert oracle_images(frozenset(), POOL, 5, rng) == ["b"]                   # no types: posts with none
    assert set(oracle_images(frozenset({"PER"}), POOL, 5, rng)[:3]) == {"a", "d", "own"}


def test_photo_variants_swap_for_a_photo_sharing_no_type():
    pool = [("x", frozenset({"PER"})), ("y", frozenset({"LOC"})), ("own", frozenset({"PER"})),
            ("z", frozenset({"ORG"}))]
    looked_up = []

    def resolve(i):
        looked_up.append(i)
        return None if i == "z" else f"/i/{i}.png"                    # z's file is missing
    for seed in range(10):
        vs = photo_variants(pool, frozenset({"PER"}), "own", resolve, seed)
        assert [v.kind for v in vs] == ["built", "photo_removed", "photo_swapped"]
        assert vs[1].image is None and vs[2].image == "/i/y.png"
    assert [v.kind for v in photo_variants(pool, frozenset({"PER"}), None, resolve)] == ["built", "photo_swapped"]
    # nothing shares no type: any other photo
    assert photo_variants(pool[:3], frozenset({"PER", "LOC"}), "own", resolve)[2].image in ("/i/x.png", "/i/y.png")
    assert "own" not in looked_up and len(looked_up) <= 3 * 12


def test_compare_lists_changed_tags_and_each_spans_confidence_change():
    base = Retagged(["O", "B-PER", "O"], [{"type": "PER", "token_start": 1, "token_end": 2, "confidence": 0.9}])
    other = Retagged(["O", "B-LOC", "O"], [{"type": "LOC", "token_start": 1, "token_end": 2, "confidence": 0.6}])
    c = compare(base, other)
    assert c["changed_tags"] == [[1, "B-PER", "B-LOC"]]
    assert [(s["type"], s["before"], s["after"]) for s in c["span_changes"]] == [("LOC", 0.0, 0.6), ("PER", 0.9, 0.0)]
    assert c["moved"] == pytest.approx(1.5)
    assert compare(base, base) == {"changed_tags": [], "span_changes": [
        {"token_start": 1, "token_end": 2, "type": "PER", "before": 0.9, "after": 0.9, "change": 0.0}], "moved": 0.0}


def test_neighbour_ranking_puts_tag_changes_first():
    rows = [{"kind": "leave_out", "left_out": ["intra", "a"], "moved": 0.9, "changed_tags": []},
            {"kind": "leave_out", "left_out": ["intra", "b"], "moved": 0.2, "changed_tags": [[0, "O", "B-PER"]]},
            {"kind": "none", "left_out": None, "moved": 5.0, "changed_tags": [[0, "O", "B-PER"]]},
            {"kind": "leave_out", "left_out": ["inter", "c"], "moved": 0.3, "changed_tags": []}]
    assert [r["image_id"] for r in neighbour_ranking(rows)] == ["b", "a", "c"]


class ColourVote:
    """A stand-in run: the name (the one capitalised word) is PER when most of its intra
    neighbours are red photos (image ids listed in ``red``), LOC otherwise; it counts its calls."""

    name, head, reads_neighbours, relations, fingerprint = "vote", "vote", True, ("intra",), "v1"

    def __init__(self, explorer, red):
        self.explorer, self.red, self.calls = explorer, set(red), 0

    def neighbours(self, sample):
        return {"intra": self.explorer.graphs.neighbours(sample.id, "intra")}

    def retag(self, sample, variants):
        self.calls += 1
        out = []
        for v in variants:
            nbs = (v.neighbours or self.neighbours(sample))["intra"]
            t = "PER" if sum(i in self.red for i, _ in nbs) * 2 > len(nbs) else "LOC"
            tags = ["B-" + t if w[:1].isupper() else "O" for w in sample.tokens]
            out.append(Retagged(tags, [{"type": t, "token_start": j, "token_end": j + 1, "confidence": 1.0}
                                       for j, g in enumerate(tags) if g != "O"]))
        return out


@pytest.fixture
def voting(decided, tmp_path):
    from tests.retrieval.explore.conftest import read_splits, rows_of
    from index.artifact import load_index
    from retrieval.cache import GraphSettings
    from retrieval.explore import Explorer

    ex = Explorer.build(read_splits(decided["files"], decided["images"]), load_index(decided["index"]),
                        GraphSettings(k=3, relations=("intra",)), decided["root"] / "graphs", images=decided["images"])
    red = [r["id"] for r in rows_of(decided["files"]["train"]) if r["colour"] == "red"]
    ex.retagger = ColourVote(ex, red)
    ex.cache_dir = str(tmp_path / "cache")
    return ex


def test_counterfactuals_are_computed_once_and_read_back_from_the_cache(voting):
    assert isinstance(voting.retagger, Retagger)
    post = "test-000"                                                         # red: PER
    first = counterfactuals(voting, post)
    assert first["cached"] is False and voting.retagger.calls == 1
    assert first["variants"][0]["tags"][[w[:1].isupper() for w in first["tokens"]].index(True)] == "B-PER"
    kinds = {v["kind"]: v for v in first["variants"]}
    assert kinds["oracle"]["changed_tags"] == []                              # red posts' photos: still PER
    assert kinds["none"]["changed_tags"] and kinds["none"]["tags"].count("B-LOC") == 1
    again = counterfactuals(voting, post)
    assert again["cached"] is True and voting.retagger.calls == 1
    assert again["variants"] == first["variants"]
    counterfactuals(voting, post, seed=1)                                     # another draw: another entry
    assert voting.retagger.calls == 2


def test_counterfactuals_without_a_run_say_how_to_get_one(explorer):
    with pytest.raises(UserError, match="--run"):
        counterfactuals(explorer, "test-image_decided-000")


def test_load_retagger_finds_the_rgcn_entry_point_or_says_what_is_missing(decided, monkeypatch):
    r = load_retagger(decided["run"], images=decided["images"])
    assert type(r).__module__ == "rgcn.explain" and r.head == "rgcn" and r.reads_neighbours
    import importlib.metadata as md

    monkeypatch.setattr(md, "entry_points", lambda group=None: [])
    with pytest.raises(UserError, match="rgcn_mner.retaggers"):
        load_retagger(decided["run"])


# --------------------------------------------------------------------------- the real run
def test_as_built_tags_are_the_tagging_apis(retagger, decided_explorer):
    """The re-tagger's own path through the model gives what rgcn.api tags (tags, and confidences
    up to float noise: the API pads the six posts to one batch)."""
    samples = list(decided_explorer.splits["test"])[:6]
    api, _, _ = retagger.tagger.tag_samples(samples)
    for s, a in zip(samples, api):
        r = retagger.retag(s, [Variant("as built", "built")])[0]
        assert r.tags == a.tags
        assert [e["confidence"] for e in r.entities] == pytest.approx([e["confidence"] for e in a.entities], abs=1e-3)


def test_edited_graphs_hold_exactly_the_given_neighbours(retagger, decided_explorer):
    from rgcn.explain import EditedGraphs

    s = decided_explorer.sample("test-003")
    samples = retagger._variant_samples(s, [Variant("x", "built")])          # post id cf:0
    base = retagger._graphs(samples)
    pick = [(base.ids[5], 0.7), (base.ids[9], 0.2)]
    g = EditedGraphs(base, {"cf:0": {"intra": pick, "inter": []}})
    intra, inter = g.graph("cf:0", "intra"), g.graph("cf:0", "inter")
    assert intra.neighbour_rows.tolist() == [5, 9] and inter.neighbour_rows.tolist() == []
    assert torch.equal(intra.x[1:], base.node_features[[5, 9]])
    own = int(base.image_rows[base.post_index["cf:0"]])
    assert own >= 0 and torch.equal(intra.x[0], base.node_features[own])               # the own photo stays
    assert sorted(intra.edge_weight.tolist()) == pytest.approx([0.2, 0.2, 0.7, 0.7])
    assert inter.edge_index.shape[1] == 0
    g2 = EditedGraphs(base, {"cf:0": {"intra": [("not-an-image", 1.0)]}})
    assert g2.graph("cf:0", "intra").neighbour_rows.tolist() == [] and g2.missing == {"not-an-image"}


def test_edits_reach_the_model(retagger, decided_explorer):
    """Different neighbours give different emissions (the edit is not ignored)."""
    s = decided_explorer.sample("test-001")
    built = retagger.neighbours(s)
    vs = [Variant("as built", "built", built), Variant("none", "none", {r: [] for r in built}), Variant("b", "built")]
    out = retagger.retag(s, vs)
    conf = [[e["confidence"] for e in o.entities] for o in out]
    assert out[0].tags == out[2].tags and conf[0] == pytest.approx(conf[2], abs=1e-5)
    assert conf[0] != pytest.approx(conf[1], abs=1e-3)


def test_on_the_image_decided_set_the_photo_and_the_neighbours_decide_the_type(decided_explorer):
    """Swapping the photo for one of the other colour flips the name's type on most test posts,
    and on some post a graph edit alone (the own photo kept) changes a tag."""
    flips, graph_changes = 0, 0
    posts = [s.id for s in decided_explorer.splits["test"]]
    for pid in posts:
        cf = counterfactuals(decided_explorer, pid)
        kinds = {v["kind"]: v for v in cf["variants"]}
        at = decided_explorer.sample(pid).meta["image_decided"][0][0]
        before, after = kinds["built"]["tags"][at], kinds["photo_swapped"]["tags"][at]
        flips += before[2:] in ("PER", "LOC") and after[2:] in ("PER", "LOC") and before != after
        graph_changes += any(v["changed_tags"] for v in cf["variants"]
                             if v["kind"] in ("leave_out", "none", "random", "oracle"))
    assert flips >= 0.8 * len(posts)
    assert graph_changes >= 1


def test_attached_graphs_spare_the_graph_build_and_agree_with_it(decided, tmp_path):
    """The explorer's cached graphs (here with a third relation the run does not read) are
    the run's own: re-tagging reads them and builds nothing, with the tags and confidences a
    build gives; graphs of another setting are not taken."""
    from index.artifact import load_index
    from retrieval.cache import GraphSettings
    from retrieval.explore import Explorer
    from tests.retrieval.explore.conftest import read_splits

    r = load_retagger(decided["run"], images=decided["images"])
    splits = read_splits(decided["files"], decided["images"])
    ex = Explorer.build(splits, load_index(decided["index"]), GraphSettings(k=3), tmp_path / "g", retagger=r,
                        images=decided["images"])
    other = Explorer.build(splits, load_index(decided["index"]), GraphSettings(k=2), tmp_path / "g")
    assert r._known == [ex.graphs] and not r.attach_graphs(other.graphs)
    s = ex.sample("test-006")
    photo = str(decided["images"] / "train-001.png")                 # another post's photo (blue)
    vs = [Variant("as built", "built"), Variant("none", "none", {"inter": [], "intra": []}),
          Variant("removed", "photo_removed", image=None), Variant("swapped", "photo_swapped", image=photo)]
    built = r._graphs
    r._graphs = lambda samples: pytest.fail("a graph build where the attached graphs hold the post")
    fast, nb = r.retag(s, vs), r.neighbours(s)
    r._graphs = built
    renamed = replace(s, id="not-in-the-graphs")
    slow, nb_slow = r.retag(renamed, vs), r.neighbours(renamed)
    assert nb.keys() == nb_slow.keys()               # same neighbours; scores within float32 rounding
    for rel in nb:
        assert [i for i, _ in nb[rel]] == [i for i, _ in nb_slow[rel]]
        assert [x for _, x in nb[rel]] == pytest.approx([x for _, x in nb_slow[rel]], abs=1e-6)
    for a, b in zip(fast, slow):
        assert a.tags == b.tags
        assert [e["confidence"] for e in a.entities] == pytest.approx([e["confidence"] for e in b.entities], abs=1e-4)
