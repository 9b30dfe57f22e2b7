"""The embedded demo benchmark: tweets whose images are real photographs shipped inside
installed packages, templated so that one name's entity type is decided by the photo.

Every post carries exactly one *image-decided* name: an invented word ("Zelby", "Marovan
Tresmo") drawn from one pool shared by all four types, inside a type-neutral sentence
("Can't stop looking at Zelby today"). Its type is set by the class of the post's photo:

==============  ===========  ==================================================
photo class     entity type  source photographs (package)
==============  ===========  ==================================================
person          PER          astronaut, camera (scikit-image); grace_hopper (matplotlib)
place           LOC          china (scikit-learn); moon, hubble_deep_field (scikit-image)
product         ORG          rocket, motorcycle_left, motorcycle_right, coffee (scikit-image)
animal_plant    MISC         chelsea (scikit-image); flower (scikit-learn)
==============  ===========  ==================================================

Posts also carry 0-2 *text-decided* entities with strong textual cues ("flying to Paris",
"shares of Google", "watching the Super Bowl"), drawn independently of the photo, so a
text-only tagger can learn them but can do no better than chance on the image-decided
type. Classes are balanced within each split, which bounds a text-only tagger's F1; the
bound is written to ``manifest.json``.

All splits draw from the same source photos; every post gets its own augmentation (crop
of 60-100% of the area, flip, small rotation, brightness/contrast/colour jitter), saved
as a JPEG of 224 px on the short side, so no two posts share an image file.

Output (written to a temporary sibling folder, then renamed into place)::

    out_dir/images/<id>.jpg
    out_dir/{train,valid,test}.jsonl   {"id", "tokens", "tags", "image", "image_decided", "image_class"}
    out_dir/manifest.json

Run ``python -m data.demo generate --out data/demo [--seed 0]``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import os
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .logs import setup_logging

log = logging.getLogger(__name__)

GENERATOR = "data.demo"
FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test")
ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")

SHORT_SIDE = 224
JPEG_QUALITY = 85
SOURCE_MAX_SHORT_SIDE = 448   # sources are first scaled down to this (speed; no visible loss at 224)
AUGMENTATION = {
    "crop_area": [0.6, 1.0],
    "crop_aspect": [3 / 4, 4 / 3],
    "hflip_p": 0.5,
    "rotate_p": 0.5,
    "rotate_deg": 8.0,
    "brightness": [0.7, 1.3],
    "contrast": [0.7, 1.3],
    "saturation": [0.6, 1.4],
    "grayscale_p": 0.1,
}


# --------------------------------------------------------------------------- photos
@dataclass(frozen=True)
class SourcePhoto:
    """A photograph that ships inside an installed package, and how to load it."""

    name: str
    package: str
    origin: str          # how a reader finds it by hand
    note: str
    load: Callable[[], np.ndarray | Image.Image]


@dataclass(frozen=True)
class PhotoClass:
    """What a photo shows, and the entity type it gives the post's ambiguous name."""

    name: str
    entity_type: str
    meaning: str
    sources: tuple[str, ...]


def _skimage(name: str):
    def load():
        import skimage.data
        return getattr(skimage.data, name)()
    return load


def _sklearn(filename: str):
    def load():
        from sklearn.datasets import load_sample_image
        return load_sample_image(filename)
    return load


def _matplotlib(filename: str):
    def load():
        from matplotlib import cbook
        with cbook.get_sample_data(filename) as f:
            return Image.open(f).convert("RGB")
    return load


