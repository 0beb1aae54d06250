"""The maps of the code stay true: every package's docstring and the README's layout name each
module of models/ and utils/."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = sorted(p.parent for top in ("models", "utils")
                  for p in (ROOT / top).rglob("__init__.py"))


def modules_of(package: Path) -> list[str]:
    """The package's modules (file names without .py) and subpackages (folder names)."""
    files = [p.stem for p in package.glob("*.py") if p.name != "__init__.py"]
    return sorted(files + [p.parent.name for p in package.glob("*/__init__.py")])


def unnamed(text: str, names: list[str]) -> list[str]:
    return [n for n in names if not re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", text)]


def readme_layout() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Layout"):text.index("## Extend it")]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_package_docstring_names_its_modules(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert unnamed(doc, modules_of(package)) == []


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_readme_layout_names_every_module(package):
    assert unnamed(readme_layout(), modules_of(package)) == []


def test_the_check_sees_a_missing_name():
    assert unnamed("config.py, starts (drawn), recordings/", ["config", "starts", "recordings",
                                                             "rows"]) == ["rows"]
    assert unnamed("multistart", ["starts"]) == ["starts"]
