"""A stand-in tagger with the tagging API's interface (``tag_many``, ``tag``, ``heads``,
``info``): capitalised words are entities (``Paris``-like names in ``LOCS``: LOC, others:
PER), so the web layer's tests run in milliseconds and know what to expect."""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from data.errors import UserError

LOCS = {"Paris", "Rome", "Madrid"}


@dataclass
class FakeResult:
    text: str
    entities: list
    image: str
    evidence: dict
    id: object = None
    tokens: list = field(default_factory=list)
    tags: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "tokens": self.tokens, "tags": self.tags,
                "entities": self.entities, "image": self.image, "evidence": self.evidence}


class FakeTagger:
    def __init__(self, head: str = "rgcn", neighbours=("101", "102")):
        self.heads = [head]
        self.neighbours = list(neighbours)
        self.calls: list[int] = []                 # the size of every tag_many call
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def info(self) -> dict:
        return {"runs": ["fake"], "heads": self.heads}

    def _one(self, post) -> FakeResult:
        if isinstance(post, str):
            post = {"text": post}
        text, image = post["text"], post.get("image")
        if text == "boom":
            raise ValueError("this post breaks the tagger")
        if text == "boom-user":
            raise UserError("text", "this post cannot be tagged", "change it")
        tokens = [{"text": m.group(), "start": m.start(), "end": m.end()} for m in re.finditer(r"\S+", text)]
        tags, entities = [], []
        for i, t in enumerate(tokens):
            word = t["text"].strip("!?.,")
            if word[:1].isupper() and word[1:].islower():
                etype = "LOC" if word in LOCS else "PER"
                tags.append("B-" + etype)
                entities.append({"text": word, "type": etype, "start": t["start"], "end": t["start"] + len(word),
                                 "token_start": i, "token_end": i + 1, "confidence": 0.9})
            else:
                tags.append("O")
        status = "none" if image is None else ("embedded" if isinstance(image, bytes) else "used")
        head = self.heads[0]
        evidence = {"head": head}
        if head == "rgcn":
            evidence["relations"] = {"inter": [{"image": n, "score": 0.9 - 0.1 * r, "kept": True, "rank": r}
                                               for r, n in enumerate(self.neighbours)], "intra": []}
        return FakeResult(text, entities, status, evidence, post.get("id"), tokens, tags)

    def tag_many(self, posts, batch_size: int = 64):
        posts = list(posts)
        with self.lock:
            self.calls.append(len(posts))
            self.threads.add(threading.current_thread().name)
        for p in posts:
            yield self._one(p)

    def tag(self, text, image=None):
        return self._one({"text": text, "image": image})
