"""Reading and writing MNER corpora.

Two formats are understood:

* **CoNLL with image ids** (the format of Twitter-2015/2017): a line ``IMGID:<id>``
  starts a post, then one ``token<TAB>tag`` line per token, a blank line between posts.
  A file without ``IMGID`` lines is read as plain CoNLL (ids are ``<file>:<n>``).
* **JSONL**: one object a line, ``{"id", "tokens", "tags"?, "image"?}``. Extra keys are
  kept in :attr:`Sample.meta`. Without ``image`` the post's image is looked up by its id;
  ``"image": null`` says the post has none.

Tags are normalised on reading: ``OTHER`` becomes ``MISC``, and the BIOES / BILOU variants
are rewritten to BIO. Spans that open with ``I-`` are kept as they are (the standard MNER
scorer counts them as entities). Every problem is reported as a :class:`CorpusError` that
names the file, the line and what was expected.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from data.errors import UserError
from data.tweets import tokenize_post_offsets

log = logging.getLogger(__name__)

ENTITY_TYPES = ("PER", "LOC", "ORG", "MISC")
TYPE_ALIASES = {"OTHER": "MISC"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


class CorpusError(UserError, ValueError):
    """A corpus file that cannot be read; the message names file, line and the fix."""

    def __init__(self, path: str | os.PathLike, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


@dataclass
class Sample:
    """One post: its words, their gold tags (if known) and its image (if any).

    ``image`` is the resolved image path, or ``None`` when the post has no image or the
    file is missing; ``image_missing`` records the second case. ``image_key`` is the id of
    the image the post refers to, whether or not its file was found: the stem of a JSONL
    ``image`` field, else the CoNLL ``IMGID`` or the JSONL post id (the ``<id>.jpg``
    convention); ``None`` for posts that name no image (raw text). Index artifacts key
    images by this id.
    """

    id: str
    tokens: list[str]
    tags: list[str] | None = None
    image: str | None = None
    image_missing: bool = False
    meta: dict = field(default_factory=dict)
    image_key: str | None = None
    lines: list[int] | None = field(default=None, repr=False, compare=False)   # the file line of each token


    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class Corpus:
    """The samples of one split file, and what reading it skipped."""

    path: str
    samples: list[Sample]
    skipped_empty: int = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self):
        return iter(self.samples)

    def __getitem__(self, i):
        return self.samples[i]

    @property
    def labelled(self) -> bool:
        return all(s.tags is not None for s in self.samples)


# --------------------------------------------------------------------------- tags
_TAG_RE = re.compile(r"^(?P<prefix>[BIESLU])-(?P<type>[A-Za-z][A-Za-z_]*)$")


def normalise_tags(tags: Sequence[str], path="<tags>", lines: Sequence[int] | None = None) -> list[str]:
    """Map one sentence's tags to BIO with the canonical type names.

    Accepts IOB1/IOB2 (``B-``/``I-``/``O``), BIOES (``E-``, ``S-``) and BILOU (``L-``,
    ``U-``); ``OTHER`` is renamed ``MISC``. Raises :class:`CorpusError` on anything else,
    naming the file line of the tag (``lines[i]``).
    """
    out = []
    for i, tag in enumerate(tags):
        line = None if lines is None else lines[i]
        if tag == "O":
            out.append("O")
            continue
        m = _TAG_RE.match(tag)
        if m is None:
            raise CorpusError(path, line, f"unknown tag {tag!r}: expected O or B-/I-TYPE "
                              "(BIOES E-/S- and BILOU L-/U- are converted to BIO)")
        prefix, etype = m["prefix"], m["type"].upper()
        etype = TYPE_ALIASES.get(etype, etype)
        if prefix in "SU":
            prefix = "B"
        elif prefix in "EL":
            prefix = "I"
        out.append(f"{prefix}-{etype}")
    return out


# --------------------------------------------------------------------------- images
def resolve_image(image_dir: str | os.PathLike | None, image_id: str | None,
                  explicit: str | None = None) -> tuple[str | None, bool]:
    """Find a post's image file. Returns ``(path or None, missing)``.

    ``explicit`` (a JSONL ``image`` field) is taken relative to ``image_dir`` when it is not
    absolute. Otherwise ``<image_dir>/<image_id>`` is tried as is and with the usual suffixes.
    A missing file is not an error: it is recorded as ``missing=True``.
    """
    if explicit is None and (image_dir is None or image_id is None):
        return None, False
    candidates = []
    if explicit is not None:
        p = Path(explicit)
        candidates.append(p if p.is_absolute() or image_dir is None else Path(image_dir) / p)
    else:
        base = Path(image_dir) / image_id
        candidates.append(base)
        candidates += [base.with_name(base.name + s) for s in IMAGE_SUFFIXES]
    for c in candidates:
        if c.is_file():
            return str(c), False
    return None, True


def drop_images(samples: Iterable[Sample]) -> None:
    """Mark posts as having no image (the modality-missing evaluation setting); heads see
    ``meta["image_dropped"]`` and ignore whatever the index holds for the post."""
    for s in samples:
        s.image, s.image_missing = None, True
        s.meta["image_dropped"] = True


# --------------------------------------------------------------------------- readers
def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """A text file's content; a UTF-8 byte-order mark is dropped. Bytes that are not valid
    in ``encoding`` raise a :class:`CorpusError` naming the line and byte column, and how to
    convert the file or name its encoding."""
    path = Path(path)
    data = path.read_bytes()
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    try:
        return data.decode("utf-8-sig" if utf8 else encoding)
    except LookupError:
        raise CorpusError(path, None, f"unknown text encoding {encoding!r}: give a Python codec name "
                          "such as utf-8, latin-1 or cp1252") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CorpusError(path, line, f"byte {data[e.start:e.start + 1].hex(' ')!r} at byte column {column} is not "
                          f"valid {encoding} ({e.reason}): convert the file, e.g. `iconv -f latin1 -t utf-8 "
                          f"{path.name} > {path.stem}.utf8{path.suffix}`, or give its encoding "
                          "(--encoding / data.encoding)") from None


def file_lines(text: str) -> list[str]:
    """The lines of a file's text as editors number them: split at ``\\n`` only (a ``\\r``
    before it is dropped), not at the other characters ``str.splitlines`` breaks at."""
    lines = text.split("\n")
    if lines[-1] == "":                      # a final newline ends the last line, it starts none
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def check_entity_types(corpus: Corpus, allowed: Sequence[str]) -> None:
    """Raise a :class:`CorpusError` naming the file and line of the first entity whose type
    is not in ``allowed`` (a run's type set)."""
    allowed_set = set(allowed)
    for s in corpus.samples:
        for i, tag in enumerate(s.tags or ()):
            if tag != "O" and tag[2:] not in allowed_set:
                line = s.lines[i] if s.lines else None
                raise CorpusError(corpus.path, line, f"entity type {tag[2:]!r} (tag {tag!r}, post {s.id!r}) is not "
                                  f"one of the run's types {', '.join(allowed)}: rename it in the file, or add "
                                  "it to data.entity_types")


def split_args(items: Sequence[str]) -> dict[str, str]:
    """``["train=a.txt", "test.txt"]`` -> ``{"train": "a.txt", "test": "test.txt"}``."""
    out: dict[str, str] = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep:
            name, path = os.path.splitext(os.path.basename(it))[0], it
        if name in out:
            raise UserError(f"--data {it}", f"split {name!r} given twice", "name each split once")
        out[name] = path
    return out


def image_folder_problem(folder: str | os.PathLike) -> str | None:
    """What is wrong with ``folder`` as an image folder (``"no such image folder"``, ``"a file,
    not an image folder"``), ``None`` when it is a folder."""
    folder = Path(folder)
    if folder.is_dir():
        return None
    return "a file, not an image folder" if folder.exists() else "no such image folder"


def read_corpus(path: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                fmt: str = "auto", require_tags: bool = False, encoding: str = "utf-8") -> Corpus:
    """Read a split file (CoNLL with IMGID lines, or JSONL) into a :class:`Corpus`.

    Args:
        path: the split file.
        image_dir: folder of the images (``<id>.jpg``); ``None`` means text only.
        fmt: ``"conll"``, ``"jsonl"``, ``"text"`` (one raw post a line) or ``"auto"``
            (by suffix, then by content).
        require_tags: raise if any sample has no gold tags.
        encoding: the file's text encoding (a UTF-8 byte-order mark is accepted and dropped).
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(path, None, ("a folder, not a split file: give the file" if path.is_dir() else
                                       "no such file: check the split path (every split is given by path; "
                                       "nothing is looked up by name)"))
    if image_dir is not None and (problem := image_folder_problem(image_dir)):
        raise CorpusError(image_dir, None, problem + f" (the images of {path}): give the "
                          "folder that holds the posts' images, or none for text only")
    text = read_text(path, encoding)
    if not text.strip():
        raise CorpusError(path, None, "file is empty: expected CoNLL (IMGID:<id> then "
                          "token<TAB>tag lines) or JSONL ({\"id\", \"tokens\", ...} per line)")
    fmt = detect_format(path, text) if fmt == "auto" else fmt
    reader = {"conll": _read_conll, "jsonl": _read_jsonl, "text": _read_text}.get(fmt)
    if reader is None:
        raise CorpusError(path, None, f"unknown format {fmt!r}: expected one of auto, conll, jsonl, text")
    samples, skipped = reader(path, text, image_dir)
    if skipped:
        log.warning("%s: skipped %d empty post(s)", path, skipped)
    if not samples:
        raise CorpusError(path, None, "no post with at least one token was found")
    corpus = Corpus(str(path), samples, skipped)
    if require_tags and not corpus.labelled:
        first = next(s for s in samples if s.tags is None)
        raise CorpusError(path, None, f"post {first.id!r} has no gold tags; this split must be labelled")
    missing = sum(s.image_missing for s in samples)
    if missing:
        log.debug("%s: %d of %d posts have no image file in %s", path, missing, len(samples), image_dir)
    return corpus


def detect_format(path: Path, text: str) -> str:
    if path.suffix in (".jsonl", ".json"):
        return "jsonl"
    if path.suffix in (".conll", ".bio", ".tsv"):
        return "conll"
    first = next(line for line in file_lines(text) if line.strip())
    if first.lstrip().startswith("{"):
        return "jsonl"
    if first.startswith("IMGID:") or "\t" in first:
        return "conll"
    return "text"


def _read_conll(path: Path, text: str, image_dir):
    samples, skipped = [], 0
    tokens, tags, image_id, lines = [], [], None, []
    has_tags: bool | None = None

    def flush():
        nonlocal tokens, tags, image_id, lines, skipped
        if image_id is not None or tokens:
            if not tokens:
                skipped += 1
            else:
                sid = image_id if image_id is not None else f"{path.name}:{len(samples) + 1}"
                img, missing = resolve_image(image_dir, image_id)
                norm = normalise_tags(tags, path, lines) if has_tags else None
                samples.append(Sample(sid, tokens, norm, img, missing, image_key=image_id, lines=lines))
        tokens, tags, image_id, lines = [], [], None, []

    for n, raw in enumerate(file_lines(text), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        if line.startswith("IMGID:"):
            if tokens or image_id is not None:
                flush()
            image_id = line[len("IMGID:"):].strip()
            if not image_id:
                raise CorpusError(path, n, "empty IMGID: expected IMGID:<image id>")
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) == 1:
            this_has_tags = False
        elif len(parts) == 2:
            this_has_tags = True
        else:
            raise CorpusError(path, n, f"malformed line {line!r}: expected token<TAB>tag "
                              f"(found {len(parts)} fields)")
        if has_tags is None:
            has_tags = this_has_tags
        elif has_tags != this_has_tags:
            raise CorpusError(path, n, f"line {line!r} has {'a' if this_has_tags else 'no'} tag "
                              f"but earlier lines {'do' if has_tags else 'do not'}: "
                              "every token line needs token<TAB>tag, or none does")
        lines.append(n)
        tokens.append(parts[0])
        if this_has_tags:
            tags.append(parts[1])
    flush()
    return samples, skipped


def _read_jsonl(path: Path, text: str, image_dir):
    samples, skipped = [], 0
    for n, line in enumerate(file_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorpusError(path, n, f"invalid JSON ({e.msg}): expected one object a line "
                              'like {"id": "1", "tokens": ["Hi", "Rome"], "tags": ["O", "B-LOC"]}')
        if not isinstance(obj, dict) or "tokens" not in obj:
            raise CorpusError(path, n, 'expected an object with a "tokens" list')
        tokens = obj["tokens"]
        if isinstance(tokens, str):
            tokens = tokens.split()
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise CorpusError(path, n, '"tokens" must be a list of strings')
        if not tokens:
            skipped += 1
            continue
        tags = obj.get("tags")
        if tags is not None:
            if not isinstance(tags, list) or len(tags) != len(tokens) or not all(isinstance(t, str) for t in tags):
                raise CorpusError(path, n, f'"tags" must be a list of strings as long as "tokens" ({len(tokens)}), '
                                  f"found {tags!r:.80}")
            tags = normalise_tags(tags, path, [n] * len(tags))
        sid = str(obj.get("id", f"{path.name}:{n}"))
        if obj.get("image") is not None and not isinstance(obj["image"], str):
            raise CorpusError(path, n, f'"image" must be a file name (a string), found {obj["image"]!r:.80}')
        if "image" in obj and obj["image"] is None:   # the post says it has no image
            img, missing = None, False
        else:
            img, missing = resolve_image(image_dir, sid, obj.get("image"))
        meta = {k: v for k, v in obj.items() if k not in ("id", "tokens", "tags", "image")}
        key = Path(str(obj["image"])).stem if obj.get("image") else sid
        samples.append(Sample(sid, list(tokens), tags, img, missing, meta, image_key=key, lines=[n] * len(tokens)))
    return samples, skipped


def _read_text(path: Path, text: str, image_dir):
    samples, skipped = [], 0
    for n, line in enumerate(file_lines(text), start=1):
        tokens = tokenize_post(line)
        if not tokens:
            skipped += 1
            continue
        samples.append(Sample(f"{path.name}:{n}", tokens, lines=[n] * len(tokens)))
    return samples, skipped


def tokenize_post(text: str) -> list[str]:
    """Split a raw post into tokens the way Twitter-2015 is tokenised (URLs, @mentions and
    #hashtags stay whole; punctuation is split off, ``don't`` is ``don ' t``); the tokens of
    :func:`data.tweets.tokenize_post_offsets`, which also gives their character offsets."""
    return [t.text for t in tokenize_post_offsets(text)]


# --------------------------------------------------------------------------- writers
def write_conll(path: str | os.PathLike, samples: Iterable[Sample],
                predictions: Iterable[Sequence[str]] | None = None) -> None:
    """Write samples in the IMGID CoNLL format: ``token<TAB>gold<TAB>pred`` when both
    gold tags and predictions are given, else ``token<TAB>tag``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    preds = iter(predictions) if predictions is not None else None
    lines = []
    for s in samples:
        pred = next(preds) if preds is not None else None
        lines.append(f"IMGID:{s.id}")
        for i, tok in enumerate(s.tokens):
            cols = [tok]
            if s.tags is not None:
                cols.append(s.tags[i])
            if pred is not None:
                cols.append(pred[i])
            lines.append("\t".join(cols))
        lines.append("")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_jsonl(path: str | os.PathLike, samples: Iterable[Sample],
                predictions: Iterable[Sequence[str]] | None = None) -> None:
    """Write samples as JSONL; predictions, when given, replace the tags."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    preds = iter(predictions) if predictions is not None else None
    with open(path.with_name(path.name + ".tmp"), "w", encoding="utf-8") as f:
        for s in samples:
            obj = {"id": s.id, "tokens": s.tokens}
            tags = next(preds) if preds is not None else s.tags
            if tags is not None:
                obj["tags"] = list(tags)
            if s.image is not None:
                obj["image"] = s.image
            obj.update(s.meta)
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    os.replace(path.with_name(path.name + ".tmp"), path)


def read_predictions(path: str | os.PathLike, encoding: str = "utf-8"
                     ) -> tuple[list[list[str]], list[list[str]] | None]:
    """Read the tag columns of a CoNLL predictions file.

    Returns ``(last_column_tags, gold_tags_or_None)``: with three columns the second is the
    gold and the third the prediction; with two columns the only tags are returned.
    """
    corpus_cols: list[list[list[str]]] = []
    current: list[list[str]] = []
    path = Path(path)
    if not path.is_file():
        raise CorpusError(path, None, "no such file: check the predictions path")
    for n, raw in enumerate(file_lines(read_text(path, encoding)), start=1):
        if not raw.strip():
            if current:
                corpus_cols.append(current)
            current = []
            continue
        if raw.startswith("IMGID:"):
            if current:
                corpus_cols.append(current)
            current = []
            continue
        parts = raw.split("\t")
        if len(parts) not in (2, 3):
            raise CorpusError(path, n, f"malformed line {raw!r}: expected token<TAB>tag or "
                              "token<TAB>gold<TAB>pred")
        current.append([*parts, n])
    if current:
        corpus_cols.append(current)
    if not corpus_cols:
        raise CorpusError(path, None, "file is empty: expected CoNLL predictions")
    width = len(corpus_cols[0][0]) - 1
    last = [normalise_tags([p[-2] for p in sent], path, [p[-1] for p in sent]) for sent in corpus_cols]
    gold = ([normalise_tags([p[1] for p in sent], path, [p[-1] for p in sent]) for sent in corpus_cols]
            if width == 3 else None)
    return last, gold
