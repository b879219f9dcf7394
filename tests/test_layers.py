"""The import contracts `make lint` enforces: runkit below cxrdata below cyclegan and classifier,
which never import each other, below pipelines; and no import circle between the modules of a
package (a package's ``__init__``, which only gathers names, is not a node)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# what each package may import of the project's packages
ALLOWED = {"runkit": set(), "cxrdata": {"runkit"}, "cyclegan": {"runkit", "cxrdata"},
           "classifier": {"runkit", "cxrdata"}, "pipelines": {"runkit", "cxrdata", "cyclegan", "classifier"}}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path = REPO) -> dict[str, set[str]]:
    """Each project module → the project modules it imports (anywhere in it, lazily too)."""
    files = {module_name(p, root): p for package in ALLOWED for p in (root / package).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            found |= {t for t in targets if t.split(".")[0] in ALLOWED}
        graph[name] = found
    return graph


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets
                  if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in ALLOWED[a.split(".")[0]])


def circles(graph: dict[str, set[str]], packages: set[str]) -> list[list[str]]:
    """Import circles among the modules of one package (``__init__`` modules left out)."""
    nodes = {m for m in graph if m not in packages}
    edges = {m: {t for t in graph[m] if t in nodes and t.split(".")[0] == m.split(".")[0]} for m in nodes}
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(nodes):
        if node not in state:
            visit(node, [node])
    return found


def packages_of(root: Path = REPO) -> set[str]:
    return {module_name(p, root) for package in ALLOWED for p in (root / package).rglob("__init__.py")}


def test_every_package_imports_only_the_layers_below_it():
    assert layer_violations(imports()) == []


def test_no_import_circle_inside_a_package():
    assert circles(imports(), packages_of()) == []


def test_the_contracts_catch_a_back_import_and_a_circle(tmp_path):
    for package in ALLOWED:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "runkit" / "rundir.py").write_text("from classifier.config import X\n")  # runkit reaching up
    (tmp_path / "classifier" / "config.py").write_text("from .export import load\nX = 1\n")
    (tmp_path / "classifier" / "export.py").write_text("def load():\n    from classifier.config import X\n")
    graph = imports(tmp_path)
    assert layer_violations(graph) == ["runkit.rundir imports classifier.config"]
    assert circles(graph, packages_of(tmp_path)) == [["classifier.config", "classifier.export", "classifier.config"]]
