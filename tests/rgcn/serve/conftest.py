import pytest
from fastapi.testclient import TestClient

from benchmarks.serve_bad_inputs import photo_bytes, prepare_images
from rgcn.serve.app import Settings, create_app

from .fake import FakeTagger


@pytest.fixture
def images(tmp_path):
    """An images folder with photo.jpg, 101.jpg, 102.png and link.jpg (a symlink out of it)."""
    folder = prepare_images(tmp_path)
    (folder / "101.jpg").write_bytes(photo_bytes())
    (folder / "102.png").write_bytes(photo_bytes(fmt="PNG"))
    return folder


def make_client(images, tagger=None, **settings):
    app = create_app(Settings(images=str(images), **settings), tagger or FakeTagger())
    return TestClient(app)


@pytest.fixture
def client(images):
    with make_client(images, max_upload_mb=1) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_rgcn(tmp_path_factory, tiny_encoder):
    """A real rgcn run (48 posts, 5 epochs, tiny encoder) over the colour index of tests/colour.py:
    ``root/runs/rgcn``, its photos in ``root/data/images`` (the index's image folder), and
    ``root/post.json``: the first training post it finds an entity in (text, image)."""
    import json

    from rgcn import load_tagger

    from index.__main__ import main as index_main
    from tests.colour import train_colour_run, write_image_decided

    root = tmp_path_factory.mktemp("serve_rgcn")
    splits = write_image_decided(root / "data", sizes=(("train", 48), ("valid", 8), ("test", 8)))
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(root / "data" / "images"),
                       "--data", *splits.values(), "--out", str(root / "index")]) == 0
    train_colour_run(root, splits, tiny_encoder, "rgcn", 5, "head.name=rgcn", f"head.options.index={root / 'index'}",
                     "head.options.k=3", "head.options.gcn_hidden=16", "head.options.dropout=0.0")
    rows = [json.loads(line) for line in open(splits["train"])]
    posts = [{"text": " ".join(r["tokens"]), "image": r["image"]} for r in rows[:16]]
    tagger = load_tagger(str(root / "runs" / "rgcn"), images=str(root / "data" / "images"))
    post = next(p for p, res in zip(posts, tagger.tag_many(posts)) if res.entities)
    (root / "post.json").write_text(json.dumps(post))
    return root
