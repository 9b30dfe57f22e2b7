"""The explorer's modules import one another without a loop, lazy (function-level) imports
included: a loop hidden in a function body breaks as soon as one of its imports moves to the
top of its file."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[3] / "retrieval" / "explore"


def imports_of(path: Path) -> set[str]:
    """The sibling modules ``path`` imports anywhere in its body (``from .x import``, ``from . import x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out |= {a.name for a in node.names}
    return out


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module from which a chain of imports leads back to it, with one such chain."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append(path + [start])
                    stack = []
                    break
                if nxt not in seen and nxt in graph:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    return found


def test_no_module_of_the_explorer_imports_itself_back():
    graph = {p.stem: imports_of(p) for p in PACKAGE.glob("*.py")}
    assert {"card", "export", "render", "pagekit"} <= set(graph)
    assert loops(graph) == []


def test_a_loop_is_found():
    assert loops({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"], ["b", "c", "a", "b"],
                                                                        ["c", "a", "b", "c"]]
