"""Write the results pages from the result files: docs/results.md and the README's table.

Every figure on ``docs/results.md`` is read from a file of ``benchmarks/results/`` (written
whole by its benchmark, :mod:`benchmarks.provenance`), beside the command that produced it
and the machine, date and commit that file records; nothing is copied by hand. The README's
short "results at a glance" table, between the lines ``<!-- results:start -->`` and
``<!-- results:end -->``, comes from the same files. Files of a kind this script knows get
their headline figures; any other file is listed with its top-level figures, so a new
result never breaks the page. The output depends on the files alone (sorted, no clock).

    python benchmarks/results_page.py            # write docs/results.md and the README's table
    python benchmarks/results_page.py --check    # exit 1 when a committed page differs
"""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from data.errors import ArgumentParser, UserError, command, exit_status  # noqa: E402
from benchmarks.provenance import RESULTS, ROOT  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"
Table = tuple[list[str], list[list[str]]]


# ---- numbers -----------------------------------------------------------------------------------------
def num(x, digits: int = 2) -> str:
    """A figure as text: ints as they are, floats to ``digits`` places, ``-`` when missing."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def spread(s, scale: float = 1.0) -> str:
    """``mean ± sd`` of a summary ``{"mean", "sd", ...}`` (just the mean for one seed)."""
    if not isinstance(s, dict) or s.get("mean") is None:
        return num(s * scale if isinstance(s, (int, float)) and not isinstance(s, bool) else s)
    text = f"{s['mean'] * scale:.1f}"
    return text if not s.get("sd") else f"{text} ± {s['sd'] * scale:.1f}"


def minutes(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s"


# ---- what a file records about how it was made ---------------------------------------------------------
def machine_text(prov: dict) -> str:
    """``AMD EPYC, 2 cores, 2 torch threads, load 1.9`` from a provenance block."""
    m = prov.get("machine") or {}
    parts = [m.get("gpu") or m.get("cpu_model") or "machine not recorded"]
    if m.get("cpus_usable") or m.get("cpu_count"):
        parts.append(f"{m.get('cpus_usable') or m.get('cpu_count')} cores")
    if m.get("torch_threads"):
        parts.append(f"{m['torch_threads']} torch threads")
    if m.get("load_avg_at_write"):
        parts.append(f"load {m['load_avg_at_write'][0]:.1f} at the end")
    return ", ".join(parts)


def made_by(prov: dict) -> list[str]:
    """The lines that say what made a result: command, date and commit, machine."""
    if not prov:
        return ["no provenance recorded (written before result files recorded their command)"]
    git = prov.get("git") or {}
    commit = git.get("commit", "")[:7] or "no git"
    if git.get("dirty"):
        commit += " with uncommitted changes to " + ", ".join(git.get("dirty_files") or [])
    return [f"command: `{prov.get('command', '?')}`",
            f"recorded: {prov.get('date_utc', '?')} at {commit}; {machine_text(prov)}"]


# ---- headline figures of the kinds of result this script knows -------------------------------------------
def doc_commands_table(d: dict) -> Table:
    """The documentation's commands as run: how many ended how, and each one that failed."""
    rows = [["exited 0", num(d.get("ok"))], [f"still running at the {d.get('timeout')} s limit, stopped",
                                                num(d.get("stopped"))], ["failed", num(d.get("failed"))]]
    rows += [[f"{c['page']}:{c['line']} `{c['text'].splitlines()[0]}`", f"exit {c['status']}"]
             for c in d.get("commands", []) if c.get("status") not in (0, "still running at the limit, stopped")]
    return ["commands", "count or status"], rows


def heads_table(d: dict) -> Table:
    """The demo's heads: test F1 overall and on each kind's target names, mean ± sd over seeds."""
    summary = d.get("summary") or {}
    kinds = sorted({k for row in summary.values() for k in (row.get("kinds") or {})})
    rows = [[name, spread(row.get("f1"), 100)] + [spread((row.get("kinds") or {}).get(k), 100) for k in kinds]
            for name, row in summary.items()]
    return ["row", "test F1"] + kinds, rows


def accuracy_table_table(d: dict) -> Table:
    rows = [[r["sweep"], str(len(r.get("seeds") or [])), spread(r.get("dev_f1")), spread(r.get("test_f1")),
             spread((r.get("ensemble") or {}).get("test"))] for r in d.get("rows", [])]
    return ["sweep", "seeds", "dev F1", "test F1", "ensemble test F1"], rows


