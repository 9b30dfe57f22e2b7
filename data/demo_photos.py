"""The demo's photographs: real photos that ship inside installed packages, the class each
one shows, the random view every post gets of it, and the signs drawn onto photos whose
rendered text decides a name's type.

==============  ===========  ===================================  =======================
photo class     entity type  training photos                      test photos
==============  ===========  ===================================  =======================
person          PER          astronaut, camera                    grace_hopper (held out)
place           LOC          china, moon                          hubble_deep_field (held out)
product         ORG          rocket, motorcycle_left/right, coffee  the same photos
animal_plant    MISC         chelsea, flower, horse               the same photos
unrelated       (none)       brick, grass, immunohistochemistry   the same photos
==============  ===========  ===================================  =======================

A class is *photo-disjoint* when one of its photos is held out of training and validation
and shown only at test time: a model then has to recognise "a person" rather than "the
astronaut photo". Only person and place have a photo that resembles its class-mates under
the index's ImageNet EfficientNet-Lite0 (cosine of pooled features, views of 4 crops each:
grace_hopper-astronaut 0.43, next best 0.31; hubble_deep_field-moon 0.58). The product
and animal classes have no such photo (the two motorcycle photos are views of one stereo
pair; horse is a silhouette nearest to the astronaut), so their test images are new views
of training photos, and ``photo_disjoint`` in the manifest says so.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

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
    """What a photo shows, and the entity type it gives the post's ambiguous name.

    ``test_sources`` are held out: only test posts show them (empty: every split draws
    from ``sources``). ``entity_type`` is ``None`` for photos that say nothing about a name.
    """

    name: str
    entity_type: str | None
    meaning: str
    sources: tuple[str, ...]
    test_sources: tuple[str, ...] = ()

    def sources_for(self, split: str) -> tuple[str, ...]:
        return self.test_sources if split == "test" and self.test_sources else self.sources

    @property
    def photo_disjoint(self) -> bool:
        return bool(self.test_sources)


def _skimage(name: str, index: int | None = None):
    def load():
        import skimage.data
        img = getattr(skimage.data, name)()
        return img if index is None else img[index]
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
    SourcePhoto("motorcycle_left", "scikit-image", "skimage.data.stereo_motorcycle()[0]", "motorcycle in a garage (left view of a stereo pair)", _skimage("stereo_motorcycle", 0)),
    SourcePhoto("motorcycle_right", "scikit-image", "skimage.data.stereo_motorcycle()[1]", "motorcycle in a garage (right view of the same pair)", _skimage("stereo_motorcycle", 1)),
    SourcePhoto("coffee", "scikit-image", "skimage.data.coffee()", "cup of coffee on a saucer", _skimage("coffee")),
    SourcePhoto("chelsea", "scikit-image", "skimage.data.chelsea()", "Chelsea the cat (same photo as skimage.data.cat())", _skimage("chelsea")),
    SourcePhoto("flower", "scikit-learn", "sklearn.datasets.load_sample_image('flower.jpg')", "dahlia flower", _sklearn("flower.jpg")),
    SourcePhoto("horse", "scikit-image", "skimage.data.horse()", "silhouette of a horse, black on white", _skimage("horse")),
    SourcePhoto("brick", "scikit-image", "skimage.data.brick()", "brick wall, grayscale texture", _skimage("brick")),
    SourcePhoto("grass", "scikit-image", "skimage.data.grass()", "grass, grayscale texture", _skimage("grass")),
    SourcePhoto("immunohistochemistry", "scikit-image", "skimage.data.immunohistochemistry()", "stained tissue under a microscope", _skimage("immunohistochemistry")),
)}

PHOTO_CLASSES: tuple[PhotoClass, ...] = (
    PhotoClass("person", "PER", "a photo of a person: the name is that person's", ("astronaut", "camera"),
               test_sources=("grace_hopper",)),
    PhotoClass("place", "LOC", "a landscape, building or celestial place: the name is the place's",
               ("china", "moon"), test_sources=("hubble_deep_field",)),
    PhotoClass("product", "ORG", "a vehicle or product: the name is its maker or brand",
               ("rocket", "motorcycle_left", "motorcycle_right", "coffee")),
    PhotoClass("animal_plant", "MISC", "an animal or a plant: the name is the pet's or the variety's",
               ("chelsea", "flower", "horse")),
)
UNRELATED = PhotoClass("unrelated", None, "a texture or a microscope slide: says nothing about any name",
                       ("brick", "grass", "immunohistochemistry"))


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


# --------------------------------------------------------------------------- signs
# Text drawn onto a photo that decides the type of the name it shows ({X}, upper-cased):
# a storefront or company sign, a road sign, a jersey's back, an event poster.
SIGNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ORG": (("{X}", "INC."), ("{X} & CO", "SINCE 1987"), ("{X}", "BANK"), ("{X}", "MOTORS")),
    "LOC": (("WELCOME TO", "{X}"), ("{X}", "CITY LIMIT"), ("{X} 12 KM",), ("{X}", "NEXT EXIT")),
    "PER": (("{X}", "10"), ("{X}", "23"), ("VOTE", "{X} FOR MAYOR"), ("DR. {X}",)),
    "MISC": (("{X} FESTIVAL", "2017"), ("{X} CUP", "FINAL"), ("{X} AWARDS",), ("{X} FAIR", "TICKETS")),
}
SIGN_COLOURS = (((255, 255, 255), (20, 20, 20)), ((20, 90, 50), (255, 255, 255)),
                ((25, 45, 120), (255, 255, 255)), ((250, 210, 40), (20, 20, 20)),
                ((180, 20, 30), (255, 255, 255)))   # (board, letters)
SIGN_WIDTH = (0.7, 0.95)                             # share of the image width the board spans


@lru_cache(maxsize=8)
def sign_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold from matplotlib's data (always installed with it); Pillow's own
    default font if that file cannot be read."""
    from pathlib import Path

    import matplotlib
    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size)


def draw_sign(img: Image.Image, name: str, entity_type: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """Draw a board with ``name`` in a sign of ``entity_type``'s kind onto ``img``.

    The lines are fitted to a random share of the image width (``SIGN_WIDTH``) and the
    board is placed at random, wholly inside the image. Returns the new image and the
    sign's text (lines joined by " / ").
    """
    lines = [ln.replace("{X}", name.upper()) for ln in SIGNS[entity_type][int(rng.integers(len(SIGNS[entity_type])))]]
    board, ink = SIGN_COLOURS[int(rng.integers(len(SIGN_COLOURS)))]
    w, h = img.size
    target = rng.uniform(*SIGN_WIDTH) * w
    probe = sign_font(40)
    widest = max(probe.getlength(ln) for ln in lines)
    size = max(12, min(int(40 * target / max(widest, 1)), h // (2 * len(lines) + 1)))
    font = sign_font(size)
    pad = size // 3
    line_h = size + pad
    bw = int(max(font.getlength(ln) for ln in lines)) + 2 * pad
    bh = line_h * len(lines) + pad
    x0 = int(rng.integers(0, max(1, w - bw)))
    y0 = int(rng.integers(0, max(1, h - bh)))
    out = img.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((x0, y0, x0 + bw, y0 + bh), fill=board)
    for i, ln in enumerate(lines):
        lw = font.getlength(ln)
        draw.text((x0 + (bw - lw) / 2, y0 + pad + i * line_h), ln, font=font, fill=ink)
    return out, " / ".join(lines)
