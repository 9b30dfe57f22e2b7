"""data.tweets: raw posts split as the Twitter corpora are, each token keeping its offsets."""
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from data.corpus import tokenize_post
from data.detokenize import detokenize
from data.errors import UserError
from data.tweets import Token, list_styles, tokenize_post_offsets

SAMPLE = Path(__file__).parent / "tweets_sample"

# pieces that make hard cases: emoji with skin tones, ZWJ sequences, flags, keycaps, variation
# selectors, combining marks, prepend characters, and whitespace of every kind
PIECES = ["👍", "🏽", "\u200d", "\ufe0f", "👩", "💻", "🇺", "🇸", "❤", "⚾", "1", "\u20e3", "a", "é", "e\u0301",
          "\u0301", "\u0903", "\u1100", "\u1161", "\u0600", "_", "@", "#", "$", "&amp;", "'", "’", "…", ".", "-",
          "/", ":", ")", "http://t.co/x", "https://", "RT", "Z", " ", "\t", "\n", "\r\n", "\u00a0", "\u2009",
          "\u3000", "\u2028", "\u200b", "\x1c", "\x0b", "\x85"]
POSTS = st.one_of(st.text(), st.lists(st.sampled_from(PIECES), max_size=30).map("".join))


def texts(tokens):
    return [t.text for t in tokens]


@settings(max_examples=400, deadline=None)
@given(POSTS, st.sampled_from(list_styles()))
def test_offsets_cover_the_post_exactly(text, style):
    tokens = tokenize_post_offsets(text, style)
    pos = 0
    for t in tokens:
        assert isinstance(t, Token) and text[t.start:t.end] == t.text
        assert pos <= t.start < t.end                                   # in order, never overlapping
        assert not any(c.isspace() for c in t.text)                     # no token holds whitespace
        assert text[pos:t.start].isspace() or pos == t.start            # only whitespace is left out
        pos = t.end
    assert text[pos:].isspace() or pos == len(text)
    # a token never ends inside a grapheme cluster (unless whitespace sits in that cluster)
    for a, b in (m.span() for m in regex.finditer(r"\X", text)):
        if not any(c.isspace() for c in text[a:b]):
            assert not any(a < t.start < b or a < t.end < b for t in tokens), (text[a:b], tokens)


def test_offsets_of_a_whole_post():
    text = "RT @cnn: Obama's visit\u00a0to #Paris 👍🏽 http://t.co/AbC1"
    assert tokenize_post_offsets(text) == [
        Token("RT", 0, 2), Token("@cnn", 3, 7), Token(":", 7, 8), Token("Obama", 9, 14), Token("'", 14, 15),
        Token("s", 15, 16), Token("visit", 17, 22), Token("to", 23, 25), Token("#Paris", 26, 32),
        Token("👍🏽", 33, 35), Token("http://t.co/AbC1", 36, 52)]


@pytest.mark.parametrize("text,twitter2015,twitter2017", [
    ("see http://t.co/Z3neVBQ7vF.", ["see", "http://t.co/Z3neVBQ7vF", "."], None),
    ("cut short http://t.co/4bY… http…", ["cut", "short", "http://t.co/4bY…", "http…"], None),
    ("RT @JayKenMinaj_: Me", ["RT", "@JayKenMinaj", "_", ":", "Me"], ["RT", "@", "JayKenMinaj_", ":", "Me"]),
    ("#NBA #no-hitter tonight", ["#NBA", "#no-hitter", "tonight"], ["#", "NBA", "#", "no", "-", "hitter", "tonight"]),
    ("$AAPL up $5", ["$AAPL", "up", "$", "5"], ["$", "AAPL", "up", "$", "5"]),
    ("don't stop, it's 7:30pm!", ["don", "'", "t", "stop", ",", "it", "'", "s", "7", ":", "30pm", "!"], None),
    ("Taylor’s “song”", ["Taylor", "’", "s", "“", "song", "”"], None),
    ("Light &amp; Shadow &gt;", ["Light", "&amp", ";", "Shadow", "&gt", ";"],
     ["Light", "&", "amp", ";", "Shadow", "&", "gt", ";"]),
    ("wait... what?!", ["wait", ".", ".", ".", "what", "?", "!"], None),
    ("the U.S. team", ["the", "U", ".", "S", ".", "team"], None),
    ("a same-sex 12-year-old w/ 3/5/14 -- ok", ["a", "same-sex", "12-year-old", "w/", "3/5/14", "--", "ok"],
     ["a", "same", "-", "sex", "12", "-", "year", "-", "old", "w", "/", "3", "/", "5", "/", "14", "-", "-", "ok"]),
    ("$4.99 or 10,000 on MAY 21, 2016", ["$", "4", ".", "99", "or", "10", ",", "000", "on", "MAY", "21", ",", "2016"],
     ["$", "4.99", "or", "10,000", "on", "MAY", "21,", "2016"]),
    ("fun :) ok", ["fun", ":", ")", "ok"], ["fun", ":)", "ok"]),
    ("Zoë naïve", ["Zoë", "naïve"], None),
])
def test_examples(text, twitter2015, twitter2017):
    assert texts(tokenize_post_offsets(text, "twitter2015")) == twitter2015
    if twitter2017 is not None:
        assert texts(tokenize_post_offsets(text, "twitter2017")) == twitter2017


