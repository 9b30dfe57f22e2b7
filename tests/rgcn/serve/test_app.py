"""rgcn/serve/app.py through the TestClient, with a stand-in tagger (tests/rgcn/serve/fake.py)."""
import re
import threading
import time

import pytest
from PIL import Image

from benchmarks.serve_bad_inputs import GOOD, photo_bytes
from rgcn.serve import cli
from rgcn.serve.app import Settings, segments

from .conftest import make_client
from .fake import FakeTagger

EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:[a-z]+:)?//""", re.I)


def test_tag_json_and_upload(client):
    r = client.post("/tag", json={**GOOD, "image": "photo.jpg", "id": "p1"})
    assert r.status_code == 200
    out = r.json()
    assert out["id"] == "p1" and out["image"] == "used"
    assert [(e["text"], e["type"]) for e in out["entities"]] == [("Look", "PER"), ("Zelby", "PER"), ("Paris", "LOC")]
    assert all(GOOD["text"][e["start"]:e["end"]] == e["text"] for e in out["entities"])
    assert set(out["timings"]) == {"queue_ms", "model_ms", "batch_size", "total_ms"}
    r = client.post("/tag", data={"text": GOOD["text"]}, files={"image": ("p.png", photo_bytes(fmt="PNG"), "image/png")})
    assert r.status_code == 200 and r.json()["image"] == "embedded"
    r = client.post("/tag", data={"text": GOOD["text"]})
    assert r.status_code == 200 and r.json()["image"] == "none"


def test_batch_keeps_the_order(client):
    posts = [{"text": f"Hello Name{i}x"} for i in range(5)] + [{"text": "in Rome", "image": "101.jpg"}]
    r = client.post("/tag/batch", json=posts)
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["text"] for x in res] == [p["text"] for p in posts]
    assert res[-1]["entities"][0]["type"] == "LOC" and res[-1]["image"] == "used"
    assert client.post("/tag/batch", json={"posts": posts[:2]}).status_code == 200


