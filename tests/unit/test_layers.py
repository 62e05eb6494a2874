"""The packages import one way, and no module imports itself back through others.

``schemas`` (wire formats and units) → ``infra`` (settings, broker, ClickHouse
client, topics, migrations) → ``streams`` and ``api`` (never each other) →
``eduknit`` (the command line, the supervisor, the demo). ``testkit`` (what the
tests and the benchmarks share) sits above them all, ``bench`` and ``tests`` on
top. Every import counts, also one inside a function: a lazy import is how a
cycle hides.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BELOW: dict[str, set[str]] = {
    "schemas": set(),
    "infra": {"schemas"},
    "streams": {"schemas", "infra"},
    "api": {"schemas", "infra"},
    "eduknit": {"schemas", "infra", "streams", "api"},
    "testkit": {"schemas", "infra", "streams", "api", "eduknit"},
    "bench": {"schemas", "infra", "streams", "api", "eduknit", "testkit"},
    "tests": {"schemas", "infra", "streams", "api", "eduknit", "testkit", "bench"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` counts ``a.b`` when it
    is a module, else ``a``)."""
    tree = ast.parse(path.read_text(), str(path))
    package = None
    if path.is_relative_to(ROOT):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package is not None:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in BELOW}


def _project_modules() -> dict[str, Path]:
    modules = {}
    for top in BELOW:
        for path in (ROOT / top).rglob("*.py"):
            hidden = any(part.startswith(".") for part in path.relative_to(ROOT).parts)
            if not hidden:  # e.g. a benchmark peer's virtualenv, bench/.venv-quix
                modules[_module_name(path)] = path
    return modules


MODULES = _project_modules()
GRAPH = {
    name: {imported for imported in _imports(path) if imported in MODULES and imported != name}
    for name, path in MODULES.items()
}


def test_the_layer_map_covers_every_package() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert packages <= set(BELOW), f"a package outside the layer map: {packages - set(BELOW)}"


@pytest.mark.parametrize("package", sorted(BELOW))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    wrong = sorted(
        f"{name} imports {imported}"
        for name, imports in GRAPH.items()
        if name.split(".")[0] == package
        for imported in imports
        if imported.split(".")[0] not in BELOW[package] | {package}
    )
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_module_imports_itself_back() -> None:
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycles.append([*path[path.index(name) :], name])
            return
        if name in done:
            return
        for imported in sorted(GRAPH[name]):
            if not name.startswith(imported + "."):  # a module importing its own package
                visit(imported, [*path, name])
        done.add(name)

    for name in sorted(GRAPH):
        visit(name, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles[:5])


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The walk finds an import inside a function (how a cycle hides)."""
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from eduknit.supervisor import X\n    return X\n")
    assert "eduknit.supervisor" in _imports(module)
