"""``python -m index build|add|info``: build, grow and inspect an image index artifact.

    python -m index build --images DIR [--data FILE ...] --out DIR [--embedder NAME]
                          [--model ARCH] [--pretrained TAG|FILE] [--checkpoint FILE]
                          [--factory auto|Flat|IVF1024,Flat|HNSW32,Flat|...]
                          [--batch-size 32] [--workers 2] [--device auto] [--precision auto]
                          [--no-tags] [--tags-k 5] [--tag-min-score 0.1] [--tag-vocabulary FILE]
                          [--ocr] [--captions FILE] [--regions|--no-regions] [--overwrite]
                          [--shard i/n] [--on-disk] [--keep-shards]
    python -m index merge [SHARD ...] --out DIR [--factory F] [--nprobe N] [--on-disk|--in-ram]
    python -m index add DIR --images DIR [--data FILE ...] [--captions FILE]
    python -m index info DIR

Sharded builds (:mod:`index.shards`): ``--shard i/n`` embeds shard i's share of the images
into ``DIR.shard-i-of-n``, and ``merge`` makes the artifact of the whole set; under
``torchrun --nproc_per_node N -m index build ...`` each rank embeds its shard (``RANK`` of
``WORLD_SIZE``) and rank 0 merges them once all are written.

Each image's visual context (object tags, OCR text, caption) is stored beside its vector
(``tags.jsonl``), with each extractor and its version in the manifest.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from data.errors import (ArgumentParser, UserError, command, existing_dir, existing_file, nonnegative_int,
                         nonnegative_float, output_dir, positive_int)
from data.logs import setup_logging

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

log = logging.getLogger("index")


def parse_args(argv=None) -> argparse.Namespace:
    from .embedders import DEFAULT_EMBEDDER, list_embedders

    p = ArgumentParser(prog="python -m index", description=__doc__.split("\n\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="show the full log on the console too "
                   "(build and add keep it in the artifact folder's build.log)")
    sub = p.add_subparsers(dest="command", required=True)

    def collection(sp):
        sp.add_argument("--images", required=True, type=existing_dir, help="folder of images (<id>.jpg ...)")
        sp.add_argument("--data", nargs="+", default=[], metavar="FILE", type=existing_file,
                        help="corpus split files (CoNLL with IMGID lines, or JSONL) whose image "
                             "ids select the images; default: every image in --images")
        sp.add_argument("--batch-size", type=positive_int, default=32)
        sp.add_argument("--workers", type=nonnegative_int, default=min(2, os.cpu_count() or 1),
                        help="DataLoader worker processes decoding images")
        sp.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1 ...")
        sp.add_argument("--quiet", action="store_true", help="no progress bar")
        sp.add_argument("--save-every", type=positive_int, default=512, metavar="N",
                        help="save the embedding progress every N images: a killed run resumes from there")
        sp.add_argument("--captions", default=None, metavar="FILE", type=existing_file,
                        help='captions of the images, JSONL: {"id": IMAGE_ID, "caption": TEXT} a line '
                             "(no captioning model exists offline: write them, or run one elsewhere)")

    b = sub.add_parser("build", help="embed images and write a new index artifact")
    collection(b)
    b.add_argument("--out", required=True, type=output_dir, help="artifact folder to create")
    b.add_argument("--embedder", default=DEFAULT_EMBEDDER, choices=list_embedders())
    b.add_argument("--model", default=None, help="clip: open_clip architecture or JSON config "
                   "(default ViT-B-32); timm: timm model name")
    b.add_argument("--pretrained", default=None, help="clip: pretrained tag or checkpoint file "
                   "(default: random weights)")
    b.add_argument("--checkpoint", default=None, type=existing_file, help="timm / efficientnet_lite0: state-dict file")
    b.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    b.add_argument("--factory", default="auto", help="FAISS factory string, or auto "
                   "(Flat up to 50k images, IVF+PQ fast-scan with re-ranking above)")
    b.add_argument("--nprobe", type=positive_int, default=None, help="IVF lists searched (default by size)")
    b.add_argument("--tags-k", type=nonnegative_int, default=5, help="object tags kept per image")
    b.add_argument("--tag-min-score", type=nonnegative_float, default=0.1, metavar="S",
                   help="score a stored tag needs to be part of an image's visual context (default 0.1)")
    b.add_argument("--tag-vocabulary", default=None, metavar="FILE", type=existing_file,
                   help="clip: labels for zero-shot object tags, one a line (default: ImageNet's with "
                        "pretrained weights, none with random ones)")
    b.add_argument("--no-tags", action="store_true", help="do not store object tags")
    b.add_argument("--ocr", action="store_true", help="read the text in every image (rapidocr; "
                   "needs rapidocr-onnxruntime); index add reads the new images too")
    g = b.add_mutually_exclusive_group()
    g.add_argument("--regions", dest="regions", action="store_true", default=None,
                   help="store region features (default: when the collection has <= 50k images)")
    g.add_argument("--no-regions", dest="regions", action="store_false")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    b.add_argument("--shard", default=None, metavar="i/n",
                   help="embed only shard i of n (contiguous shares of the image list) into OUT.shard-i-of-n; "
                        "`python -m index merge --out OUT` makes the index (under torchrun: RANK/WORLD_SIZE, merged "
                        "by rank 0)")
    b.add_argument("--on-disk", action="store_true", default=None,
                   help="keep the IVF inverted lists on disk (index.ivfdata; default: when the collection is too "
                        "large for in-RAM codes)")
    b.add_argument("--keep-shards", action="store_true", help="under torchrun: keep the shard folders after the merge")

    mg = sub.add_parser("merge", help="merge the shard folders of a sharded build into an index artifact")
    mg.add_argument("shards", nargs="*", metavar="SHARD", type=existing_dir,
                    help="shard folders (default: OUT.shard-*-of-*)")
    mg.add_argument("--out", required=True, type=output_dir, help="artifact folder to create")
    mg.add_argument("--factory", default=None, help="FAISS factory string (default: the one the shards were built "
                    "for, auto by the merged size)")
    mg.add_argument("--nprobe", type=positive_int, default=None, help="IVF lists searched (default by size)")
    d = mg.add_mutually_exclusive_group()
    d.add_argument("--on-disk", dest="on_disk", action="store_true", default=None,
                   help="keep the IVF inverted lists on disk (index.ivfdata)")
    d.add_argument("--in-ram", dest="on_disk", action="store_false", help="keep the inverted lists in RAM")
    mg.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    mg.add_argument("--remove-shards", action="store_true", help="delete the shard folders once merged")
    mg.add_argument("--quiet", action="store_true", help="no progress bar")

    a = sub.add_parser("add", help="embed images not yet in an artifact and add them")
    a.add_argument("dir", type=existing_dir, help="the artifact folder to grow")
    collection(a)

    i = sub.add_parser("info", help="print an artifact's manifest as a table")
    i.add_argument("dir", type=existing_dir, help="the artifact folder")
    i.add_argument("--json", action="store_true", help="print the raw manifest")
    args = p.parse_args(argv)
    if args.command == "build" and args.tag_vocabulary and args.embedder != "clip":
        b.error(f"--tag-vocabulary is for --embedder clip (zero-shot labels); {args.embedder}'s tags are its "
                "classifier's labels")
    if args.command == "build" and args.shard is not None:
        from .shards import ShardSpec

        try:
            ShardSpec.parse(args.shard)
        except ValueError as e:
            b.error(str(e))
        if args.on_disk:
            b.error("--on-disk is chosen when the shards are merged: pass it to `python -m index merge`")
    return args


def _collection(args):
    """``(images, posts)``: the images to embed and, with ``--data``, which post uses which."""
    from .images import collection_from_corpora, images_in_dir

    if args.data:
        return collection_from_corpora(args.data, args.images)
    return images_in_dir(args.images), {}


def _embedder_kwargs(args) -> dict:
    from .visual_context import read_tag_vocabulary

    kw: dict = {"device": args.device, "precision": args.precision}
    if args.embedder == "clip":
        kw.update(model=args.model or "ViT-B-32", pretrained=args.pretrained)
        if args.tag_vocabulary:
            kw["tag_vocabulary"] = read_tag_vocabulary(args.tag_vocabulary)
    elif args.embedder == "timm":
        kw.update(model=args.model or "efficientnet_lite0", checkpoint=args.checkpoint)
    elif args.embedder == "efficientnet_lite0" and args.checkpoint:
        kw.update(checkpoint=args.checkpoint)
    if args.device == "auto" and "LOCAL_RANK" in os.environ:        # torchrun: one GPU per local rank
        import torch

        if torch.cuda.is_available():
            kw["device"] = f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"
    return kw


def _shard_of(args):
    """The shard this build embeds: ``--shard``, torchrun's rank, or (``--on-disk`` in one
    process) the only one; ``None`` for a plain build."""
    from .shards import ShardSpec

    if args.command != "build":
        return None
    if args.shard is not None:
        return ShardSpec.parse(args.shard)
    return ShardSpec.from_env() or (ShardSpec(0, 1) if args.on_disk else None)


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    spec = _shard_of(args)
    if args.command == "info":
        setup_logging(None, args.verbose)
    else:                       # the log is kept in the artifact folder (build.log) once it is written
        from .shards import shard_path

        out = Path(args.dir if args.command == "add" else args.out)
        out = shard_path(out, spec) if spec is not None else out
        log_file = setup_logging(out.with_name(f".{out.name}.log"), args.verbose)
    from .manifest import manifest_table, read_manifest

    if args.command == "info":
        m = read_manifest(args.dir)
        print(json.dumps(m, indent=2) if args.json else manifest_table(m))
        return 0
    distributed = spec is not None and args.shard is None and spec.count > 1
    if distributed:                               # torchrun: every rank embeds, rank 0 merges after a barrier
        import datetime

        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
    try:
        art = _merge(args) if args.command == "merge" else _build_or_add(args, spec)
    except UserError:           # an unusable data/captions/vocabulary file, an empty collection, shards that
        setup_logging(None, args.verbose)     # are no whole set, an artifact add cannot grow: no log left behind
        log_file.unlink(missing_ok=True)
        raise
    setup_logging(None, args.verbose)
    folder = Path(art) if isinstance(art, Path) else Path(art.path)
    with open(log_file, encoding="utf-8") as src, open(folder / "build.log", "a", encoding="utf-8") as dst:
        dst.write(src.read())
    log_file.unlink()
    if isinstance(art, Path):                     # a shard
        m = read_manifest(art)
        s, c = m["shard"], m["counts"]
        print(f"{art}: shard {s['index']}/{s['count']} (images {s['start']}..{s['stop']} of {s['images']}): "
              f"{c['embedded']} embedded with {m['embedder']}, skipped {c['missing']} missing and "
              f"{c['unreadable']} unreadable file(s)")
        if distributed:
            return _barrier_and_merge(args, spec)
        if spec.count == 1:                       # --on-disk in one process: merge the one shard now
            args.shards, args.remove_shards = [str(art)], True
            return _merge_and_print(args)
        return 0
    _print_artifact(art)
    return 0


def _print_artifact(art) -> None:
    c = art.manifest["counts"]
    print(f"{art.path}: {c['embedded']} images embedded with {art.manifest['embedder']} "
          f"(dim {art.manifest['dim']}, {art.manifest['factory']}); skipped {c['missing']} missing "
          f"and {c['unreadable']} unreadable file(s)")


def _merge_and_print(args) -> int:
    """Merge the shards of ``args`` (a build's) into ``args.out``; print the artifact."""
    from .shards import merge_shards

    art = merge_shards(args.shards, args.out, factory=None, on_disk=args.on_disk, overwrite=args.overwrite,
                       progress=not args.quiet, remove_shards=args.remove_shards)
    _print_artifact(art)
    return 0


def _barrier_and_merge(args, spec) -> int:
    """torchrun: wait until every rank has written its shard; rank 0 merges them."""
    import torch.distributed as dist

    from .shards import ShardSpec, shard_path

    dist.barrier()
    rc = 0
    if spec.index == 0:
        args.shards = [str(shard_path(args.out, ShardSpec(i, spec.count))) for i in range(spec.count)]
        args.remove_shards = not args.keep_shards
        rc = _merge_and_print(args)
    dist.destroy_process_group()
    return rc


def _merge(args):
    from .shards import find_shards, merge_shards

    shards = args.shards or find_shards(args.out)
    return merge_shards(shards, args.out, factory=args.factory, on_disk=args.on_disk, overwrite=args.overwrite,
                        progress=not args.quiet, remove_shards=args.remove_shards, nprobe=args.nprobe)


def _build_or_add(args, spec=None):
    from .artifact import load_index
    from .build import add_images, build_index

    images, posts = _collection(args)
    log.debug("%s: %d images (%d missing) from %s", args.command, len(images),
             sum(p is None for _, p in images), ", ".join(args.data) or args.images)
    if args.command == "build":
        from .embedders import get_embedder

        log.debug("config: %s", json.dumps({k: v for k, v in vars(args).items()}, default=str))
        embedder = get_embedder(args.embedder, **_embedder_kwargs(args))
        params = None
        if args.nprobe is not None:
            from .factory import choose_factory, default_search_params

            fac = args.factory if args.factory != "auto" else choose_factory(max(len(images), 1), embedder.dim)
            params = {**default_search_params(fac), "nprobe": args.nprobe}
        art = build_index(images, embedder, args.out, factory=args.factory, batch_size=args.batch_size,
                          num_workers=args.workers, with_tags=not args.no_tags, ocr=args.ocr,
                          progress=not args.quiet, with_regions=args.regions, tags_k=args.tags_k,
                          data_files=args.data, image_dir=args.images, overwrite=args.overwrite,
                          search_params=params, posts=posts, save_every=args.save_every,
                          min_tag_score=args.tag_min_score, captions=args.captions, shard=spec)
    else:
        load_index(args.dir, gpu=False)  # fails early on a broken artifact
        art = add_images(args.dir, images, batch_size=args.batch_size, num_workers=args.workers,
                         device=None if args.device == "auto" else args.device,
                         progress=not args.quiet, data_files=args.data, posts=posts, save_every=args.save_every,
                         captions=args.captions)
    return art


if __name__ == "__main__":
    sys.exit(main())
