"""benchmarks/results_page.py: the committed results pages are the script's, every figure read
from a result file, an unknown or broken file listed instead of breaking the page."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import results_page as rp

ROOT = Path(__file__).resolve().parents[1]

PROV = {"command": "python benchmarks/heads.py --seeds 13 14", "date_utc": "2026-01-02T03:04:05Z",
        "git": {"commit": "0123456789abcdef", "dirty": False, "dirty_files": []},
        "machine": {"cpu_model": "Test CPU", "cpu_count": 4, "cpus_usable": 2, "torch_threads": 2,
                    "load_avg_at_write": [1.25, 1.0, 1.0]}}
HEADS = {"provenance": PROV, "heads": ["text", "rgcn"], "seeds": [13, 14], "summary": {
    "text": {"f1": {"mean": 0.8, "sd": 0.01}, "kinds": {"image_decided": {"mean": 0.25, "sd": 0.02}}},
    "rgcn": {"f1": {"mean": 0.875, "sd": None}, "kinds": {"image_decided": {"mean": 0.75, "sd": 0.05}}}}}


def test_the_committed_pages_are_what_the_script_writes():
    """docs/results.md and the README's table between its markers, as the script writes them
    from benchmarks/results/ now (run `python benchmarks/results_page.py` after a result changes)."""
    want = rp.pages(rp.RESULTS, ROOT / "docs" / "results.md", ROOT / "README.md")
    for path, text in want.items():
        assert path.read_text(encoding="utf-8") == text, \
            f"{path.relative_to(ROOT)} differs from what `python benchmarks/results_page.py` writes: run it"


@pytest.fixture
def results(tmp_path) -> Path:
    d = tmp_path / "results"
    d.mkdir()
    (d / "heads_demo_x.json").write_text(json.dumps(HEADS))
    (d / "zz_new_benchmark.json").write_text(json.dumps({"provenance": PROV, "speedup": 2.5,
                                                         "runs": {"a": {"seconds": 3}}, "note": "x" * 200}))
    (d / "broken.json").write_text("{not json")
    (d / "a_list.json").write_text("[1, 2]")
    return d


def test_a_known_kind_gets_its_headline_figures_with_command_and_machine(results, tmp_path):
    page = rp.results_page(rp.read_results(results))
    assert "command: `python benchmarks/heads.py --seeds 13 14`" in page
    assert "recorded: 2026-01-02T03:04:05Z at 0123456; Test CPU, 2 cores, 2 torch threads, load 1.2 at the end" in page
    assert "| row | test F1 | image_decided |" in page
    assert "| text | 80.0 ± 1.0 | 25.0 ± 2.0 |" in page and "| rgcn | 87.5 | 75.0 ± 5.0 |" in page
    glance = rp.glance_block(rp.read_results(results))
    assert glance.startswith(rp.START) and glance.endswith(rp.END)
    assert "| demo test F1 by head, 2 seed(s) (`heads_demo_x`) | text 80.0 ± 1.0 · rgcn 87.5 |" in glance


def test_unknown_and_broken_files_are_listed_not_fatal(results):
    page = rp.results_page(rp.read_results(results))
    assert "## Other results" in page
    new = page[page.index("### zz_new_benchmark.json"):]
    assert "| speedup | 2.5000 |" in new and "| runs.a.seconds | 3 |" in new and "x" * 100 not in new
    assert "### broken.json" in page and "cannot be read: JSONDecodeError" in page
    assert "| value[0] |" not in page and "### a_list.json" in page
    assert page.index("### a_list.json") < page.index("### broken.json")          # sorted by name


def test_a_kind_table_that_cannot_read_its_file_falls_back_to_the_generic_one(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "heads_odd.json").write_text(json.dumps({"summary": {"text": {"f1": "n/a", "kinds": 3}}}))
    page = rp.results_page(rp.read_results(d))
    assert "### heads_odd.json" in page and "| summary.text.f1 | n/a |" in page


def test_the_output_depends_on_the_files_alone(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{rp.START}\nold\n{rp.END}\n\nrest\n")
    first = rp.pages(results, tmp_path / "docs" / "results.md", readme)
    second = rp.pages(results, tmp_path / "docs" / "results.md", readme)
    assert first == second
    assert first[readme].endswith("\n\nrest\n") and "old" not in first[readme]
    assert "](../results/heads_demo_x.json)" in first[tmp_path / "docs" / "results.md"]


def test_check_fails_after_a_hand_edit_and_passes_once_written(results, tmp_path, capsys):
    page, readme = tmp_path / "docs" / "results.md", tmp_path / "README.md"
    readme.write_text(f"# x\n{rp.START}\n{rp.END}\n")
    args = ["--results", str(results), "--page", str(page), "--readme", str(readme)]
    assert rp.main(args + ["--check"]) == 1
    assert rp.main(args) == 0 and rp.main(args + ["--check"]) == 0
    page.write_text(page.read_text().replace("87.5", "88.5"))                  # a figure edited by hand
    assert rp.main(args + ["--check"]) == 1
    assert f"{page} differs" in capsys.readouterr().err
    rp.main(args)
    readme.write_text(readme.read_text().replace("80.0 ± 1.0", "81.0 ± 1.0"))
    assert rp.main(args + ["--check"]) == 1


def test_a_readme_without_its_markers_is_a_user_error(results, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert rp.main(["--results", str(results), "--page", str(tmp_path / "r.md"), "--readme", str(readme)]) == 2
    assert "results:start" in capsys.readouterr().err


def test_the_real_results_render_without_falling_back():
    """Every known kind's table reads today's files (a fallback would hide a renamed field)."""
    for r in rp.read_results(rp.RESULTS):
        kind = rp.kind_of(r.path.stem)
        assert r.data is not None, r.path
        kind.table(r.data)                                                    # raises on a field it lacks


def test_the_documentation_commands_result_lists_each_failure(tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "doc_commands.json").write_text(json.dumps({
        "provenance": PROV, "timeout": 60, "ok": 1, "stopped": 1, "failed": 1, "commands": [
            {"page": "README.md", "line": 3, "text": "make test", "status": 0},
            {"page": "docs/a.md", "line": 9, "text": "make demo", "status": "still running at the limit, stopped"},
            {"page": "docs/b.md", "line": 4, "text": "python -m x \\\n--y", "status": 2}]}))
    results = rp.read_results(d)
    page = rp.results_page(results)
    assert "| still running at the 60 s limit, stopped | 1 |" in page
    assert "| docs/b.md:4 `python -m x \\` | exit 2 |" in page and "docs/a.md:9" not in page
    assert "| the README's and docs' commands, run as written | 1 exit 0, 1 stopped at the limit, 1 failed |" \
        in rp.glance_block(results)
