"""OCR character accuracy on the demo's signs, and the object tags of the demo's photos.

The demo's ``visual_text`` posts carry a sign drawn onto a real packaged photo
(``data.demo_photos.draw_sign``), its text in the post's ``sign`` field. Each image is
read by the index's OCR engine (``index.ocr``, as ``python -m index build --ocr`` reads
it) and compared with the sign, both normalised: upper-case, the " / " line separator a
space, whitespace collapsed.

* character accuracy = 1 - (Levenshtein distance) / (reference length), summed over the
  images (micro) and averaged per image; also with every space removed from both texts,
  which separates reading the letters from finding the gaps between words;
* name read = the post's name (its target entity) appears in the text read, exactly, and
  with the spaces removed; name as a word = it appears between word boundaries (spaces or
  the text's ends) of the text as read, as an encoder reading the words would meet it;
* seconds per image (the engine's start-up apart), wall-clock and CPU (the process's own
  time, which a shared machine's other work does not inflate), split into detection and
  recognition, and the machine's load average while it ran; the same for one demo view
  per source photo without a sign (where nothing should be read, and recognition is
  skipped where nothing is detected).

Object tags: EfficientNet-Lite0's ImageNet top tags (through the index's embedding path)
of one demo view per source photo (``data.demo_photos.augment``, no sign), and the most
frequent top tag of the sign images.

    python benchmarks/ocr_accuracy.py                       # a fresh demo of 100 sign posts
    python benchmarks/ocr_accuracy.py --demo data/demo      # the visual_text posts of a demo
    python benchmarks/ocr_accuracy.py --demo data/demo --engine det_side=736 space_gap=0 threads=0
                                                            # RapidOCR's detection size, no spacing
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.provenance import write_result  # noqa: E402


def normalise(text: str) -> str:
    """Upper-case, the line separator " / " as a space, whitespace collapsed.

    >>> normalise("Zelby /  inc.")
    'ZELBY INC.'
    """
    return " ".join(text.replace(" / ", " ").upper().split())


def character_accuracy(reference: str, hypothesis: str) -> float:
    """1 - Levenshtein(reference, hypothesis) / len(reference), on the texts as given
    (normalise them first); can fall below 0 when the hypothesis is much longer."""
    from rapidfuzz.distance import Levenshtein

    if not reference:
        raise ValueError("empty reference text")
    return 1.0 - Levenshtein.distance(reference, hypothesis) / len(reference)


def score_reads(rows: list[dict]) -> dict:
    """Aggregate ``[{"reference", "read", "name"}]`` into the benchmark's figures."""
    from rapidfuzz.distance import Levenshtein

    def figures(strip_spaces: bool) -> dict:
        def prep(t: str) -> str:
            t = normalise(t)
            return t.replace(" ", "") if strip_spaces else t
        refs, hyps = [prep(r["reference"]) for r in rows], [prep(r["read"]) for r in rows]
        dist = [Levenshtein.distance(a, b) for a, b in zip(refs, hyps)]
        return {"char_accuracy_micro": 1.0 - sum(dist) / sum(len(a) for a in refs),
                "char_accuracy_mean": statistics.fmean(1.0 - d / len(a) for d, a in zip(dist, refs)),
                "exact_text_rate": statistics.fmean(a == b for a, b in zip(refs, hyps)),
                "name_read_rate": statistics.fmean(prep(r["name"]) in h for r, h in zip(rows, hyps))}

    as_read = figures(False)
    as_read["name_as_word_rate"] = statistics.fmean(f" {normalise(r['name'])} " in f" {normalise(r['read'])} "
                                                    for r in rows)
    return {"images": len(rows), "as_read": as_read, "spaces_ignored": figures(True)}


def engine_settings(pairs: list[str]) -> dict:
    """``["det_side=736", "space_gap=0", "threads=0"]`` -> constructor kwargs (numbers as
    numbers; ``threads=0``: onnxruntime's default)."""
    from data.errors import UserError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--engine {pair!r}", "not KEY=VALUE", "write e.g. --engine det_side=736 space_gap=0")
        number = float(value)
        out[key] = int(number) if number.is_integer() and key != "space_gap" else number
    if out.get("threads") == 0:
        out["threads"] = None
    return out


def timed_reads(engine, paths: list[str]) -> tuple[list[str], dict]:
    """Each image's text, and the time it took: wall and CPU seconds per image, the
    engine's detection and recognition seconds, and the load average around it."""
    from index.images import open_image

    images = [open_image(p) for p in paths]
    before = dict(getattr(engine, "timing", {}))
    load0 = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    reads, seconds = [], []
    for image in images:
        t = time.perf_counter()
        reads.append(engine.read(image))
        seconds.append(time.perf_counter() - t)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    timing = {k: v - before.get(k, 0) for k, v in getattr(engine, "timing", {}).items()}
    n = len(images)
    return reads, {"images": n, "seconds_per_image": statistics.fmean(seconds),
                   "seconds_per_image_median": statistics.median(seconds), "images_per_second": n / wall,
                   "cpu_seconds_per_image": cpu / n, "images_per_cpu_second": n / cpu if cpu else None,
                   "detect_seconds_per_image": timing.get("detect_s", 0.0) / n if timing else None,
                   "recognise_seconds_per_image": timing.get("recognise_s", 0.0) / n if timing else None,
                   "nothing_detected": timing.get("nothing_detected"),
                   "load_average_1min": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def sign_posts(demo: Path, splits: list[str]) -> list[dict]:
    posts = []
    for split in splits:
        f = demo / f"{split}.jsonl"
        if not f.is_file():
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r.get("kind") == "visual_text" and r.get("sign") and r.get("image"):
                a, b = r["target"][0]
                posts.append({"id": r["id"], "image": str(demo / "images" / r["image"]), "sign": r["sign"],
                              "name": " ".join(r["tokens"][a:b]), "source_photo": r.get("source_photo")})
    return posts


def photo_views(folder: Path, seed: int) -> list[tuple[str, str]]:
    """One demo view (augmented, no sign) of every source photo, saved as the demo saves it."""
    import numpy as np

    from data.demo_photos import SOURCE_PHOTOS, augment, encode_jpeg, load_sources

    sources = load_sources(list(SOURCE_PHOTOS))
    out = []
    for k, name in enumerate(SOURCE_PHOTOS):
        view = augment(sources[name], np.random.default_rng([seed, k]))
        path = folder / f"{name}.jpg"
        path.write_bytes(encode_jpeg(view))
        out.append((name, str(path)))
    return out


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python benchmarks/ocr_accuracy.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--demo", default=None, help="a demo folder (data/demo); default: generate one")
    p.add_argument("--splits", nargs="+", default=["train", "valid", "test"], help="with --demo: splits read")
    p.add_argument("--n", type=int, default=100, help="without --demo: visual_text posts generated (test split)")
    p.add_argument("--seed", type=int, default=0, help="demo generation and photo views")
    p.add_argument("--limit", type=int, default=None, help="read at most this many sign images")
    p.add_argument("--tags-k", type=int, default=3)
    p.add_argument("--engine", nargs="+", default=[], metavar="KEY=VALUE",
                   help="OCR engine settings (index.ocr.RapidOcr), e.g. det_side=736 space_gap=0 threads=0")
    p.add_argument("--out", default="benchmarks/results/ocr_accuracy.json")
    args = p.parse_args(argv)

    import torch

    from index.embedding import embed_collection
    from index.embedders import get_embedder
    from index.ocr import get_ocr_engine

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.demo is None:
            from data.demo import generate

            demo = tmp / "demo"
            generate(demo, seed=args.seed, n_train=0, n_valid=0, n_test=args.n, mix={"visual_text": 1.0})
            source = {"generated": {"seed": args.seed, "n_test": args.n, "mix": {"visual_text": 1.0}}}
        else:
            demo = Path(args.demo)
            source = {"demo": str(demo), "splits": args.splits,
                      "manifest_seed": json.loads((demo / "manifest.json").read_text()).get("seed")}
        posts = sign_posts(demo, args.splits if args.demo else ["test"])[: args.limit]
        if not posts:
            print(f"error: no visual_text post with an image in {demo}", file=sys.stderr)
            return 2

        settings = engine_settings(args.engine)
        t0 = time.perf_counter()
        engine = get_ocr_engine("rapidocr", **settings)
        start_seconds = time.perf_counter() - t0
        reads, speed = timed_reads(engine, [q["image"] for q in posts])
        rows = [{"id": q["id"], "source_photo": q["source_photo"], "reference": q["sign"], "read": read,
                 "name": q["name"], "char_accuracy": round(character_accuracy(normalise(q["sign"]), normalise(read)), 4)}
                for q, read in zip(posts, reads)]
        views = photo_views(tmp, args.seed)
        view_reads, view_speed = timed_reads(engine, [path for _, path in views])
        ocr = {"engine": engine.describe(), "settings": {k: v for k, v in settings.items()},
               **score_reads(rows), **speed, "engine_start_seconds": start_seconds,
               "photos_without_text": {**view_speed, "read": {name: r for (name, _), r in zip(views, view_reads) if r}},
               "misread": [{k: r[k] for k in ("id", "reference", "read", "char_accuracy")}
                           for r in rows if normalise(r["read"]) != normalise(r["reference"])][:15]}

        embedder = get_embedder("efficientnet_lite0", device="cpu")
        res = embed_collection(views, embedder, batch_size=16, tags_k=args.tags_k, progress=False)
        photo_tags = {i: [{"label": lab, "score": round(s, 4)} for lab, s in t] for i, t in zip(res.ids, res.tags)}
        signs = embed_collection([(q["id"], q["image"]) for q in posts], embedder, batch_size=32, tags_k=1,
                                 progress=False)
        top1 = Counter(t[0][0] for t in signs.tags)
        tags = {"embedder": embedder.name, "weights": embedder.tag,
                "photos": "one view per source photo: data.demo_photos.augment (the demo's photo pipeline), "
                          f"seed {args.seed}, no sign",
                "top_tags": photo_tags,
                "sign_images_top1": [{"label": lab, "images": n} for lab, n in top1.most_common(8)]}

    payload = {"source": source, "normalisation": "upper-case; ' / ' -> ' '; whitespace collapsed",
               "ocr": ocr, "tags": tags, "per_image": rows, "torch_threads": torch.get_num_threads()}
    write_result(args.out, payload, __file__, argv)

    a, s = ocr["as_read"], ocr["spaces_ignored"]
    print(f"OCR ({engine.name}) on {ocr['images']} sign images: {ocr['seconds_per_image']:.3f} s/image "
          f"({ocr['images_per_second']:.1f} images/s; CPU {ocr['cpu_seconds_per_image']:.3f} s/image; "
          f"load average {ocr['load_average_1min']})")
    if ocr["detect_seconds_per_image"] is not None:
        print(f"  detection {ocr['detect_seconds_per_image']:.3f} s/image, recognition "
              f"{ocr['recognise_seconds_per_image']:.3f} s/image")
    w = ocr["photos_without_text"]
    print(f"photos without text: {w['images']}, {w['seconds_per_image']:.3f} s/image, nothing detected in "
          f"{w['nothing_detected']}, text read in {len(w['read'])}: {w['read']}")
    print(f"{'':<16} {'char acc':>9} {'exact text':>11} {'name read':>10} {'as a word':>10}")
    for label, f in (("as read", a), ("spaces ignored", s)):
        print(f"{label:<16} {f['char_accuracy_micro']:>9.3f} {f['exact_text_rate']:>11.3f} {f['name_read_rate']:>10.3f}"
              f" {f.get('name_as_word_rate', float('nan')):>10.3f}")
    print("\ntop tags of one demo view per source photo:")
    for name, t in photo_tags.items():
        print(f"  {name:<22} " + ", ".join(f"{x['label'].split(',')[0]} {x['score']:.2f}" for x in t))
    print("most frequent top tag on the sign images: "
          + ", ".join(f"{x['label'].split(',')[0]} ({x['images']})" for x in tags["sign_images_top1"][:5]))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
