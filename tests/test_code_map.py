"""docs/architecture.md's code map names every product module, and every module it names exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("cxrdata", "runkit", "cyclegan", "classifier", "pipelines")


def map_rows() -> dict[str, str]:
    """Each package's row of the map's table."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        found = re.match(r"\| `(\w+)` \|", line)
        if found and found.group(1) in PACKAGES:
            rows[found.group(1)] = line
    return rows


def modules(package: str) -> set[str]:
    """Module and subpackage names under ``package`` (bare, as the map writes them)."""
    root = REPO / package
    names = {p.stem for p in root.rglob("*.py") if p.stem != "__init__"}
    return names | {p.parent.name for p in root.rglob("*/__init__.py") if p.parent != root}


@pytest.mark.parametrize("package", PACKAGES)
def test_the_map_names_every_module_and_only_modules_that_exist(package):
    row = map_rows()[package]
    named = set(re.findall(r"`([a-z0-9_]+)/?`", row)) - {package}
    have = modules(package)
    assert not have - named, f"docs/architecture.md's {package} row does not name {sorted(have - named)}"
    assert not named - have, f"docs/architecture.md's {package} row names missing modules {sorted(named - have)}"


@pytest.mark.parametrize("package", ["cyclegan", "classifier", "pipelines"])
def test_each_package_names_its_entry_points_and_each_one_resolves(package):
    import importlib

    module = importlib.import_module(package)
    assert module.__all__ and all(callable(getattr(module, name)) for name in module.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing
