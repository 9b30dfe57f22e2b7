"""Tiny fixtures for the index tests: a few images made here, bad files, a tiny CLIP."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}

GOOD_IDS = ["101", "102", "103", "104"]
BAD_IDS = ["900", "901", "902"]  # truncated jpg, empty jpg, text named .jpg


def make_images(folder) -> dict[str, str]:
    """Four small photos-ish images plus three bad files; returns id -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = {}
    for n, i in enumerate(GOOD_IDS):
        arr = rng.integers(0, 255, (40 + 8 * n, 48, 3), dtype=np.uint8)
        arr[..., n % 3] = 255 - 40 * n                       # a different dominant colour each
        p = folder / f"{i}.jpg" if n != 3 else folder / f"{i}.png"
        Image.fromarray(arr).save(p)
        paths[i] = str(p)
    good = (folder / "101.jpg").read_bytes()
    (folder / "900.jpg").write_bytes(good[: len(good) // 2])  # truncated
    (folder / "901.jpg").write_bytes(b"")                      # empty
    (folder / "902.jpg").write_text("this is not an image\n")  # text named .jpg
    for i in BAD_IDS:
        paths[i] = str(folder / f"{i}.jpg")
    return paths


@pytest.fixture
def image_dir(tmp_path):
    folder = tmp_path / "images"
    make_images(folder)
    return folder


@pytest.fixture(scope="session")
def effnet():
    from index.embedders import get_embedder

    return get_embedder("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def tiny_clip_files(tmp_path_factory):
    """``(config_json_path, checkpoint_path)`` of a tiny open_clip model with saved weights."""
    import open_clip
    import torch

    d = tmp_path_factory.mktemp("clip")
    cfg = d / "tiny-test-clip.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("tiny-test-clip")
    ckpt = d / "tiny.pt"
    torch.save({"state_dict": model.state_dict()}, ckpt)
    return str(cfg), str(ckpt)
