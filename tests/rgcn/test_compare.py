"""Subset scoring of ``python -m rgcn compare``: the listed spans, and the entities outside them."""
import json

import pytest

from data.corpus import Sample, write_conll
from rgcn.__main__ import main
from rgcn.compare import score_with_subset

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


# ------------------------------------------------------------------ scoring by kind
# Each post's kind says what decides the type of its target name. k1..k6 hold every case:
# k1 image_decided: target Zelby right, Paris (a non-target entity) missed;
# k2, k3, k6 conflicting_image: Rellow typed PER for ORG, Mivra Tessiko and Corvane right;
# k4 no_image: Ostrel typed ORG for PER, plus a false positive MISC outside every target;
# k5 has no kind: its Bob counts in "other", and its span (0, 1) equals the targets of
# k2 and k4, so counting a span by its position alone would put it in a kind.
KINDED = [
    Sample("k1", ["saw", "Zelby", "in", "Paris"], ["O", "B-PER", "O", "B-LOC"],
           meta={"kind": "image_decided", "target": [[1, 2]]}),
    Sample("k2", ["Rellow", "opened", "today"], ["B-ORG", "O", "O"],
           meta={"kind": "conflicting_image", "target": [[0, 1]]}),
    Sample("k3", ["photo", "of", "Mivra", "Tessiko"], ["O", "O", "B-LOC", "I-LOC"],
           meta={"kind": "conflicting_image", "target": [[2, 4]]}),
    Sample("k4", ["Ostrel", "wins"], ["B-PER", "O"], meta={"kind": "no_image", "target": [[0, 1]]}),
    Sample("k5", ["Bob", "here"], ["B-PER", "O"]),
    Sample("k6", ["Corvane", "rocks"], ["B-PER", "O"], meta={"kind": "conflicting_image", "target": [[0, 1]]}),
]
KINDED_PRED = [
    ["O", "B-PER", "O", "O"],
    ["B-PER", "O", "O"],
    ["O", "O", "B-LOC", "I-LOC"],
    ["B-ORG", "B-MISC"],
    ["B-PER", "O"],
    ["B-PER", "O"],
]


def test_score_by_kind_by_hand():
    from rgcn.compare import score_by_kind

    row = score_by_kind(KINDED, KINDED_PRED, where="test.jsonl")
    # overall: 7 gold, 7 predicted, right: Zelby, Mivra Tessiko, Bob, Corvane
    assert (row["precision"], row["recall"], row["f1"]) == (pytest.approx(4 / 7),) * 3
    assert list(row["kinds"]) == ["conflicting_image", "image_decided", "no_image"]     # sorted
    ci, idec, noim = (row["kinds"][k] for k in ("conflicting_image", "image_decided", "no_image"))
    assert ci == {"f1": pytest.approx(2 / 3), "precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
                  "gold": 3, "posts": 3}
    assert idec == {"f1": 1.0, "precision": 1.0, "recall": 1.0, "gold": 1, "posts": 1}
    assert noim == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "gold": 1, "posts": 1}
    # other: gold Paris and Bob; predicted MISC and Bob
    assert row["other"] == {"f1": 0.5, "precision": 0.5, "recall": 0.5, "gold": 2}


def test_score_by_kind_keeps_a_target_fragment_out_of_every_column_but_overall():
    from rgcn.compare import score_by_kind

    post = Sample("f", ["New", "York", "Times", "today"], ["B-ORG", "I-ORG", "I-ORG", "O"],
                  meta={"kind": "image_decided", "target": [[0, 3]]})
    row = score_by_kind([post], [["B-ORG", "I-ORG", "O", "B-LOC"]])
    assert row["kinds"]["image_decided"]["precision"] == 0.0 and row["kinds"]["image_decided"]["gold"] == 1
    assert row["other"] == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "gold": 0}   # LOC(3,4) is outside
    assert row["precision"] == 0.0 and row["recall"] == 0.0


