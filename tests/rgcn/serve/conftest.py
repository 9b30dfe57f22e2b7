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
