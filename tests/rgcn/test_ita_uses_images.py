"""The ITA head's claims, each guarded on the tiny image-decided dataset (:mod:`tests.colour`).

Every post names one invented word typed by the colour of its photo alone (red: PER, blue:
LOC). The index is built by the mean-colour embedder, whose object tags are the words
``red``, ``green``, ``blue``: the photo's visual context is its colour's name. Only a tagger
that reads the image can type the names; the text view, which never sees it, cannot.
"""
import json

import pytest

from rgcn.compare import compare_runs
from tests.colour import (evaluate_json, image_decided_with_index, run_cli, swap_images, train_colour_run,
                          write_image_decided)

EPOCHS = 15                 # the context is read through attention: slower to learn than a gate


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_encoder):
    """text and ita runs on the same data, encoder, seed and budget."""
    root = tmp_path_factory.mktemp("ita_image_decided")
    splits = image_decided_with_index(root)
    train_colour_run(root, splits, tiny_encoder, "text", EPOCHS, "head.name=text")
    train_colour_run(root, splits, tiny_encoder, "ita", EPOCHS, "head.name=ita", f"head.options.index={root / 'index'}")
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in
            compare_runs([root / "runs" / "text", root / "runs" / "ita"], splits["test"], "image_decided")}
    return root, splits, rows


def _predicted(out) -> list[str]:
    return [line.split("\t")[-1] for line in out.read_text().splitlines()]


def test_ita_beats_text_on_the_image_decided_entities(trained):
    _, _, rows = trained
    text, ita = rows["text"], rows["ita"]
    assert text["image_decided_f1"] <= 0.75                       # the text cannot know the type
    assert ita["image_decided_f1"] >= 0.9
    assert ita["image_decided_f1"] - text["image_decided_f1"] >= 0.3


def test_the_multimodal_view_reads_the_photo_and_the_text_view_ignores_it(trained, tmp_path):
    root, splits, _ = trained
    run, images = root / "runs" / "ita", root / "data" / "images"
    swapped = swap_images(splits["test"], tmp_path / "swapped.jsonl")
    kept = evaluate_json("--run", run, "--split", splits["test"], "--images", images)
    flipped = evaluate_json("--run", run, "--split", swapped, "--images", images)
    assert kept["micro"]["f1"] - flipped["micro"]["f1"] >= 30     # the other colour's photo flips the type
    outs = []
    for n, (split, extra) in enumerate([(splits["test"], ["--view", "text"]), (swapped, ["--view", "text"]),
                                        (splits["test"], ["--drop-images"]), (swapped, ["--drop-images"])]):
        out = tmp_path / f"pred-{n}.conll"
        evaluate_json("--run", run, "--split", split, "--images", images, "--output", out, *extra)
        outs.append(_predicted(out))
    assert outs[0] == outs[1]                                     # the text view: the photo changes nothing
    assert outs[2] == outs[3] == outs[0]                          # a dropped image: the text view


def test_new_posts_have_their_photos_read_on_the_fly(trained, tmp_path):
    root, _, _ = trained
    fresh = tmp_path / "fresh"
    new = write_image_decided(fresh, sizes=(("test", 20),), seed=5, image_name="photo-{i}.png", prefix="new-")["test"]
    out = tmp_path / "pred.jsonl"
    rc, said = run_cli("predict", "--run", root / "runs" / "ita", "--input", new, "--images", fresh / "images",
                    "--output", out, "--format", "jsonl")
    assert rc == 0
    assert "20 of 20 posts had their image read as visual context (0 from the index, 20 read now)" in said
    gold = [json.loads(line)["tags"] for line in open(new)]
    right = sum(json.loads(line)["tags"] == g for line, g in zip(open(out), gold))
    assert right >= 15                                            # reading the photo: a text view is at chance


def test_only_inference_options_can_be_changed(trained, tmp_path, capsys):
    root, splits, _ = trained
    rc, _ = run_cli("evaluate", "--run", root / "runs" / "ita", "--split", splits["test"],
                 "--head-option", "temperature=3")
    assert rc == 2 and "cannot be changed for a trained 'ita' head; it allows: view" in capsys.readouterr().err
    rc, _ = run_cli("evaluate", "--run", root / "runs" / "text", "--split", splits["test"], "--view", "text")
    assert rc == 2 and "it allows: none" in capsys.readouterr().err
