"""benchmarks/serve_load.py and benchmarks/serve_bad_inputs.py end to end on the tiny rgcn run
(real servers, few posts), and the load benchmark's arithmetic by hand."""
import json

import pytest

from benchmarks import serve_bad_inputs, serve_load


def test_percentile_by_hand():
    from benchmarks.stats import percentile

    assert percentile([10, 20, 30, 40, 50], 50) == 30
    assert percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48)
    assert percentile([7], 99) == 7
    assert percentile([1, 2, 3], 90) == pytest.approx(2.8)             # not the median of three


def test_targets():
    r = {"text": {"head": "text", "levels": [{"clients": 1, "p95_ms": 90, "vs_tag_many": 0.5},
                                             {"clients": 32, "p95_ms": 900, "vs_tag_many": 0.79}]}}
    assert serve_load.targets(r) == {"text: 32 clients >= 80% of tag_many": False, "text: 1 client p95 < 100 ms": True}


def test_the_table_says_when_other_work_loaded_the_cores():
    r = {"provenance": {"machine": {"cpu_count": 2, "load_avg_at_write": [1.5, 1.0, 1.0]}}, "load_avg_before": [5.0, 4.0, 3.0]}
    assert serve_load.contended(r).startswith(": contended")
    r["load_avg_before"] = [0.5, 1.0, 1.0]
    assert serve_load.contended(r) == ""
    del r["load_avg_before"]
    r["provenance"]["machine"]["load_avg_at_write"] = [2.5, 1.0, 1.0]
    assert serve_load.contended(r).startswith(": contended")


def test_both_scripts_on_a_tiny_run(tiny_rgcn, tmp_path):
    run = str(tiny_rgcn / "runs" / "rgcn")
    out = tmp_path / "load.json"
    res = serve_load.main(["--run", f"rgcn={run}", "--posts-file", str(tiny_rgcn / "data" / "test.jsonl"),
                           "--images", str(tiny_rgcn / "data" / "images"), "--posts", "16", "--clients", "1", "8",
                           "--batch-wait-ms", "20", "--warmup", "2", "--import", "tests.colour", "--output", str(out)])
    levels = res["runs"]["rgcn"]["levels"]
    assert [lv["clients"] for lv in levels] == [1, 8] and all(lv["errors"] == 0 for lv in levels)
    assert all(lv["requests"] == 16 for lv in levels)
    assert levels[0]["mean_model_batch"] == 1 and levels[1]["mean_model_batch"] > 1     # batched under load
    assert all(len(lv["tag_many_around"]) == 2 for lv in levels)
    assert res["runs"]["rgcn"]["batcher_without_http"]["posts"] == 16
    assert json.loads(out.read_text())["provenance"]["command"].startswith("python benchmarks/serve_load.py")
    assert out.with_suffix(".md").read_text().startswith("`python benchmarks/serve_load.py")
    bad = serve_bad_inputs.main(["--run", run, "--max-upload-mb", "1", "--import", "tests.colour",
                                 "--output", str(tmp_path / "bad.json")])
    assert bad["all_as_expected"] and bad["server_alive_after_all"], bad["cases"]
    assert len(bad["cases"]) == len(serve_bad_inputs.CASES)


def test_the_allocator_benchmark_times_both_settings_each_in_its_process(tiny_rgcn, tmp_path):
    from benchmarks import allocator

    out = tmp_path / "allocator.json"
    post = json.loads((tiny_rgcn / "post.json").read_text())
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"text": post["text"], "image": post["image"]}) + "\n")
    argv = ["--run", str(tiny_rgcn / "runs" / "rgcn"), "--posts-file", str(posts), "--images",
            str(tiny_rgcn / "data" / "images"), "--posts", "8", "--batch-size", "4", "--rounds", "1",
            "--output", str(out)]
    assert allocator.main(argv) == 0
    res = json.loads(out.read_text())
    assert [(t["setting"], t["posts"]) for t in res["timings"]] == [("default", 8), ("keep_freed_memory", 8)]
    assert [t["allocator_set"] for t in res["timings"]] == [False, True]      # set in its own process only
    assert set(res["summary"]) == {"default", "keep_freed_memory", "faster_pct"}
    assert (tmp_path / "allocator.md").read_text().startswith("`python benchmarks/allocator.py")
