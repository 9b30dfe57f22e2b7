"""``python -m data prepare``: check a collection's images and write its prepared splits.

    python -m data prepare --data train.txt valid.txt test.txt --images DIR --out PREP
                           [--keep-placeholders] [--placeholder-min 3] [--workers 2] [--quiet]

Prints one row per split (posts, usable, missing, unreadable, placeholder, none) and writes
``PREP/<split>.jsonl`` and ``PREP/manifest.json`` (see :mod:`data.prepare`). The demo
generator is ``python -m data.demo``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from .errors import ArgumentParser, command, existing_dir, output_dir, positive_int
from .logs import setup_logging

log = logging.getLogger("data")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from .prepare import PLACEHOLDER_MIN

    p = ArgumentParser(prog="python -m data", description=__doc__.split("\n\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="show the full log on the console too")
    sub = p.add_subparsers(dest="command", required=True)
    pr = sub.add_parser("prepare", help="resolve and check every post's image; write PREP/<split>.jsonl and "
                        "PREP/manifest.json")
    pr.add_argument("--data", nargs="+", required=True, metavar="FILE",
                    help="split files (CoNLL with IMGID lines, or JSONL), FILE or NAME=FILE (default name: the "
                         "file's stem)")
    pr.add_argument("--images", required=True, type=existing_dir, help="folder of the posts' images (<IMGID>.jpg ...)")
    pr.add_argument("--out", required=True, type=output_dir, help="folder to write the prepared collection to")
    pr.add_argument("--keep-placeholders", action="store_true",
                    help="count placeholder images (one file's bytes under several names) as usable")
    pr.add_argument("--placeholder-min", type=positive_int, default=PLACEHOLDER_MIN, metavar="N",
                    help=f"distinct image names sharing one file's bytes that make it a placeholder "
                         f"(default {PLACEHOLDER_MIN})")
    pr.add_argument("--workers", type=positive_int, default=1, help="processes hashing and decoding images (default 1)")
    pr.add_argument("--encoding", default="utf-8", help="the split files' text encoding (default utf-8)")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(None, args.verbose)
    from .prepare import counts_table, prepare

    m = prepare(args.data, args.images, args.out, keep_placeholders=args.keep_placeholders,
                placeholder_min=args.placeholder_min, workers=max(1, args.workers), progress=not args.quiet,
                overwrite=args.overwrite, encoding=args.encoding)
    print(counts_table(m["splits"]))
    if m["placeholders"]:
        ph = m["placeholders"][0]
        kept = "kept as usable" if m["keep_placeholders"] else "treated as no image"
        print(f"placeholders: {len(m['placeholders'])} file(s) saved under several names ({kept}); the most "
              f"shared, {ph['example']}, under {ph['names']} names")
    print(f"images sha256 {m['images_sha256'][:16]}...; prepared splits and manifest: {Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