def accuracy_sweep_table(d: dict) -> Table:
    s = d.get("summary") or {}
    row = [", ".join(map(str, d.get("seeds") or [])), spread((s.get("dev") or {}).get("f1")),
           spread((s.get("test") or {}).get("f1")), spread((d.get("ensemble") or {}).get("test", {}).get("f1")
                                                           if isinstance(d.get("ensemble"), dict) else None)]
    return ["seeds", "dev F1", "test F1", "ensemble test F1"], [row]


def text_baseline_table(d: dict) -> Table:
    return (["encoder", "head", "seed", "epochs", "dev F1", "test F1", "min/epoch"],
            [[str(d.get("encoder")), str(d.get("head")), num(d.get("seed")), num(d.get("epochs")),
              num((d.get("valid") or {}).get("f1")), num((d.get("test") or {}).get("f1")),
              num(d.get("minutes_per_epoch_train"))]])


def seeds_table(d: dict) -> Table:
    return (["group", "setting", "dev F1", "test F1"],
            [[name, str(g.get("setting", "")), spread(g.get("valid_f1")), spread(g.get("test_f1"))]
             for name, g in (d.get("groups") or {}).items()])


def make_demo_table(d: dict) -> Table:
    return (["exit status", "wall", "CPU seconds"],
            [[num(d.get("returncode")), minutes(d.get("seconds") or 0), num(d.get("cpu_seconds"), 0)]])


def targets_table(d: dict) -> Table:
    """Targets as ``scale.py`` writes them (a list) or ``serve_load.py`` (name -> met)."""
    t = d.get("targets") or []
    if isinstance(t, dict):
        return ["target", "met"], [[k, num(v)] for k, v in t.items()]
    return (["target", "measured", "limit", "status"],
            [[r.get("target", ""), f"{num(r.get('measured'))} {r.get('unit', '')}".strip(),
              f"{num(r.get('limit'))} {r.get('unit', '')}".strip(), str(r.get("status"))] for r in t])


def ocr_table(d: dict) -> Table:
    o = d.get("ocr") or {}
    read = o.get("as_read") or {}
    return (["images", "characters as read", "signs exact", "names as a word", "s/image"],
            [[num(o.get("images")), num(read.get("char_accuracy_micro"), 4), num(read.get("exact_text_rate"), 3),
              num(read.get("name_as_word_rate"), 3), num(o.get("seconds_per_image"), 3)]])


def runs_table(d: dict) -> Table:
    """A list of ``runs`` with scalar figures (calibration): one line each, the first columns."""
    runs = [r for r in d.get("runs") or [] if isinstance(r, dict)]
    keys = [k for k in (runs[0] if runs else {}) if not isinstance(runs[0][k], (dict, list))][:8]
    return keys, [[num(r.get(k), 3) for k in keys] for r in runs]


def results_list_table(d: dict) -> Table:
    """A list of ``results`` with scalar figures (index benchmarks): one line each."""
    res = [r for r in d.get("results") or [] if isinstance(r, dict)]
    keys = [k for k in (res[0] if res else {}) if not isinstance(res[0][k], (dict, list))][:8]
    return keys, [[num(r.get(k), 3) for k in keys] for r in res]


def generic_table(d, limit: int = 14) -> Table:
    """Any result: its scalar figures to a depth of three keys, the first ``limit`` of them."""
    rows: list[list[str]] = []

    def walk(prefix: str, v, depth: int) -> None:
        if isinstance(v, dict) and depth < 3:
            for k, x in v.items():
                if k != "provenance":
                    walk(f"{prefix}.{k}" if prefix else str(k), x, depth + 1)
        elif isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 80):
            rows.append([prefix or "value", num(v, 4)])

    walk("", d, 0)
    more = len(rows) - limit
    return ["field", "value"], rows[:limit] + ([[f"... {more} more fields", ""]] if more > 0 else [])


@dataclass(frozen=True)
class Kind:
    """A kind of result file: which files (a regular expression on the file's stem), the
    section it is listed in, and the table of its headline figures."""

    pattern: str
    section: str
    table: Callable[[dict], Table]


SECTIONS = ("The demo: fusion heads", "The text tagger on Twitter-2015 and Twitter-2017", "Index, retrieval and scale",
            "Tagging, serving and the demo command", "Speed", "The documentation's commands", "Other results")
