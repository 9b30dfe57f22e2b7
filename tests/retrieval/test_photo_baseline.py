"""The photo-only kNN baseline on two clusters of seeded random vectors."""
import numpy as np
import pytest

import retrieval.photo_baseline as pb
from data.corpus import Sample
from index.artifact import IndexArtifact
from retrieval.photo_baseline import photo_knn_types, retype_targets, vote
from retrieval.search import RetrievalError

CENTRES = {"A": (1.0, 0.0, 0.0), "B": (0.0, 1.0, 0.0)}


def _post(pid, etype, image_key=None, **meta):
    """``look at <name> now``: the target is word 2, of gold type ``etype``."""
    tags = ["O", "O", f"B-{etype}", "O"]
    return Sample(pid, ["look", "at", "Zelby", "now"], tags, image_key=image_key,
                  meta={"kind": "image_decided", "target": [[2, 3]], **meta})


def _artifact(images: dict[str, str], posts: dict[str, str]) -> IndexArtifact:
    """An index of ``image id -> cluster`` vectors (centre + noise, L2-normalised)."""
    import faiss

    rng = np.random.default_rng(0)
    ids = list(images)
    x = np.stack([np.asarray(CENTRES[c]) + rng.normal(0, 0.05, 3) for c in images.values()]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(3)
    index.add(x)
    return IndexArtifact("<test>", {"embedder": "fake", "dim": 3}, ids, x, index, posts=posts)


# Training: a0 is in cluster A but typed LOC (one odd post), a1-a5 are A and PER, b0-b5 are
# B and LOC; v0-v5 (valid posts, never in the pool) sit in cluster A. t0 and t2 have new images
# of A and B; t1 uses a0's photo (found through the index's posts map); t3 names an image the
# index lacks; t4's image was dropped.
IMAGES = {**{f"a{i}": "A" for i in range(6)}, **{f"b{i}": "B" for i in range(6)},
          **{f"v{i}": "A" for i in range(6)}, "t0": "A", "t2": "B", "t4": "A"}
TRAIN = ([_post("a0", "LOC", "a0")] + [_post(f"a{i}", "PER", f"a{i}") for i in range(1, 6)]
         + [_post(f"b{i}", "LOC", f"b{i}") for i in range(6)])
VALID = [_post(f"v{i}", "LOC", f"v{i}") for i in range(6)]
TEST = [_post("t0", "PER", "t0"), _post("t1", "PER"), _post("t2", "LOC", "t2"), _post("t3", "PER", "t3"),
        _post("t4", "PER", "t4", image_dropped=True)]


@pytest.fixture
def artifact():
    return _artifact(IMAGES, {"t1": "a0"})


def test_each_post_takes_its_neighbours_vote(artifact):
    assert photo_knn_types(artifact, TRAIN, TEST, k=3) == ["PER", "PER", "LOC", None, None]


def test_a_post_never_votes_for_itself(artifact):
    """With k=1 the odd training post a0 (and t1, which uses its photo) would be typed LOC
    by its own image; their nearest other training image is a PER one."""
    assert photo_knn_types(artifact, TRAIN, TRAIN[:2], k=1) == ["PER", "PER"]
    assert photo_knn_types(artifact, TRAIN, [TEST[1]], k=1) == ["PER"]


def test_only_training_images_are_neighbours(artifact, monkeypatch):
    """Every image the vote reads is a training post's, never the query's own: the valid
    posts (LOC, in cluster A next to t0) would otherwise outvote the training PER posts."""
    seen, search = [], pb.search

    def spy(art, queries, k, exclude_ids=None, pool=None, **kw):
        D, I = search(art, queries, k, exclude_ids, pool, **kw)
        seen.extend((own, [art.ids[r] for r in row if r >= 0]) for own, row in zip(exclude_ids, I))
        return D, I

    monkeypatch.setattr(pb, "search", spy)
    everyone = TRAIN + VALID + TEST
    types = photo_knn_types(artifact, TRAIN, everyone, k=6)
    train_images = {s.image_key for s in TRAIN}
    assert len(seen) == len(everyone) - 2                       # t3 and t4 have no image to ask with
    assert all(set(n) <= train_images and own not in n and len(n) == 6 for own, n in seen)
    assert types[len(TRAIN):len(TRAIN) + len(VALID)] == ["PER"] * 6


def test_shared_photos_vote_once_per_post():
    """Two LOC training posts share photo s; three PER posts have a photo each. Query q's
    neighbours by angle: s (5 deg), p0 (10), p1 (20), p2 (30)."""
    import faiss

    angles = {"q": 0, "s": 5, "p0": 10, "p1": 20, "p2": 30}
    x = np.array([[np.cos(np.deg2rad(a)), np.sin(np.deg2rad(a)), 0] for a in angles.values()], np.float32)
    index = faiss.IndexFlatIP(3)
    index.add(x)
    art = IndexArtifact("<test>", {"embedder": "fake", "dim": 3}, list(angles), x, index,
                        posts={"l0": "s", "l1": "s"})
    train = [_post("l0", "LOC"), _post("l1", "LOC")] + [_post(f"p{i}", "PER", f"p{i}") for i in range(3)]
    query = [_post("x", "PER", "q")]
    assert photo_knn_types(art, train, query, k=2) == ["LOC"]          # s: 2 LOC votes, p0: 1 PER
    assert photo_knn_types(art, train, query, k=4) == ["PER"]          # 2 LOC against 3 PER


def test_vote_ties_go_to_the_nearer_neighbour():
    votes = {"i": {"PER": 1}, "j": {"LOC": 1}, "k": {"ORG": 2}}
    assert vote(["i", "j"], votes) == "PER"
    assert vote(["j", "i"], votes) == "LOC"
    assert vote(["j", "k"], votes) == "ORG"
    assert vote([], votes) is None


def test_no_voter_is_an_error(artifact):
    untargeted = [Sample(s.id, s.tokens, s.tags, image_key=s.image_key) for s in TRAIN]
    with pytest.raises(RetrievalError, match="none of the 12 training posts has both an image"):
        photo_knn_types(artifact, untargeted, TEST)


def test_retype_targets_changes_only_the_target_span():
    posts = [
        Sample("p", ["Zelby", "Brevanne", "in", "Paris"], meta={"target": [[0, 2]]}),
        Sample("q", ["Mivra", "Paris"], meta={"target": [[0, 1]]}),
        Sample("r", ["Ostrel", "today"], meta={"target": [[0, 1]]}),
        Sample("s", ["Rellow", "rocks"], meta={"target": [[0, 1]]}),
        Sample("u", ["Tessiko", "Brevanne"], meta={"target": [[0, 2]]}),
    ]
    pred = [["B-PER", "I-PER", "O", "B-LOC"],     # target retyped, Paris kept
            ["B-PER", "I-LOC"],                   # retyped to LOC: Paris stays a span of its own
            ["B-ORG", "O"],                       # no photo: kept
            ["O", "O"],                           # target not predicted: nothing to retype
            ["B-PER", "O"]]                       # a fragment of the target: kept
    out = retype_targets(posts, pred, ["ORG", "LOC", None, "PER", "LOC"])
    assert out == [["B-ORG", "I-ORG", "O", "B-LOC"], ["B-LOC", "B-LOC"], ["B-ORG", "O"], ["O", "O"],
                   ["B-PER", "O"]]
    assert pred[0] == ["B-PER", "I-PER", "O", "B-LOC"]          # the input is not changed
    with pytest.raises(ValueError, match="5 posts, 4 predicted tag sequences and 5 types"):
        retype_targets(posts, pred[:4], [None] * 5)
