"""The embedded demo benchmark: tweets whose images are real photographs shipped inside
installed packages, templated so that each post tests one thing real posts do with images.

Every post carries one *ambiguous name*, an invented word ("Zelby", "Marovan Tresmo")
drawn from one pool for all four types (its ``target`` span), and 0-2 text-decided
entities ("flying to Paris"). Its ``kind`` says what decides the name's type:

=================  ==========================================  ===========================
kind               sentence and image                          what it tests
=================  ==========================================  ===========================
image_decided      type-neutral sentence; the photo's class    that a head uses the image
                   decides (person PER, place LOC, product
                   ORG, animal or plant MISC)
conflicting_image  a cue decides ("Coach Zelby", "my dog       that a head does not trust
                   Zelby"); the photo shows another class      the image blindly
unrelated_image    a cue decides; the photo is a texture or    that an irrelevant image
                   a microscope slide                          does no harm
visual_text        type-neutral sentence; a sign drawn on a    that a head reads text in
                   photo of a random class decides ("ZELBY     the image (OCR)
                   INC.", "WELCOME TO ZELBY")
no_image           a cue decides; the post has no image        graceful degradation
=================  ==========================================  ===========================

Photos, their classes and which classes hold a photo out for test: :mod:`data.demo_photos`.
Sentences: :mod:`data.demo_text`. Types are balanced within each kind and split, so a
text-only tagger is at chance (about 25%) on ``image_decided`` and ``visual_text``
targets, and a tagger that types names by the photo's class alone scores 0 on
``conflicting_image``; ``manifest.json`` holds these ceilings per kind and split.

Every post's image is its own random view of a source photo (crop of 60-100% of the
area, flip, small rotation, colour jitter), a JPEG of 224 px on the short side.

Output (written to a temporary sibling folder, then renamed into place)::

    out_dir/images/<id>.jpg
    out_dir/{train,valid,test}.jsonl   {"id", "tokens", "tags", "image", "kind", "target",
                                        "image_decided", "image_class", "source_photo", "sign"}
    out_dir/manifest.json

Run ``python -m data.demo generate --out data/demo [--seed 0] [--n-train N ...]``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .demo_photos import (AUGMENTATION, JPEG_QUALITY, PHOTO_CLASSES, SHORT_SIDE, SIGNS, SOURCE_MAX_SHORT_SIDE,
                          SOURCE_PHOTOS, UNRELATED, PhotoClass, augment, draw_sign, encode_jpeg,
                          load_sources)
from .demo_text import AMBIGUOUS_NAMES, CUE_TEMPLATES, ENTITY_TYPES, NEUTRAL_TEMPLATES, TWO_WORD_P, make_post
from .errors import ArgumentParser, UserError, command, nonnegative_int, output_dir, positive_int
from .logs import setup_logging
from .spans import get_spans

log = logging.getLogger(__name__)

GENERATOR = "data.demo"
FORMAT_VERSION = 2
SPLITS = ("train", "valid", "test")
CLASS_OF_TYPE = {c.entity_type: c for c in PHOTO_CLASSES}


@dataclass(frozen=True)
class Kind:
    """One kind of post: does a cue in the text decide the name, and what image it gets."""

    name: str
    cue: bool            # the sentence's words decide the name's type
    photo: str           # "type" (the type's class), "other" (another class), "any" (a random
                         # class, under a sign), "unrelated", or "none"
    meaning: str


KINDS: tuple[Kind, ...] = (
    Kind("image_decided", False, "type", "type-neutral sentence; the photo's class decides the type"),
    Kind("conflicting_image", True, "other", "a textual cue decides the type; the photo shows another class"),
    Kind("unrelated_image", True, "unrelated", "a textual cue decides the type; the photo shows nothing related"),
    Kind("visual_text", False, "any", "type-neutral sentence; a sign drawn onto a photo of a random class "
                                      "decides the type"),
    Kind("no_image", True, "none", "a textual cue decides the type; the post has no image"),
)
KIND_NAMES = tuple(k.name for k in KINDS)
DEFAULT_MIX = {"image_decided": 0.3, "conflicting_image": 0.2, "unrelated_image": 0.15,
               "visual_text": 0.2, "no_image": 0.15}


# --------------------------------------------------------------------------- plan
def _share_out(n: int, mix: dict[str, float]) -> dict[str, int]:
    """``n`` posts over the kinds in proportion to ``mix`` (largest remainder)."""
    total = sum(mix.values())
    exact = {k: n * v / total for k, v in mix.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], KIND_NAMES.index(k)))[:n - sum(counts.values())]:
        counts[k] += 1
    return counts


@dataclass(frozen=True)
class PostPlan:
    """Everything about a post that is decided before its words and pixels are drawn."""

    post_id: str
    kind: Kind
    entity_type: str
    photo_class: PhotoClass | None
    source: str | None


def plan_split(split: str, n: int, seed: int, mix: dict[str, float]) -> list[PostPlan]:
    """The posts of one split: kinds in proportion to ``mix``, types balanced within each
    kind, photo classes by the kind's rule, and each class's photos used in turn."""
    si = SPLITS.index(split)
    rng = np.random.default_rng([seed, si, 0])
    plans: list[tuple[Kind, str, PhotoClass | None]] = []
    for kind in KINDS:
        m = _share_out(n, mix)[kind.name]
        types = [ENTITY_TYPES[i] for i in rng.permutation(np.arange(m) % len(ENTITY_TYPES))]
        for j, etype in enumerate(types):
            own = CLASS_OF_TYPE[etype]
            if kind.photo == "type":
                pc = own
            elif kind.photo == "other":
                others = [c for c in PHOTO_CLASSES if c is not own]
                pc = others[(j + int(rng.integers(len(others)))) % len(others)]
            elif kind.photo == "any":
                pc = PHOTO_CLASSES[int(rng.integers(len(PHOTO_CLASSES)))]
            elif kind.photo == "unrelated":
                pc = UNRELATED
            else:
                pc = None
            plans.append((kind, etype, pc))
    order = rng.permutation(len(plans))
    used: Counter = Counter()
    offsets = {c.name: int(rng.integers(len(c.sources_for(split)))) for c in (*PHOTO_CLASSES, UNRELATED)}
    out = []
    for i, p in enumerate(order):
        kind, etype, pc = plans[p]
        source = None
        if pc is not None:
            pool = pc.sources_for(split)
            source = pool[(offsets[pc.name] + used[pc.name]) % len(pool)]
            used[pc.name] += 1
        out.append(PostPlan(f"demo-{split}-{i:05d}", kind, etype, pc, source))
    return out


# --------------------------------------------------------------------------- posts
_SOURCES: dict[str, Image.Image] = {}


def _load_all_sources() -> None:
    if not _SOURCES:
        _SOURCES.update(load_sources([s for c in (*PHOTO_CLASSES, UNRELATED)
                                      for s in (*c.sources, *c.test_sources)]))


def make_record(plan: PostPlan, seed: int, salt: int = 0) -> tuple[dict, bytes | None]:
    """The post's JSONL record and its JPEG bytes (``None`` for a post without an image).
    A function of the plan, the seed and ``salt`` (bumped only to redraw a repeated image)."""
    split, i = plan.post_id.split("-")[1], int(plan.post_id.rsplit("-", 1)[1])
    rng = np.random.default_rng([seed, SPLITS.index(split), 1, i, salt])
    tokens, tags, target, name = make_post(rng, plan.entity_type, cue=plan.kind.cue)
    data, sign = None, None
    if plan.source is not None:
        _load_all_sources()
        img = augment(_SOURCES[plan.source], rng)
        if plan.kind.name == "visual_text":
            img, sign = draw_sign(img, name, plan.entity_type, rng)
        data = encode_jpeg(img)
    image_decided = target if not plan.kind.cue else []
    record = {"id": plan.post_id, "tokens": tokens, "tags": tags,
              "image": f"{plan.post_id}.jpg" if data is not None else None,
              "kind": plan.kind.name, "target": target, "image_decided": image_decided,
              "image_class": plan.photo_class.name if plan.photo_class else None,
              "source_photo": plan.source, "sign": sign}
    return record, data


def _make_records(args) -> list[tuple[dict, bytes | None]]:
    plans, seed = args
    return [make_record(p, seed) for p in plans]


# --------------------------------------------------------------------------- ceilings
def kind_ceilings(records: Sequence[dict]) -> dict:
    """Per kind, the expected F1 on target names of three taggers that find every span and
    differ in what types it: ``text_only`` (the words; the majority type where they say
    nothing), ``photo_class_only`` (the photo's class; the majority type without one) and
    ``image_oracle`` (everything the image shows, its sign included; the majority type
    where the image says nothing). A tagger that reads both can reach 1.0 on every kind."""
    out = {}
    for kind in KINDS:
        rs = [r for r in records if r["kind"] == kind.name]
        if not rs:
            continue
        types = [_target_type(r) for r in rs]
        majority = Counter(types).most_common(1)[0][1] / len(rs)
        photo_type = [_class_type(r["image_class"]) for r in rs]
        by_photo = (sum(p == t for p, t in zip(photo_type, types)) / len(rs)
                    if any(p is not None for p in photo_type) else majority)
        image_oracle = {"type": 1.0, "any": 1.0, "other": 0.0}.get(kind.photo, majority)
        out[kind.name] = {"posts": len(rs), "text_only": round(1.0 if kind.cue else majority, 4),
                          "photo_class_only": round(by_photo, 4), "image_oracle": round(image_oracle, 4)}
    return out


def _target_type(record: dict) -> str:
    (s, e), = record["target"]
    return {(a, b): t for t, a, b in get_spans(record["tags"])}[(s, e)]


def _class_type(name: str | None) -> str | None:
    return next((c.entity_type for c in PHOTO_CLASSES if c.name == name), None)


def text_only_ceiling(n_image: int, n_text: int, majority_share: float) -> dict:
    """Best expected micro F1 over all entities of a tagger that cannot see the image.

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


# --------------------------------------------------------------------------- generate
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


def generate(out_dir: str | os.PathLike, seed: int = 0, n_train: int = 800, n_valid: int = 200,
             n_test: int = 400, mix: dict[str, float] | None = None, workers: int = 1,
             progress: bool = False) -> dict:
    """Write the demo benchmark to ``out_dir`` and return its manifest (plus ``out_dir``).

    Args:
        out_dir: the folder to make. An existing folder is replaced only if it is empty or an
            earlier output of this generator; anything else is refused.
        seed: every byte of the output is a function of the seed (and the library versions),
            whatever ``workers`` is.
        n_train, n_valid, n_test: posts per split (0 leaves the split file out); tens of
            thousands are fine (about 150 posts/s per worker on this project's 2-core CI machine).
        mix: share of each kind (``DEFAULT_MIX`` when ``None``; a kind left out gets none).
        workers: processes drawing the images.
        progress: show a progress bar.
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    for split, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n_{split} must be a non-negative integer, found {n!r}")
    if sum(sizes.values()) == 0:
        raise ValueError("all split sizes are 0: expected at least one post")
    mix = {k: float(mix.get(k, 0.0)) for k in KIND_NAMES} if mix is not None else dict(DEFAULT_MIX)
    unknown = set(mix) - set(KIND_NAMES) if mix else set()
    if unknown or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise ValueError(f"mix must give non-negative shares to some of {', '.join(KIND_NAMES)}; found {mix}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not _is_demo_output(out_dir):
        raise FileExistsError(f"{out_dir} exists and is not a demo made by {GENERATOR} "
                              "(no manifest.json naming it): choose another --out or remove it")
    _load_all_sources()             # fail early, naming any photo that cannot be loaded
    log.debug("demo: seed=%d sizes=%s mix=%s out=%s", seed, sizes, mix, out_dir)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        (tmp / "images").mkdir(parents=True)
        manifest = _generate_into(tmp, seed, sizes, mix, workers, progress)
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


CHUNK = 64   # posts a worker draws at a time


def _generate_into(root: Path, seed: int, sizes: dict, mix: dict, workers: int, progress: bool) -> dict:
    from tqdm.auto import tqdm

    bar = tqdm(total=sum(sizes.values()), desc="demo posts", unit="post", disable=not progress)
    seen_images: set[str] = set()
    splits = {}
    pool = ProcessPoolExecutor(workers, initializer=_load_all_sources) if workers > 1 else None
    try:
        for split in SPLITS:
            if sizes[split] == 0:
                continue
            plans = plan_split(split, sizes[split], seed, mix)
            chunks = [(plans[s:s + CHUNK], seed) for s in range(0, len(plans), CHUNK)]
            results = pool.map(_make_records, chunks) if pool else map(_make_records, chunks)
            records = []
            for chunk, made in zip(chunks, results):
                for plan, (record, data) in zip(chunk[0], made):
                    salt = 0
                    while data is not None and hashlib.sha256(data).hexdigest() in seen_images:
                        salt += 1                       # a repeated view: astronomically rare
                        record, data = make_record(plan, seed, salt)
                    if data is not None:
                        seen_images.add(hashlib.sha256(data).hexdigest())
                        _write_image(root / "images" / record["image"], data)
                    records.append(record)
                    bar.update(1)
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            (root / f"{split}.jsonl").write_text(text, encoding="utf-8")
            splits[split] = _split_stats(split, records, text)
    finally:
        if pool:
            pool.shutdown()
        bar.close()
    return _manifest(seed, sizes, mix, splits)


def _split_stats(split: str, records: list[dict], text: str) -> dict:
    stats = {"target": Counter(), "text_decided": Counter(), "image_class": Counter(),
             "source_photo": Counter(), "kind": Counter()}
    n_image = n_text = 0
    image_types: Counter = Counter()
    for r in records:
        target = {tuple(s) for s in r["target"]}
        for t, s, e in get_spans(r["tags"]):
            if (s, e) in target:
                stats["target"][t] += 1
                if r["image_decided"]:
                    n_image += 1
                    image_types[t] += 1
                else:
                    n_text += 1
            else:
                stats["text_decided"][t] += 1
                n_text += 1
        stats["kind"][r["kind"]] += 1
        stats["image_class"][r["image_class"] or "none"] += 1
        stats["source_photo"][r["source_photo"] or "none"] += 1
    share = max(image_types.values()) / n_image if n_image else 1.0
    return {
        "file": f"{split}.jsonl", "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "posts": len(records), "kinds": _ordered(stats["kind"], KIND_NAMES),
        "target": _ordered(stats["target"], ENTITY_TYPES),
        "text_decided": _ordered(stats["text_decided"], ENTITY_TYPES),
        "image_class": dict(sorted(stats["image_class"].items())),
        "source_photo": dict(sorted(stats["source_photo"].items())),
        "kind_ceilings": kind_ceilings(records),
        "text_only_ceiling": text_only_ceiling(n_image, n_text, share),
    }


def _ordered(counter: Counter, keys) -> dict:
    return {k: int(counter.get(k, 0)) for k in keys}


def _manifest(seed: int, sizes: dict, mix: dict, splits: dict) -> dict:
    classes = (*PHOTO_CLASSES, UNRELATED)
    return {
        "seed": seed,
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "sizes": sizes,
        "mix": mix,
        "files": {"images": "images/<id>.jpg", "splits": [s["file"] for s in splits.values()]},
        "record": {"id": "post id", "tokens": "words", "tags": "BIO tags over PER/LOC/ORG/MISC",
                   "image": "file name in images/, null for a post without an image",
                   "kind": "what decides the target name's type: " + ", ".join(KIND_NAMES),
                   "target": "[start, end) word span of the post's ambiguous name (one)",
                   "image_decided": "the target span when only the image decides its type, else []",
                   "image_class": "class of the photo (null without one)",
                   "source_photo": "the packaged photograph the image was drawn from",
                   "sign": "text drawn onto the photo (visual_text posts), lines joined by ' / '"},
        "kinds": {k.name: {"meaning": k.meaning, "text_cue": k.cue, "photo": k.photo} for k in KINDS},
        "classes": {c.name: {"entity_type": c.entity_type, "meaning": c.meaning, "sources": list(c.sources),
                             "test_sources": list(c.test_sources), "photo_disjoint": c.photo_disjoint}
                    for c in classes},
        "photo_disjoint": {
            "classes": [c.name for c in classes if c.photo_disjoint],
            "note": "a photo-disjoint class shows its test_sources only in test posts and its sources only "
                    "in train and valid posts, so a model must recognise the class in a photo it never saw; "
                    "the other classes' test images are new random views of photos seen in training",
        },
        "source_photos": {s: {"package": p.package, "origin": p.origin, "shows": p.note}
                          for c in classes for s in (*c.sources, *c.test_sources) for p in [SOURCE_PHOTOS[s]]},
        "images": {"format": "JPEG", "quality": JPEG_QUALITY, "short_side": SHORT_SIDE,
                   "source_max_short_side": SOURCE_MAX_SHORT_SIDE, "augmentation": AUGMENTATION,
                   "signs": {t: [" / ".join(lines) for lines in v] for t, v in SIGNS.items()}},
        "text": {"ambiguous_names": len(AMBIGUOUS_NAMES), "two_word_p": TWO_WORD_P,
                 "neutral_templates": len(NEUTRAL_TEMPLATES),
                 "cue_templates": {t: len(v) for t, v in CUE_TEMPLATES.items()},
                 "note": "one target name per post, drawn from one pool for all types; text-decided "
                         "entities (0-2 a post) have their own name lists and cue words, chosen "
                         "independently of the photo"},
        "ceilings": {
            "explanation": "kind_ceilings: per kind, the expected F1 on target names of taggers that find "
                           "every span and type it by the text only (text_only), by the photo's class "
                           "only (photo_class_only) or by everything the image shows, its sign included "
                           "(image_oracle); each falls back to the majority type where its input says "
                           "nothing. text_only_ceiling: the best expected micro F1 over all entities of a "
                           "tagger that cannot see the image: max((T + p*I) / (T + I), 2T / (2T + I)) with "
                           "I the image-decided targets, T every other entity and p the majority share "
                           "among the former. A tagger that reads both text and image can reach 1.0.",
            **{split: {"kinds": s["kind_ceilings"], "text_only": s["text_only_ceiling"]}
               for split, s in splits.items()},
        },
        "splits": splits,
        "versions": _versions(),
    }


# --------------------------------------------------------------------------- CLI
def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    t0 = time.perf_counter()
    mix = None
    if args.mix:
        mix = {}
        for item in args.mix:
            kind, _, share = item.partition("=")
            try:
                value = float(share)
            except ValueError:
                value = -1.0
            if kind not in KIND_NAMES or not value >= 0:
                raise UserError(f"--mix {item}", "expected KIND=SHARE, a share >= 0",
                                f"with KIND one of {', '.join(KIND_NAMES)}, e.g. --mix image_decided=1 no_image=1")
            mix[kind] = value
    summary = generate(args.out, seed=args.seed, n_train=args.n_train, n_valid=args.n_valid,
                       n_test=args.n_test, mix=mix, workers=args.workers, progress=not args.quiet)
    elapsed = time.perf_counter() - t0
    print(format_summary(summary))
    print(f"wrote {summary['out_dir']} in {elapsed:.1f}s")
    return 0


NEW_POSTS = (("new-1", "grace_hopper", "portrait.jpg"), ("new-2", "chelsea", "IMG_0042.jpg"))
NEW_POST_TEXT = "Look at Zelby today in Paris"


def write_new_posts(out_dir) -> Path:
    """Two posts to tag with a trained demo run: the same sentence, one with the astronaut
    photo of Grace Hopper and one with the cat photo, unaugmented (so not in any index) and saved under
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
    """Posts per kind and split, and each kind's ceilings on the test split, as text tables."""
    splits = summary["splits"]
    rows = [["split", "posts", *KIND_NAMES]]
    for split, st in splits.items():
        rows.append([split, str(st["posts"]), *(str(st["kinds"][k]) for k in KIND_NAMES)])
    out = [_table(rows)]
    last = list(splits)[-1]
    rows = [["kind", f"{last} posts", "text only", "photo class only", "image oracle"]]
    for k, c in splits[last]["kind_ceilings"].items():
        rows.append([k, str(c["posts"]), f"{100 * c['text_only']:.1f}", f"{100 * c['photo_class_only']:.1f}",
                     f"{100 * c['image_oracle']:.1f}"])
    out.append(f"\nexpected F1 on the target names of the {last} split (manifest.json: ceilings):\n" + _table(rows))
    disjoint = summary["photo_disjoint"]["classes"]
    out.append(f"photo-disjoint classes (test photos never seen in training): {', '.join(disjoint) or 'none'}")
    return "\n".join(out)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(prog="python -m data.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write the demo benchmark (images, JSONL splits, manifest)")
    g.add_argument("--out", default="data/demo", type=output_dir, help="output folder (default: data/demo)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    g.add_argument("--n-train", type=positive_int, default=800, help="train posts (default: 800; tens of thousands "
                   "for speed and scale runs)")
    g.add_argument("--n-valid", type=nonnegative_int, default=200, help="valid posts (default: 200)")
    g.add_argument("--n-test", type=nonnegative_int, default=400, help="test posts (default: 400)")
    g.add_argument("--mix", nargs="+", metavar="KIND=SHARE",
                   help="share of each kind, e.g. image_decided=1 no_image=1 (default: " +
                   " ".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()) + "; kinds left out get none)")
    g.add_argument("--workers", type=positive_int, default=1, help="processes drawing images (default: 1)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_generate)
    n = sub.add_parser("new-posts", help="write two new posts (one text, two photos) to tag with a trained run")
    n.add_argument("--out", required=True, type=output_dir, help="output folder: posts.jsonl and images/")
    n.set_defaults(func=_cmd_new_posts)
    return parser.parse_args(argv)


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(None)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
