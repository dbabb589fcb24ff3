"""Timings of the min-cut bounds: F(H, X) per engine, node bounds, path bound per k.

Run with::

    pytest -o addopts="" tests/bench/test_bench_spine.py --benchmark-only

Graphs: communication-heavy layered operator graphs (comm = 10 x work, 45% zero-work weight
nodes) of 2,000 and 10,000 nodes from ``instances.generators.layered_dag``, and the bundled
``default/operator-2000``. Figures are quoted in the README section "Beyond the paper:
min-cut bounds".
"""

from __future__ import annotations

import numpy as np
import pytest

from formulations import node_bound as nb_mod
from formulations import path_bound as pb_mod
from formulations._maxflow import ENGINES, CutNetwork
from formulations._spine import chain_indices, heaviest_path, run_classes
from formulations.path_bound import PathBound
from instances import load_bundled
from instances.generators import layered_dag
from pipecert.instance import Instance
from pipecert.results import Budget, SolveContext


@pytest.fixture(scope="module")
def graphs() -> dict[str, Instance]:
    return {
        "op2000": layered_dag(2000, rng=1, width=3, comm_work_ratio=10.0, weight_fraction=0.45),
        "op10000": layered_dag(10_000, rng=2, width=3, comm_work_ratio=10.0,
                               weight_fraction=0.45),
        "bundled-operator-2000": load_bundled("default/operator-2000"),
    }


def _run_of(inst: Instance, length: int) -> tuple[np.ndarray, np.ndarray]:
    path = heaviest_path(inst, inst.work + inst.comm)
    a, d = chain_indices(inst, path)
    i = path.size // 3
    cls = run_classes(a, d, i, min(path.size - 1, i + length))
    return cls == 0, cls == 2


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("size", ["op2000", "op10000"])
def test_bench_anchored_block_single_node(benchmark, graphs, engine: str, size: str) -> None:
    """F({v}, ∅) on the full network (structure reused, anchors rewritten per call)."""
    inst = graphs[size]
    net = CutNetwork(inst, engine=engine)
    nodes = np.argsort(-inst.work)[:5]
    vals = benchmark(lambda: [net.solve([v]).value for v in nodes])
    assert all(v > 0 for v in vals)


@pytest.mark.parametrize("local", [False, True], ids=["full", "contracted"])
@pytest.mark.parametrize("size", ["op2000", "op10000"])
def test_bench_anchored_block_path_run(benchmark, graphs, size: str, local: bool) -> None:
    """F(H(i, j), X(i, j)) of one 20-position run: full network vs contracted to free nodes."""
    inst = graphs[size]
    net = CutNetwork(inst)
    hold, excl = _run_of(inst, 20)
    fn = net.solve_local if local else net.solve
    value = benchmark(lambda: fn(hold, excl).value)
    assert value == pytest.approx(net.solve(hold, excl).value, rel=1e-9)


@pytest.mark.parametrize("size", ["op2000", "op10000", "bundled-operator-2000"])
def test_bench_node_bound(benchmark, graphs, size: str) -> None:
    """LB_node from scratch (cache cleared every round), with cut-set pruning."""
    inst = graphs[size]

    def fresh() -> float:
        nb_mod.clear_cache()
        return nb_mod.node_bounds(inst, Budget(600.0)).value

    assert benchmark.pedantic(fresh, rounds=3, iterations=1) > 0


@pytest.mark.parametrize("k", [4, 16, 64])
@pytest.mark.parametrize("size", ["op2000", "bundled-operator-2000", "op10000"])
def test_bench_path_bound_per_k(benchmark, graphs, size: str, k: int) -> None:
    """path_bound for one k after the per-graph node bounds (run tables rebuilt each round)."""
    inst = graphs[size]
    nb_mod.node_bounds(inst)

    def fresh() -> float:
        pb_mod.clear_cache()
        res = PathBound().lower_bound(inst, k, Budget(60.0), SolveContext())
        return float(res.bound or 0.0)

    assert benchmark.pedantic(fresh, rounds=1, iterations=1) > 0
