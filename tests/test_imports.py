"""Imports flow one way: no two modules of models/ and utils/ reach each other through their
imports, lazy ones (inside functions) included."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_imports() -> dict[str, set[str]]:
    """Each module of models/ and utils/ -> the modules of the tree it imports anywhere."""
    files = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
             for top in ("models", "utils") for p in (ROOT / top).rglob("*.py")}
    edges = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        edges[name] = {m for m in found if m in files and m != name}
    return edges


def reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_module_imports_itself_through_others():
    edges = module_imports()
    assert len(edges) > 40  # the tree was found
    circles = sorted(m for m in edges if m in reachable(edges, m))
    assert circles == []


def test_the_finder_sees_a_circle():
    assert "a" in reachable({"a": {"b"}, "b": {"a"}}, "a")
