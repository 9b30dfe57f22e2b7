"""The service over the real tagging API (rgcn.load_tagger) on a tiny trained rgcn run."""
import json

import pytest
from fastapi.testclient import TestClient

from rgcn.serve.app import Settings, create_app


@pytest.fixture(scope="module")
def real(tiny_rgcn):
    app = create_app(Settings(runs=[str(tiny_rgcn / "runs" / "rgcn")], images=str(tiny_rgcn / "data" / "images"),
                              max_upload_mb=1))
    with TestClient(app) as c:
        yield tiny_rgcn, c


def first_post(root):
    post = json.loads((root / "post.json").read_text())
    return post["text"], post["image"]


def test_json_path_upload_and_page_agree_with_the_api(real):
    from rgcn import load_tagger

    root, c = real
    text, image = first_post(root)
    data = (root / "data" / "images" / image).read_bytes()
    direct = load_tagger(str(root / "runs" / "rgcn"), images=str(root / "data" / "images")).tag(text, image=data)
    by_path = c.post("/tag", json={"text": text, "image": image}).json()
    uploaded = c.post("/tag", data={"text": text}, files={"image": (image, data, "image/png")}).json()
    assert by_path["image"] == "used" and uploaded["image"] == "embedded"
    assert uploaded["entities"] == direct.entities and uploaded["entities"]
    assert uploaded["evidence"]["head"] == "rgcn" and uploaded["evidence"]["relations"]["inter"]
    page = c.post("/", data={"text": text}, files={"image": (image, data, "image/png")}).text
    for ent in direct.entities:
        assert f'data-type="{ent["type"]}"' in page and f'>{ent["text"]}<span class="label">' in page
    for n in direct.evidence["relations"]["inter"]:
        assert f'src="/thumb/{n["image"]}"' in page
        assert c.get(f"/thumb/{n['image']}").headers["content-type"] == "image/jpeg"


def test_health_and_batch(real):
    root, c = real
    h = c.get("/health").json()
    assert h["heads"] == ["rgcn"] and h["info"]["index"] == str(root / "index")
    text, image = first_post(root)
    r = c.post("/tag/batch", json=[{"text": text, "image": image}, {"text": "no photo here"}])
    assert [x["image"] for x in r.json()["results"]] == ["used", "none"]
