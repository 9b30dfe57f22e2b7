"""The real-data road, walked on a Twitter-shaped tree: prepare -> index build with CLIP -> each
head's paper recipe (one epoch, tiny overrides) -> evaluate and predict, with the count of posts
and usable images checked at every step, so nothing is silently dropped.

The tree is what users of the UMT release hold: Twitter-2015 posts (their real text, from
../shared/data), an image folder of real photographs (from installed packages), one
"image not found" picture saved under several posts' names, a truncated JPEG, an empty file
and missing photos. CLIP is a tiny open_clip ViT (JSON config) with random weights saved as a
checkpoint file, and the encoder a tiny random BERT saved with save_pretrained, so every load
goes through the local-path form a user without network would use. The counts table of every
split and step is printed (``pytest -s``) and written to ``road_counts.json``.
"""
from __future__ import annotations

import io
import json
import random
import re
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
T15 = Path(SHARED_DATA) / "twitter2015"
SIZES = {"train": 120, "valid": 40, "test": 60}
# per split: which posts (by position) get a placeholder, a truncated, an empty file, or no file
BROKEN = {"train": {"placeholder": [3, 17, 40, 77], "truncated": [5], "empty": [8], "missing": [11, 12, 90]},
          "valid": {"placeholder": [2], "truncated": [], "empty": [9], "missing": [4]},
          "test": {"placeholder": [1, 30, 31], "truncated": [7], "empty": [], "missing": [10, 50]}}
PHOTOS = ("astronaut", "camera", "china", "moon", "rocket", "coffee", "chelsea", "flower", "horse", "brick")
TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 112, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
HEADS = ("text", "rgcn", "maf", "ita", "bga")


def _conll_posts(path: Path, n: int) -> list[str]:
    blocks = [b for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    return blocks[:n]


def _jpeg(im, rng: random.Random) -> bytes:
    w, h = im.size
    side = int(min(w, h) * rng.uniform(0.6, 1.0))
    x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    view = im.crop((x, y, x + side, y + side)).resize((112, 112))
    buf = io.BytesIO()
    view.convert("RGB").save(buf, "JPEG", quality=80)
    return buf.getvalue()


def build_tree(root: Path) -> dict:
    """Write the splits (CoNLL, the UMT layout), the image folder and the expected counts."""
    from PIL import Image, ImageDraw

    from data.demo_photos import load_sources

    rng = random.Random(0)
    sources = load_sources(PHOTOS)
    images = root / "twitter2015_images"
    images.mkdir(parents=True)
    ph = Image.new("RGB", (112, 112), "white")
    ImageDraw.Draw(ph).text((10, 50), "image not found", fill="black")
    buf = io.BytesIO()
    ph.save(buf, "JPEG")
    placeholder = buf.getvalue()
    expected = {}
    for split, n in SIZES.items():
        blocks = _conll_posts(T15 / f"{split}.txt", n)
        (root / f"{split}.txt").write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
        ids = [b.split("\n", 1)[0].split(":", 1)[1] for b in blocks]
        broken = {i: kind for kind, rows in BROKEN[split].items() for i in rows}
        for i, imgid in enumerate(ids):
            kind = broken.get(i)
            f = images / f"{imgid}.jpg"
            if kind == "missing":
                continue
            if kind == "placeholder":
                f.write_bytes(placeholder)
            elif kind == "empty":
                f.write_bytes(b"")
            elif kind == "truncated":
                f.write_bytes(_jpeg(sources[PHOTOS[i % len(PHOTOS)]], rng)[:400])
            else:
                f.write_bytes(_jpeg(sources[PHOTOS[i % len(PHOTOS)]], rng))
        b = BROKEN[split]
        bad = len(b["placeholder"]) + len(b["truncated"]) + len(b["empty"]) + len(b["missing"])
        expected[split] = {"posts": n, "usable": n - bad, "missing": len(b["missing"]),
                           "unreadable": len(b["truncated"]) + len(b["empty"]),
                           "placeholder": len(b["placeholder"]), "none": 0}
    return expected


def _tiny_clip(root: Path) -> tuple[str, str]:
    import open_clip
    import torch

    cfg = root / "tiny-vit.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-vit", pretrained=None)
    ckpt = root / "tiny-vit.pt"
    torch.save(model.state_dict(), ckpt)
    return str(cfg), str(ckpt)


def _used(line: str) -> tuple[int, int]:
    """``(used, posts)`` from a head's one-line image summary ("U of N posts ...")."""
    m = re.search(r"(\d+) of (\d+) posts", line)
    assert m, line
    return int(m[1]), int(m[2])


def test_real_data_road(tmp_path, tiny_encoder, capsys):
    import resource

    import torch

    start, cpu_start = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # tiny models: one thread does the work without two threads' spinning
    try:
        _walk(tmp_path, tiny_encoder, capsys, start, cpu_start)
    finally:
        torch.set_num_threads(threads)


