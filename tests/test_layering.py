"""The packages form layers and every import points down.

From the bottom::

    pipecert <- instances <- formulations, heuristics <- portfolio <- experiments, runtime
             <- paper_figures <- cli

A module may import a package of a LOWER layer only: packages of one layer sit side by side
and do not import each other (formulations and heuristics; experiments and runtime), and
nothing below the command line (``cli``) imports it. The imports are read from the source
with :mod:`ast` (every ``import``/``from ... import``, at module level or inside a function,
``TYPE_CHECKING`` blocks included), so a lazy import cannot hide an upward edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: package -> layer (0 is the bottom).
LAYERS: dict[str, int] = {
    "pipecert": 0,
    "instances": 1,
    "formulations": 2,
    "heuristics": 2,
    "portfolio": 3,
    "experiments": 4,
    "runtime": 4,
    "paper_figures": 5,
    "cli": 6,
}

#: (importing module, imported package) edges allowed although they point up, with why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # test support (as numpy.testing): pipecert.testing.make_formulation builds a registered
    # formulation for the test suites; no library module imports pipecert.testing
    ("pipecert.testing", "formulations"): "test-support helper, imported by tests only",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_packages(path: Path) -> set[str]:
    """The top-level names of every absolute import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _sources() -> list[Path]:
    out: list[Path] = []
    for pkg in LAYERS:
        root = REPO / pkg
        if root.is_dir():
            out.extend(sorted(root.rglob("*.py")))
    return out


def _upward_edges() -> list[str]:
    bad = []
    for path in _sources():
        module = _module_name(path)
        own = module.split(".")[0]
        for dep in sorted(_imported_packages(path)):
            if dep == own or dep not in LAYERS:
                continue
            if LAYERS[dep] < LAYERS[own] or (module, dep) in EXCEPTIONS:
                continue
            bad.append(f"{module} (layer {LAYERS[own]}) imports {dep} (layer {LAYERS[dep]})")
    return bad


def test_the_layered_packages_exist() -> None:
    for pkg in ("pipecert", "instances", "formulations", "heuristics", "experiments",
                "runtime", "paper_figures", "cli"):
        assert (REPO / pkg / "__init__.py").is_file(), pkg


def test_every_import_points_down() -> None:
    bad = _upward_edges()
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)


def test_exceptions_are_still_needed() -> None:
    """An exception nobody needs any more is removed from the list."""
    for (module, dep), _why in EXCEPTIONS.items():
        path = REPO / (module.replace(".", "/") + ".py")
        if not path.is_file():
            path = REPO / module.replace(".", "/") / "__init__.py"
        assert dep in _imported_packages(path), (module, dep)


def test_nothing_below_the_cli_imports_it() -> None:
    users = [_module_name(p) for p in _sources()
             if not _module_name(p).startswith("cli") and "cli" in _imported_packages(p)]
    assert users == []


def test_experiments_does_not_import_paper_figures() -> None:
    users = [_module_name(p) for p in sorted((REPO / "experiments").rglob("*.py"))
             if "paper_figures" in _imported_packages(p)]
    assert users == []


@pytest.mark.parametrize("src, found", [
    ("import cli\n", {"cli"}),
    ("from cli._common import x\n", {"cli"}),
    ("def f():\n    from paper_figures import make_all\n", {"paper_figures"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import experiments.store\n",
     {"typing", "experiments"}),
    ("from . import sibling\n", set()),
])
def test_the_import_reader_sees_lazy_and_guarded_imports(tmp_path: Path, src: str,
                                                         found: set[str]) -> None:
    f = tmp_path / "m.py"
    f.write_text(src)
    assert _imported_packages(f) == found
