"""Tokenising raw posts the way the Twitter MNER benchmarks are tokenised, keeping offsets.

:func:`tokenize_post_offsets` splits a post into :class:`Token` s, each carrying its
``(start, end)`` character offsets in the original string, so ``text[start:end]`` is
always the token's text. Nothing is rewritten: HTML entities, case, and unusual
whitespace stay as they were, and whitespace is the only thing left out.

The two corpora were tokenised differently, so there is one style for each (measured by
``benchmarks/tokenizer_roundtrip.py``: detokenised training posts, tokenised again):

``twitter2015`` (the default)
    URLs, ``@mentions``, ``#hashtags`` and ``$CASHTAGS`` stay whole; hyphenated and
    slashed words stay whole (``same-sex``, ``3/5/14``, ``w/``); every other ASCII
    punctuation mark is a token of its own, so ``don't`` is ``don ' t``, ``U.S.`` is
    ``U . S .``, ``7:30pm`` is ``7 : 30pm``, ``&amp;`` is ``&amp ;`` and an underscore
    splits a word (``@McCormick_Fdn`` is ``@McCormick _ Fdn``), as in that corpus.
``twitter2017``
    Every punctuation mark is a token of its own, ``#`` and ``@`` included (``# NBA``,
    ``@ warriors``), as are hyphens and slashes; underscores stay inside words
    (``Bundesliga_EN``); decimal and thousands numbers (``4.99``, ``10,000``) and simple
    emoticons (``:)``) stay whole. URLs, which that corpus removed, stay whole.

In both styles an emoji is one token per grapheme cluster: a skin-tone modifier, a
variation selector or a zero-width-joiner sequence (``👩🏽‍💻``) stays with its emoji, and a
flag is one token. (Twitter-2017 itself split such sequences into code points; a lone
variation selector carries no meaning a tagger could use, so that is not copied.)
A token never ends inside a grapheme cluster: a combining mark or an emoji modifier stays
with the character it modifies.
"""
from __future__ import annotations

from typing import NamedTuple

import regex

from data.errors import UserError

__all__ = ["Token", "STYLES", "DEFAULT_STYLE", "list_styles", "tokenize_post_offsets", "UnknownStyle"]


class Token(NamedTuple):
    """One token of a post: its text and its ``[start, end)`` character offsets."""

    text: str
    start: int
    end: int


# A URL runs to whitespace (a final full stop is left out); one cut short by a retweet
# ("http://t.co/4bY…", "http:…", "http…") keeps its ellipsis.
_URL = r"(?:https?://|www\.)(?:[^\s\x1c-\x1f…]*…|[^\s\x1c-\x1f…]*[^\s\x1c-\x1f….])|https?:?/{0,2}…"
_EMOJI = r"(?=[\p{Extended_Pictographic}\p{Regional_Indicator}])\X"   # one grapheme cluster
_ENTITY = r"&(?:amp|lt|gt|quot|apos|\#\d+|\#x[0-9a-fA-F]+)(?=;)"     # HTML entity; its ';' is a token
# Anything else: one grapheme, never whitespace (str.isspace's: \s and the separators
# \x1c-\x1f), not even the space a "prepend" character would join in a cluster.
_ANY = r"(?![\s\x1c-\x1f])(?:\p{GCB=Prepend}+(?=[\s\x1c-\x1f]|$)|\X)"

# What a grapheme cluster may hold after its first character (combining marks, emoji
# modifiers, variation selectors, zero-width joiners): every token takes it along, so that
# no token ends inside a grapheme.
_TAIL = r"[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}]*"
# Word pieces: letters, digits and combining marks.
_W15 = rf"(?:[^\W_]{_TAIL})+"                             # Twitter-2015: an underscore splits a word
_W17 = rf"(?:\w{_TAIL})+"

_PATTERNS = {
    "twitter2015": "|".join([
        _URL,
        _ENTITY,
        rf"@{_W15}|#{_W15}(?:-{_W15})*",                # @mention, #hashtag, #no-hitter
        r"\$[A-Za-z]+(?![^\W_])",                       # $CASHTAG
        rf"(?<![^\W_])[Ww]/(?![^\W_/])",               # w/ ("with")
        rf"{_W15}(?:[-/]{_W15})*…?",                    # words, same-sex, 3/5/14, 12-year-old, cut short…
        r"-{2,}",                                       # -- (a dash typed as two hyphens)
        _EMOJI,
        _ANY,
    ]),
    "twitter2017": "|".join([
        _URL,
        r"(?<![\w\p{M}])[:;=][-']?[()\[\]DPpO/\\|](?![\w\p{M}])",   # :) ;-) :D
        r"\d+(?:[.,]\d+)*,(?=[\s\x1c-\x1f]|$)",           # 21, (that corpus keeps a number's comma)
        r"\d+(?:[.,]\d+)+(?![\w\p{M}])",                # 4.99, 10,000
        _W17,
        _EMOJI,
        _ANY,
    ]),
}

STYLES = {name: regex.compile(f"(?:{p}){_TAIL}", regex.V1) for name, p in _PATTERNS.items()}
DEFAULT_STYLE = "twitter2015"


def list_styles() -> list[str]:
    """The names :func:`tokenize_post_offsets` accepts as ``style``."""
    return sorted(STYLES)


class UnknownStyle(UserError, ValueError):
    """A tokenisation style that does not exist; the message lists the valid ones."""


def tokenize_post_offsets(text: str, style: str = DEFAULT_STYLE) -> list[Token]:
    """Split a raw post into tokens with their character offsets.

    Args:
        text: the post as written (any unicode; nothing is normalised).
        style: ``"twitter2015"`` (default) or ``"twitter2017"``: whose tokenisation to follow
            (see the module docstring).

    Returns:
        The tokens in order, non-overlapping, each with ``text[start:end] == token.text``;
        every character that is not whitespace (``str.isspace``) lies in exactly one token
        and no token holds whitespace.

    Raises:
        UnknownStyle: ``style`` is not one of :func:`list_styles`.
    """
    try:
        pattern = STYLES[style]
    except KeyError:
        raise UnknownStyle(f"tokenisation style {style!r}", "no such style",
                           f"use one of {', '.join(list_styles())}") from None
    return [Token(m.group(), m.start(), m.end()) for m in pattern.finditer(text)]