KINDS = (
    Kind(r"heads_.*", SECTIONS[0], heads_table),
    Kind(r"visual_text_misses.*|maf_matching.*|head_params", SECTIONS[0], generic_table),
    Kind(r"accuracy_table", SECTIONS[1], accuracy_table_table),
    Kind(r"accuracy_.*", SECTIONS[1], accuracy_sweep_table),
    Kind(r".*_seeds", SECTIONS[1], seeds_table),
    Kind(r"twitter20\d\d_.*", SECTIONS[1], text_baseline_table),
    Kind(r"levers_.*|tokenizer_roundtrip", SECTIONS[1], generic_table),
    Kind(r"scale", SECTIONS[2], targets_table),
    Kind(r"ocr_accuracy.*", SECTIONS[2], ocr_table),
    Kind(r"index_.*", SECTIONS[2], results_list_table),
    Kind(r"retrieval_graphs|shard_demo", SECTIONS[2], generic_table),
    Kind(r"make_demo", SECTIONS[3], make_demo_table),
    Kind(r"serve_load", SECTIONS[3], targets_table),
    Kind(r"calibration.*", SECTIONS[3], runs_table),
    Kind(r"serve_bad_inputs|new_posts.*|error_table", SECTIONS[3], generic_table),
    Kind(r"text_speed.*|bga_head_speed|crf_decode", SECTIONS[4], generic_table),
    Kind(r"doc_commands", SECTIONS[5], doc_commands_table),
)


def kind_of(stem: str) -> Kind:
    return next((k for k in KINDS if re.fullmatch(k.pattern, stem)), Kind(".*", SECTIONS[-1], generic_table))


# ---- reading the files -----------------------------------------------------------------------------------------
@dataclass
class Result:
    path: Path
    data: dict | None          # None when the file cannot be read as a JSON object
    problem: str = ""

    @property
    def prov(self) -> dict:
        return (self.data or {}).get("provenance") or {}


def read_results(folder: Path) -> list[Result]:
    """Every ``*.json`` of ``folder``, sorted by name; one that is not a JSON object is kept
    with the reason, to be listed as such."""
    out = []
    for f in sorted(folder.glob("*.json")):
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            out.append(Result(f, None, f"cannot be read: {type(e).__name__}"))
            continue
        out.append(Result(f, d, "") if isinstance(d, dict) else Result(f, {"value": d}, ""))
    return out


