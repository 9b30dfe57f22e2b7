"""retrieval/explore/collection.py and card.py: a post's neighbours with what the card shows,
and the routes of the app (card, search, thumbnails, JSON)."""
import json
import logging
import random

import numpy as np
import pytest
from fastapi.testclient import TestClient

from retrieval.cache import GraphSettings
from retrieval.explore.app import create_app
from retrieval.explore.card import card_data
from retrieval.explore.collection import search_space
import tests.colour  # noqa: F401  (registers the test_colour embedder)
from tests.retrieval.explore.conftest import DUPLICATE, make_explorer, rows_of

HTML = {"accept": "text/html"}


def colours(collection) -> dict:
    """image id -> colour of the photo (None: no photo)."""
    return {r["id"]: r["colour"] for f in collection["files"].values() for r in rows_of(f)}


def test_neighbour_rows_are_the_graphs_neighbours_with_rank_kept_and_margin(explorer):
    for pid in explorer.samples:
        for rel in explorer.graphs.relations:
            rows = explorer.neighbour_rows(pid, rel)
            assert [(r["image_id"], r["score"]) for r in rows] == explorer.graphs.neighbours(pid, rel)
            assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
            assert all(r["kept"] and r["margin"] == pytest.approx(r["score"]) for r in rows)


def test_a_threshold_shows_the_dropped_neighbours_with_their_margin(collection):
    ex = make_explorer(collection, GraphSettings(k=3, threshold=0.5))
    pid = "test-image_decided-000"
    inter = ex.neighbour_rows(pid, "inter")                      # visual-text scores are far below 0.5
    assert len(inter) == 3 and ex.graphs.neighbours(pid, "inter") == []
    assert all(not r["kept"] and r["margin"] < 0 and r["margin"] == pytest.approx(r["score"] - 0.5) for r in inter)
    intra = ex.neighbour_rows(pid, "intra")
    assert intra and all(r["kept"] and r["margin"] > 0 for r in intra)
    assert [(r["image_id"], r["score"]) for r in intra] == ex.graphs.neighbours(pid, "intra")


def test_each_neighbour_names_its_posts_and_marks_the_shared_types(explorer, collection):
    rows = {r["id"]: r for f in collection["files"].values() for r in rows_of(f)}

    def types(pid):
        return {t[2:] for t in rows[pid]["tags"] if t.startswith("B-")}
    for pid in explorer.samples:
        for rel in explorer.graphs.relations:
            for n in explorer.neighbour_rows(pid, rel):
                owners = [p for p, r in rows.items() if r["image"] and r["image"].rsplit(".", 1)[0] == n["image_id"]]
                assert [p["id"] for p in n["posts"]] == owners
                for p in n["posts"]:
                    assert set(p["types"]) == types(p["id"]) and set(p["shared"]) == types(p["id"]) & types(pid)


def test_near_duplicates_are_flagged_by_file_hash_and_by_cosine(explorer, collection):
    post, copy_of = DUPLICATE
    hit = [n for n in explorer.neighbour_rows(copy_of, "intra") if n["image_id"] == post]
    assert hit and "same file hash" in hit[0]["duplicate_why"]
    colour = colours(collection)
    seen = set()
    for pid in explorer.samples:
        for rel in explorer.graphs.relations:
            for n in explorer.neighbour_rows(pid, rel):
                by_cosine = "cosine" in n["duplicate_why"]
                # the mean-colour embedder: same colour -> cosine ~1, red vs blue -> about -0.33
                assert by_cosine == (colour[pid] is not None and colour[pid] == colour[n["image_id"]])
                if n["image_id"] not in (post, copy_of) or pid not in (post, copy_of):
                    assert "same file hash" not in n["duplicate_why"]
                seen.add(by_cosine)
    assert seen == {True, False}