SOURCE_PHOTOS: dict[str, SourcePhoto] = {p.name: p for p in (
    SourcePhoto("astronaut", "scikit-image", "skimage.data.astronaut()", "astronaut Eileen Collins, portrait", _skimage("astronaut")),
    SourcePhoto("camera", "scikit-image", "skimage.data.camera()", "cameraman on a lawn, grayscale", _skimage("camera")),
    SourcePhoto("grace_hopper", "matplotlib", "matplotlib.cbook.get_sample_data('grace_hopper.jpg')", "Grace Hopper, portrait", _matplotlib("grace_hopper.jpg")),
    SourcePhoto("china", "scikit-learn", "sklearn.datasets.load_sample_image('china.jpg')", "pagoda above a lake, landscape", _sklearn("china.jpg")),
    SourcePhoto("moon", "scikit-image", "skimage.data.moon()", "lunar surface, grayscale", _skimage("moon")),
    SourcePhoto("hubble_deep_field", "scikit-image", "skimage.data.hubble_deep_field()", "a field of the night sky", _skimage("hubble_deep_field")),
    SourcePhoto("rocket", "scikit-image", "skimage.data.rocket()", "rocket on its launch pad", _skimage("rocket")),
    SourcePhoto("motorcycle_left", "scikit-image", "skimage.data.stereo_motorcycle()[0]", "motorcycle in a garage (left view of a stereo pair)", lambda: _skimage("stereo_motorcycle")()[0]),
    SourcePhoto("motorcycle_right", "scikit-image", "skimage.data.stereo_motorcycle()[1]", "motorcycle in a garage (right view of the same pair)", lambda: _skimage("stereo_motorcycle")()[1]),
    SourcePhoto("coffee", "scikit-image", "skimage.data.coffee()", "cup of coffee on a saucer", _skimage("coffee")),
    SourcePhoto("chelsea", "scikit-image", "skimage.data.chelsea()", "Chelsea the cat (same photo as skimage.data.cat())", _skimage("chelsea")),
    SourcePhoto("flower", "scikit-learn", "sklearn.datasets.load_sample_image('flower.jpg')", "dahlia flower", _sklearn("flower.jpg")),
)}

PHOTO_CLASSES: tuple[PhotoClass, ...] = (
    PhotoClass("person", "PER", "a photo of a person: the name is that person's", ("astronaut", "camera", "grace_hopper")),
    PhotoClass("place", "LOC", "a landscape, building or celestial place: the name is the place's",
               ("china", "moon", "hubble_deep_field")),
    PhotoClass("product", "ORG", "a vehicle or product: the name is its maker or brand",
               ("rocket", "motorcycle_left", "motorcycle_right", "coffee")),
    PhotoClass("animal_plant", "MISC", "an animal or a plant: the name is the pet's or the variety's",
               ("chelsea", "flower")),
)


def list_photo_classes() -> list[str]:
    return [c.name for c in PHOTO_CLASSES]


def load_sources(names: Sequence[str]) -> dict[str, Image.Image]:
    """Load source photos as RGB images; one error names every photo that failed and why."""
    out, failed = {}, []
    for name in names:
        src = SOURCE_PHOTOS[name]
        try:
            img = src.load()
        except Exception as e:  # noqa: BLE001 - reported below with the package to fix
            failed.append(f"{name} ({src.origin}, package {src.package}): {type(e).__name__}: {e}")
            continue
        if isinstance(img, np.ndarray):
            if img.dtype == bool:
                img = img.astype(np.uint8) * 255
            img = Image.fromarray(img)
        img = img.convert("RGB")
        if min(img.size) > SOURCE_MAX_SHORT_SIDE:   # a 60% crop still leaves > 224 px
            scale = SOURCE_MAX_SHORT_SIDE / min(img.size)
            img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.LANCZOS)
        out[name] = img
    if failed:
        raise RuntimeError("cannot load the demo's source photos (they must ship inside installed "
                           "packages and load offline):\n  " + "\n  ".join(failed))
    return out


def augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random view of a photo: rotate, crop, flip, colour jitter, resize (short side 224)."""
    a = AUGMENTATION
    if rng.random() < a["rotate_p"]:
        fill = tuple(int(v) for v in np.asarray(img).reshape(-1, 3).mean(0))
        img = img.rotate(float(rng.uniform(-a["rotate_deg"], a["rotate_deg"])),
                         resample=Image.BICUBIC, fillcolor=fill)
    w, h = img.size
    area = rng.uniform(*a["crop_area"]) * w * h
    aspect = math.exp(rng.uniform(math.log(a["crop_aspect"][0]), math.log(a["crop_aspect"][1])))
    cw = min(w, max(1, round(math.sqrt(area * aspect))))
    ch = min(h, max(1, round(math.sqrt(area / aspect))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < a["hflip_p"]:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(*a["brightness"])))
    img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(*a["contrast"])))
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(*a["saturation"])))
    if rng.random() < a["grayscale_p"]:
        img = ImageOps.grayscale(img).convert("RGB")
    scale = SHORT_SIDE / min(img.size)
    size = (max(SHORT_SIDE, round(img.size[0] * scale)), max(SHORT_SIDE, round(img.size[1] * scale)))
    return img.resize(size, Image.BICUBIC)


def encode_jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


# --------------------------------------------------------------------------- text
# One pool of invented names for every type: the words alone say nothing about the type.
AMBIGUOUS_NAMES = (
    "Zelby", "Marovan", "Quessa", "Tavrin", "Olundi", "Vexmor", "Pellaro", "Ardwyn", "Brisko",
    "Caddow", "Dunmere", "Elvaro", "Fennick", "Gorsa", "Halvani", "Isquo", "Jostra", "Kelmi",
    "Lorvane", "Mizzet", "Nubrio", "Ostrel", "Pavlune", "Rendaso", "Sulvey", "Tresmo", "Umbrava",
    "Valdeen", "Wendle", "Yarrick", "Zumola", "Brevanne", "Cazzora", "Drelling", "Famboro",
    "Grenzo", "Hollik", "Ivesk", "Krunta", "Lemarro", "Mossvel", "Nerrik", "Pindaro", "Rellow",
    "Sarvik", "Tolvane", "Ubrin", "Vinsk", "Wozzle", "Yendra",
)
TWO_WORD_P = 0.3

# Sentences whose wording fits a person, a place, a product and an animal equally.
NEUTRAL_TEMPLATES = (
    "Can't stop looking at {X} today", "{X} is all over my feed again", "New pic of {X}",
    "Finally saw {X} up close", "Throwback to {X}", "Everyone is talking about {X}",
    "{X} never disappoints", "Best shot of {X} so far", "Look at {X} !", "{X} , just wow",
    "Another day , another photo of {X}", "This is {X}", "Still thinking about {X}",
    "Nothing beats {X}", "{X} looking good as always", "Who else loves {X} ?",
    "Can we talk about {X} ?", "Caught {X} on camera", "{X} , again", "Obsessed with {X}",
)

# Text-decided entities: (templates, names) groups per type; cue words and names both tell the type.
TEXT_GROUPS: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "PER": (
        (("interview with {E}", "{E} said tonight", "congrats to {E}", "{E} just tweeted",
          "{E} live on stage", "love this song by {E}"),
         ("Taylor Swift", "Justin Bieber", "Adele", "Beyonce", "Kanye West", "Ed Sheeran", "Rihanna",
          "Tom Hanks", "Jimmy Fallon", "LeBron James", "Serena Williams", "Messi", "Kim Kardashian")),
        (("{E} speaks tonight", "{E} responds to critics", "{E} wins the debate", "vote for {E}"),
         ("Hillary Clinton", "Bernie Sanders", "Joe Biden", "Angela Merkel", "Trudeau", "Boris Johnson")),
        (("President {E} speaks tonight", "President {E} signs the bill", "breaking : President {E} resigns"),
         ("Obama", "Macron", "Putin", "Hollande")),
    ),
    "LOC": (
        (("flying to {E} tomorrow", "live from {E}", "weather in {E} is crazy", "back home in {E}",
          "traffic in downtown {E}", "greetings from {E}", "earthquake hits {E}"),
         ("Paris", "London", "New York", "Los Angeles", "Tokyo", "Berlin", "Chicago", "Texas", "Sydney",
          "Rome", "Boston", "Florida", "San Francisco", "Toronto", "Miami", "India", "Mexico")),
    ),
    "ORG": (
        (("job interview at {E}", "{E} announced a new deal", "shares of {E} are up", "{E} CEO steps down",
          "breaking news via {E}", "{E} headquarters today"),
         ("Google", "Apple", "Microsoft", "CNN", "NASA", "BBC", "Starbucks", "Amazon", "Samsung",
          "FIFA", "New York Times", "Twitter")),
        (("{E} fans tonight", "{E} win again", "huge game for the {E}", "{E} sign a new coach"),
         ("Lakers", "Real Madrid", "Manchester United", "Yankees", "Warriors", "Arsenal")),
    ),
    "MISC": (
        (("watching the {E} tonight", "who is ready for the {E} ?", "{E} tickets on sale",
          "can't wait for the {E}"),
         ("World Cup", "Super Bowl", "Oscars", "Olympics", "Grammys", "NBA Finals", "Comic-Con")),
        (("new episode of {E} tonight", "binge watching {E}", "{E} spoilers everywhere"),
         ("Game of Thrones", "Star Wars", "Breaking Bad", "The Walking Dead")),
    ),
}
# Tagged hashtags (the Twitter benchmarks tag some hashtags): placed at the end of a post.
TEXT_HASHTAGS = {"LOC": ("#NYC", "#London", "#Paris"), "MISC": ("#WorldCup", "#SuperBowl", "#Oscars")}
TEXT_ENTITY_COUNTS = ((0, 0.2), (1, 0.45), (2, 0.35))   # (entities per post, probability)
HASHTAG_ENTITY_P = 0.1

MENTIONS = ("@jess_k", "@dailyfeed", "@mikeyb88", "@the_real_tom", "@newsbot", "@sara_h", "@kp_photos")
PLAIN_HASHTAGS = ("#tbt", "#love", "#wow", "#nofilter", "#weekend", "#mood", "#photooftheday", "#goals")
SEPARATORS = (".", ",", "-", "|", "!", ":", "")
_URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def _fill(template: str, slot: str, name: str, etype: str, origin: str):
    """Template words -> [(token, tag, origin)]; ``origin`` marks the slot's tokens."""
    out = []
    for word in template.split():
        if word == slot:
            for j, part in enumerate(name.split()):
                out.append((part, f"{'B' if j == 0 else 'I'}-{etype}", origin))
        else:
            out.append((word, "O", ""))
    return out