def table_of(r: Result) -> Table:
    """The headline table of ``r``; a file its kind's table cannot read falls back to the generic one."""
    try:
        return kind_of(r.path.stem).table(r.data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return generic_table(r.data)


# ---- rendering -----------------------------------------------------------------------------------------------------
def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return (["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def results_page(results: list[Result], rel: str = "../benchmarks/results") -> str:
    """The whole of ``docs/results.md``."""
    lines = ["# Results", "",
             "Every figure below is read from a file of `benchmarks/results/`, which its benchmark wrote whole with "
             "the command, commit and machine that made it. This page is written by "
             "`python benchmarks/results_page.py` (a test fails when it differs from what the script writes); "
             "do not edit it by hand. Entity-level micro-F1 over the whole split, in percent; mean ± sample sd "
             "over seeds where there are several. The CPU figures were measured on shared machines: the load "
             "each file records says how busy.", ""]
    for section in SECTIONS:
        members = [r for r in results if kind_of(r.path.stem).section == section]
        if members:
            lines.append(f"- [{section}](#{anchor(section)}): " + ", ".join(r.path.name for r in members))
    for section in SECTIONS:
        members = [r for r in results if kind_of(r.path.stem).section == section]
        if not members:
            continue
        lines += ["", f"## {section}"]
        for r in members:
            lines += ["", f"### {r.path.name}", ""]
            if r.data is None:
                lines.append(f"[`{r.path.name}`]({rel}/{r.path.name}) {r.problem}.")
                continue
            beside = [p for p in (r.path.with_suffix(".md"), r.path.with_suffix(".png")) if p.is_file()]
            links = [f"[`{r.path.name}`]({rel}/{r.path.name})"] + [f"[{p.suffix[1:]}]({rel}/{p.name})" for p in beside]
            lines.append(" · ".join(links) + "  ")
            lines += [line + "  " for line in made_by(r.prov)]
            header, rows = table_of(r)
            if rows:
                lines += [""] + markdown_table(header, rows)
    return "\n".join(lines) + "\n"


def glance_rows(results: list[Result], page: str = "docs/results.md") -> list[list[str]]:
    """The README's table: the headline figures of the files that have one."""
    by = {r.path.stem: r for r in results if r.data is not None}
    rows = []

    def source(stem: str) -> str:
        r = by[stem]
        return f"[{r.path.name}]({page}#{anchor(r.path.name)}), {machine_text(r.prov).split(',')[0]}"

    for stem in sorted(s for s in by if re.fullmatch(r"heads_.*", s)):
        summary = by[stem].data.get("summary") or {}
        heads = [h for h in by[stem].data.get("heads") or [] if h in summary]
        if heads:
            seeds = len(by[stem].data.get("seeds") or [])
            rows.append([f"demo test F1 by head, {seeds} seed(s) (`{stem}`)",
                         " · ".join(f"{h} {spread(summary[h].get('f1'), 100)}" for h in heads), source(stem)])
    if "accuracy_table" in by:
        for r in by["accuracy_table"].data.get("rows", []):
            split = "test" if r.get("test_f1") else "dev"
            ens = (r.get("ensemble") or {}).get(split)
            rows.append([f"text tagger, {split} F1 (`{r['sweep']}`, {len(r.get('seeds') or [])} seeds)",
                         spread(r.get(f"{split}_f1")) + (f"; ensemble {spread(ens)}" if ens else ""),
                         source("accuracy_table")])
    if "make_demo" in by:
        d = by["make_demo"].data
        rows.append(["`make demo` on a fresh clone", f"exit {d.get('returncode')}, {minutes(d.get('seconds') or 0)}",
                     source("make_demo")])
    if "ocr_accuracy_demo" in by:
        read = ((by["ocr_accuracy_demo"].data.get("ocr") or {}).get("as_read") or {})
        rows.append(["OCR of the demo's signs: characters, signs exact",
                     f"{num(100 * read.get('char_accuracy_micro', 0))}%, {num(100 * read.get('exact_text_rate', 0), 1)}%",
                     source("ocr_accuracy_demo")])
    if "doc_commands" in by:
        d = by["doc_commands"].data
        rows.append(["the README's and docs' commands, run as written",
                     f"{d.get('ok')} exit 0, {d.get('stopped')} stopped at the limit, {d.get('failed')} failed",
                     source("doc_commands")])
    for stem in ("scale", "serve_load"):
        if stem in by:
            header, t = targets_table(by[stem].data)
            met = sum(1 for row in t if row[-1] in ("met", "yes"))
            rows.append([f"{'scale' if stem == 'scale' else 'serving'} targets met", f"{met} of {len(t)}",
                         source(stem)])
    return rows


def glance_block(results: list[Result]) -> str:
    """The README's table with its two marker lines."""
    body = markdown_table(["result", "figure", "from"], glance_rows(results))
    return "\n".join([START, "<!-- written by python benchmarks/results_page.py: do not edit by hand -->", *body, END])


def with_glance(readme: str, block: str, where: str = "README.md") -> str:
    """``readme`` with the text between its markers replaced by ``block``."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise UserError(where, f"needs one line {START} and, after it, one line {END}",
                        "put the two marker lines where the results table goes")
    a, b = readme.index(START), readme.index(END) + len(END)
    return readme[:a] + block + readme[b:]


def pages(results_dir: Path, page: Path, readme: Path) -> dict[Path, str]:
    """What the two pages should hold: ``{path: text}``."""
    results = read_results(results_dir)
    rel_results = Path(os.path.relpath(results_dir.resolve(), page.parent.resolve()))
    out = {page: results_page(results, rel_results.as_posix())}
    if readme.is_file():
        out[readme] = with_glance(readme.read_text(encoding="utf-8"), glance_block(results), str(readme))
    return out


@command
def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="python benchmarks/results_page.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", default=str(RESULTS), help="the result files' folder (default benchmarks/results)")
    p.add_argument("--page", default=str(ROOT / "docs" / "results.md"), help="the page to write (docs/results.md)")
    p.add_argument("--readme", default=str(ROOT / "README.md"),
                   help="the README whose table between the marker lines is rewritten")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 naming each page that differs")
    a = p.parse_args(argv)
    results_dir = Path(a.results)
    if not results_dir.is_dir():
        raise UserError(f"--results {a.results}", "no such folder", "give the folder of the result JSON files")
    want = pages(results_dir, Path(a.page), Path(a.readme))
    differ = [path for path, text in want.items()
              if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if a.check:
        for path in differ:
            print(f"{path} differs from what python benchmarks/results_page.py writes: run it", file=sys.stderr)
        return 1 if differ else 0
    for path in differ:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(want[path], encoding="utf-8")
    print(f"{len(read_results(results_dir))} result files; "
          + ("written: " + ", ".join(map(str, differ)) if differ else "the pages were up to date"))
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(main()))
