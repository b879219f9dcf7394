"""The README and docs/ name only make targets and cxr commands that exist, and their relative
links resolve; the README stays a guide (≤ 12 KB), the details live in docs/."""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from pipelines.cli import main as cxr

ROOT = Path(__file__).resolve().parents[1]
GUIDE = sorted((ROOT / "docs").glob("*.md"))  # how things work: each linked from the README
RESULTS = sorted((ROOT / "docs" / "results").glob("*.md"))  # what was measured, dated: linked from its index
PAGES = [ROOT / "README.md", *GUIDE, *RESULTS]
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)  # fenced blocks and inline code spans


def code_of(page: Path) -> str:
    return "\n".join(CODE.findall(page.read_text(encoding="utf-8")))


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z0-9-]*):", (ROOT / "Makefile").read_text(), re.M))


def missing_targets(code: str) -> set[str]:
    return set(re.findall(r"(?<![\w/.-])make ([a-z][a-z0-9-]*)", code)) - make_targets()


def missing_commands(code: str) -> set[str]:
    missing = set()
    for group, command in re.findall(r"(?<![\w-])cxr ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?", code):
        found = cxr.get_command(click.Context(cxr), group)
        if found is None or (command and isinstance(found, click.Group)
                             and found.get_command(click.Context(found), command) is None):
            missing.add(f"cxr {group} {command}".strip())
    return missing


def broken_links(folder: Path, text: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", CODE.sub("", text))
    return [t for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")
            and not (folder / t.split("#")[0]).exists()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_and_cxr_command_named_exists_and_every_link_resolves(page):
    code = code_of(page)
    assert not missing_targets(code), f"{page.name}: no such make target(s) {sorted(missing_targets(code))}"
    assert not missing_commands(code), f"{page.name}: no such command(s) {sorted(missing_commands(code))}"
    assert not broken_links(page.parent, page.read_text(encoding="utf-8")), page.name


def test_the_readme_is_a_guide_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 12 * 1024
    for page in [*GUIDE, ROOT / "docs" / "results" / "README.md"]:
        name = page.relative_to(ROOT).as_posix()
        assert f"]({name}" in readme, f"README does not link {name}"


def test_results_live_apart_dated_and_indexed():
    index = (ROOT / "docs" / "results" / "README.md").read_text(encoding="utf-8")
    for page in RESULTS:
        if page.name != "README.md":
            assert page.name[:7].replace("-", "").isdigit(), f"{page.name}: a results log is named by its date"
            assert f"]({page.name})" in index, f"docs/results/README.md does not link {page.name}"


def test_the_checks_find_wrong_names():
    """Not vacuous: a missing target, command and link are each found, real ones are not."""
    assert missing_targets("`make demo` and `make no-such-target`") == {"no-such-target"}
    assert missing_commands("`cxr data verify`, `cxr data nope`, `cxr nogroup`") == {"cxr data nope", "cxr nogroup"}
    links = "[a](results/README.md) [b](nowhere.md#x) [c](https://x.org) [d](#top)"
    assert broken_links(ROOT / "docs", links) == ["nowhere.md#x"]


POINTER = re.compile(r"""(README|docs/[a-z0-9/-]+\.md),\s+["']([^"']+)["']""")


def headings(page: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in page.read_text(encoding="utf-8").splitlines() if line.startswith("#")]


def test_every_pointer_to_a_docs_section_names_one_that_exists():
    """Help texts and messages say 'docs/x.md, "Section"': that page has a heading starting so."""
    sources = [ROOT / "Makefile", *(p for package in ("cxrdata", "runkit", "cyclegan", "classifier", "pipelines")
                                    for p in sorted((ROOT / package).rglob("*.py")))]
    pointers = [(source, page, section) for source in sources
                for page, section in POINTER.findall(" ".join(source.read_text(encoding="utf-8").split()))]
    assert len(pointers) >= 4  # the pattern still finds the pointers there are
    for source, page, section in pointers:
        path = ROOT / ("README.md" if page == "README" else page)
        assert path.is_file() and any(h.startswith(section) for h in headings(path)), \
            f"{source.relative_to(ROOT)}: {page}, {section!r} names no heading"
