"""Every link and image in README.md and docs/ resolves where the docs are read (relative to
the file that holds it, as on the repository's web page)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def local_targets(doc: Path) -> list[str]:
    """The link targets of `doc` that name files of the repository (no URLs, no anchors)."""
    targets = [m.group(1).split("#")[0] for m in LINK.finditer(doc.read_text())]
    return [t for t in targets if t and not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_local_link_resolves(doc):
    missing = [t for t in local_targets(doc) if not (doc.parent / t).exists()]
    assert not missing, f"{doc.name}: {missing}"


def test_the_link_reader_sees_images_and_links():
    text = "![a](figures/x.png) [b](docs/NOTES.md#s4) [c](https://example.org)"
    assert [m.group(1) for m in LINK.finditer(text)] == [
        "figures/x.png", "docs/NOTES.md#s4", "https://example.org"]


def test_the_notes_name_every_flag_of_the_fitting_scripts():
    """docs/NOTES.md documents every flag a fitting script's --help lists (the training
    flags are documented by their --help, generated from TrainConfig)."""
    import neuron_fitting_of_gif_model as gif
    import neuron_fitting_of_hh_model as hh
    from utils.fitting.config import build_parser

    notes = (ROOT / "docs" / "NOTES.md").read_text()
    flags = {o for d in (hh.DEFAULTS, gif.DEFAULTS) for a in build_parser(d)._actions
             for o in a.option_strings if o.startswith("--") and o != "--help"}
    assert len(flags) > 30 and sorted(f for f in flags if f"`{f}" not in notes) == []