def random_colour_collection(root, n_train=200, n_test=12, seed=0):
    """Posts whose photos have random colours (diverse vectors), for an approximate index."""
    from PIL import Image

    rng = random.Random(seed)
    (root / "images").mkdir(parents=True)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        lines = []
        for i in range(n):
            pid = f"{split}-{i:03d}"
            Image.new("RGB", (16, 16), tuple(rng.randrange(256) for _ in range(3))).save(root / "images" / f"{pid}.png")
            lines.append(json.dumps({"id": pid, "tokens": ["hello", "Zelby"], "tags": ["O", "B-PER"],
                                     "image": f"{pid}.png"}))
        files[split] = root / f"{split}.jsonl"
        files[split].write_text("\n".join(lines) + "\n")
    return files


def test_on_an_approximate_index_the_neighbours_an_exact_search_would_not_return_are_flagged(tmp_path):
    from data.corpus import read_corpus
    from index.__main__ import main as index_main
    from index.artifact import load_index
    from retrieval.explore import Explorer

    files = random_colour_collection(tmp_path / "data")
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(tmp_path / "data" / "images"),
                       "--data", *map(str, files.values()), "--out", str(tmp_path / "index"),
                       "--factory", "IVF4,Flat", "--nprobe", "1"]) == 0
    artifact = load_index(tmp_path / "index")
    ex = Explorer.build({n: read_corpus(p, tmp_path / "data" / "images") for n, p in files.items()}, artifact,
                        GraphSettings(k=5, relations=("intra",)), tmp_path / "graphs", images=tmp_path / "data" / "images")
    emb = artifact.embeddings / np.linalg.norm(artifact.embeddings, axis=1, keepdims=True)
    row = {i: r for r, i in enumerate(artifact.ids)}
    train = [i for i in artifact.ids if i.startswith("train")]
    flagged = 0
    for pid in (s.id for s in ex.splits["test"]):
        sims = {i: float(emb[row[i]] @ emb[row[pid]]) for i in train}
        kth = sorted(sims.values(), reverse=True)[4]                 # the exact 5th best
        for n in ex.neighbour_rows(pid, "intra"):
            assert n["exact_miss"] == (sims[n["image_id"]] < kth - 1e-6)
            flagged += n["exact_miss"]
    assert flagged >= 1                                       # one list of four searched: some are missed
    card = card_data(ex, "test-000")
    assert card["exact_index"] is False and card["relations"]["intra"]["exact_checked"] is True
    with TestClient(create_app(ex)) as c:
        page = c.get("/post/test-000").text
    assert "approximate: the neighbours of intra that an exact search" in page
    assert "searched in: image vectors, searched in the index" in page
    # inter with the direct strategy searches the index with sentence vectors: checked the same way
    features = ex.graphs.node_features.numpy()
    tq = np.random.default_rng(0).normal(size=(len(ex.graphs.post_ids), features.shape[1])).astype(np.float32)
    ex.graphs.text_queries = tq
    try:
        for pid in (s.id for s in ex.splits["test"]):
            q = tq[ex.graphs.post_index[pid]]
            sims = {i: float(features[ex._row(ex.graphs, i)] @ q) for i in train}
            assert ex.exact_neighbours(pid, "inter") == set(sorted(sims, key=lambda i: -sims[i])[:5])
        assert search_space(ex.graphs, "inter").startswith("sentence vectors in the index's image space")
    finally:
        ex.graphs.text_queries = None
    assert ex.exact_neighbours("test-000", "inter") is None and ex.exact_neighbours("test-000", "tags") is None
    assert "not the index" in search_space(ex.graphs, "inter") and "not the index" in search_space(ex.graphs, "tags")


def test_exact_indexes_flag_nothing(explorer):
    assert all(n["exact_miss"] is None for pid in explorer.samples for n in explorer.neighbour_rows(pid, "intra"))


# --------------------------------------------------------------------------- routes
@pytest.fixture(scope="module")
def client(explorer):
    with TestClient(create_app(explorer)) as c:
        yield c


def test_the_card_links_every_neighbour_to_its_card(client, explorer):
    pid = "test-image_decided-001"
    page = client.get(f"/post/{pid}", headers=HTML)
    assert page.status_code == 200 and f"post {pid}" in page.text and "kind <b>image_decided</b>" in page.text
    data = card_data(explorer, pid)
    for rel in data["relations"].values():
        for n in rel["neighbours"]:
            assert f'src="/thumb/{n["image_id"]}"' in page.text
            for p in n["posts"]:
                assert f'href="/post/{p["id"]}"' in page.text
    assert client.get(f"/post/{pid}?format=json").json() == json.loads(json.dumps(data))
    assert 'class="ent gold" data-type="LOC"' in page.text             # the gold spans are marked