@pytest.mark.parametrize("meta, match", [
    ({"kind": "no_image"}, "test.jsonl: post 'x' has a 'kind' .'no_image'. but no 'target' field"),
    ({"kind": "no_image", "target": [[0, 5]]}, "test.jsonl: post 'x' has target .*within its 2 words"),
    ({"kind": "no_image", "target": [0, 1]}, "test.jsonl: post 'x' has target"),
    ({"kind": "other", "target": [[0, 1]]}, "test.jsonl: post 'x' has kind 'other'"),
])
def test_score_by_kind_names_the_file_and_post_of_a_bad_record(meta, match):
    from rgcn.compare import score_by_kind

    with pytest.raises(ValueError, match=match):
        score_by_kind([Sample("x", ["a", "b"], ["O", "O"], meta=meta)], [["O", "O"]], where="test.jsonl")


def _write_gold(path, posts):
    path.write_text("".join(json.dumps({"id": s.id, "tokens": s.tokens, "tags": s.tags, **s.meta}) + "\n"
                            for s in posts))
    return path


def test_compare_prints_the_per_kind_table_when_the_gold_has_kinds(tmp_path, capsys):
    gold = _write_gold(tmp_path / "test.jsonl", KINDED)
    write_conll(tmp_path / "a" / "test_predictions.conll", KINDED, KINDED_PRED)
    write_conll(tmp_path / "perfect" / "test_predictions.conll", KINDED, [s.tags for s in KINDED])
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "perfect"), "--gold", str(gold)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines[:3]] == [
        ["run", "f1", "precision", "recall", "conflicting_image", "image_decided", "no_image", "other"],
        ["a", "57.14", "57.14", "57.14", "66.67", "100.00", "0.00", "50.00"],
        ["perfect", "100.00", "100.00", "100.00", "100.00", "100.00", "100.00", "100.00"],
    ]
    assert "conflicting_image 3 (3 posts), image_decided 1 (1 posts), no_image 1 (1 posts)" in lines[3]
    assert "other: the 2 gold entities that overlap no target" in lines[3]

    assert main(["compare", str(tmp_path / "a"), "--gold", str(gold), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["kinds"]["conflicting_image"]["f1"] == pytest.approx(2 / 3)
    assert row["other"]["gold"] == 2


def test_compare_keeps_a_subset_field_apart_from_a_kind_of_the_same_name(tmp_path, capsys):
    """The demo has an ``image_decided`` kind and an ``image_decided`` span field (the targets
    of the image_decided and visual_text kinds): both columns are reported, neither overwrites."""
    listed = {"k1": [[1, 2]], "k2": [[0, 1]]}
    posts = [Sample(s.id, s.tokens, s.tags, meta={**s.meta, "image_decided": listed.get(s.id, [])})
             for s in KINDED]
    gold = _write_gold(tmp_path / "test.jsonl", posts)
    write_conll(tmp_path / "a" / "test_predictions.conll", posts, KINDED_PRED)
    assert main(["compare", str(tmp_path / "a"), "--gold", str(gold), "--subset-field", "image_decided",
                 "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["image_decided_f1"] == pytest.approx(0.5)              # Zelby right, Rellow wrong
    assert row["kinds"]["image_decided"]["f1"] == 1.0                 # Zelby only


def test_compare_without_kinds_has_no_kind_columns(tmp_path, capsys):
    gold = _write_gold(tmp_path / "test.jsonl", POSTS)
    write_conll(tmp_path / "a" / "test_predictions.conll", POSTS, PRED)
    assert main(["compare", str(tmp_path / "a"), "--gold", str(gold), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert set(row) == {"run", "f1", "precision", "recall"}


def test_compare_reports_a_kinded_post_without_target(tmp_path, capsys):
    posts = [*KINDED[:2], Sample("bad", ["x"], ["O"], meta={"kind": "no_image"})]
    gold = _write_gold(tmp_path / "test.jsonl", posts)
    write_conll(tmp_path / "a" / "test_predictions.conll", posts, [s.tags for s in posts])
    assert main(["compare", str(tmp_path / "a"), "--gold", str(gold)]) == 2
    err = capsys.readouterr().err
    assert f"{gold}: post 'bad' has a 'kind' ('no_image') but no 'target' field" in err


def test_run_names_tell_runs_apart():
    from rgcn.compare import run_names

    assert run_names(["runs/a/text/seed13", "runs/a/rgcn/seed13"]) == ["text/seed13", "rgcn/seed13"]
    assert run_names(["runs/demo_text", "runs/demo_rgcn"]) == ["demo_text", "demo_rgcn"]
    assert run_names(["x/r", "x/r"]) == ["x/r", "x/r"]
