"""The layers of DESIGN.md hold: no import cycle between packages, no forbidden edge (module-level or in a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "embedops"

# (importer, imported): edges DESIGN.md forbids outright, whatever else holds.
FORBIDDEN = {
    ("index", "models"),
    ("index", "eval"),
    ("train", "cli"),
    ("models", "registry"),
    ("models", "eval"),
    ("experiment", "serve"), ("experiment", "models"),
    ("events", "models"), ("events", "serve"), ("monitor", "serve"),
    # scale (Ray) sits beside serve, below cli: it runs the library and the app on a cluster; nothing below knows it.
    ("scale", "cli"), ("scale", "project"),
    ("serve", "scale"), ("models", "scale"), ("index", "scale"), ("data", "scale"),
}
# Faces over the library (may import anything) and the ground floor (imports nothing of ours above it).
FACES = {"cli", "serve", "project", "production", "demo", "__init__", "__main__"}
GROUND = {"errors", "protocols", "_io", "_optional", "_progress", "_console"}


def _package_of(module: str) -> str | None:
    """`embedops.index.collection` -> `index`; `embedops.project` -> `project`."""
    parts = module.split(".")
    if parts[0] != "embedops":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _resolve(node: ast.ImportFrom, file: Path, root: Path) -> str | None:
    """Absolute module name of a `from ... import` (relative imports resolved against the file)."""
    if node.level == 0:
        return node.module
    rel = file.relative_to(root.parent).with_suffix("").parts
    base = list(rel[: len(rel) - node.level])
    return ".".join(base + ([node.module] if node.module else []))


def import_edges(root: Path = SRC) -> dict[tuple[str, str], list[str]]:
    """Every package -> package import under `root`, with where it happens (file:line)."""
    edges: dict[tuple[str, str], list[str]] = {}
    for file in sorted(root.rglob("*.py")):
        rel = file.relative_to(root.parent)
        src_pkg = _package_of(".".join(rel.with_suffix("").parts))
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for node in ast.walk(tree):  # ast.walk reaches imports inside functions too
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mod = _resolve(node, file, root)
                if mod == "embedops":  # `from embedops import x`: x may be a subpackage
                    targets = [f"embedops.{a.name}" for a in node.names]
                elif mod:
                    targets = [mod]
            for target in targets:
                dst_pkg = _package_of(target)
                if dst_pkg and src_pkg and dst_pkg != src_pkg:
                    edges.setdefault((src_pkg, dst_pkg), []).append(f"{rel}:{node.lineno}")
    return edges


def _cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if a in FACES or b in FACES:
            continue
        graph.setdefault(a, set()).add(b)
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif state.get(nxt) is None:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_walker_sees_function_local_imports(tmp_path):
    pkg = tmp_path / "embedops"
    (pkg / "index").mkdir(parents=True)
    (pkg / "models").mkdir()
    (pkg / "index" / "a.py").write_text("def f():\n    from embedops.models import load_encoder\n")
    (pkg / "models" / "b.py").write_text("from ..index import a\n")
    edges = import_edges(pkg)
    assert edges[("index", "models")] == ["embedops/index/a.py:2"]
    assert edges[("models", "index")] == ["embedops/models/b.py:1"]
    assert _cycles(edges)


@pytest.mark.parametrize("edge", sorted(FORBIDDEN), ids=lambda e: f"{e[0]}->{e[1]}")
def test_no_forbidden_edge(edge):
    where = import_edges().get(edge)
    assert not where, f"{edge[0]} must not import {edge[1]}: {where}"


def test_no_cycle_between_packages():
    edges = import_edges()
    cycles = _cycles(edges)
    detail = [" -> ".join(c) + ": " + "; ".join(edges[(c[0], c[1])][:2]) for c in cycles]
    assert not cycles, f"import cycles between packages: {detail}"


def test_the_ground_floor_imports_nothing_above_it():
    bad = {(a, b): w for (a, b), w in import_edges().items() if a in GROUND and b not in GROUND}
    assert not bad, f"ground-floor modules import upper layers: {bad}"