def test_a_post_that_breaks_the_tagger_fails_alone(images):
    from fastapi.testclient import TestClient

    tagger = FakeTagger()
    with make_client(images, tagger, batch_wait_ms=300) as c, TestClient(c.app, raise_server_exceptions=False) as c:
        texts = [GOOD["text"], "boom", "boom-user", "Hello Rome"]
        status = {}

        def send(t):
            status[t] = c.post("/tag", json={"text": t})

        threads = [threading.Thread(target=send, args=(t,)) for t in texts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert tagger.calls[0] == 4                         # they shared a batch, which failed
        assert {t: r.status_code for t, r in status.items()} == {GOOD["text"]: 200, "boom": 500,
                                                                 "boom-user": 422, "Hello Rome": 200}
        assert "this post cannot be tagged" in status["boom-user"].json()["detail"]
        assert c.post("/tag", json=GOOD).status_code == 200


def test_concurrent_requests_are_batched(images):
    class Slow(FakeTagger):
        def tag_many(self, posts, batch_size=64):
            time.sleep(0.05)
            yield from super().tag_many(posts, batch_size)

    tagger = Slow()
    with make_client(images, tagger, max_batch=8, batch_wait_ms=20) as c:
        out = []

        def send(i):
            out.append(c.post("/tag", json={"text": f"post Name{i}x"}).json())

        threads = [threading.Thread(target=send, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    assert len(out) == 24
    assert max(tagger.calls) == 8 and len(tagger.calls) <= 12       # 24 posts in batches of up to 8
    assert sum(tagger.calls) == 24
    assert {o["timings"]["batch_size"] for o in out} - {1}
    assert tagger.threads == {next(iter(tagger.threads))}          # one thread runs the model


def test_page_highlights_entities_and_shows_neighbours(client):
    page = client.get("/")
    assert page.status_code == 200 and 'enctype="multipart/form-data"' in page.text
    r = client.post("/", data={"text": GOOD["text"]}, files={"image": ("p.jpg", photo_bytes(), "image/jpeg")})
    assert r.status_code == 200
    assert re.search(r'<mark class="ent ent-per" data-type="PER" data-confidence="0.900"[^>]*>Zelby<', r.text)
    assert '<mark class="ent ent-loc" data-type="LOC"' in r.text
    assert r.text.count('<li class="neighbour') == 2 and 'src="/thumb/101"' in r.text and 'src="/thumb/102"' in r.text
    assert "embedded" in r.text
    err = client.post("/", data={"text": ""})
    assert err.status_code == 422 and 'id="error"' in err.text and "the post is empty" in err.text
    err = client.post("/", data={"text": "word " * 20_000})
    assert err.status_code == 413 and "the post has 100,000 characters" in err.text


@pytest.mark.parametrize("head, says", [("text", "text only"), ("maf", "p(match)"), ("bga", "no photo was read"),
                                        ("ita", "visual context")])
def test_page_shows_each_heads_evidence(images, head, says):
    evidence = {"text": {"head": "text"}, "maf": {"head": "maf", "p_match": 0.81},
                "bga": {"head": "bga", "photo_read": False, "view": "generated"},
                "ita": {"head": "ita", "view": "multimodal", "context": ["cat", "sofa"]}}[head]

    class WithEvidence(FakeTagger):
        def _one(self, post):
            res = super()._one(post)
            res.evidence = evidence
            return res

    with make_client(images, WithEvidence(head)) as c:
        r = c.post("/", data={"text": GOOD["text"]})
    assert r.status_code == 200 and says in r.text
    if head == "ita":
        assert '<span class="word">cat</span>' in r.text
    if head == "maf":
        assert "0.810" in r.text


def test_thumbnails_come_from_the_folders_only(client, images):
    r = client.get("/thumb/101")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert client.get("/thumb/102").status_code == 200
    for bad in ("link", "..%2Foutside", "%2Fetc%2Fpasswd", "%2E%2E", "missing"):
        r = client.get(f"/thumb/{bad}")
        assert r.status_code in (403, 404), bad
        assert r.content[:2] != b"\xff\xd8", bad
    assert client.get("/thumb/link").status_code == 403
    assert client.get("/thumb/../outside").status_code == 404


def test_pages_ask_nothing_of_another_host(client):
    for url in ("/", "/docs"):
        html = client.get(url).text
        assert not EXTERNAL.search(html), EXTERNAL.search(html)
        for ref in re.findall(r"""(?:src|href)="([^"]+)\"""", html):
            assert client.get(ref).status_code == 200, ref
    api = client.get("/openapi.json").json()
    assert set(api["paths"]["/tag"]["post"]["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert "/tag/batch" in api["paths"] and "/health" in api["paths"]
    docs = client.get("/docs").text
    assert "/tag/batch" in docs and "swagger" not in docs.lower()


def test_a_body_over_the_limit_is_refused_whether_or_not_it_says_its_length(client):
    big = photo_bytes() + b"\0" * 3_000_000
    r = client.post("/tag", data={"text": "x"}, files={"image": ("b.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and "the request body" in r.json()["detail"]

    def chunks():
        for _ in range(40):
            yield b"\0" * 100_000

    r = client.post("/tag", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    assert client.post("/tag", json=GOOD).status_code == 200


def test_health(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["heads"] == ["rgcn"] and h["limits"]["max_upload_mb"] == 1


def test_segments_cover_the_text():
    text = "Look at Zelby today"
    ents = [{"start": 8, "end": 13, "type": "PER"}]
    assert segments(text, ents) == [("Look at ", None), ("Zelby", ents[0]), (" today", None)]
    assert "".join(p for p, _ in segments(text, ents)) == text


def test_settings_refuse_nonsense(tmp_path):
    from data.errors import UserError

    with pytest.raises(UserError, match="--max-upload-mb"):
        Settings(max_upload_mb=0)
    with pytest.raises(UserError, match="not a folder"):
        Settings(images=str(tmp_path / "nope"))


def test_another_host_warns_that_there_is_no_authentication(monkeypatch, capsys, images):
    import uvicorn

    import rgcn.serve.app as app_module

    bound = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: bound.update(host=host, port=port))
    monkeypatch.setattr(app_module, "create_app", lambda settings, explorer=None: make_client(images).app)
    p = __import__("argparse").ArgumentParser()
    cli.add_arguments(p)
    assert cli.serve(p.parse_args(["--run", "r"])) == 0
    assert bound["host"] == "127.0.0.1" and "no authentication" not in capsys.readouterr().err
    assert cli.serve(p.parse_args(["--run", "r", "--host", "0.0.0.0"])) == 0
    assert bound["host"] == "0.0.0.0" and "no authentication" in capsys.readouterr().err


def test_threads_reach_torch_before_the_app_is_made(monkeypatch, images):
    import torch
    import uvicorn

    import rgcn.serve.app as app_module
    from data.errors import UserError

    seen = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: None)
    monkeypatch.setattr(app_module, "create_app", lambda settings, explorer=None: seen.append(torch.get_num_threads())
                        or given.append(settings) or make_client(images).app)
    given = []
    p = __import__("argparse").ArgumentParser()
    cli.add_arguments(p)
    before = torch.get_num_threads()
    try:
        assert cli.serve(p.parse_args(["--run", "r", "--threads", "1"])) == 0 and seen == [1]
        assert given[0].threads == 1 and given[0].model_process               # ... and to the model's process
        torch.set_num_threads(before)
        assert cli.serve(p.parse_args(["--run", "r"])) == 0 and seen == [1, before]     # left as it was
        with pytest.raises(UserError, match="--threads"):
            cli.serve(p.parse_args(["--run", "r", "--threads", "0"]))
        assert len(seen) == 2
    finally:
        torch.set_num_threads(before)


def test_make_demo_ends_with_the_command_that_serves_the_rgcn_run():
    import shlex
    import shutil
    import subprocess
    from pathlib import Path

    from rgcn.__main__ import main

    root = Path(__file__).resolve().parents[3]
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-s", "demo", "STAMP=/dev/null"], cwd=root, capture_output=True, text=True,
                         timeout=60).stdout.strip().splitlines()
    last = shlex.split(out[-1])                             # echo "  .venv/bin/python -m rgcn serve ..."
    argv = last[-1].split()
    assert argv[1:5] == ["-m", "rgcn", "serve", "--run"] and argv[5] == "runs/demo/rgcn/seed13"
    with pytest.raises(SystemExit) as e:                    # the command's arguments parse
        main([*argv[3:], "--help"])
    assert e.value.code == 0


def test_uploads_are_decoded_off_the_event_loop(images, monkeypatch):
    """An upload's pixels are decoded on the checking thread (a big photo does not hold up
    other requests), a path's header is read in place, and refusals reach the client."""
    import rgcn.serve.app as app_module

    where = []
    for name in ("check_image_file", "check_upload"):
        real = getattr(app_module, name)
        monkeypatch.setattr(app_module, name, lambda *a, _real=real, **kw: where.append(
            threading.current_thread().name) or _real(*a, **kw))
    with make_client(images) as c:
        assert c.post("/tag", json={"text": "hello Paris", "image": "photo.jpg"}).status_code == 200
        assert c.post("/tag", data={"text": "hello Rome"}, files={"image": ("p.jpg", photo_bytes(), "image/jpeg")}
                      ).status_code == 200
        assert c.post("/tag/batch", json=[{"text": "one Paris", "image": "101.jpg"}]).status_code == 200
        cut = c.post("/tag", data={"text": "hello"}, files={"image": ("p.jpg", photo_bytes()[:300], "image/jpeg")})
        assert cut.status_code == 422 and "truncated" in cut.json()["detail"]
    assert len(where) == 4 and [name.startswith("checks") for name in where] == [False, True, False, True]


def test_a_run_that_reads_no_photo_never_opens_one_but_keeps_paths_inside(images, monkeypatch):
    import rgcn.serve.app as app_module

    opened = []
    real = app_module.check_image_file
    monkeypatch.setattr(app_module, "check_image_file", lambda *a, **kw: opened.append(a) or real(*a, **kw))
    text_only = FakeTagger(head="text")
    text_only.reads_photos = False
    (images / "bomb.png").write_bytes(__import__("benchmarks.serve_bad_inputs", fromlist=["bomb_png"]).bomb_png())
    with make_client(images, text_only) as c:
        assert c.post("/tag", json={"text": "hello Paris", "image": "bomb.png"}).status_code == 200
        assert c.post("/tag", json={"text": "hello Paris", "image": "../outside.jpg"}).status_code == 403
        assert c.post("/tag", json={"text": "hello Paris", "image": "link.jpg"}).status_code == 403
    assert not opened
    with make_client(images, FakeTagger()) as c:                    # a run that reads photos checks them
        assert c.post("/tag", json={"text": "hello Paris", "image": "bomb.png"}).status_code == 413
    assert len(opened) == 1


def test_the_serve_options_leave_the_environment_as_it_was():
    """rgcn's CLI takes the explorer's graph options from retrieval's; importing them sets nothing."""
    import subprocess
    import sys

    code = ("import os, argparse; before = dict(os.environ); from rgcn.serve import cli; "
            "cli.add_arguments(argparse.ArgumentParser()); "
            "print(sorted(k for k in os.environ if os.environ.get(k) != before.get(k)))")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                         cwd=__import__("pathlib").Path(__file__).resolve().parents[3])
    assert out.stdout.strip() == "[]", out.stdout
