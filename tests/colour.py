"""Test resources: a colour embedder and an image-decided dataset it separates perfectly.

``ColourEmbedder`` (registered as ``test_colour``) embeds an image as its mean colour,
centred and L2-normalised (3-d), its regions as the centred mean colours of a 2x2 grid
(4 regions, 3-d), with object tags ``red``/``green``/``blue``: it runs the
real index, retrieval and prediction code paths in milliseconds. ``write_image_decided``
writes posts whose one name is typed by the colour of the post's photo alone (red: PER,
blue: LOC): the text says nothing about it, so a text-only tagger is at chance on the
type and a tagger that uses the image can be perfect. ``write_kinds`` writes posts of
three of the demo's kinds (``image_decided``, ``conflicting_image``, ``no_image``), each
with its ``kind`` and ``target`` fields.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from index.embedders import Embedder, EncodeOutput, l2_normalise, register_embedder
from index.embedders import EMBEDDERS

COLOURS = {"red": ((200, 30, 30), "PER"), "blue": ((30, 30, 200), "LOC")}
NAMES = ["Zelby", "Rellow", "Quandor", "Mivra", "Tessiko", "Brevanne", "Ostrel", "Palivo", "Dunmere", "Yarrick",
         "Felmoor", "Corvane", "Ilsbeth", "Norvik", "Sabrine", "Thandle", "Wexley", "Galvette"]
TEMPLATES = [["look", "at", "{}", "now"], ["{}", "is", "here", "today"], ["can't", "stop", "thinking", "about", "{}"],
             ["saw", "{}", "again", "!"], ["everyone", "loves", "{}"]]


def _to_tensor(im: Image.Image) -> torch.Tensor:
    a = np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).contiguous()           # (3, 8, 8)


class ColourEmbedder(Embedder):
    name = "test_colour"
    dim = 3
    has_regions = True
    tag_labels = ("red", "green", "blue")

    def __init__(self, **_):
        self.transform = _to_tensor

    def encode(self, pixels, regions=False, logits=False):
        mean = pixels.mean(dim=(2, 3)).numpy()                           # (B, 3)
        cells = None
        if regions:                                                      # a 2x2 grid of mean colours
            B = pixels.shape[0]
            cells = pixels.reshape(B, 3, 2, 4, 2, 4).mean(dim=(3, 5)).flatten(2).transpose(1, 2)  # (B, 4, 3)
            cells = cells.numpy() - 0.45
        return EncodeOutput(l2_normalise(mean - 0.45), cells, 10 * mean if logits else None)


if "test_colour" not in EMBEDDERS:
    register_embedder("test_colour", ColourEmbedder)


def colour_image(path, colour: str, rng: random.Random) -> str:
    """A 24x24 photo of one colour with per-pixel noise."""
    base = np.array(COLOURS[colour][0], dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 25, (24, 24, 3))
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(path)
    return str(path)


def write_image_decided(folder, sizes=(("train", 80), ("valid", 20), ("test", 40)), seed=0,
                        image_name="{id}.png", prefix="") -> dict[str, str]:
    """Write ``<split>.jsonl`` files and ``images/``; returns split name -> path.

    Every post has one name typed by its photo's colour; ``image_decided`` lists its span.
    ``image_name`` sets the file name of each post's photo (the JSONL ``image`` field);
    post ids are ``<prefix><split>-<i>``.
    """
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in sizes:
        lines = []
        for i in range(n):
            pid = f"{prefix}{split}-{i:03d}"
            colour = ["red", "blue"][i % 2]
            name = rng.choice(NAMES)
            words = [w.format(name) for w in rng.choice(TEMPLATES)]
            at = words.index(name)
            tags = ["O"] * len(words)
            tags[at] = "B-" + COLOURS[colour][1]
            image = image_name.format(id=pid, i=i, split=split)
            colour_image(folder / "images" / image, colour, rng)
            lines.append(json.dumps({"id": pid, "tokens": words, "tags": tags, "image": image,
                                     "image_decided": [[at, at + 1]], "colour": colour}))
        out[split] = str(folder / f"{split}.jsonl")
        Path(out[split]).write_text("\n".join(lines) + "\n")
    return out


CUES = {"PER": [["{}", "said", "hello", "to", "everyone"], ["my", "friend", "{}", "is", "back"]],
        "LOC": [["flying", "to", "{}", "tomorrow"], ["the", "streets", "of", "{}"]]}
OPPOSITE = {"red": "blue", "blue": "red"}
KIND_SIZES = (("train", {"image_decided": 12, "conflicting_image": 2, "no_image": 4}),
              ("valid", {"image_decided": 4, "conflicting_image": 2, "no_image": 2}),
              ("test", {"image_decided": 4, "conflicting_image": 4, "no_image": 4}))


def write_kinds(folder, sizes=KIND_SIZES, seed=0) -> dict[str, str]:
    """Write ``<split>.jsonl`` files of posts with a ``kind`` and a ``target``, and their
    photos in ``images/``; returns split name -> path.

    Within each kind the target's type alternates PER, LOC (post ``<split>-<kind>-<i>``):

    - ``image_decided``: the sentence says nothing; the photo's colour gives the type;
    - ``conflicting_image``: a cue in the sentence gives the type (``flying to X``), and
      the photo has the other type's colour;
    - ``no_image``: a cue gives the type; the post has no photo (``"image": null``).

    Every third post ends with ``in Paris`` (a LOC outside the target).
    """
    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    colour_of = {t: c for c, (_, t) in COLOURS.items()}
    out = {}
    for split, kinds in sizes:
        lines = []
        for kind, n in kinds.items():
            for i in range(n):
                pid, etype, name = f"{split}-{kind}-{i:03d}", ["PER", "LOC"][i % 2], rng.choice(NAMES)
                template = rng.choice(TEMPLATES if kind == "image_decided" else CUES[etype])
                words = [w.format(name) for w in template]
                at = words.index(name)
                tags = ["O"] * len(words)
                tags[at] = "B-" + etype
                if i % 3 == 0:
                    words, tags = words + ["in", "Paris"], tags + ["O", "B-LOC"]
                colour = {"image_decided": colour_of[etype], "conflicting_image": OPPOSITE[colour_of[etype]],
                          "no_image": None}[kind]
                image = None
                if colour:
                    image = f"{pid}.png"
                    colour_image(folder / "images" / image, colour, rng)
                target = [[at, at + 1]]
                lines.append(json.dumps({"id": pid, "tokens": words, "tags": tags, "image": image, "kind": kind,
                                         "target": target,
                                         "image_decided": target if kind == "image_decided" else [],
                                         "colour": colour}))
        out[split] = str(folder / f"{split}.jsonl")
        Path(out[split]).write_text("\n".join(lines) + "\n")
    return out


def slow_down_from_env() -> None:
    """Let a subprocess make ``test_colour`` sleep ``TEST_COLOUR_SLEEP`` seconds a batch
    (the kill tests need time to kill it in the middle)."""
    import os
    import time

    pause = float(os.environ.get("TEST_COLOUR_SLEEP", "0"))
    if pause:
        encode = ColourEmbedder.encode

        def slow(self, pixels, regions=False, logits=False):
            time.sleep(pause)
            return encode(self, pixels, regions, logits)

        ColourEmbedder.encode = slow


# --------------------------------------------------------------------------- runs on the colour data
def image_decided_with_index(root: Path) -> dict[str, str]:
    """:func:`write_image_decided` under ``root/data`` and its mean-colour index at
    ``root/index``; returns the split files."""
    from index.__main__ import main as index_main

    splits = write_image_decided(Path(root) / "data")
    assert index_main(["build", "--quiet", "--embedder", "test_colour", "--images", str(Path(root) / "data" / "images"),
                       "--data", *splits.values(), "--out", str(Path(root) / "index")]) == 0
    return splits


def train_colour_run(root: Path, splits: dict, encoder: str, name: str, epochs: int, *overrides: str) -> dict:
    """``train.py`` on the colour splits with a tiny encoder, batch 8, lr 1e-3, seed 0: the
    same budget for every head a test compares; the run goes to ``root/runs/<name>``."""
    import train

    return train.main(["--no-progress", f"data.train={splits['train']}", f"data.valid={splits['valid']}",
                       f"data.test={splits['test']}", f"data.images={Path(root) / 'data' / 'images'}",
                       f"encoder.name={encoder}", f"train.epochs={epochs}", "train.batch_size=8",
                       "train.lr=1e-3", "train.seed=0", f"out_dir={Path(root) / 'runs'}", f"name={name}", *overrides])


def run_cli(*args) -> tuple[int, str]:
    """``python -m rgcn ARGS``: its exit code and what it printed."""
    import contextlib
    import io

    from rgcn.__main__ import main as cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli([*map(str, args)])
    return rc, buf.getvalue()


def evaluate_json(*args) -> dict:
    """``python -m rgcn evaluate ARGS --json``, parsed."""
    rc, out = run_cli("evaluate", *args, "--json")
    assert rc == 0
    return json.loads(out)


def swap_images(src, dst: Path) -> Path:
    """The posts of ``src`` with each red post's photo swapped with the next blue post's
    (posts alternate red, blue): the photos now contradict the gold types."""
    rows = [json.loads(line) for line in open(src)]
    for a, b in zip(rows[0::2], rows[1::2]):
        a["image"], b["image"] = b["image"], a["image"]
    Path(dst).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return Path(dst)
