"""The demo's sentences: invented names whose type the words do not tell, the sentences
around them, and the text-decided entities every post may also carry.

A post's *ambiguous name* ("Zelby", "Marovan Tresmo") comes from one pool shared by all
four types. It sits either in a *neutral* sentence ("Can't stop looking at Zelby today"),
whose wording fits a person, a place, a product and an animal equally, or in a *cue*
sentence ("Coach Zelby is not happy", "My dog Zelby loves the snow") whose words decide
its type. Posts also carry 0-2 *text-decided* entities with strong textual cues ("flying
to Paris", "shares of Google", "watching the Super Bowl"), drawn independently of the
photo.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from data.tweets import tokenize_post_offsets

ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")

# One pool of invented names for every type: the words alone say nothing about the type.
AMBIGUOUS_NAMES = (
    "Zelby", "Marovan", "Quessa", "Tavrin", "Olundi", "Vexmor", "Pellaro", "Ardwyn", "Brisko",
    "Caddow", "Dunmere", "Elvaro", "Fennick", "Gorsa", "Halvani", "Isquo", "Jostra", "Kelmi",
    "Lorvane", "Mizzet", "Nubrio", "Ostrel", "Pavlune", "Rendaso", "Sulvey", "Tresmo", "Umbrava",
    "Valdeen", "Wendle", "Yarrick", "Zumola", "Brevanne", "Cazzora", "Drelling", "Famboro",
    "Grenzo", "Hollik", "Ivesk", "Krunta", "Lemarro", "Mossvel", "Nerrik", "Pindaro", "Rellow",
    "Sarvik", "Tolvane", "Ubrin", "Vinsk", "Wozzle", "Yendra",
)
TWO_WORD_P = 0.3

# Sentences whose wording fits a person, a place, a product and an animal equally.
NEUTRAL_TEMPLATES = (
    "Can't stop looking at {X} today", "{X} is all over my feed again", "New pic of {X}",
    "Finally saw {X} up close", "Throwback to {X}", "Everyone is talking about {X}",
    "{X} never disappoints", "Best shot of {X} so far", "Look at {X} !", "{X} , just wow",
    "Another day , another photo of {X}", "This is {X}", "Still thinking about {X}",
    "Nothing beats {X}", "{X} looking good as always", "Who else loves {X} ?",
    "Can we talk about {X} ?", "Caught {X} on camera", "{X} , again", "Obsessed with {X}",
)

# Text-decided entities: (templates, names) groups per type; cue words and names both tell the type.
TEXT_GROUPS: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]] = {
    "PER": (
        (("interview with {E}", "{E} said tonight", "congrats to {E}", "{E} just tweeted",
          "{E} live on stage", "love this song by {E}"),
         ("Taylor Swift", "Justin Bieber", "Adele", "Beyonce", "Kanye West", "Ed Sheeran", "Rihanna",
          "Tom Hanks", "Jimmy Fallon", "LeBron James", "Serena Williams", "Messi", "Kim Kardashian")),
        (("{E} speaks tonight", "{E} responds to critics", "{E} wins the debate", "vote for {E}"),
         ("Hillary Clinton", "Bernie Sanders", "Joe Biden", "Angela Merkel", "Trudeau", "Boris Johnson")),
        (("President {E} speaks tonight", "President {E} signs the bill", "breaking : President {E} resigns"),
         ("Obama", "Macron", "Putin", "Hollande")),
    ),
    "LOC": (
        (("flying to {E} tomorrow", "live from {E}", "weather in {E} is crazy", "back home in {E}",
          "traffic in downtown {E}", "greetings from {E}", "earthquake hits {E}"),
         ("Paris", "London", "New York", "Los Angeles", "Tokyo", "Berlin", "Chicago", "Texas", "Sydney",
          "Rome", "Boston", "Florida", "San Francisco", "Toronto", "Miami", "India", "Mexico")),
    ),
    "ORG": (
        (("job interview at {E}", "{E} announced a new deal", "shares of {E} are up", "{E} CEO steps down",
          "breaking news via {E}", "{E} headquarters today"),
         ("Google", "Apple", "Microsoft", "CNN", "NASA", "BBC", "Starbucks", "Amazon", "Samsung",
          "FIFA", "New York Times", "Twitter")),
        (("{E} fans tonight", "{E} win again", "huge game for the {E}", "{E} sign a new coach"),
         ("Lakers", "Real Madrid", "Manchester United", "Yankees", "Warriors", "Arsenal")),
    ),
    "MISC": (
        (("watching the {E} tonight", "who is ready for the {E} ?", "{E} tickets on sale",
          "can't wait for the {E}"),
         ("World Cup", "Super Bowl", "Oscars", "Olympics", "Grammys", "NBA Finals", "Comic-Con")),
        (("new episode of {E} tonight", "binge watching {E}", "{E} spoilers everywhere"),
         ("Game of Thrones", "Star Wars", "Breaking Bad", "The Walking Dead")),
    ),
}
# Tagged hashtags (the Twitter benchmarks tag some hashtags): placed at the end of a post.
TEXT_HASHTAGS = {"LOC": ("#NYC", "#London", "#Paris"), "MISC": ("#WorldCup", "#SuperBowl", "#Oscars")}
TEXT_ENTITY_COUNTS = ((0, 0.2), (1, 0.45), (2, 0.35))   # (entities per post, probability)
HASHTAG_ENTITY_P = 0.1

MENTIONS = ("@jess_k", "@dailyfeed", "@mikeyb88", "@the_real_tom", "@newsbot", "@sara_h", "@kp_photos")
PLAIN_HASHTAGS = ("#tbt", "#love", "#wow", "#nofilter", "#weekend", "#mood", "#photooftheday", "#goals")
SEPARATORS = (".", ",", "-", "|", "!", ":", "")
_URL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


# Sentences whose words decide the ambiguous name's type, whatever the photo shows.
CUE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "PER": ("Coach {X} is not happy", "Happy birthday {X} , love you", "My friend {X} took this",
            "Congrats to {X} on the new job", "{X} scored twice tonight", "Interview with {X} at noon"),
    "LOC": ("Road trip to {X}", "Just landed in {X}", "Sunset over {X}", "Moving to {X} next month",
            "Streets of {X} tonight", "Hiking near {X} this weekend"),
    "ORG": ("Just bought shares of {X}", "{X} is hiring again", "My first day working at {X}",
            "{X} announced a recall", "Ordered from {X} again", "{X} stock fell today"),
    "MISC": ("My dog {X} loves the snow", "Our cat {X} is asleep again", "Planted {X} roses today",
             "My puppy {X} turns one", "Walking {X} , my dog", "Our kitten {X} found the box"),
}

def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def _tokens(text: str) -> list[str]:
    """``text`` split as the raw-text reader splits a post (``can't`` -> ``can ' t``)."""
    return [t.text for t in tokenize_post_offsets(text)]


def _fill(template: str, slot: str, name: str, etype: str, origin: str):
    """Template words -> [(token, tag, origin)]; ``origin`` marks the slot's tokens."""
    out = []
    for word in template.split():
        if word == slot:
            for j, part in enumerate(name.split()):
                out.append((part, f"{'B' if j == 0 else 'I'}-{etype}", origin))
        else:
            out.extend((piece, "O", "") for piece in _tokens(word))
    return out


