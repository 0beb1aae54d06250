"""Imports flow one way: no two modules of models/ and utils/ reach each other through their
imports, lazy ones (inside functions) included; no module imports against the layers (scripts
-> utils -> models; benchmarks and tests stand outside), and no benchmark or test module
imports another (shared helpers live in benchmarks/kit/ and tests/*_helpers.py)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


SCRIPTS = {p.stem for p in ROOT.glob("*.py")}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imported(path: Path) -> set[str]:
    """Every module name `path` imports anywhere (with `from m import n`: m and m.n)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def module_imports(tops=("models", "utils")) -> dict[str, set[str]]:
    """Each module of `tops` -> the modules of those folders it imports anywhere."""
    files = {module_name(p): p for top in tops for p in (ROOT / top).rglob("*.py")}
    return {name: {m for m in imported(path) if m in files and m != name}
            for name, path in files.items()}


def outward(top: str, allowed) -> dict[str, list[str]]:
    """Modules of `top` -> what they import from the repository that `allowed(module)` refuses."""
    own = ("models", "utils", "benchmarks", "tests")
    bad = {}
    for path in (ROOT / top).rglob("*.py"):
        found = sorted(m for m in imported(path)
                       if (m.split(".")[0] in own or m in SCRIPTS) and not allowed(m))
        if found:
            bad[module_name(path)] = found
    return bad


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


def test_no_import_against_the_layers():
    assert outward("models", lambda m: m.startswith(("models", "utils.settings"))) == {}
    assert outward("utils", lambda m: m.startswith(("models", "utils"))) == {}


def test_no_test_module_imports_another():
    def allowed(m: str) -> bool:
        parts = m.split(".")
        return parts[0] != "tests" or len(parts) == 1 or parts[1].endswith("_helpers")
    assert outward("tests", allowed) == {}


def test_no_benchmark_imports_another():
    """A benchmark imports the kit and, if it is a package, its own modules; the Brian2 programs
    import kit.brian2_model from their folder."""
    folder = ROOT / "benchmarks"
    local = {p.stem for p in folder.iterdir() if p.suffix == ".py" or p.is_dir()}
    for path in folder.rglob("*.py"):
        own = path.relative_to(folder).parts[0].removesuffix(".py")
        names = {m.removeprefix("benchmarks.") for m in imported(path)
                 if m.startswith("benchmarks.") or m.split(".")[0] in local}
        others = sorted(m for m in names if m.split(".")[0] not in ("kit", own))
        assert not others, f"{path.relative_to(ROOT)} imports {others}"
