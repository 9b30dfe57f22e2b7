"""Fuzzing the readers: mutated CoNLL and JSONL files (byte flips, truncation, swapped and
unknown tags, stray blank and IMGID lines, CRLF, a byte-order mark, huge lines, JSON fields
of the wrong type) are either read or refused with the reader's own error naming the file
(and the line, where there is one), never with another exception."""
import atexit
import json
import os
import shutil
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.corpus import CorpusError, read_corpus, read_predictions

from ..conftest import TINY_CONLL

JSONL = "".join(json.dumps(o) + "\n" for o in [
    {"id": "1", "tokens": ["George", "in", "Florida"], "tags": ["B-PER", "O", "B-LOC"], "image": "a.jpg"},
    {"id": "2", "tokens": ["Go", "Lakers"], "tags": ["O", "B-ORG"]},
    {"id": "3", "tokens": ["Madrid"], "tags": ["I-LOC"], "extra": [1, 2]},
])
NO_IMAGES = tempfile.mkdtemp(prefix="fuzz-images-")
atexit.register(shutil.rmtree, NO_IMAGES, ignore_errors=True)
"""An existing, empty image folder: every post's image is missing (a missing folder is refused)."""

PRED = "IMGID:1\nGeorge\tB-PER\tB-PER\nin\tO\tO\n\nIMGID:2\nGo\tO\tB-ORG\n"
STRAY = ["", "IMGID:", "IMGID:77", "\t", "a\tb\tc", "x\tB-", "y\tZ-PER", "z\tB-PER\tI-LOC", "{", "{}", "[]",
         '{"tokens": []}', '{"tokens": "a b"}', '{"id": 5, "tokens": [1, 2]}', '{"tokens": ["a"], "tags": [3]}',
         '{"tokens": ["a"], "image": 7}', '{"tokens": ["a"], "image": {"x": 1}}', '{"tokens": ["a"], "tags": "O"}',
         "w" * 100_000, "\x00\x01", "IMGID:1\tB-PER"]
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                           max_leaves=6)


@st.composite
def mutated(draw, base: str):
    text = base
    lines = text.split("\n")
    for _ in range(draw(st.integers(0, 3))):                          # stray lines anywhere
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(STRAY)))
    if draw(st.booleans()):                                            # swapped or unknown tags
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i].replace(draw(st.sampled_from(["B-PER", "O", "B-LOC", "I-LOC", "B-ORG"])),
                                    draw(st.sampled_from(["I-PER", "B-OTHER", "S-LOC", "X-PER", "B-", "O-O", ""])))
    text = ("\r\n" if draw(st.booleans()) else "\n").join(lines)
    data = bytearray(text.encode())
    for _ in range(draw(st.integers(0, 3))):                          # byte flips
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):                                            # truncation
        data = data[:draw(st.integers(0, len(data)))]
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return bytes(data)


def check(reader, data: bytes, suffix: str, **kw):
    fd, path = tempfile.mkstemp(suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            reader(path, **kw)
        except CorpusError as e:
            assert str(e).startswith(path)
            assert e.line is None or 1 <= e.line <= data.count(b"\n") + 1
    finally:
        os.unlink(path)


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated(TINY_CONLL))
def test_conll_reader_never_raises_another_exception(data):
    check(read_corpus, data, ".txt", image_dir=NO_IMAGES)


@FUZZ
@given(mutated(JSONL))
def test_jsonl_reader_never_raises_another_exception(data):
    check(read_corpus, data, ".jsonl", image_dir=NO_IMAGES)


@FUZZ
@given(mutated(PRED))
def test_predictions_reader_never_raises_another_exception(data):
    check(read_predictions, data, ".conll")


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["id", "tokens", "tags", "image", "x"]), json_values, max_size=5),
                min_size=1, max_size=4))
def test_jsonl_fields_of_any_type(objs):
    check(read_corpus, "".join(json.dumps(o) + "\n" for o in objs).encode(), ".jsonl", image_dir=NO_IMAGES)
