"""The ITA head's claims, each guarded on the tiny image-decided dataset (:mod:`tests.colour`).

Every post names one invented word typed by the colour of its photo alone (red: PER, blue:
LOC). The index is built by the mean-colour embedder, whose object tags are the words
``red``, ``green``, ``blue``: the photo's visual context is its colour's name. Only a tagger
that reads the image can type the names; the text view, which never sees it, cannot.
"""
import contextlib
import io
import json

import pytest

import train
from index.__main__ import main as index_main
from rgcn.__main__ import compare_runs
from rgcn.__main__ import main as cli
from tests.colour import write_image_decided

EPOCHS = 15                 # the context is read through attention: slower to learn than a gate


def _train(root, splits, tiny_encoder, name, *head):
    return train.main(["--no-progress", f"data.train={splits['train']}", f"data.valid={splits['valid']}",
                       f"data.test={splits['test']}", f"data.images={root / 'data' / 'images'}",
                       f"encoder.name={tiny_encoder}", f"train.epochs={EPOCHS}", "train.batch_size=8",
                       "train.lr=1e-3", "train.seed=0", f"out_dir={root / 'runs'}", f"name={name}", *head])


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_encoder):
    """text and ita runs on the same data, encoder, seed and budget."""
    root = tmp_path_factory.mktemp("ita_image_decided")
    splits = write_image_decided(root / "data")
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(root / "data" / "images"),
                       "--data", *splits.values(), "--out", str(root / "index")]) == 0
    _train(root, splits, tiny_encoder, "text", "head.name=text")
    _train(root, splits, tiny_encoder, "ita", "head.name=ita", f"head.options.index={root / 'index'}")
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in
            compare_runs([root / "runs" / "text", root / "runs" / "ita"], splits["test"], "image_decided")}
    return root, splits, rows


def _cli(*args) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli([*map(str, args)])
    return rc, buf.getvalue()


def _evaluate(*args) -> dict:
    rc, out = _cli("evaluate", *args, "--json")
    assert rc == 0
    return json.loads(out)


def _swap_images(src, dst):
    """The same posts with each red post's photo swapped with the next blue post's."""
    rows = [json.loads(line) for line in open(src)]
    for a, b in zip(rows[0::2], rows[1::2]):
        a["image"], b["image"] = b["image"], a["image"]
    dst.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dst


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
    swapped = _swap_images(splits["test"], tmp_path / "swapped.jsonl")
    kept = _evaluate("--run", run, "--split", splits["test"], "--images", images)
    flipped = _evaluate("--run", run, "--split", swapped, "--images", images)
    assert kept["micro"]["f1"] - flipped["micro"]["f1"] >= 30     # the other colour's photo flips the type
    outs = []
    for n, (split, extra) in enumerate([(splits["test"], ["--view", "text"]), (swapped, ["--view", "text"]),
                                        (splits["test"], ["--drop-images"]), (swapped, ["--drop-images"])]):
        out = tmp_path / f"pred-{n}.conll"
        _evaluate("--run", run, "--split", split, "--images", images, "--output", out, *extra)
        outs.append(_predicted(out))
    assert outs[0] == outs[1]                                     # the text view: the photo changes nothing
    assert outs[2] == outs[3] == outs[0]                          # a dropped image: the text view


def test_new_posts_have_their_photos_read_on_the_fly(trained, tmp_path):
    root, _, _ = trained
    fresh = tmp_path / "fresh"
    new = write_image_decided(fresh, sizes=(("test", 20),), seed=5, image_name="photo-{i}.png", prefix="new-")["test"]
    out = tmp_path / "pred.jsonl"
    rc, said = _cli("predict", "--run", root / "runs" / "ita", "--input", new, "--images", fresh / "images",
                    "--output", out, "--format", "jsonl")
    assert rc == 0
    assert "20 of 20 posts had their image read as visual context (0 from the index, 20 read now)" in said
    gold = [json.loads(line)["tags"] for line in open(new)]
    right = sum(json.loads(line)["tags"] == g for line, g in zip(open(out), gold))
    assert right >= 15                                            # reading the photo: a text view is at chance


def test_only_inference_options_can_be_changed(trained, tmp_path, capsys):
    root, splits, _ = trained
    rc, _ = _cli("evaluate", "--run", root / "runs" / "ita", "--split", splits["test"],
                 "--head-option", "temperature=3")
    assert rc == 2 and "cannot be changed for a trained 'ita' head; it allows: view" in capsys.readouterr().err
    rc, _ = _cli("evaluate", "--run", root / "runs" / "text", "--split", splits["test"], "--view", "text")
    assert rc == 2 and "it allows: none" in capsys.readouterr().err
