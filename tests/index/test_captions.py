"""Captions files: read by image id, every problem named with its file and line."""
import json

import pytest
from hypothesis import given, settings, strategies as st

from data.corpus import CorpusError
from index.captions import CaptionsFileError, FileCaptioner, get_captioner, list_captioners, read_captions_jsonl


def write(tmp_path, text, name="captions.jsonl"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_captions_by_id(tmp_path):
    p = write(tmp_path, '{"id": "101", "caption": "a red  square"}\n\n{"id": 102, "caption": "", "by": "x"}\n')
    assert read_captions_jsonl(p, known_ids={"101", "102", "103"}) == {"101": "a red square", "102": ""}
    c = get_captioner("file", paths=[str(p)])
    assert c.caption("101") == "a red square" and c.caption("103") == ""
    d = c.describe()
    assert d["captioner"] == "file" and d["config"] == {"paths": [str(p)]}
    assert d["files"][0]["captions"] == 2 and len(d["files"][0]["sha256"]) == 64


def test_a_later_file_wins(tmp_path):
    a = write(tmp_path, '{"id": "1", "caption": "old"}\n{"id": "2", "caption": "two"}\n', "a.jsonl")
    b = write(tmp_path, '{"id": "1", "caption": "new"}\n', "b.jsonl")
    c = FileCaptioner([a, b])
    assert (c.caption("1"), c.caption("2")) == ("new", "two")


@pytest.mark.parametrize("text, line, message", [
    ('{"id": "101", "caption": "ok"}\n{"id": "102", "caption": "no end"\n', 2, "not valid JSON"),
    ('{"id": "101", "caption": "ok"}\n["102", "a list"]\n', 2, "expected a JSON object"),
    ('\n{"caption": "whose?"}\n', 2, "missing field 'id'"),
    ('{"id": "101", "caption": "ok"}\n{"id": "102"}\n', 2, "missing field 'caption' for image '102'"),
    ('{"id": "101", "caption": 7}\n', 1, "field 'caption' of image '101' must be a string"),
    ('{"id": "", "caption": "x"}\n', 1, "field 'id' must be a non-empty string"),
    ('{"id": "101", "caption": "a"}\n{"id": "102", "caption": "b"}\n{"id": "101", "caption": "c"}\n', 3,
     "image '101' is captioned twice (first on line 1)"),
    ('{"id": "101", "caption": "a"}\n{"id": "999", "caption": "b"}\n', 2, "unknown image id '999'"),
])
def test_errors_name_file_and_line(tmp_path, text, line, message):
    p = write(tmp_path, text)
    with pytest.raises(CaptionsFileError) as e:
        read_captions_jsonl(p, known_ids={"101", "102"})
    assert str(e.value).startswith(f"{p}:{line}: ") and message in str(e.value)
    assert e.value.path == str(p) and e.value.line == line


def test_file_level_errors(tmp_path):
    with pytest.raises(CaptionsFileError, match="no such captions file"):
        read_captions_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(CaptionsFileError, match="no caption in the file"):
        read_captions_jsonl(write(tmp_path, "\n\n"))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"id": "1", "caption": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1.jsonl:1: byte 'e9'"):
        read_captions_jsonl(bad)


def test_registry_lists_valid_names():
    assert list_captioners() == ["file"]
    with pytest.raises(KeyError, match="valid names are file"):
        get_captioner("blip")
    with pytest.raises(ValueError, match="needs a captions file"):
        FileCaptioner([])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=30),
                          st.builds(lambda i, c: json.dumps({"id": i, "caption": c}),
                                    st.one_of(st.text(max_size=4), st.integers(), st.none()),
                                    st.one_of(st.text(max_size=8), st.integers()))), max_size=6))
def test_any_file_reads_or_fails_with_file_and_line(tmp_path_factory, lines):
    p = tmp_path_factory.mktemp("fuzz") / "c.jsonl"
    p.write_text("\n".join(lines), encoding="utf-8")
    try:
        out = read_captions_jsonl(p)
    except CorpusError as e:
        assert str(e).startswith(str(p))
    else:
        assert out and all(isinstance(k, str) and isinstance(v, str) for k, v in out.items())
