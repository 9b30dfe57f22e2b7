"""benchmarks/explore_counterfactuals.py end to end on the tiny image-decided set and its run."""
import json

import pytest

from tests.retrieval.explore.conftest import rows_of


def test_the_benchmark_counts_flips_and_scores_built_and_oracle_graphs(decided, retagger, tmp_path):
    from benchmarks.explore_counterfactuals import main
    from data.corpus import read_corpus
    from rgcn.compare import score_with_subset

    files = {}
    for name, f in decided["files"].items():             # every post is image-decided: say so
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({**r, "kind": "image_decided"}) + "\n" for r in rows_of(f)))
    test = files["test"]
    out = tmp_path / "cf.json"
    assert main(["--run", str(decided["run"]), "--index", str(decided["index"]), "--images", str(decided["images"]),
                 "--data", *(f"{n}={p}" for n, p in files.items()), "--cache", str(tmp_path / "graphs"),
                 "--batch", "5", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["provenance"]["command"].startswith("python benchmarks/explore_counterfactuals.py --run")
    assert r["posts"] == 16 and r["relations"] == ["inter", "intra"]
    f = r["intra_left_out"]
    assert 0 <= f["type_flipped"] <= f["typed_as_built"] <= 16 and f["type_flipped"] <= f["name_tags_changed"]
    # as built, the benchmark's tags are the tagging API's: the same F1 by the project's scorer
    posts = list(read_corpus(test, decided["images"]))
    api, _, _ = retagger.tagger.tag_samples(posts)
    assert r["f1"]["built"]["f1"] == pytest.approx(score_with_subset(posts, [a.tags for a in api], "image_decided")["f1"])
    assert r["oracle_gain"]["f1"] == pytest.approx(r["f1"]["oracle"]["f1"] - r["f1"]["built"]["f1"])
    # here both oracles' neighbours are photos of the name's own colour: they do no worse
    assert r["f1"]["oracle"]["image_decided_f1"] >= r["f1"]["built"]["image_decided_f1"]
    assert r["f1"]["oracle_by_name"]["image_decided_f1"] >= r["f1"]["built"]["image_decided_f1"]
    assert set(r["f1"]) == {"built", "intra_left_out", "oracle", "oracle_by_name", "random"}
    md = out.with_suffix(".md").read_text()
    assert md.startswith("`python benchmarks/explore_counterfactuals.py") and "its type flipped" in md


def test_a_folder_that_is_no_run_is_refused_by_the_error_contract(decided, tmp_path, capsys):
    from benchmarks.explore_counterfactuals import main

    assert main(["--run", str(decided["root"]), "--index", str(decided["index"]),
                 "--data", f"test={decided['files']['test']}", "--out", str(tmp_path / "x.json")]) == 2
    assert "error:" in capsys.readouterr().err
