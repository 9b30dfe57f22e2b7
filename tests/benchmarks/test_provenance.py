"""benchmarks/provenance.py: every result file is written whole and says what made it."""
import datetime as dt
import json
import os
import re

import pytest
import torch

from benchmarks import index_knn
from benchmarks.provenance import ROOT, command_line, git_state, write_result

BENCHMARKS = ROOT / "benchmarks"


def test_command_line_is_relative_to_the_root_and_quoted():
    cmd = command_line(BENCHMARKS / "heads.py", ["--seeds", "13", "14", "--set", "rgcn:head.options.relations=[intra]"])
    assert cmd == "python benchmarks/heads.py --seeds 13 14 --set 'rgcn:head.options.relations=[intra]'"


def test_stamp_on_a_tiny_write(tmp_path):
    out = tmp_path / "sub" / "r.json"
    written = write_result(out, {"rows": {"a": 1.5}}, BENCHMARKS / "text_speed.py", ["--head", "rgcn"])
    on_disk = json.loads(out.read_text())
    assert on_disk == written
    assert list(on_disk) == ["provenance", "rows"] and on_disk["rows"] == {"a": 1.5}
    p = on_disk["provenance"]
    assert p["command"] == "python benchmarks/text_speed.py --head rgcn"
    date = dt.datetime.strptime(p["date_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert abs((dt.datetime.now(dt.timezone.utc) - date).total_seconds()) < 120
    m = p["machine"]
    assert m["cpu_count"] == os.cpu_count() and m["torch_threads"] == torch.get_num_threads()
    assert m["cpu_model"] and m["cpus_usable"] >= 1
    assert p["versions"]["torch"].startswith(torch.__version__.split("+")[0])
    assert re.fullmatch(r"\d+\.\d+\.\d+", p["versions"]["python"])
    if p["git"] is not None:                                        # a tarball checkout has no git
        assert re.fullmatch(r"[0-9a-f]{40}", p["git"]["commit"]) and isinstance(p["git"]["dirty"], bool)
    assert os.stat(out).st_mode & 0o777 == 0o644
    assert [f.name for f in out.parent.iterdir()] == ["r.json"]     # no temporary file left


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    out = tmp_path / "r.json"
    write_result(out, {"x": 1}, BENCHMARKS / "index_knn.py", [])
    before = out.read_text()
    with pytest.raises(TypeError):
        write_result(out, {"x": object()}, BENCHMARKS / "index_knn.py", [])
    with pytest.raises(ValueError, match="provenance"):
        write_result(out, {"provenance": "by hand"}, BENCHMARKS / "index_knn.py", [])
    assert out.read_text() == before
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


def test_git_state_outside_a_repository(tmp_path):
    assert git_state(tmp_path) is None


def test_a_benchmark_main_stamps_its_result(tmp_path):
    out = tmp_path / "knn.json"
    argv = ["--sizes", "300", "--no-real", "--sample", "50", "--out", str(out)]
    assert index_knn.main(argv) == 0
    res = json.loads(out.read_text())
    assert res["provenance"]["command"] == "python benchmarks/index_knn.py " + " ".join(argv)
    assert res["provenance"]["machine"]["faiss_threads"] >= 1
    assert {r["n"] for r in res["results"]} == {300}


WRITES_INPUTS = {"error_table.py": "the wrong inputs it runs the commands on, in a temporary folder",
                 "explore_speed.py": "the synthetic collection, its index and a tiny run, in a temporary folder"}
"""Scripts that also write files of their own making (never a result), and what those are."""


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")
                                          if p.name not in ("provenance.py", "index_synthetic.py",
                                                            "serve_process.py", "stats.py",  # helpers, no results
                                                            "results_page.py")))    # pages read from results
def test_every_benchmark_writes_through_write_result(script):
    src = (BENCHMARKS / script).read_text()
    assert "write_result(" in src, f"{script} must write its result with benchmarks.provenance.write_result"
    if script in WRITES_INPUTS:
        assert "tempfile" in src, f"{script} writes {WRITES_INPUTS[script]}"
        return
    for call in ("write_text(", "json.dump("):
        assert call not in src, f"{script} writes a file itself ({call}); use write_result"


def test_a_rendering_names_its_result_s_command(tmp_path):
    from benchmarks.provenance import write_rendering, write_result

    result = write_result(tmp_path / "r.json", {"x": 1}, BENCHMARKS / "heads.py", ["--seeds", "13"])
    write_rendering(tmp_path / "r.md", result, "`python benchmarks/heads.py --seeds 13`\n\n| a |\n")
    assert (tmp_path / "r.md").read_text().startswith("`python benchmarks/heads.py --seeds 13`")
    with pytest.raises(ValueError, match="must name its command"):
        write_rendering(tmp_path / "s.md", result, "| a |\n")
    assert not (tmp_path / "s.md").exists()
