import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.corpus import (CorpusError, Sample, normalise_tags, read_corpus, read_predictions,
                         tokenize_post, write_conll, write_jsonl)


def test_reads_imgid_conll(tiny_corpus_file):
    c = read_corpus(tiny_corpus_file)
    assert [s.id for s in c] == ["101", "102", "103"]
    assert c[0].tokens[3:5] == ["George", "Zimmerman"]
    assert c[1].tags == ["O", "B-ORG", "O", "B-MISC"]          # OTHER -> MISC
    assert c[2].tags == ["I-LOC", "O"]                          # I- starts are kept
    assert all(s.image is None and not s.image_missing for s in c)


def test_images_resolved_and_missing_recorded(tiny_corpus_file, tmp_path):
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    (img_dir / "101.jpg").write_bytes(b"\xff\xd8\xff")
    (img_dir / "103.png").write_bytes(b"\x89PNG")
    c = read_corpus(tiny_corpus_file, img_dir)
    assert c[0].image.endswith("101.jpg") and not c[0].image_missing
    assert c[1].image is None and c[1].image_missing
    assert c[2].image.endswith("103.png")


def test_jsonl_with_extra_keys(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"id": "a", "tokens": ["Hi", "Rome"], "tags": ["O", "S-LOC"], "image": "x.jpg",
                             "note": 1}) + "\n" + json.dumps({"id": "b", "tokens": []}) + "\n")
    c = read_corpus(p, tmp_path)
    assert len(c) == 1 and c.skipped_empty == 1
    assert c[0].tags == ["O", "B-LOC"] and c[0].image_missing and c[0].meta == {"note": 1}


def test_raw_text_posts(tmp_path):
    p = tmp_path / "posts.txt"
    p.write_text("Obama visits Paris! http://t.co/x #news @cnn\n\nsecond post\n")
    c = read_corpus(p)
    assert c[0].tokens == ["Obama", "visits", "Paris", "!", "http://t.co/x", "#news", "@cnn"]
    assert c[0].tags is None and len(c) == 2 and c.skipped_empty == 1
    assert tokenize_post("don't stop") == ["don", "'", "t", "stop"]   # as both Twitter corpora split it


@pytest.mark.parametrize("content,line,needle", [
    ("IMGID:1\nhello\tO\tX\n", 2, "expected token<TAB>tag"),
    ("IMGID:1\nhello\tB-FOO-BAR\n", 2, "unknown tag"),
    ("IMGID:1\nhello\tO\nworld\n", 3, "every token line needs"),
    ("IMGID:\nhello\tO\n", 1, "empty IMGID"),
    ("IMGID:1\nhi\tX-PER\n", 2, "unknown tag"),
])
def test_bad_conll_names_file_and_line(tmp_path, content, line, needle):
    p = tmp_path / "bad.txt"
    p.write_text(content)
    with pytest.raises(CorpusError) as e:
        read_corpus(p)
    assert e.value.line == line and needle in str(e.value) and "bad.txt" in str(e.value)


def test_bad_jsonl(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": 1, "tokens": ["a"]}\n{"id": 2, "tokens": ["a", "b"], "tags": ["O"]}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2: .*as long as"):
        read_corpus(p)
    p.write_text('{"id": 1, "tokens": ["a"]\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:1: invalid JSON"):
        read_corpus(p)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.txt").write_text("\n\n")
    with pytest.raises(CorpusError, match="empty"):
        read_corpus(tmp_path / "e.txt")
    with pytest.raises(CorpusError, match="no such file"):
        read_corpus(tmp_path / "nope.txt")


def test_require_tags(tmp_path):
    p = tmp_path / "u.txt"
    p.write_text("IMGID:1\nhello\n")
    with pytest.raises(CorpusError, match="no gold tags"):
        read_corpus(p, require_tags=True)


def test_bioes_and_bilou_become_bio():
    assert normalise_tags(["S-PER", "B-LOC", "E-LOC", "U-ORG", "B-OTHER", "L-OTHER"]) == \
        ["B-PER", "B-LOC", "I-LOC", "B-ORG", "B-MISC", "I-MISC"]


WORD = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1,
               max_size=8).filter(lambda w: not w.startswith("IMGID:") and w.strip() == w and "\t" not in w)
TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-MISC"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.tuples(WORD, TAG), min_size=1, max_size=6), min_size=1, max_size=5))
def test_conll_and_jsonl_round_trip(tmp_path_factory, posts):
    d = tmp_path_factory.mktemp("rt")
    samples = [Sample(str(i), [w for w, _ in p], [t for _, t in p]) for i, p in enumerate(posts)]
    write_conll(d / "a.conll", samples)
    write_jsonl(d / "a.jsonl", samples)
    for path in (d / "a.conll", d / "a.jsonl"):
        back = read_corpus(path)
        assert [(s.id, s.tokens, s.tags) for s in back] == [(s.id, s.tokens, s.tags) for s in samples]


def test_predictions_file_with_gold_column(tmp_path, tiny_corpus_file):
    c = read_corpus(tiny_corpus_file)
    preds = [["O"] * len(s) for s in c]
    write_conll(tmp_path / "p.conll", c.samples, preds)
    tags, gold = read_predictions(tmp_path / "p.conll")
    assert tags == preds and gold == [s.tags for s in c]


def test_invalid_bytes_name_file_line_and_column_and_the_fix(tmp_path):
    p = tmp_path / "latin1.txt"
    p.write_bytes("IMGID:1\nhi\tO\nCaf\xe9\tB-LOC\n".encode("latin-1"))
    with pytest.raises(CorpusError) as e:
        read_corpus(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3:") and "byte column 4" in msg and "'e9'" in msg
    assert "iconv -f latin1 -t utf-8" in msg and "--encoding" in msg
    assert read_corpus(p, encoding="latin-1").samples[0].tokens == ["hi", "Café"]


def test_a_byte_order_mark_is_accepted(tmp_path):
    for name, text in (("bom.txt", "IMGID:1\nRome\tB-LOC\n"),
                       ("bom.jsonl", '{"id": "1", "tokens": ["Rome"], "tags": ["B-LOC"]}\n')):
        p = tmp_path / name
        p.write_bytes(b"\xef\xbb\xbf" + text.encode())
        s = read_corpus(p).samples
        assert [(x.id, x.tokens, x.tags) for x in s] == [("1", ["Rome"], ["B-LOC"])]


def test_every_tag_error_names_its_line(tmp_path):
    conll = tmp_path / "a.txt"
    conll.write_text("IMGID:1\nhi\tO\n\nIMGID:2\nyo\tO\nBob\tX-PER\n")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(conll))}:6: unknown tag 'X-PER'"):
        read_corpus(conll)
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"id": "1", "tokens": ["a"], "tags": ["O"]}\n\n'
                     '{"id": "2", "tokens": ["a", "b", "c"], "tags": ["O", "O", "X-PER"]}\n')
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(jsonl))}:3: unknown tag 'X-PER'"):
        read_corpus(jsonl)
    pred = tmp_path / "p.conll"
    pred.write_text("IMGID:1\na\tO\tO\nb\tO\tQ-LOC\n")
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(pred))}:3: unknown tag 'Q-LOC'"):
        read_predictions(pred)


def test_entity_types_outside_the_run_set_name_file_and_line(tmp_path):
    from data.corpus import check_entity_types

    p = tmp_path / "a.txt"
    p.write_text("IMGID:1\nhi\tO\n\nIMGID:2\nBob\tB-PERSON\n")
    corpus = read_corpus(p)                                      # reading accepts any type
    check_entity_types(corpus, ["PER", "PERSON"])
    with pytest.raises(CorpusError, match=rf"^{re.escape(str(p))}:5: entity type 'PERSON' .*PER, LOC, ORG, MISC"
                                          r".*data.entity_types"):
        check_entity_types(corpus, ["PER", "LOC", "ORG", "MISC"])
