"""The demo's two new posts tagged from Python: ``Zelby`` is PER beside Grace Hopper's
portrait and MISC beside the cat, with character offsets and confidences.

The posts (``python -m data.demo new-posts``: the same sentence, two photos that are in no
index) are written to a temporary folder and tagged through :func:`rgcn.load_tagger`, the
photos given as paths. The script says whether each post's ``Zelby`` has its expected type
and exits 1 when one does not. Result: ``benchmarks/results/new_posts_demo.json`` (stamped
by ``benchmarks/provenance.py``).

    python benchmarks/new_posts.py --run runs/demo/rgcn/seed13
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import RESULTS, write_result  # noqa: E402
from data.errors import ArgumentParser, command, exit_status  # noqa: E402

EXPECTED = {"grace_hopper": "PER", "chelsea": "MISC"}
"""The type the photo gives the invented name: a person's portrait, a pet."""


def parse_args(argv=None):
    p = ArgumentParser(prog="python benchmarks/new_posts.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", nargs="+", default=["runs/demo/rgcn/seed13"], help="the run (several: an ensemble)")
    p.add_argument("--device", default="auto")
    p.add_argument("--output", default=str(RESULTS / "new_posts_demo.json"))
    return p.parse_args(argv)


@command
def main(argv=None) -> int:
    args = parse_args(argv)
    from data.demo import write_new_posts
    from rgcn import load_tagger

    tagger = load_tagger(args.run, args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        posts = [json.loads(line) for line in write_new_posts(tmp).read_text().splitlines()]
        for post in posts:
            text = " ".join(post["tokens"])
            res = tagger.tag(text, image=str(Path(tmp) / "images" / post["image"]), id=post["id"])
            zelby = [e for e in res.entities if e["text"] == "Zelby"]
            want = EXPECTED[post["photo"]]
            rows.append({"id": post["id"], "photo": post["photo"], "text": text, "image": res.image,
                         "entities": res.entities, "expected_zelby": want,
                         "zelby_as_expected": [e["type"] for e in zelby] == [want]})
            shown = ", ".join(f"{e['text']} {e['type']} [{e['start']}:{e['end']}] {e['confidence']:.3f}"
                              for e in res.entities)
            print(f"{post['id']} ({post['photo']}, image {res.image}): {shown}; Zelby expected {want}: "
                  f"{'yes' if rows[-1]['zelby_as_expected'] else 'NO'}")
    ok = all(r["zelby_as_expected"] for r in rows)
    write_result(args.output, {"runs": args.run, "heads": tagger.heads, "posts": rows, "all_as_expected": ok},
                 __file__, argv)
    print(f"-> {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(exit_status(main()))
