"""Imports flow one way: no two modules of models/ and utils/ reach each other through their
imports, lazy ones (inside functions) included; no benchmark imports another (they share
benchmarks/kit)."""
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


def benchmark_imports(path: Path) -> set[str]:
    """The benchmarks' modules `path` imports, as benchmarks.NAME... (the Brian2 programs
    import theirs from the benchmarks/ folder: kit.brian2_model)."""
    local = {p.stem for p in (ROOT / "benchmarks").iterdir() if p.suffix == ".py" or p.is_dir()}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" if node.module == "benchmarks" else node.module
                     for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n if n.startswith("benchmarks.") else f"benchmarks.{n}" for n in names
                  if n.startswith("benchmarks.") or n.split(".")[0] in local}
    return found


def test_benchmarks_share_code_through_the_kit_only():
    for path in (ROOT / "benchmarks").rglob("*.py"):
        own = path.relative_to(ROOT / "benchmarks").parts[0].removesuffix(".py")
        others = {m for m in benchmark_imports(path) if m.split(".")[1] not in ("kit", own)}
        assert not others, f"{path.relative_to(ROOT)} imports {sorted(others)}"
