"""Out-of-tree plug-ins: a heuristic, an improvement step and a lower bound, each one file in
tests/plugins/, loaded the way ``pipecert run --plugin MODULE`` loads them, checked by the
public contract suite (:mod:`pipecert.contract`) and run by ``pipecert run --plugin``.

The contract classes below are exactly what a researcher writes for a method of their own
(docs/extending.md).
"""

from __future__ import annotations

import importlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from formulations import FORMULATIONS, Formulation
from heuristics import HEURISTICS, Heuristic
from pipecert.contract import FormulationContract, HeuristicContract, ImproverContract
from pipecert.testing import brute_force, random_dag

REPO = Path(__file__).resolve().parents[1]
PLUGIN_DIR = Path(__file__).resolve().parent / "plugins"
#: module -> (registry, registered name)
PLUGINS = {"work_slices": (HEURISTICS, "work_slices"),
           "boundary_moves": (HEURISTICS, "boundary_moves"),
           "pigeonhole_bound": (FORMULATIONS, "pigeonhole")}


@pytest.fixture(scope="module")
def plugins() -> Iterator[dict[str, ModuleType]]:
    """Import the plug-in modules as ``pipecert run --plugin`` does (a module name on the
    path); unregister them afterwards so no other test sees them."""
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        yield {m: importlib.import_module(m) for m in PLUGINS}
    finally:
        sys.path.remove(str(PLUGIN_DIR))
        for mod, (registry, name) in PLUGINS.items():
            registry.unregister(name)
            sys.modules.pop(mod, None)


def test_importing_a_plugin_registers_it(plugins: dict[str, ModuleType]) -> None:
    for _mod, (registry, name) in PLUGINS.items():
        assert name in registry
    assert isinstance(HEURISTICS.make("work_slices[slack=0.9]"), Heuristic)
    assert isinstance(FORMULATIONS.make("pigeonhole[units=false]"), Formulation)


# ------------------------------------------------------------------ the contract suite
class TestWorkSlices(HeuristicContract):
    @pytest.fixture
    def method(self, plugins: dict[str, ModuleType]) -> Heuristic:
        return HEURISTICS.make("work_slices")


class TestBoundaryMoves(ImproverContract):
    @pytest.fixture
    def method(self, plugins: dict[str, ModuleType]) -> Heuristic:
        return HEURISTICS.make("boundary_moves")


class TestPigeonhole(FormulationContract):
    @pytest.fixture(params=["pigeonhole", "pigeonhole[units=false]"])
    def method(self, request: pytest.FixtureRequest,
               plugins: dict[str, ModuleType]) -> Formulation:
        return FORMULATIONS.make(request.param)


def test_the_improver_improves_a_one_stage_incumbent(plugins: dict[str, ModuleType]) -> None:
    """Not a contract (an improver may fail to improve), but this one should on a chain."""
    from pipecert import Partition, SolveContext, evaluate

    inst = random_dag(3, 7, edge_prob=0.5, name="chain7")
    start = Partition([0] * inst.n_nodes, 3)
    out = HEURISTICS.make("boundary_moves").run(
        inst, 3, context=SolveContext(upper_bound=evaluate(inst, start), partition=start))
    assert out.incumbent is not None and out.incumbent < evaluate(inst, start)
    assert out.incumbent >= brute_force(inst, 3)[0]
    assert out.stats["start"] == "incumbent"


# ------------------------------------------------------------------ pipecert run --plugin
def _cli_module() -> str:
    """The command line's package (``python -m cli`` is ``pipecert``)."""
    return "cli"


def test_pipecert_run_loads_the_plugins(tmp_path: Path,
                                        plugins: dict[str, ModuleType]) -> None:
    """``pipecert run --plugin MODULE`` with the folder on PYTHONPATH: every worker imports
    the modules, the three methods run on two graphs x two k, and the stored rows are
    graded (bound <= OPT <= incumbent)."""
    from instances import write_instance

    gdir = tmp_path / "graphs"
    gdir.mkdir()
    graphs = {f"g{i}": random_dag(i, 7, name=f"g{i}") for i in range(2)}
    for name, inst in graphs.items():
        write_instance(inst, gdir / f"{name}.json")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(PLUGIN_DIR), str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    cmd = [sys.executable, "-m", _cli_module(), "run", "-i", str(gdir), "-k", "2,3",
           "--heuristic", "work_slices", "--heuristic", "boundary_moves",
           "--bound", "pigeonhole", "--plugin", "work_slices", "--plugin", "boundary_moves",
           "--plugin", "pigeonhole_bound", "-j", "1", "--time-limit", "20", "-o", str(out),
           "--no-figures", "--no-report", "--no-progress"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(out / "results.sqlite") as con:
        rows = con.execute("SELECT method, instance, k, status, bound, incumbent FROM runs"
                           ).fetchall()
    assert sorted({r[0] for r in rows}) == ["boundary_moves", "pigeonhole", "work_slices"]
    assert len(rows) == 3 * 2 * 2
    for method, instance, k, status, bound, incumbent in rows:
        opt = brute_force(graphs[Path(instance).stem.split("/")[-1]], int(k))[0]
        assert status in ("feasible", "solved", "optimal", "bound"), (method, status)
        if bound is not None:
            assert bound <= opt + 1e-9, (method, instance, k)
        if incumbent is not None:
            assert incumbent >= opt - 1e-9, (method, instance, k)
        assert (bound is None) != (incumbent is None), (method, bound, incumbent)


# ------------------------------------------------------------------ docs/extending.md
def _doc_blocks() -> list[str]:
    text = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    return [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]


@pytest.mark.parametrize(("plugin", "method"), [("work_slices.py", "solve"),
                                                ("boundary_moves.py", "improve"),
                                                ("pigeonhole_bound.py", "lower_bound")])
def test_the_worked_examples_are_the_tested_files(plugin: str, method: str) -> None:
    """The code of each worked example in docs/extending.md compiles, and the body of its
    method is line for line the body in the tested plug-in file."""
    source = (PLUGIN_DIR / plugin).read_text(encoding="utf-8")
    file_lines = {line.strip() for line in source.splitlines()}
    name = next(line.split('"')[1] for line in source.splitlines()
                if line.strip().startswith("name = "))
    blocks = [b for b in _doc_blocks() if f'name = "{name}"' in b]
    assert len(blocks) == 1, f"docs/extending.md has no single example registering {name!r}"
    compile(blocks[0], f"docs/extending.md ({name})", "exec")
    body = blocks[0].split(f"def {method}(", 1)[1].split('"""', 2)[2]
    missing = [line for line in body.splitlines() if line.strip()
               and line.strip() not in file_lines]
    assert not missing, f"docs/extending.md's {name} differs from {plugin}: {missing[:3]}"
