"""benchmarks/visual_text_misses.py: each miss put down to its cause, by hand."""
from benchmarks.visual_text_misses import classify, read_conll, sign_template, spans, type_on_other_name

POST = {"tokens": ["Jimmy", "Fallon", "met", "Mossvel", "today"], "tags": ["B-PER", "I-PER", "O", "B-PER", "O"],
        "target": [[3, 4]], "sign": "VOTE / MOSSVEL FOR MAYOR"}
RIGHT = ["B-PER", "I-PER", "O", "B-PER", "O"]
WRONG_TYPE = ["B-PER", "I-PER", "O", "B-ORG", "O"]


def test_each_cause():
    ctx = "chair. VOTE / MOSSVEL FOR MAYOR".split()
    assert classify(POST, RIGHT, "VOTE / MOSSVEL FOR MAYOR", ctx) is None
    assert classify(POST, WRONG_TYPE, "VOTE / MOSSVELFORMAYOR", ctx) == "ocr_miss"      # glued: no word
    assert classify(POST, WRONG_TYPE, "VOTE / MOSSVEL FOR MAYOR", ["chair."]) == "context_cut"
    assert classify(POST, WRONG_TYPE, "VOTE / MOSSVEL FOR MAYOR", ctx) == "wrong_type_sign_read"
    assert classify(POST, WRONG_TYPE, "VOTE / MOSSVEL FOR MAY0R", ctx) == "wrong_type_sign_misread"
    assert classify(POST, ["B-PER", "I-PER", "O", "O", "O"], "VOTE / MOSSVEL FOR MAYOR", ctx) == "wrong_span"
    assert classify(POST, ["B-PER", "I-PER", "O", "B-PER", "I-PER"], "MOSSVEL", ctx) == "wrong_span"


def test_type_on_another_name_and_spans():
    assert type_on_other_name(POST, ["O", "O", "O", "O", "B-PER"])                # "today" took PER
    assert not type_on_other_name(POST, ["B-PER", "I-PER", "O", "B-ORG", "O"])    # Fallon is PER in gold
    assert not type_on_other_name(POST, RIGHT)
    assert spans(["I-LOC", "I-LOC", "B-PER"]) == {(0, 2): "LOC", (2, 3): "PER"}


def test_read_conll(tmp_path):
    f = tmp_path / "p.conll"
    f.write_text("IMGID:a\nZelby\tB-ORG\tB-PER\nInc\tO\tO\n\nIMGID:b\nhi\tO\tO\n\n")
    assert read_conll(f) == {"a": [("Zelby", "B-ORG", "B-PER"), ("Inc", "O", "O")], "b": [("hi", "O", "O")]}


def test_a_folder_without_runs_is_a_user_error(tmp_path, capsys):
    from benchmarks.visual_text_misses import main

    assert main(["--runs", str(tmp_path), "--index", str(tmp_path), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --runs") and "test_predictions.conll" in err


def test_a_name_ending_a_context_part_is_still_a_word():
    ctx = "VOTE / MOSSVEL. espresso, cup".split()          # the OCR part, then the tags
    assert classify(POST, WRONG_TYPE, "VOTE / MOSSVEL", ctx) == "wrong_type_sign_misread"


def test_a_sign_template_names_the_cue_with_the_name_as_x():
    assert sign_template(POST) == "VOTE / X FOR MAYOR"
    two = {"tokens": ["Zelby", "Zelby", "rocks"], "target": [[0, 2]], "sign": "ZELBY ZELBY / BANK"}
    assert sign_template(two) == "X / BANK"
