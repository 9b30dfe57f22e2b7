"""Every bad input of benchmarks/serve_bad_inputs.py through the TestClient: its 4xx and
message, then a good post answered as usual."""
import pytest

from benchmarks.serve_bad_inputs import CASES, GOOD, probe


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_bad_input_gets_its_4xx_and_the_next_post_is_tagged(client, case):
    row = probe(client, case, limit_mb=1)
    assert (row["status"], case.says in str(row["message"])) == (case.status, True), row["message"]
    assert 400 <= row["status"] < 500
    assert row["next_status"] == 200 and ("Zelby", "PER") in row["next_entities"]


def test_every_message_says_what_to_change(client):
    for case in CASES:
        message = probe(client, case, limit_mb=1)["message"]
        assert ";" in message and len(message.split(";")[-1].strip()) > 8, (case.name, message)


def test_the_same_bad_inputs_in_a_batch_name_the_post(client):
    r = client.post("/tag/batch", json=[GOOD, {"text": ""}])
    assert r.status_code == 422 and r.json()["detail"].startswith("posts[1].text: the post is empty")
    r = client.post("/tag/batch", json=[GOOD, {"text": "x", "image": "../outside.jpg"}])
    assert r.status_code == 403 and r.json()["detail"].startswith("posts[1].image")
    r = client.post("/tag/batch", json={"posts": [GOOD, {"image": "photo.jpg"}]})
    assert r.status_code == 422 and "posts[1].text: the field is missing" in r.json()["detail"]
    assert client.post("/tag/batch", json=[]).status_code == 422
    assert client.post("/tag/batch", json=[GOOD] * 257).status_code == 413
