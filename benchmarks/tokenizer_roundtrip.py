"""How well raw-text tokenisation recovers the benchmarks' own tokens.

Each training post is written back as a tweet would be typed (:func:`data.detokenize.detokenize`:
no space before punctuation, ``don ' t`` -> ``don't``, ``# NBA`` -> ``#NBA``...), tokenised
again, and compared with the corpus's tokens. A post agrees when the two token lists are
equal. Where they differ, each differing stretch (a ``difflib`` opcode) is put in one kind
(URL, hashtag, emoji, contraction...) so the table says what is left to gain and where the
corpus's own tokenisation is odd. Tokenizers compared: ``regex (before)``, the single regular
expression ``data.corpus.tokenize_post`` used before offsets were kept; nltk's
``TweetTokenizer`` (default options; it rewrites HTML entities, so its tokens are not always
substrings of the post); and each style of ``data.tweets.tokenize_post_offsets``.

    python benchmarks/tokenizer_roundtrip.py        # Twitter-2015 and Twitter-2017 train splits

Writes ``benchmarks/results/tokenizer_roundtrip.json`` and ``.md`` (``--output``), stamped
with the command by ``benchmarks/provenance.py``.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from data.errors import ArgumentParser, command, exit_status  # noqa: E402

import regex  # noqa: E402

from benchmarks.provenance import RESULTS, write_rendering, write_result  # noqa: E402
from data.corpus import read_corpus  # noqa: E402
from data.detokenize import detokenize  # noqa: E402
from data.errors import UserError  # noqa: E402
from data.tweets import list_styles, tokenize_post_offsets  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"

# data.corpus.tokenize_post before it kept offsets, kept here to measure against
BEFORE_RE = re.compile(r"https?://\S+|[@#]?\w+(?:[-'’]\w+)*|[^\w\s]", re.UNICODE)


def tokenizers(nltk: bool = True) -> dict[str, Callable[[str], list[str]]]:
    out = {"regex (before)": BEFORE_RE.findall}
    if nltk:
        try:
            from nltk.tokenize import TweetTokenizer
        except ImportError:
            raise UserError("nltk", "not installed (it gives the TweetTokenizer column)",
                            "pip install nltk, or pass --no-nltk") from None
        out["nltk TweetTokenizer"] = TweetTokenizer().tokenize
    for style in list_styles():
        out[style] = lambda text, style=style: [t.text for t in tokenize_post_offsets(text, style)]
    return out


_KINDS = [   # (kind, test on the text of the differing gold and predicted tokens), first match wins
    ("url", regex.compile(r"https?|t\.co|//|www\.|co/")),
    ("html entity", regex.compile(r"&|\b(?:amp|gt|lt|quot)\b")),
    ("emoji", regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\uFE0F\U0001F3FB-\U0001F3FF]")),
    ("mention", regex.compile(r"@")),
    ("hashtag/cashtag", regex.compile(r"[#$]")),
    ("underscore", regex.compile(r"_")),
    ("contraction/apostrophe", regex.compile(r"['’‘]")),
    ("ellipsis", regex.compile(r"…|\.\.")),
    ("emoticon", regex.compile(r"(?:^|\s)[:;=][-']?[()\[\]DPpO/\\|](?:\s|$)")),
    ("number", regex.compile(r"\d[.,:/]|[.,:/]\d")),
    ("hyphen/slash", regex.compile(r"[-/–]")),
    ("quote", regex.compile(r"[\"“”]")),
    ("abbreviation", regex.compile(r"\b\w\b ?\.")),
    ("other punctuation", regex.compile(r"[^\w\s]")),
]


def kind_of(gold: list[str], pred: list[str]) -> str:
    text = " ".join(gold) + " " + " ".join(pred)
    for kind, pattern in _KINDS:
        if pattern.search(text):
            return kind
    return "other"


def compare(posts: list[list[str]], tokenize: Callable[[str], list[str]], keeps_compounds: bool = False,
            examples: int = 3) -> dict:
    """Agreement of ``tokenize(detokenize(post, keeps_compounds))`` with each post's tokens, and
    the kinds of disagreement (stretches and posts per kind, with a few examples)."""
    agree, stretches, posts_of = 0, Counter(), defaultdict(set)
    shown: dict[str, list] = defaultdict(list)
    for n, gold in enumerate(posts):
        pred = tokenize(detokenize(gold, keeps_compounds))
        if pred == gold:
            agree += 1
            continue
        for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, gold, pred, autojunk=False).get_opcodes():
            if op == "equal":
                continue
            kind = kind_of(gold[i1:i2], pred[j1:j2])
            stretches[kind] += 1
            posts_of[kind].add(n)
            if len(shown[kind]) < examples:
                shown[kind].append({"gold": gold[max(0, i1 - 2):i2 + 2], "tokenized": pred[max(0, j1 - 2):j2 + 2]})
    kinds = [{"kind": k, "stretches": c, "posts": len(posts_of[k]), "examples": shown[k]}
             for k, c in stretches.most_common()]
    return {"posts": len(posts), "agree": agree, "agreement": round(agree / max(1, len(posts)), 4),
            "disagreements": kinds}


def render(result: dict) -> str:
    lines = [f"`{result['provenance']['command']}`", "",
             "Share of training posts whose detokenised text tokenises back to exactly the corpus's tokens.", ""]
    names = list(next(iter(result["corpora"].values()))["tokenizers"])
    lines += ["| corpus | posts | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for corpus, r in result["corpora"].items():
        cells = [f"{r['tokenizers'][t]['agreement'] * 100:.1f}%" for t in names]
        lines.append(f"| {corpus} | {r['posts']} | " + " | ".join(cells) + " |")
    for corpus, r in result["corpora"].items():
        for t in names:
            lines += ["", f"### {corpus}, {t}: top kinds of disagreement", "",
                      "| kind | posts | stretches | example (corpus -> tokenised) |", "|---|---:|---:|---|"]
            for k in r["tokenizers"][t]["disagreements"][:result["top"]]:
                ex = k["examples"][0]
                example = f"`{' '.join(ex['gold'])}` -> `{' '.join(ex['tokenized'])}`".replace("|", "\\|")
                lines.append(f"| {k['kind']} | {k['posts']} | {k['stretches']} | {example} |")
    return "\n".join(lines) + "\n"


@command
def main(argv=None) -> dict:
    p = ArgumentParser(prog="python benchmarks/tokenizer_roundtrip.py",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", nargs=2, action="append", metavar=("NAME", "PATH"),
                   help="a corpus to measure, by name and path (repeatable; default: the Twitter-2015 and "
                        "Twitter-2017 train splits in ../shared/data)")
    p.add_argument("--keeps-compounds", nargs="*", default=["twitter2015"], metavar="NAME",
                   help="corpora that keep hyphenated words whole, so a lone hyphen token was typed spaced "
                        "(default: twitter2015)")
    p.add_argument("--no-nltk", action="store_true", help="leave out the nltk TweetTokenizer column")
    p.add_argument("--top", type=int, default=8, help="kinds of disagreement shown per tokenizer in the .md")
    p.add_argument("--output", default=str(RESULTS / "tokenizer_roundtrip.json"))
    a = p.parse_args(argv)
    corpora = a.corpus or [["twitter2015", str(SHARED / "twitter2015" / "train.txt")],
                           ["twitter2017", str(SHARED / "twitter2017" / "train.txt")]]
    out = {"top": a.top, "corpora": {}}
    for name, path in corpora:
        posts = [s.tokens for s in read_corpus(path)]
        keeps = name in a.keeps_compounds
        r = {"path": path, "posts": len(posts), "keeps_compounds": keeps, "tokenizers": {}}
        for tname, tok in tokenizers(nltk=not a.no_nltk).items():
            r["tokenizers"][tname] = compare(posts, tok, keeps)
            print(f"{name:12s} {tname:16s} {r['tokenizers'][tname]['agreement'] * 100:5.1f}% of {len(posts)} posts")
        out["corpora"][name] = r
    result = write_result(a.output, out, __file__, argv)
    write_rendering(Path(a.output).with_suffix(".md"), result, render(result))
    return result


if __name__ == "__main__":
    sys.exit(exit_status(main()))
