"""benchmarks/explore_speed.py end to end on a few hundred posts (no run): it times every page it
names through the app and writes its result with provenance and a Markdown rendering."""
import json

from benchmarks import explore_speed


def test_a_small_collection_is_timed_and_written(tmp_path):
    out = tmp_path / "explore_speed.json"
    argv = ["--train", "300", "--valid", "30", "--test", "60", "--dim", "32", "--cards", "3", "--repeats", "1",
            "--no-run", "--out", str(out)]
    assert explore_speed.main(argv) == 0
    res = json.loads(out.read_text())
    assert res["provenance"]["command"] == "python benchmarks/explore_speed.py " + " ".join(argv)
    assert res["collection"]["posts"] == 390 and res["card_ms"]["n"] == 2 and res["card_ms"]["with_run"] is False
    assert set(res["triage_s"]) == {"no_neighbours", "low_agreement", "hubs", "duplicates"}
    assert res["memory"]["after_all_pages"]["rss_mb"] > 0 and "counterfactuals_s" not in res
    assert set(res["met"]) == {"card", "triage", "ab"}                  # no run: no counterfactuals
    assert res["ab_s"]["settings"]["b"]["k"] == 10 and res["ab_s"]["ab_cold"] > 0 and res["ab_s"]["pair_cold"] > 0
    md = (tmp_path / "explore_speed.md").read_text()
    assert md.startswith("`python benchmarks/explore_speed.py") and "| card `/post/<id>` (ms) |" in md
