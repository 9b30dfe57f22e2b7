"""Writing a tokenised post back as a tweet would have been typed.

The benchmarks store posts as tokens only. :func:`detokenize` joins them the way people
write: no space before closing punctuation (``Paris!``, ``RT @cnn:``), none after an opening
bracket or quote, split contractions and possessives rejoined (``don ' t`` -> ``don't``),
``# NBA`` -> ``#NBA``, ``& gt ;`` -> ``&gt;``, ``7 : 30pm`` -> ``7:30pm``, ``U . S .`` ->
``U.S.``, a hyphen or slash between two words closed up (``all-time``, ``5/19``; unless the
corpus keeps such words whole, when a lone one was spaced), an emoji's
pieces and emoji in a row written together. It is deliberately written from how tweets look,
not as the inverse of :mod:`data.tweets`, so that tokenising its output measures how well a
tokenizer recovers a corpus's tokens from real text (``benchmarks/tokenizer_roundtrip.py``).
"""
from __future__ import annotations

from typing import Sequence

import regex

__all__ = ["detokenize"]

_CLOSING = set(".,!?;:%)]}…")
_OPENING = set("([{")
_CONTRACTION_TAILS = {"s", "t", "re", "ve", "ll", "d", "m"}
_APOSTROPHES = {"'", "’"}
_ENTITY_NAMES = {"amp", "lt", "gt", "quot", "apos"}
_WORD = regex.compile(r"[\w\p{M}]")
_ALNUM_END = regex.compile(r"[^\W_]$")
_ALNUM_START = regex.compile(r"^[^\W_]")
_THOUSANDS = regex.compile(r"^\d{3}(?!\d)")
_EMOJI_PART = regex.compile(r"^[\p{Extended_Pictographic}\p{Regional_Indicator}\U0001F3FB-\U0001F3FF\uFE0F\u200D"
                            r"\u20E3\U000E0020-\U000E007F]+$")
_EMOJI_CONTINUATION = regex.compile(r"^[\U0001F3FB-\U0001F3FF\uFE0F\u200D\u20E3\U000E0020-\U000E007F]")


def _digits(tok: str | None) -> bool:
    return bool(tok) and tok.isdigit()


def _initial(tok: str | None) -> bool:
    return bool(tok) and len(tok) == 1 and tok.isupper()


def _word(tok: str | None) -> bool:
    return bool(tok) and bool(_WORD.search(tok))


def detokenize(tokens: Sequence[str], keeps_compounds: bool = False) -> str:
    """Join ``tokens`` into the text of a tweet (see the module docstring for the rules).

    Args:
        tokens: one post's tokens.
        keeps_compounds: whether the corpus keeps hyphenated and slashed words whole
            (``same-sex``, ``3/5/14``), as Twitter-2015 does; then a lone ``-`` or ``/`` token
            between two words was typed with spaces around it. Otherwise (default, as in
            Twitter-2017, which splits ``all - time``) it is closed up.
    """
    out: list[str] = []
    glue_next = False                       # the next token is written without a space before it
    quote_open: dict[str, bool] = {}
    n = len(tokens)
    for i, t in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else None
        nxt = tokens[i + 1] if i + 1 < n else None
        glue, glue_next = glue_next or i == 0, False
        if t in _APOSTROPHES and _word(prev) and nxt is not None and nxt.lower() in _CONTRACTION_TAILS:
            glue = glue_next = True                                 # don ' t, Obama ' s
        elif t in ('"', "'"):
            if quote_open.get(t):
                glue, quote_open[t] = True, False                   # closing quote
            else:
                glue_next, quote_open[t] = True, True               # opening quote
        elif t in ("“", "‘"):
            glue_next = True
        elif t in ("”", "’"):
            glue = True
        elif _digits(prev) and nxt is not None and (t in (":", ".") and nxt[:1].isdigit()
                                                    or t == "," and _THOUSANDS.match(nxt)):
            glue = glue_next = True                                 # 7:30pm, 4.99, 10,000
        elif t == ":" and prev in ("http", "https") and nxt is not None and nxt.startswith("/"):
            glue = glue_next = True                                 # https : //t . co/x
        elif t == "." and nxt is not None and prev is not None and prev.startswith("//"):
            glue = glue_next = True
        elif t == "." and _initial(prev) and _initial(nxt):
            glue = glue_next = True                                 # U . S . A .
        elif t in _CLOSING or t.startswith("..") or t.startswith("…"):
            glue = True
        elif t in _OPENING:
            glue_next = True
        elif t in ("@", "#") and _word(nxt):
            glue_next = True                                        # # NBA, @ warriors
        elif t == "$" and nxt is not None and nxt[:1].isdigit():
            glue_next = True
        elif t == "&" and nxt in _ENTITY_NAMES:
            glue_next = True                                        # & gt ;
        elif t.startswith("&") and t[1:] in _ENTITY_NAMES and nxt == ";":
            glue_next = True                                        # &amp ;
        elif t in ("-", "/") and not keeps_compounds and prev is not None and nxt is not None \
                and _ALNUM_END.search(prev) and _ALNUM_START.match(nxt):
            glue = glue_next = True                                 # all - time, 5 / 19
        elif t == "_" and prev is not None and _ALNUM_END.search(prev):
            glue = True                                             # McCormick _ Fdn, JayKenMinaj _ :
            glue_next = nxt is not None and bool(_ALNUM_START.match(nxt))
        elif _EMOJI_CONTINUATION.match(t) or (prev is not None and prev.endswith("\u200d")):
            glue = True                                             # the emoji's modifier or selector
        elif _EMOJI_PART.match(t) and prev is not None and _EMOJI_PART.match(prev):
            glue = True                                             # 😂😂
        out.append(t if glue else " " + t)
    return "".join(out)
