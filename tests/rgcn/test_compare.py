"""Subset scoring of ``python -m rgcn compare``: the listed spans, and the entities outside them."""
import json

import pytest

from data.corpus import Sample, write_conll
from rgcn.__main__ import main, score_with_subset

# p1: "Taylor Swift" is image-decided (words 1-2); "Paris" is an entity outside.
# p2: "Apple" is image-decided (word 0); "Cupertino" is outside.
# p3: no listed span; "Bob" is outside.
POSTS = [
    Sample("p1", ["Saw", "Taylor", "Swift", "fans", "in", "Paris"],
           ["O", "B-PER", "I-PER", "O", "O", "B-LOC"], meta={"image_decided": [[1, 3]]}),
    Sample("p2", ["Apple", "launch", "at", "Cupertino"],
           ["B-ORG", "O", "O", "B-LOC"], meta={"image_decided": [[0, 1]]}),
    Sample("p3", ["hello", "Bob"], ["O", "B-PER"], meta={"image_decided": []}),
]
# Predicted spans: p1 PER(1,2) is a fragment of the listed (1,3), LOC(5,6) right;
# p2 PER(0,1) the listed span with the wrong type, MISC(1,2) a false positive touching no
# listed word, LOC(3,4) right; p3 misses Bob.
PRED = [
    ["O", "B-PER", "O", "O", "O", "B-LOC"],
    ["B-PER", "B-MISC", "O", "B-LOC"],
    ["O", "O"],
]


def test_listed_spans_and_outside_by_hand():
    row = score_with_subset(POSTS[:2], PRED[:2], "image_decided")
    # overall: gold PER(1,3) LOC(5,6) ORG(0,1) LOC(3,4); pred 5 spans, 2 right
    assert row["precision"] == pytest.approx(2 / 5)
    assert row["recall"] == pytest.approx(2 / 4)
    assert row["f1"] == pytest.approx(4 / 9)
    # listed: gold PER(1,3) ORG(0,1); pred PER(0,1) only (the fragment's (1,2) is not listed)
    assert row["image_decided_gold"] == 2
    assert row["image_decided_f1"] == 0.0
    # outside: gold LOC(5,6) LOC(3,4); pred LOC(5,6) MISC(1,2) LOC(3,4). The fragment
    # PER(1,2) overlaps a listed span, so it is no false positive here: P 2/3, R 1.
    assert row["outside_image_decided_gold"] == 2
    assert row["outside_image_decided_f1"] == pytest.approx(0.8)
    assert set(row) == {"f1", "precision", "recall", "image_decided_f1", "image_decided_gold",
                        "outside_image_decided_f1", "outside_image_decided_gold"}


def test_gold_entity_partly_in_a_listed_span_counts_in_neither_column():
    post = Sample("q", ["New", "York", "Times"], ["B-ORG", "I-ORG", "I-ORG"],
                  meta={"image_decided": [[0, 2]]})
    row = score_with_subset([post], [["B-ORG", "I-ORG", "I-ORG"]], "image_decided")
    assert row["f1"] == 1.0
    assert (row["image_decided_gold"], row["outside_image_decided_gold"]) == (0, 0)


def test_missing_field_is_named():
    with pytest.raises(ValueError, match="post 'q' has no field 'image_decided'"):
        score_with_subset([Sample("q", ["a"], ["O"])], [["O"]], "image_decided", "test.jsonl")


def test_compare_main_prints_both_columns(tmp_path, capsys):
    gold = tmp_path / "test.jsonl"
    gold.write_text("".join(json.dumps({"id": s.id, "tokens": s.tokens, "tags": s.tags, **s.meta}) + "\n"
                            for s in POSTS))
    write_conll(tmp_path / "a" / "test_predictions.conll", POSTS, PRED)
    write_conll(tmp_path / "perfect" / "test_predictions.conll", POSTS, [s.tags for s in POSTS])
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "perfect"), "--gold", str(gold),
                 "--subset-field", "image_decided"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    # a: overall 2 right of 5 predicted, 5 gold; listed 0 of 1 predicted, 2 gold;
    # outside LOC LOC right, MISC wrong, Bob missed: P = R = 2/3
    assert lines == [
        ["run", "f1", "precision", "recall", "image_decided_f1", "outside_image_decided_f1"],
        ["a", "40.00", "40.00", "40.00", "0.00", "66.67"],
        ["perfect", "100.00", "100.00", "100.00", "100.00", "100.00"],
        ["gold", "entities:", "image_decided", "2,", "outside_image_decided", "3"],
    ]


def test_marked_text_brackets_each_entity():
    from rgcn.__main__ import marked_text

    assert marked_text(["Look", "at", "Zelby", "Brevanne", "in", "Paris"],
                       ["O", "O", "B-PER", "I-PER", "O", "B-LOC"]) == "Look at [Zelby Brevanne PER] in [Paris LOC]"


def test_the_scorer_accepts_any_entity_type(tmp_path, capsys):
    from rgcn.__main__ import main

    gold = tmp_path / "gold.txt"
    gold.write_text("IMGID:1\nBob\tB-PERSON\nin\tO\nRome\tB-CITY\n")
    pred = tmp_path / "pred.conll"
    pred.write_text("IMGID:1\nBob\tB-PERSON\tB-PERSON\nin\tO\tO\nRome\tB-CITY\tO\n")
    assert main(["score", str(gold), str(pred), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["by_type"]["PERSON"]["f1"] == 100.0 and out["by_type"]["CITY"]["recall"] == 0.0