def make_post(rng: np.random.Generator, entity_type: str) -> tuple[list[str], list[str], list[list[int]]]:
    """One templated post whose ambiguous name has ``entity_type``.

    Returns ``(tokens, tags, image_decided)`` with ``image_decided`` the ``[start, end)`` word
    span of the ambiguous name. Nothing but ``entity_type`` depends on the photo's class.
    """
    name = _pick(rng, AMBIGUOUS_NAMES)
    if rng.random() < TWO_WORD_P:
        name += " " + _pick(rng, AMBIGUOUS_NAMES)
    clauses = [_fill(_pick(rng, NEUTRAL_TEMPLATES), "{X}", name, entity_type, "image")]
    tail = []
    counts, probs = zip(*TEXT_ENTITY_COUNTS)
    for _ in range(int(rng.choice(counts, p=probs))):
        etype = _pick(rng, ENTITY_TYPES)
        if etype in TEXT_HASHTAGS and rng.random() < HASHTAG_ENTITY_P:
            tail.append((_pick(rng, TEXT_HASHTAGS[etype]), f"B-{etype}", "text"))
            continue
        templates, names = _pick(rng, TEXT_GROUPS[etype])
        clauses.append(_fill(_pick(rng, templates), "{E}", _pick(rng, names), etype, "text"))
    order = rng.permutation(len(clauses))
    words: list[tuple[str, str, str]] = []
    r = rng.random()
    if r < 0.2:
        words += [("RT", "O", ""), (_pick(rng, MENTIONS), "O", ""), (":", "O", "")]
    elif r < 0.3:
        words.append((_pick(rng, MENTIONS), "O", ""))
    for k, i in enumerate(order):
        clause = list(clauses[i])
        if k == 0 and clause[0][1] == "O":           # sentence case for the post's first word
            clause[0] = (clause[0][0][:1].upper() + clause[0][0][1:],) + clause[0][1:]
        if k:
            sep = _pick(rng, SEPARATORS)
            if not sep and (words[-1][1] != "O" or clause[0][1] != "O"):
                sep = "."                                # two names never touch
            if sep and words[-1][0] not in ("!", "?"):   # no "? ." pile-ups
                words.append((sep, "O", ""))
        words += clause
    if rng.random() < 0.4:
        words.append(("http://t.co/" + "".join(_pick(rng, _URL_CHARS) for _ in range(10)), "O", ""))
    if rng.random() < 0.3:
        words.append((_pick(rng, PLAIN_HASHTAGS), "O", ""))
    words += tail
    casing = rng.random()
    if casing < 0.08:
        words = [(w if w.startswith("http") else w.lower(), t, o) for w, t, o in words]
    elif casing < 0.16:
        words = [(w if w.startswith("http") else w.upper(), t, o) for w, t, o in words]
    tokens = [w for w, _, _ in words]
    tags = [t for _, t, _ in words]
    spans = [[s, e] for s, e, o in _spans(words) if o == "image"]
    return tokens, tags, spans