def make_post(rng: np.random.Generator, entity_type: str, cue: bool = False
              ) -> tuple[list[str], list[str], list[list[int]], str]:
    """One templated post whose ambiguous name has ``entity_type``.

    With ``cue`` the name sits in a sentence whose words decide its type (``CUE_TEMPLATES``);
    without, in a type-neutral one, and nothing but ``entity_type`` depends on it.

    Returns ``(tokens, tags, target, name)``: ``target`` is the ``[start, end)`` word span
    of the ambiguous name (a list holding one span), ``name`` the name as drawn.
    """
    name = _pick(rng, AMBIGUOUS_NAMES)
    if rng.random() < TWO_WORD_P:
        name += " " + _pick(rng, AMBIGUOUS_NAMES)
    template = _pick(rng, CUE_TEMPLATES[entity_type] if cue else NEUTRAL_TEMPLATES)
    clauses = [_fill(template, "{X}", name, entity_type, "target")]
    tail = []
    counts, probs = zip(*TEXT_ENTITY_COUNTS)
    for _ in range(int(rng.choice(counts, p=probs))):
        etype = _pick(rng, ENTITY_TYPES)
        if etype in TEXT_HASHTAGS and rng.random() < HASHTAG_ENTITY_P:
            tail.append((_pick(rng, TEXT_HASHTAGS[etype]), f"B-{etype}", "text"))
            continue
        templates, names = _pick(rng, TEXT_GROUPS[etype])
        clauses.append(_fill(_pick(rng, templates), "{E}", _pick(rng, names), etype, "text"))
    order = rng.permutation(len(clauses))
    words: list[tuple[str, str, str]] = []
    r = rng.random()
    if r < 0.2:
        words += [("RT", "O", ""), *((p, "O", "") for p in _tokens(_pick(rng, MENTIONS))), (":", "O", "")]
    elif r < 0.3:
        words.extend((p, "O", "") for p in _tokens(_pick(rng, MENTIONS)))
    for k, i in enumerate(order):
        clause = list(clauses[i])
        if k == 0 and clause[0][1] == "O":           # sentence case for the post's first word
            clause[0] = (clause[0][0][:1].upper() + clause[0][0][1:],) + clause[0][1:]
        if k:
            sep = _pick(rng, SEPARATORS)
            if not sep and (words[-1][1] != "O" or clause[0][1] != "O"):
                sep = "."                                # two names never touch
            if sep and words[-1][0] not in ("!", "?"):   # no "? ." pile-ups
                words.append((sep, "O", ""))
        words += clause
    if rng.random() < 0.4:
        words.append(("http://t.co/" + "".join(_pick(rng, _URL_CHARS) for _ in range(10)), "O", ""))
    if rng.random() < 0.3:
        words.append((_pick(rng, PLAIN_HASHTAGS), "O", ""))
    words += tail
    casing = rng.random()
    if casing < 0.08:
        words = [(w if w.startswith("http") else w.lower(), t, o) for w, t, o in words]
    elif casing < 0.16:
        words = [(w if w.startswith("http") else w.upper(), t, o) for w, t, o in words]
    tokens = [w for w, _, _ in words]
    tags = [t for _, t, _ in words]
    target = [[s, e] for s, e, o in _spans(words) if o == "target"]
    return tokens, tags, target, name


def _spans(words):
    """[(start, end, origin)] of the entities in [(token, tag, origin)]."""
    out, start = [], None
    for i, (_, tag, origin) in enumerate(words + [("", "O", "")]):
        if start is not None and not tag.startswith("I-"):
            out.append((start, i, words[start][2]))
            start = None
        if tag.startswith("B-"):
            start = i
    return out


