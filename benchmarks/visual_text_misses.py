"""Where a head's misses on the demo's ``visual_text`` posts come from.

A ``visual_text`` post names someone or something whose type only the sign in its photo
tells ("VOTE / MOSSVEL FOR MAYOR": a person). For every test post of that kind and every
seed of a head's runs (``test_predictions.conll``), the target entity is scored as found
(span and type right) or missed, and each miss is put down to the first cause that holds:

* ``ocr_miss``: the name is not a word of the text the index read in the image;
* ``context_cut``: it is, but not within the words of the visual context that reach the
  encoder (the ITA head's ``order`` and ``max_context_words``);
* ``wrong_type_sign_read``: span right, type wrong, though the whole sign was read exactly
  (the cue was there: the model did not use it);
* ``wrong_type_sign_misread``: span right, type wrong, the sign not read exactly;
* ``wrong_span``: the name was not predicted with its boundaries (missed or cut).

It also counts ``type_on_other_name``: posts where another name of the post took the
target's type and the target did not (the sign's cue matched to the wrong name), and,
per sign template (the sign with the name as ``X``: ``DR. X``, ``X 12 KM``), the posts and
how many each seed typed right (``by_sign``): a template a seed misses throughout is a cue
it did not learn.

    python benchmarks/visual_text_misses.py --runs runs/heads_ocr/ita --index .cache/demo/index_ocr
"""
from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.provenance import write_result  # noqa: E402

CAUSES = ("ocr_miss", "context_cut", "wrong_type_sign_read", "wrong_type_sign_misread", "wrong_span")


def read_conll(path: Path) -> dict[str, list[tuple[str, str, str]]]:
    """``test_predictions.conll`` -> post id -> [(token, gold, predicted)]."""
    posts: dict[str, list[tuple[str, str, str]]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("IMGID:"):
            current = posts.setdefault(line[len("IMGID:"):].strip(), [])
        elif line.strip() and current is not None:
            token, gold, pred = line.split("\t")[:3]
            current.append((token, gold, pred))
    return posts


def spans(tags: list[str]) -> dict[tuple[int, int], str]:
    """BIO tags -> {(start, end): type}.

    >>> spans(["B-PER", "I-PER", "O", "B-ORG", "I-LOC"])
    {(0, 2): 'PER', (3, 4): 'ORG', (4, 5): 'LOC'}
    """
    out, start, kind = {}, None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            out[(start, i)] = kind
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = i, tag[2:]
    return out


def words_of(text: str) -> str:
    """Upper-case words, the line separator a space, a word's trailing full stop or comma
    (the visual context's part separators) dropped: ``" MOSSVEL FOR MAYOR "`` (padded).

    >>> words_of("VOTE / Mossvel. espresso, cup")
    ' VOTE MOSSVEL ESPRESSO CUP '
    """
    return " " + " ".join(w.rstrip(".,") for w in text.replace(" / ", " ").upper().split()) + " "


def classify(post: dict, predicted: list[str], ocr: str, context_words: list[str]) -> str | None:
    """``None`` when the target is found, else the first cause of the miss (:data:`CAUSES`)."""
    (a, b), gold_type = post["target"][0], post["tags"][post["target"][0][0]][2:]
    pred = spans(predicted)
    if pred.get((a, b)) == gold_type:
        return None
    name = " ".join(post["tokens"][a:b]).upper()
    if f" {name} " not in words_of(ocr):
        return "ocr_miss"
    if f" {name} " not in words_of(" ".join(context_words)):
        return "context_cut"
    if (a, b) in pred:
        read_exactly = " ".join(ocr.replace(" / ", " ").upper().split()) == " ".join(post["sign"].replace(" / ", " ").split())
        return "wrong_type_sign_read" if read_exactly else "wrong_type_sign_misread"
    return "wrong_span"


def sign_template(post: dict) -> str:
    """The post's sign with its target name as ``X``.

    >>> sign_template({"tokens": ["go", "Marovan", "Tresmo"], "target": [[1, 3]], "sign": "DR. MAROVAN TRESMO"})
    'DR. X'
    """
    return post["sign"].replace(" ".join(post["tokens"][slice(*post["target"][0])]).upper(), "X")


def type_on_other_name(post: dict, predicted: list[str]) -> bool:
    (a, b), gold_type = post["target"][0], post["tags"][post["target"][0][0]][2:]
    pred = spans(predicted)
    return pred.get((a, b)) != gold_type and any(t == gold_type and s != (a, b) and spans(post["tags"]).get(s) != t
                                                 for s, t in pred.items())


@command
def main(argv=None) -> int:
    p = ArgumentParser(prog="python benchmarks/visual_text_misses.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="a head's run folders: RUNS/seed<N>/test_predictions.conll")
    p.add_argument("--index", required=True, help="the index artifact the runs read (its OCR text)")
    p.add_argument("--demo", default="data/demo", help="the demo folder (its test.jsonl)")
    p.add_argument("--order", nargs="+", default=None,
                   help="visual context order (default: the runs' head.options, else the ITA head's default)")
    p.add_argument("--max-context-words", type=int, default=None, help="default: as --order")
    p.add_argument("--out", default="benchmarks/results/visual_text_misses.json")
    args = p.parse_args(argv)

    from index.artifact import load_index
    from rgcn.heads.ita import ITAOptions

    seeds = sorted(Path(args.runs).glob("seed*/test_predictions.conll"))
    if not seeds:
        raise UserError(f"--runs {args.runs}", "no seed*/test_predictions.conll under it",
                        "give a head's folder of a finished benchmarks/heads.py run, e.g. runs/heads_ocr/ita")
    head = json.loads((seeds[0].parent / "config.json").read_text())["head"]
    opts = ITAOptions.from_dict((head.get("options") or {}) if head["name"] == "ita" else {})
    order = tuple(args.order or opts.order)
    budget = opts.max_context_words if args.max_context_words is None else args.max_context_words
    posts = [json.loads(line) for line in (Path(args.demo) / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    posts = [q for q in posts if q.get("kind") == "visual_text" and q.get("sign")]
    art = load_index(args.index)
    contexts = {q["id"]: art.post_visual_context(q["id"], opts.min_tag_score, opts.max_tags) for q in posts}
    context_words = {i: c.text(order).split()[:budget] for i, c in contexts.items()}

    per_seed, examples = {}, []
    by_sign: dict[str, dict] = {}
    for q in posts:
        entry = by_sign.setdefault(sign_template(q), {"type": q["tags"][q["target"][0][0]][2:], "posts": 0, "found": {}})
        entry["posts"] += 1
    for f in seeds:
        pred = read_conll(f)
        causes, other = Counter(), 0
        for q in posts:
            tags = [t[2] for t in pred[q["id"]]]
            cause = classify(q, tags, contexts[q["id"]].ocr, context_words[q["id"]])
            causes[cause or "found"] += 1
            found = by_sign[sign_template(q)]["found"]
            found[f.parent.name] = found.get(f.parent.name, 0) + (cause is None)
            other += type_on_other_name(q, tags)
            if cause and len(examples) < 20:
                examples.append({"seed": f.parent.name, "id": q["id"], "cause": cause, "sign": q["sign"],
                                 "ocr": contexts[q["id"]].ocr, "target": " ".join(q["tokens"][slice(*q["target"][0])]),
                                 "gold": q["tags"][q["target"][0][0]],
                                 "predicted": [t[2] for t in pred[q["id"]]][slice(*q["target"][0])]})
        per_seed[f.parent.name] = {"posts": len(posts), "found": causes["found"],
                                   **{c: causes[c] for c in CAUSES}, "type_on_other_name": other}

    words = [len(w) for w in context_words.values()]
    payload = {"runs": args.runs, "index": args.index, "ocr_reader": art.manifest["visual_context"]["ocr"],
               "context": {"order": list(order), "max_context_words": budget, "max_tags": opts.max_tags,
                           "words_mean": sum(words) / len(words), "words_max": max(words),
                           "posts_cut_by_budget": sum(len(c.text(order).split()) > budget for c in contexts.values()),
                           "name_in_ocr": sum(f" {' '.join(q['tokens'][slice(*q['target'][0])]).upper()} "
                                              in words_of(contexts[q['id']].ocr) for q in posts),
                           "posts": len(posts)},
               "per_seed": per_seed, "by_sign": dict(sorted(by_sign.items(), key=lambda kv: (kv[1]["type"], kv[0]))),
               "examples": examples}
    write_result(args.out, payload, __file__, argv)
    print(f"{len(posts)} visual_text test posts; context {' > '.join(order)}, budget {budget} words "
          f"(mean {payload['context']['words_mean']:.1f}, max {max(words)}); name read as a word in "
          f"{payload['context']['name_in_ocr']}")
    print(f"{'seed':<8} {'found':>6} " + " ".join(f"{c:>24}" for c in CAUSES) + f" {'type_on_other_name':>19}")
    for seed, r in per_seed.items():
        print(f"{seed:<8} {r['found']:>6} " + " ".join(f"{r[c]:>24}" for c in CAUSES) + f" {r['type_on_other_name']:>19}")
    print("sign templates typed right, per seed:")
    for template, r in payload["by_sign"].items():
        print(f"  {r['type']:<5} {template:<24} " + " ".join(f"{r['found'].get(seed, 0)}/{r['posts']}" for seed in per_seed))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