def test_a_post_without_a_photo_says_so(client):
    page = client.get("/post/test-no_image-000", headers=HTML).text
    assert 'id="photo">no photo' in page and "(the post has no image)" in page


def test_unknown_posts_are_404_and_the_search_box_opens_a_card(client):
    r = client.get("/post/nope", headers=HTML)
    assert r.status_code == 404 and "is in none of the splits" in r.text
    assert client.get("/post/nope?format=json").json()["error"].startswith("post 'nope'")
    r = client.get("/search?id=test-conflicting_image-002", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/post/test-conflicting_image-002"
    assert client.get("/search?id=nope", headers=HTML).status_code == 404


def test_thumbnails_come_from_the_image_folder_only(client, collection, tmp_path):
    r = client.get("/thumb/train-image_decided-000")
    assert r.status_code == 200 and r.content[:3] == b"\xff\xd8\xff"          # a JPEG
    outside = collection["images"].parent / "secret.png"
    outside.write_bytes((collection["images"] / "train-image_decided-000.png").read_bytes())
    (collection["images"] / "link.png").symlink_to(outside)
    try:
        assert client.get("/thumb/link").status_code == 403
        for bad in ("..%2Fsecret", "%2Fetc%2Fpasswd", "%2E%2E", "nope"):
            assert client.get(f"/thumb/{bad}").status_code in (403, 404)
    finally:
        (collection["images"] / "link.png").unlink()


def test_the_home_page_and_the_nav(client):
    page = client.get("/", headers=HTML).text
    for label in ("Card search", "Triage", "A/B", "Agreement", "Map"):
        assert f">{label}</a>" in page
    assert 'href="/post/test-image_decided-000"' in page


def test_with_a_run_the_card_shows_predictions_and_runs_the_counterfactuals(decided_explorer):
    with TestClient(create_app(decided_explorer)) as c:
        page = c.get("/post/test-000", headers=HTML).text
        assert 'id="pred-text"' in page and 'id="run-cf"' in page and 'id="cf-table"' not in page
        page = c.get("/post/test-000?cf=1", headers=HTML).text
        assert 'id="cf-table"' in page and 'data-kind="photo_swapped"' in page and 'id="cf-ranking"' in page
        assert 'id="cf-table"' in c.get("/post/test-000", headers=HTML).text       # cached: shown from now on
    data = card_data(decided_explorer, "test-000")
    assert data["counterfactuals"]["cached"] and data["predicted"]


def test_serve_warns_when_listening_beyond_this_machine(explorer, monkeypatch, caplog):
    import uvicorn

    from retrieval.__main__ import parse_args
    from retrieval.explore.app import serve

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    with caplog.at_level(logging.WARNING, logger="retrieval.explore.app"):
        serve(explorer, "127.0.0.1", 1)
        assert "no authentication" not in caplog.text
        serve(explorer, "0.0.0.0", 1)
    assert "no authentication" in caplog.text and [c["host"] for c in calls] == ["127.0.0.1", "0.0.0.0"]
    assert parse_args(["explore", "--index", ".", "--data", "x"]).host == "127.0.0.1"


def test_threads_reach_torch_before_the_explorer_is_loaded(monkeypatch):
    import torch

    import retrieval.__main__ as cli
    import retrieval.explore.app as app_module
    from retrieval.explore.collection import Explorer

    seen = []
    monkeypatch.setattr(Explorer, "from_args", classmethod(lambda cls, args: seen.append(torch.get_num_threads())))
    monkeypatch.setattr(app_module, "serve", lambda explorer, host, port: None)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert cli.cmd_explore(cli.parse_args(["explore", "--index", ".", "--data", "x", "--threads", "1"])) == 0
        torch.set_num_threads(2)
        assert cli.cmd_explore(cli.parse_args(["explore", "--index", ".", "--data", "x"])) == 0
        assert seen == [1, 2]                                         # left as it was without --threads
    finally:
        torch.set_num_threads(before)
