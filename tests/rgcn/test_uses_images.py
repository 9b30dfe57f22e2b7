"""The multimodal heads' claims (R-GCN, MAF, BGA's real view), each guarded on a tiny image-decided dataset.

Every post names one invented word typed by the colour of its photo alone (red: PER, blue:
LOC; :mod:`tests.colour`), the index is built by a mean-colour embedder (regions: the mean
colours of a 2x2 grid), and the encoder is a tiny random BERT: text, rgcn and maf train in
seconds, and only a head that uses the image can type the names.

BGA tags with the visual tokens it generates from the words by default, which cannot know
what only the photo says: it is guarded here in its ``real`` view, trained with its text
branch reading the real visual tokens of half the posts (``real_share``; the paper trains
on the generated ones alone, which would leave the real view nothing to have learnt).
"""
import json

import pytest

from data.corpus import read_corpus
from rgcn.compare import compare_runs
from tests.colour import (evaluate_json, image_decided_with_index, run_cli, swap_images, train_colour_run,
                          write_image_decided)

EPOCHS = 8


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_encoder):
    """text, rgcn, maf and bga runs on the same data, encoder, seed and budget."""
    root = tmp_path_factory.mktemp("image_decided")
    splits = image_decided_with_index(root)
    index = f"head.options.index={root / 'index'}"
    train_colour_run(root, splits, tiny_encoder, "text", EPOCHS, "head.name=text")
    train_colour_run(root, splits, tiny_encoder, "rgcn", EPOCHS, "head.name=rgcn", index, "head.options.k=3",
                     "head.options.gcn_hidden=16", "head.options.dropout=0.0")
    # the text never says whether a photo matches here, so the matching task's swapped posts
    # would be label noise for the tags: they train the matcher only (tags_on_swapped=false)
    train_colour_run(root, splits, tiny_encoder, "maf", EPOCHS, "head.name=maf", index, "head.options.dropout=0.0",
                     "head.options.tags_on_swapped=false")
    train_colour_run(root, splits, tiny_encoder, "bga", EPOCHS, "head.name=bga", index, "head.options.dropout=0.0",
                     "head.options.view=real", "head.options.real_share=0.5")
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in
            compare_runs([root / "runs" / n for n in ("text", "rgcn", "maf", "bga")], splits["test"],
                         "image_decided")}
    return root, splits, rows


def _predict(run, posts, images, out) -> tuple[list[list[str]], str]:
    rc, said = run_cli("predict", "--run", run, "--input", posts, "--images", images, "--output", out,
                       "--format", "jsonl")
    assert rc == 0
    return [json.loads(line)["tags"] for line in open(out)], said


def test_rgcn_beats_text_on_the_image_decided_entities(trained):
    _, _, rows = trained
    text, rgcn = rows["text"], rows["rgcn"]
    assert text["image_decided_f1"] <= 0.75                      # the text cannot know the type
    assert rgcn["image_decided_f1"] >= 0.9
    assert rgcn["image_decided_f1"] - text["image_decided_f1"] >= 0.3


def test_maf_beats_text_on_the_image_decided_entities(trained):
    _, _, rows = trained
    text, maf = rows["text"], rows["maf"]
    assert maf["image_decided_f1"] >= 0.9
    assert maf["image_decided_f1"] - text["image_decided_f1"] >= 0.3


def test_bga_in_its_real_view_beats_text_on_the_image_decided_entities(trained):
    _, _, rows = trained
    text, bga = rows["text"], rows["bga"]
    assert bga["image_decided_f1"] >= 0.9
    assert bga["image_decided_f1"] - text["image_decided_f1"] >= 0.3


@pytest.mark.parametrize("head", ["rgcn", "maf", "bga"])
def test_the_photo_decides_and_dropping_it_removes_every_image_signal(trained, tmp_path, head):
    root, splits, _ = trained
    run = root / "runs" / head
    swapped = swap_images(splits["test"], tmp_path / "swapped.jsonl")
    images = root / "data" / "images"
    kept = evaluate_json("--run", run, "--split", splits["test"], "--images", images)
    flipped = evaluate_json("--run", run, "--split", swapped, "--images", images)
    assert kept["micro"]["f1"] - flipped["micro"]["f1"] >= 30    # the other colour's photo flips the type
    outs = []
    for split in (splits["test"], swapped):
        out = tmp_path / f"dropped-{len(outs)}.conll"
        evaluate_json("--run", run, "--split", split, "--images", images, "--drop-images", "--output", out)
        outs.append([line.split("\t")[-1] for line in out.read_text().splitlines()])
    assert outs[0] == outs[1]                                    # with images dropped, the photo changes nothing


