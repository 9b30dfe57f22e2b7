"""The README and docs/ link to files that exist, and to headings their pages have."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.results_page import anchor

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str) -> str:
    """``text`` without its fenced blocks (a code sample's brackets are no links)."""
    out, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            out.append(line)
    return "\n".join(out)


def anchors(page: Path) -> set[str]:
    return {anchor(m.group(1).strip()) for m in re.finditer(r"^#+\s+(.+)$", prose(page.read_text(encoding="utf-8")),
                                                            re.M)}


def broken_links(page: Path) -> list[str]:
    bad = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue                                           # http:, https:, mailto:
        path, _, frag = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            bad.append(f"{target}: no heading #{frag} in {dest.relative_to(ROOT)}")
    return bad


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_link_of_a_page_resolves(page):
    assert not broken_links(page), f"{page.relative_to(ROOT)}: {broken_links(page)}"


def test_a_broken_link_or_anchor_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# A page\n\n## Its part\n\n[ok](#its-part) [ok](b.md#b) [x](c.md) [y](#nope)\n"
                                   "```\n[not a link](z.md)\n```\n[web](https://example.org)\n")
    (tmp_path / "b.md").write_text("# B\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert broken_links(tmp_path / "a.md") == ["c.md: no such file", "#nope: no heading #nope in a.md"]
    finally:
        ROOT = old