@pytest.mark.parametrize("style", ["twitter2015", "twitter2017"])
@pytest.mark.parametrize("text,tokens", [
    ("go 👍🏽👩🏽‍💻!", ["go", "👍🏽", "👩🏽‍💻", "!"]),                           # skin tone, ZWJ sequence
    ("🇺🇸🇬🇧 day⚾️", ["🇺🇸", "🇬🇧", "day", "⚾️"]),                            # flags, variation selector
    ("😂😂 lol", ["😂", "😂", "lol"]),
    ("RT RT", ["RT", "RT"]),
])
def test_emoji_are_one_token_per_grapheme(style, text, tokens):
    assert texts(tokenize_post_offsets(text, style)) == tokens


def test_tokenize_post_is_the_default_style():
    text = "RT @cnn: don't miss #Paris 😂 http://t.co/x"
    assert tokenize_post(text) == texts(tokenize_post_offsets(text)) == texts(tokenize_post_offsets(text, "twitter2015"))


def test_unknown_style_is_a_user_error_naming_the_styles():
    with pytest.raises(UserError, match="twitter2015, twitter2017"):
        tokenize_post_offsets("hi", "twitter2020")


@pytest.mark.parametrize("tokens,text", [
    (["RT", "@cnn", ":", "Obama", "'", "s", "visit", "!"], "RT @cnn: Obama's visit!"),
    (["I", "don", "'", "t", "know", "the", "'", "Race", "Together", "'", "campaign"],
     "I don't know the 'Race Together' campaign"),
    (["#", "NBA", "@", "warriors", "&", "gt", ";", "Cavs"], "#NBA @warriors &gt; Cavs"),
    (["at", "7", ":", "30pm", "in", "U", ".", "S", ".", "for", "$", "4", ".", "99"], "at 7:30pm in U.S. for $4.99"),
    (["in", "2017", ",", "80,000", "or", "10", ",", "000"], "in 2017, 80,000 or 10,000"),
    (["an", "all", "-", "time", "high", "(", "5", "/", "19", ")"], "an all-time high (5/19)"),
    (["nice", "⚾", "\ufe0f", "👍", "🏼", "😂", "😂"], "nice ⚾\ufe0f👍🏼😂😂"),
    (["@McCormick", "_", "Fdn", "&amp", ";", "more", ".", ".", "."], "@McCormick_Fdn &amp; more..."),
])
def test_detokenize_writes_posts_as_typed(tokens, text):
    assert detokenize(tokens) == text


def test_detokenize_spaces_a_lone_hyphen_where_the_corpus_keeps_compounds():
    assert detokenize(["Kyoto", "-", "Japan"], keeps_compounds=True) == "Kyoto - Japan"
    assert detokenize(["Kyoto", "-", "Japan"]) == "Kyoto-Japan"


def roundtrip_agreement(path: Path, style: str) -> float:
    posts = [line.split(" ") for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    keeps = style == "twitter2015"
    return sum(texts(tokenize_post_offsets(detokenize(p, keeps), style)) == p for p in posts) / len(posts)


# Corpus-like posts (written for this test, in each corpus's own tokenisation), two of each
# with the corpus's known oddities (Twitter-2015's split https URL and a spaced "@ blogto";
# Twitter-2017's emoji split into code points and a number's comma split off). Measured:
# 24/26 and 22/24 agree, so one more disagreement fails.
@pytest.mark.parametrize("style,floor", [("twitter2015", 0.9), ("twitter2017", 0.9)])
def test_roundtrip_agreement_on_corpus_like_posts(style, floor):
    assert roundtrip_agreement(SAMPLE / f"{style}.txt", style) >= floor