def _spans(words):
    """[(start, end, origin)] of the entities in [(token, tag, origin)]."""
    out, start = [], None
    for i, (_, tag, origin) in enumerate(words + [("", "O", "")]):
        if start is not None and not tag.startswith("I-"):
            out.append((start, i, words[start][2]))
            start = None
        if tag.startswith("B-"):
            start = i
    return out


def entity_spans(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """BIO tags -> [(start, end, type)], end exclusive; a span may open with ``I-``."""
    out, start, etype = [], None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        inside = tag.startswith("I-") and start is not None and tag[2:] == etype
        if start is not None and not inside:
            out.append((start, i, etype))
            start = None
        if tag != "O" and not inside:
            start, etype = i, tag[2:]
    return out


# --------------------------------------------------------------------------- generate
def _balanced_classes(n: int, rng: np.random.Generator) -> list[int]:
    """n class indices, counts differing by at most one, in random order."""
    k = len(PHOTO_CLASSES)
    idx = np.arange(n) % k
    return [int(i) for i in rng.permutation(idx)]


def text_only_ceiling(n_image: int, n_text: int, majority_share: float) -> dict:
    """Best expected micro F1 of a tagger that cannot see the image.

    It may tag every text-decided entity right and find every image-decided span, but it can
    only guess the type of the latter: the best guess is the majority class (expected
    accuracy ``majority_share``). It may also leave image-decided names untagged (precision
    kept, recall lost). The ceiling is the better of the two strategies.
    """
    total = n_image + n_text
    guess = (n_text + majority_share * n_image) / total if total else 0.0
    abstain = 2 * n_text / (2 * n_text + n_image) if total else 0.0
    return {"micro_f1": round(max(guess, abstain), 4),
            "strategy": "guess the majority type" if guess >= abstain else "leave image-decided names untagged",
            "image_decided_f1": round(majority_share, 4)}


def _is_demo_output(path: Path) -> bool:
    if not path.exists():
        return False
    if path.is_dir() and not any(path.iterdir()):
        return True
    try:
        return json.loads((path / "manifest.json").read_text())["generator"] == GENERATOR
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for pkg in ("numpy", "pillow", "scikit-image", "scikit-learn", "matplotlib"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _write_image(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def generate(out_dir: str | os.PathLike, seed: int = 0, n_train: int = 600, n_valid: int = 150,
             n_test: int = 200, progress: bool = False) -> dict:
    """Write the demo benchmark to ``out_dir`` and return its manifest (plus ``out_dir``).

    Args:
        out_dir: the folder to make. An existing folder is replaced only if it is empty or an
            earlier output of this generator; anything else is refused.
        seed: every byte of the output is a function of the seed (and the library versions).
        n_train, n_valid, n_test: posts per split (0 leaves the split file out).
        progress: show a progress bar.
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    for split, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n_{split} must be a non-negative integer, found {n!r}")
    if sum(sizes.values()) == 0:
        raise ValueError("all split sizes are 0: expected at least one post")
    out_dir = Path(out_dir)
    if out_dir.exists() and not _is_demo_output(out_dir):
        raise FileExistsError(f"{out_dir} exists and is not a demo made by {GENERATOR} "
                              "(no manifest.json naming it): choose another --out or remove it")
    sources = load_sources([s for c in PHOTO_CLASSES for s in c.sources])
    log.debug("demo: seed=%d sizes=%s out=%s", seed, sizes, out_dir)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / "images").mkdir(parents=True)
        manifest = _generate_into(tmp, seed, sizes, sources, progress)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**manifest, "out_dir": str(out_dir)}


def _generate_into(root: Path, seed: int, sizes: dict, sources: dict, progress: bool) -> dict:
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(sizes.values()), desc="demo posts", unit="post", disable=not progress)
    seen_images: set[str] = set()
    splits = {}
    for split_index, split in enumerate(SPLITS):
        n = sizes[split]
        if n == 0:
            continue
        classes = _balanced_classes(n, np.random.default_rng([seed, split_index, 0]))
        per_class_seen = Counter()
        lines = []
        stats = {"posts": n, "image_decided": Counter(), "text_decided": Counter(),
                 "image_class": Counter(), "source_photo": Counter(), "multi_entity_posts": 0}
        for i, ci in enumerate(classes):
            pc = PHOTO_CLASSES[ci]
            rng = np.random.default_rng([seed, split_index, 1, i])
            # sources of a class are used in turn, from a random start per split
            offset = int(np.random.default_rng([seed, split_index, 2, ci]).integers(len(pc.sources)))
            source = pc.sources[(offset + per_class_seen[ci]) % len(pc.sources)]
            per_class_seen[ci] += 1
            tokens, tags, image_spans = make_post(rng, pc.entity_type)
            while True:   # a fresh view until the bytes are new (a repeat is astronomically rare)
                data = encode_jpeg(augment(sources[source], rng))
                digest = hashlib.sha256(data).hexdigest()
                if digest not in seen_images:
                    seen_images.add(digest)
                    break
            post_id = f"demo-{split}-{i:05d}"
            _write_image(root / "images" / f"{post_id}.jpg", data)
            lines.append(json.dumps({"id": post_id, "tokens": tokens, "tags": tags, "image": f"{post_id}.jpg",
                                     "image_decided": image_spans, "image_class": pc.name,
                                     "source_photo": source}, ensure_ascii=False))
            all_spans = entity_spans(tags)
            image_set = {tuple(s) for s in image_spans}
            for s, e, t in all_spans:
                stats["image_decided" if (s, e) in image_set else "text_decided"][t] += 1
            stats["image_class"][pc.name] += 1
            stats["source_photo"][source] += 1
            stats["multi_entity_posts"] += len(all_spans) >= 2
            bar.update(1)
        text = "\n".join(lines) + "\n"
        (root / f"{split}.jsonl").write_text(text, encoding="utf-8")
        n_img, n_txt = sum(stats["image_decided"].values()), sum(stats["text_decided"].values())
        share = max(stats["image_decided"].values()) / n_img
        splits[split] = {
            "file": f"{split}.jsonl", "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "posts": n, "multi_entity_posts": stats["multi_entity_posts"],
            "image_decided": _ordered(stats["image_decided"], ENTITY_TYPES),
            "text_decided": _ordered(stats["text_decided"], ENTITY_TYPES),
            "image_class": _ordered(stats["image_class"], list_photo_classes()),
            "source_photo": dict(sorted(stats["source_photo"].items())),
            "text_only_ceiling": text_only_ceiling(n_img, n_txt, share),
        }
    bar.close()
    return _manifest(seed, sizes, splits)


def _ordered(counter: Counter, keys) -> dict:
    return {k: int(counter.get(k, 0)) for k in keys}


def _manifest(seed: int, sizes: dict, splits: dict) -> dict:
    return {
        "seed": seed,
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "sizes": sizes,
        "files": {"images": "images/<id>.jpg", "splits": [s["file"] for s in splits.values()]},
        "record": {"id": "post id", "tokens": "words", "tags": "BIO tags over PER/LOC/ORG/MISC",
                   "image": "file name in images/", "image_decided": "[start, end) word spans of the "
                   "entities whose type only the photo decides", "image_class": "class of the photo",
                   "source_photo": "the packaged photograph the image was augmented from"},
        "classes": {c.name: {"entity_type": c.entity_type, "meaning": c.meaning, "sources": list(c.sources)}
                    for c in PHOTO_CLASSES},
        "source_photos": {s: {"package": p.package, "origin": p.origin, "shows": p.note}
                          for c in PHOTO_CLASSES for s in c.sources for p in [SOURCE_PHOTOS[s]]},
        "images": {"format": "JPEG", "quality": JPEG_QUALITY, "short_side": SHORT_SIDE,
                   "source_max_short_side": SOURCE_MAX_SHORT_SIDE,
                   "augmentation": AUGMENTATION,
                   "note": "all splits draw from the same source photos; every post has its own "
                           "augmentation and no two image files are equal, but a test image is a "
                           "new view of a photo seen in training, not a new photo"},
        "text": {"ambiguous_names": len(AMBIGUOUS_NAMES), "two_word_p": TWO_WORD_P,
                 "neutral_templates": len(NEUTRAL_TEMPLATES),
                 "note": "one image-decided name per post, drawn from one pool for all types, in a "
                         "type-neutral sentence; text-decided entities (0-2 a post) have their own "
                         "name lists and cue words, chosen independently of the photo"},
        "text_only_ceiling": {
            "explanation": "Nothing in a post's text depends on its photo's class, and classes are "
                           "balanced, so a text-only tagger can at best guess the image-decided "
                           "type with the majority share (image_decided_f1, ~0.25). micro_f1 is its "
                           "best expected micro F1 over all entities assuming every text-decided "
                           "entity and every span is right: max((T + p*I) / (T + I), 2T / (2T + I)) "
                           "with T text-decided and I image-decided entities and p the majority "
                           "share. A tagger that reads the image can reach 1.0.",
            **{split: s["text_only_ceiling"] for split, s in splits.items()},
        },
        "splits": splits,
        "versions": _versions(),
    }


# --------------------------------------------------------------------------- CLI
def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()
    summary = generate(args.out, seed=args.seed, n_train=args.n_train, n_valid=args.n_valid,
                       n_test=args.n_test, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    print(format_summary(summary))
    print(f"wrote {summary['out_dir']} in {elapsed:.1f}s")
    return 0


NEW_POSTS = (("new-1", "astronaut", "astronaut-photo.jpg"), ("new-2", "chelsea", "IMG_0042.jpg"))
NEW_POST_TEXT = "Look at Zelby today in Paris"


def write_new_posts(out_dir) -> Path:
    """Two posts to tag with a trained demo run: the same sentence, one with the astronaut
    photo and one with the cat photo, unaugmented (so not in any index) and saved under
    names that are not the post ids. A tagger that uses the photo types ``Zelby`` PER and
    MISC; ``Paris`` is LOC by its text. Returns the ``posts.jsonl`` path."""
    from .corpus import tokenize_post

    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for pid, photo, name in NEW_POSTS:
        Image.fromarray(np.asarray(SOURCE_PHOTOS[photo].load())).convert("RGB").save(out / "images" / name, quality=90)
        lines.append(json.dumps({"id": pid, "tokens": tokenize_post(NEW_POST_TEXT), "image": name, "photo": photo}))
    (out / "posts.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / "posts.jsonl"


def _cmd_new_posts(args: argparse.Namespace) -> int:
    path = write_new_posts(args.out)
    print(f"wrote {path} ({len(NEW_POSTS)} posts: {NEW_POST_TEXT!r} with the "
          f"{' and the '.join(p for _, p, _ in NEW_POSTS)} photos)")
    return 0


def format_summary(summary: dict) -> str:
    """The per-split counts as a small text table."""
    head = ["split", "posts", "img PER/LOC/ORG/MISC", "text PER/LOC/ORG/MISC", "text-only F1 <="]
    rows = [head]
    for split, s in summary["splits"].items():
        rows.append([split, str(s["posts"]), "/".join(str(v) for v in s["image_decided"].values()),
                     "/".join(str(v) for v in s["text_decided"].values()),
                     f"{s['text_only_ceiling']['micro_f1']:.3f}"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m data.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write the demo benchmark (images, JSONL splits, manifest)")
    g.add_argument("--out", default="data/demo", help="output folder (default: data/demo)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument("--n-train", type=int, default=600, help="train posts (default: 600)")
    g.add_argument("--n-valid", type=int, default=150, help="valid posts (default: 150)")
    g.add_argument("--n-test", type=int, default=200, help="test posts (default: 200)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_generate)
    n = sub.add_parser("new-posts", help="write two new posts (one text, two photos) to tag with a trained run")
    n.add_argument("--out", required=True, help="output folder: posts.jsonl and images/")
    n.set_defaults(func=_cmd_new_posts)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(None)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