@pytest.mark.parametrize("head", ["rgcn", "maf", "bga"])
def test_new_posts_keep_their_images_whatever_the_files_are_called(trained, tmp_path, head):
    """Posts whose photos are not in the index are embedded on the fly (maf: their regions
    too), and an image is found by the post's ``image`` field, not by its post id."""
    root, splits, _ = trained
    run = root / "runs" / head
    results = []
    for n, layout in enumerate(("{id}.png", "photo-{i}.png")):
        fresh = tmp_path / f"layout{n}"
        new = write_image_decided(fresh, sizes=(("test", 40),), seed=5, image_name=layout, prefix="new-")["test"]
        tags, said = _predict(run, new, fresh / "images", tmp_path / "pred.jsonl")
        assert "40 of 40 posts used their image (0 from the index, 40 embedded now)" in said
        results.append(tags)
    assert results[0] == results[1]
    gold = read_corpus(new, require_tags=True)
    right = sum(p == s.tags for p, s in zip(results[0], gold.samples))
    assert right >= 32      # new photos type the names as well (35 to 40 of 40 across heads and trainings; chance is half)


@pytest.mark.parametrize("head", ["rgcn", "maf", "bga"])
def test_missing_images_are_counted_and_named(trained, tmp_path, head):
    root, splits, _ = trained
    fresh = tmp_path / "fresh"
    new = write_image_decided(fresh, sizes=(("test", 6),), seed=1, prefix="new-")["test"]
    for p in sorted((fresh / "images").iterdir())[:2]:
        p.unlink()
    _, said = _predict(root / "runs" / head, new, fresh / "images", tmp_path / "pred.jsonl")
    assert "4 of 6 posts used their image (0 from the index, 4 embedded now)" in said
    assert "2 named an image that is missing, e.g. new-test-000 (new-test-000), new-test-001 (new-test-001)" in said


def test_the_default_pool_holds_training_images_only(trained):
    """Neither the run config nor the head sets a pool: every neighbour of every post, in
    every relation, is the photo of a training post."""
    from rgcn.training import load_for_corpus

    root, splits, _ = trained
    model, _, _ = load_for_corpus(root / "runs" / "rgcn", read_corpus(splits["test"], root / "data" / "images"))
    graphs = model.head.graphs
    train_images = {s.image_key for s in read_corpus(splits["train"])}
    seen = set()
    for post in graphs.post_ids:
        for rel in graphs.relations:
            seen |= {n for n, _ in graphs.neighbours(post, rel)}
    assert len(seen) > 10 and seen <= train_images


def test_image_dropout_is_for_training_only():
    from data.corpus import Sample
    from rgcn.heads import build_head
    from tests.rgcn.test_rgcn_head import HandGraphs

    head = build_head("rgcn", 8, {"gcn_hidden": 4, "heads": 2, "image_dropout": 0.9}, {"graphs": HandGraphs()})
    samples = [Sample("a", ["x"]) for _ in range(40)]
    assert all(head.prepare(samples, training=False)["intra"].has_image.tolist())
    assert not all(head.prepare(samples, training=True)["intra"].has_image.tolist())


def test_bga_in_its_generated_view_reads_no_image_of_new_posts(trained, tmp_path, monkeypatch):
    """Tagging in the generated view opens no image file: not even new posts' photos are
    embedded, and deleting every photo changes no tag."""
    import rgcn.heads.blocks as blocks

    root, _, _ = trained
    fresh = tmp_path / "fresh"
    new = write_image_decided(fresh, sizes=(("test", 8),), seed=2, prefix="new-")["test"]
    monkeypatch.setattr(blocks, "load_post_regions", lambda *a, **k: (_ for _ in ()).throw(AssertionError("read")))
    run = root / "runs" / "bga"
    rc, said = run_cli("predict", "--run", run, "--input", new, "--images", fresh / "images", "--view", "generated",
                       "--output", tmp_path / "a.jsonl", "--format", "jsonl")
    assert rc == 0 and "no image read: the generated view tags from the words alone" in said
    for p in (fresh / "images").iterdir():
        p.unlink()
    rc, _ = run_cli("predict", "--run", run, "--input", new, "--images", fresh / "images", "--view", "generated",
                    "--output", tmp_path / "b.jsonl", "--format", "jsonl")
    tags = [[json.loads(line)["tags"] for line in open(tmp_path / f"{x}.jsonl")] for x in "ab"]
    assert rc == 0 and tags[0] == tags[1]
    with pytest.raises(AssertionError, match="read"):                 # the real view does read them
        run_cli("predict", "--run", run, "--input", new, "--images", fresh / "images", "--view", "real",
                "--output", tmp_path / "c.jsonl", "--format", "jsonl")