def _walk(tmp_path, tiny_encoder, capsys, start, cpu_start):
    import resource

    import train
    from data.__main__ import main as data_main
    from data.prepare import counts_table
    from index.__main__ import main as index_main
    from rgcn.__main__ import main as rgcn_main

    record: dict = {"steps": {}}
    expected = build_tree(tmp_path)
    images = tmp_path / "twitter2015_images"
    prep = tmp_path / "prepared"

    # 1. prepare: every post counted once, under the status its image earned
    assert data_main(["prepare", "--data", *(str(tmp_path / f"{s}.txt") for s in SIZES), "--images", str(images),
                      "--out", str(prep), "--quiet"]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((prep / "manifest.json").read_text())
    got = {s: {k: manifest["splits"][s][k] for k in expected[s]} for s in SIZES}
    assert got == expected
    assert manifest["placeholders"][0]["names"] == sum(len(b["placeholder"]) for b in BROKEN.values())
    record["steps"]["prepare"] = got
    record["steps"]["prepare"]["seconds"] = round(time.time() - start, 1)
    assert printed.splitlines()[1].split()[:6] == ["train", str(SIZES["train"])] + [str(expected["train"][k]) for k in
                                                                      ("usable", "missing", "unreadable", "placeholder")]

    # 2. index build with CLIP (the local checkpoint form): exactly the usable images, nothing else
    model_json, ckpt = _tiny_clip(tmp_path)
    idx = tmp_path / "index_clip"
    assert index_main(["build", "--embedder", "clip", "--model", model_json, "--pretrained", ckpt,
                       "--data", *(str(prep / f"{s}.jsonl") for s in SIZES), "--images", str(images),
                       "--out", str(idx), "--workers", "0", "--batch-size", "64", "--quiet",
                       "--tag-vocabulary", str(_vocabulary(tmp_path))]) == 0
    capsys.readouterr()
    im = json.loads((idx / "manifest.json").read_text())
    usable_total = sum(e["usable"] for e in expected.values())
    assert im["counts"]["embedded"] == usable_total
    assert im["counts"]["missing"] == 0 and im["counts"]["unreadable"] == 0   # prepare kept them out
    record["steps"]["index"] = {"embedded": im["counts"]["embedded"], "usable_in_prepare": usable_total,
                                "seconds": round(time.time() - start, 1)}

    # 3. each head's paper recipe, one epoch, tiny overrides; 4. evaluate and predict its run
    overrides = [f"data.train={prep / 'train.jsonl'}", f"data.valid={prep / 'valid.jsonl'}",
                 f"data.test={prep / 'test.jsonl'}", f"data.images={images}", f"encoder.name={tiny_encoder}",
                 "encoder.max_subwords=48", "train.epochs=1", "train.batch_size=32", "train.eval_batch_size=80",
                 "train.device=cpu", "train.precision=fp32", "train.threads=1", f"out_dir={tmp_path / 'runs'}"]
    for head in HEADS:
        extra = [] if head == "text" else [f"head.options.index={idx}"]
        extra += {"rgcn": ["head.options.gcn_hidden=16", "head.options.heads=2"],
                  "maf": ["head.options.heads=2"], "bga": ["head.options.heads=2", "head.options.layers=1", "head.options.max_words=48"],
                  "ita": ["head.options.max_context_words=8"]}.get(head, [])
        results = train.main(["--config", str(ROOT / "configs" / "paper" / f"twitter2015_{head}.yaml"),
                              "--no-progress", *overrides, *extra])
        capsys.readouterr()
        run = tmp_path / "runs" / f"paper_t15_{head}"
        step = {"train_f1_dev": round(results["valid"]["micro"]["f1"], 2)}
        log = (run / "train.log").read_text()
        if head != "text":                                   # what the head made of each split's images
            for split in SIZES:
                line = next(x for x in log.splitlines() if re.search(rf"\b{split} .*\d+ of \d+ posts", x))
                used, posts = _used(line.split(f"{split} ", 1)[1])
                assert posts == expected[split]["posts"], line
                assert used == expected[split]["usable"], line
                step[f"train_{split}_images_used"] = used
        # the test split scored: every post, every gold entity
        test_posts = [json.loads(x) for x in (prep / "test.jsonl").read_text().splitlines()]
        pred = (run / "test_predictions.conll").read_text().split("IMGID:")[1:]
        assert len(pred) == expected["test"]["posts"]
        assert rgcn_main(["evaluate", "--run", str(run), "--split", str(prep / "test.jsonl"),
                          "--images", str(images), "--device", "cpu"]) == 0
        out = capsys.readouterr().out
        if head in ("rgcn", "maf", "ita"):
            used, posts = _used(out)
            assert (used, posts) == (expected["test"]["usable"], expected["test"]["posts"]), out
            step["evaluate_images_used"] = used
        out_file = tmp_path / f"pred_{head}.jsonl"
        assert rgcn_main(["predict", "--run", str(run), "--input", str(prep / "test.jsonl"), "--images", str(images),
                          "--output", str(out_file), "--format", "jsonl", "--show", "0", "--device", "cpu"]) == 0
        out = capsys.readouterr().out
        tagged = [json.loads(x) for x in out_file.read_text().splitlines()]
        assert [t["id"] for t in tagged] == [p["id"] for p in test_posts]       # every post tagged, in order
        assert all(len(t["tags"]) == len(p["tokens"]) for t, p in zip(tagged, test_posts))
        if head in ("rgcn", "maf", "ita"):
            assert _used(out) == (expected["test"]["usable"], expected["test"]["posts"]), out
        step["predict_posts"] = len(tagged)
        step["seconds"] = round(time.time() - start, 1)
        record["steps"][head] = step
    record["seconds"] = round(time.time() - start, 1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    record["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime - cpu_start.ru_utime - cpu_start.ru_stime, 1)
    (tmp_path / "road_counts.json").write_text(json.dumps(record, indent=1))
    with capsys.disabled():
        print("\nprepare:\n" + counts_table({k: v for k, v in record["steps"]["prepare"].items() if k in SIZES}))
        for k, v in record["steps"].items():
            if k != "prepare":
                print(f"{k}: {v}")
        print(f"road: {record['seconds']} s wall, {record['cpu_seconds']} s of CPU")


def _vocabulary(root: Path) -> Path:
    """Zero-shot labels for the random CLIP's object tags (ITA's visual context reads them)."""
    path = root / "labels.txt"
    path.write_text("person\ncity\nfood\ncat\nrocket\nflower\nhorse\nwall\n")
    return path
