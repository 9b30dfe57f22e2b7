"""benchmarks/crf_decode.py end to end on a small batch."""
import json

from benchmarks.crf_decode import main


def test_crf_decode_writes_its_result(tmp_path):
    out = tmp_path / "crf.json"
    res = main(["--batch", "8", "--words", "6", "--repeats", "2", "--output", str(out)])
    saved = json.loads(out.read_text())
    assert saved["paths_equal"] and saved["batch"] == 8 and saved["batched_viterbi_ms"] > 0
    assert res["speedup"] == saved["speedup"] and "provenance" in saved
