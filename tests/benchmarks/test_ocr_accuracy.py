"""benchmarks/ocr_accuracy.py: the normalisation and the figures, by hand and end to end."""
import json

import pytest

from benchmarks.ocr_accuracy import character_accuracy, engine_settings, main, normalise, score_reads
from data.errors import UserError


def test_normalise_and_character_accuracy():
    assert normalise("Zelby Zelby /  bank\n") == "ZELBY ZELBY BANK"
    assert normalise("WELCOME / TO / ZELBY") == normalise("welcome to / zelby") == "WELCOME TO ZELBY"
    assert character_accuracy("DR. MAROVAN", "DR.MAROVAN") == pytest.approx(1 - 1 / 11)     # one space lost
    assert character_accuracy("ZELBY", "ZELBY") == 1.0
    assert character_accuracy("AB", "XYZW") == pytest.approx(1 - 4 / 2)                       # may go below 0
    with pytest.raises(ValueError):
        character_accuracy("", "x")


def test_score_reads_by_hand():
    rows = [{"reference": "DR. MAROVAN", "read": "DR.MAROVAN", "name": "Marovan"},
            {"reference": "ZELBY ZELBY / BANK", "read": "ZELBYZELBY / BANK", "name": "Zelby Zelby"},
            {"reference": "VOTE / KIRO FOR MAYOR", "read": "VOTE / KIRO FOR MAYOR", "name": "Kiro"}]
    s = score_reads(rows)
    assert s["images"] == 3
    a, b = s["as_read"], s["spaces_ignored"]
    assert a["char_accuracy_micro"] == pytest.approx(1 - 2 / (11 + 16 + 19))
    assert a["char_accuracy_mean"] == pytest.approx((10 / 11 + 15 / 16 + 1) / 3)
    assert a["exact_text_rate"] == pytest.approx(1 / 3) and a["name_read_rate"] == pytest.approx(2 / 3)
    assert a["name_as_word_rate"] == pytest.approx(1 / 3)          # "MAROVAN" inside "DR.MAROVAN" is no word
    assert b["char_accuracy_micro"] == 1.0 and b["exact_text_rate"] == 1.0 and b["name_read_rate"] == 1.0


def test_main_on_a_fresh_tiny_demo(tmp_path, capsys):
    out = tmp_path / "ocr.json"
    assert main(["--n", "2", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["provenance"]["command"].startswith("python benchmarks/ocr_accuracy.py --n 2")
    assert r["ocr"]["images"] == 2 and r["ocr"]["engine"]["engine"] == "rapidocr"
    assert 0.5 < r["ocr"]["spaces_ignored"]["char_accuracy_micro"] <= 1.0 and r["ocr"]["seconds_per_image"] > 0
    assert len(r["tags"]["top_tags"]) == 16 and r["tags"]["top_tags"]["camera"][0]["label"] == "tripod"
    assert [p["reference"] for p in r["per_image"]] and "char acc" in capsys.readouterr().out
    o = r["ocr"]
    assert o["engine"]["reader"] == 2 and o["images_per_second"] > 0 and o["cpu_seconds_per_image"] > 0
    assert o["detect_seconds_per_image"] > 0 and o["recognise_seconds_per_image"] > 0
    assert o["photos_without_text"]["images"] == 16 and len(o["load_average_1min"]) == 2


def test_engine_settings():
    assert engine_settings(["det_side=736", "space_gap=0", "threads=0"]) == {"det_side": 736, "space_gap": 0.0,
                                                                             "threads": None}
    assert engine_settings([]) == {}
    with pytest.raises(UserError, match="KEY=VALUE"):
        engine_settings(["det_side"])
