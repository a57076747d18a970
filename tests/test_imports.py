"""Imports between fastpolicy's modules go one way: the module graph has no cycle.

Every ``import`` / ``from … import …`` of every module counts, at any depth (a lazy import
inside a function still ties the two modules together). An edge goes to the module that is
named: ``from .reference import color`` → ``fastpolicy.reference.color`` when ``color`` is a
submodule, ``from .spaces import get_space`` → ``fastpolicy.spaces``. Importing a submodule
also runs its package's ``__init__``, but a package façade re-exporting its submodules is not
a cycle of design, so no implicit edge to the parent package is added (as import-linter does).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "fastpolicy"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE


def module_name(path: Path, root: Path = ROOT, package: str = PACKAGE) -> str:
    """``fastpolicy/train/loop.py`` → ``fastpolicy.train.loop``; a package's ``__init__.py`` → the package."""
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports (anywhere in its body), parsed with :mod:`ast`."""
    paths = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in paths else module for a in node.names]
            else:
                continue
            for target in targets:
                # ``import fastpolicy.a.b`` names fastpolicy.a.b; keep the longest known prefix.
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle of ``graph``, each as its modules starting from the smallest name."""
    found = []
    nodes = sorted(graph)
    for i, start in enumerate(nodes):
        allowed = set(nodes[i:])  # a cycle is reported from its smallest node only
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node] & allowed):
                if nxt == start:
                    found.append(path)
                elif nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return found


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, f"{len(found)} import cycle(s):\n" + "\n".join(" → ".join([*c, c[0]]) for c in found)


def test_graph_sees_lazy_relative_and_submodule_imports(tmp_path):
    # A checker that missed function-level imports (where cycles hide) would pass vacuously.
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("def f():\n    from .b import y\n")
    (pkg / "b.py").write_text("from .sub import c\nimport pkg.sub.c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import a\nfrom ..b import z\n")
    graph = import_graph(pkg, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub.c"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.a", "pkg.b"},
    }
    assert sorted(cycles(graph)) == [["pkg.a", "pkg.b", "pkg.sub.c"], ["pkg.b", "pkg.sub.c"]]


@pytest.mark.parametrize("module", ["fastpolicy.registry", "fastpolicy.policy"])
def test_graph_covers_the_package(module):
    assert module in import_graph()


def test_no_module_imports_a_private_name_of_torch_or_torchvision():
    """Private helpers (``_get_fill``, ``v2._utils``) change without notice between releases: the
    package must install and run beside other torch versions."""
    import ast
    import pathlib

    import fastpolicy

    found = []
    for path in pathlib.Path(fastpolicy.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("torch", "torchvision"):
                private = any(part.startswith("_") for part in node.module.split("."))
                private |= any(alias.name.startswith("_") for alias in node.names)
                if private:
                    found.append(f"{path.name}: from {node.module} import {', '.join(a.name for a in node.names)}")
    assert not found, found


def test_torch_and_torchvision_are_ranges_that_admit_the_installed_pair_and_the_next_minor():
    """Not exact pins (the library installs beside other torch versions): each requirement
    admits the installed version and the next minor release, and has a lower bound."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement
    from packaging.version import Version

    wanted = {Requirement(r).name: Requirement(r).specifier for r in requires("fastpolicy") or [] if "extra" not in r}
    for name in ("torch", "torchvision"):
        spec = wanted[name]
        installed = Version(version(name).split("+")[0])
        assert installed in spec, f"{name} {installed} outside {spec}"
        assert Version(f"{installed.major}.{installed.minor + 1}.0") in spec, f"{name}: {spec} pins the minor"
        assert any(s.operator == ">=" for s in spec), f"{name}: {spec} has no lower bound"
