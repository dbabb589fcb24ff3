"""Limits held inside the methods (docs/guide/solve.md).

* k larger than the node count costs what k = n costs (methods are called with
  ``k_eff = min(k, n)``; the partition is declared for k stages in O(n) memory);
* the slicing DP runs in budget-checked chunks, with the same result when it finishes;
* the order baselines, BRKGA and random_orders stop near their budget on a graph where one
  exact slicing takes far longer, and keep a feasible partition;
* the warm-up compiles (or loads) every kernel of the plan before the clock starts.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from experiments.portfolio import build_plan, solve, warm_up
from formulations import FORMULATIONS
from heuristics import HEURISTICS, slicing
from heuristics.decoder import bfs_order
from heuristics.downset_dp import reduce_instance
from instances.generators import layered_dag
from pipecert import Partition, cancel, check_feasible, evaluate
from pipecert.effective_k import effective_k, pad_partition, restrict_partition
from pipecert.results import Budget
from pipecert.testing import brute_force, random_dag

HUGE_K = 10**9


@pytest.fixture(autouse=True)
def _clear_flag():
    cancel.reset()
    yield
    cancel.reset()


@pytest.fixture(scope="module")
def large():
    """A 30,000-node layered DAG: one exact slicing of one order takes tens of seconds."""
    return layered_dag(30_000, rng=7, width=8, name="layered-30k")


# ---------------------------------------------------------------------------- k > n
def test_effective_k_and_partition_helpers():
    inst = random_dag(0, 5)
    assert effective_k(inst, 3) == 3 and effective_k(inst, HUGE_K) == 5
    p = Partition([0, 4, 4, 7, 7], k=9)
    r = restrict_partition(p, 5)  # empty stages squeezed out, order kept
    assert r.k == 5 and r.stage_of.tolist() == [0, 1, 1, 2, 2]
    padded = pad_partition(r, HUGE_K)  # O(n): one stage index per node
    assert padded.k == HUGE_K and padded.stage_of.tolist() == r.stage_of.tolist()


@pytest.mark.parametrize("name", ["bfs_order", "downset_dp", "brkga-100", "local_search"])
def test_heuristic_with_huge_k_costs_what_k_n_costs(name):
    inst = random_dag(1, 7, name="r1")
    n = inst.n_nodes
    opt, _ = brute_force(inst, n)
    tracemalloc.start()
    try:
        out = HEURISTICS.make(name).run(inst, HUGE_K, Budget(20), 0, raise_errors=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # an O(k) array would be gigabytes
    assert out.partition is not None and out.partition.k == HUGE_K
    same = HEURISTICS.make(name).run(inst, n, Budget(20), 0, raise_errors=True)
    assert out.incumbent == pytest.approx(same.incumbent)
    assert out.incumbent >= opt - 1e-9
    assert int(out.partition.stage_of.max()) < n


@pytest.mark.parametrize("name", ["combinatorial", "node_bound", "bottleneck"])
def test_bound_with_huge_k_equals_the_bound_for_k_n(name):
    inst = random_dag(2, 6, name="r2")
    n = inst.n_nodes
    opt, _ = brute_force(inst, n)
    big = FORMULATIONS.make(name).run(inst, HUGE_K, Budget(30), raise_errors=True)
    same = FORMULATIONS.make(name).run(inst, n, Budget(30), raise_errors=True)
    assert big.bound == pytest.approx(same.bound) and big.bound <= opt + 1e-9


def test_portfolio_with_huge_k():
    inst = random_dag(4, 8, name="r4")
    plan = build_plan(heuristics=["bfs_order", "dfs_order"], bounds=["combinatorial"])
    tracemalloc.start()
    try:
        res = solve(inst, HUGE_K, time_limit_s=30, plan=plan)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
    ref = solve(inst, inst.n_nodes, time_limit_s=30, plan=plan)
    assert res.k == HUGE_K and res.partition is not None and res.partition.k == HUGE_K
    assert res.upper_bound == pytest.approx(ref.upper_bound)
    assert res.lower_bound == pytest.approx(ref.lower_bound)


# ---------------------------------------------------------------------------- chunked DP
@pytest.mark.parametrize("seed", range(6))
def test_chunked_slicing_equals_the_one_call_dp(seed, monkeypatch):
    inst = random_dag(seed, 40, name=f"r{seed}")
    order = bfs_order(inst)
    monkeypatch.setattr(slicing, "CHUNK_S", 1e-9)  # one start per chunk
    for k in (1, 2, 3, 5, 60):
        v1, c1 = slicing.slice_order(inst, order, k)
        v2, c2, done = slicing.slice_order_within(inst, order, k, Budget())
        assert done and v2 == v1 and c2.tolist() == c1.tolist()


def test_stopped_slicing_returns_a_feasible_greedy_slicing():
    inst = random_dag(9, 60, name="r9")
    order = bfs_order(inst)
    exact, _ = slicing.slice_order(inst, order, 4)
    cancel.request("test")
    v, cuts, done = slicing.slice_order_within(inst, order, 4, Budget())
    assert not done and v >= exact - 1e-9
    part = Partition.from_slices(order, cuts.tolist(), 4)
    assert not check_feasible(inst, part, k=4) and evaluate(inst, part) == pytest.approx(v)


# ---------------------------------------------------------------------------- large graphs
@pytest.mark.parametrize("name", ["bfs_order", "dfs_order", "input_order", "equal_work",
                                  "brkga-100", "random_orders", "local_search"])
def test_methods_stop_near_their_budget_on_a_large_graph(large, name):
    t0 = time.monotonic()
    out = HEURISTICS.make(name).run(large, 8, Budget(1.0), 0, raise_errors=True)
    elapsed = time.monotonic() - t0
    assert str(out.status) == "time_limit"
    assert out.partition is not None and not check_feasible(large, out.partition, k=8)
    # one exact slicing of one order takes tens of seconds here; the budget is 1 s
    assert elapsed < 12, elapsed


def test_reduce_instance_is_instant_without_zero_work_nodes_and_cached():
    inst = layered_dag(30, rng=5, name="positive")
    assert np.all(inst.work > 0)
    red, kept, host = reduce_instance(inst)
    assert red is inst and kept.tolist() == list(range(30)) == host.tolist()
    ops = layered_dag(300, rng=3, weight_fraction=0.3, name="ops")
    a = reduce_instance(ops)
    b = reduce_instance(ops)
    assert a[0] is b[0] and np.array_equal(a[1], b[1]) and a[0].n_nodes < ops.n_nodes


# ---------------------------------------------------------------------------- warm-up
def test_warm_up_loads_every_kernel_of_the_plan_and_reports_compilation():
    plan = build_plan()
    warm_up(plan)  # compile or load everything
    secs, compiled = warm_up(plan)
    assert compiled is False and secs >= 0.0  # all loaded now: nothing compiled again


def _all_signatures() -> int:
    """numba specialisations this process holds (compiled or loaded from the cache)."""
    import sys

    from numba.core.registry import CPUDispatcher

    n = 0
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(("heuristics", "formulations", "pipecert")):
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, CPUDispatcher):
                n += len(obj.signatures)
    return n


def test_warm_up_covers_the_kernels_real_graphs_use():
    """After the warm-up, a solve on real graphs (zero-work weight chains that the exact
    reductions contract, memory data, float costs) needs no new numba specialisation: the
    first timed run of a fresh install compiled 5.8 s inside brkga-100's 10 s budget when
    the warm-up ran a single 6-node random DAG."""
    from instances import resolve

    plan = build_plan()
    warm_up(plan)
    before = _all_signatures()
    for spec in ("models/bert-base-layers", "default/operator-0100", "default/comm-0100"):
        inst = resolve(spec)[0].load()
        solve(inst, 4, time_limit_s=3.0, plan=plan)
    assert _all_signatures() == before


# ---------------------------------------------------------------------------- closure
def _margin_bound(rel_below: float, rel_margin: float) -> type:
    """A formulation whose bound is OPT x (1 - rel_below), reporting a margin of OPT x
    rel_margin (as the MIP bounds do in stats["margin"])."""
    from formulations.base import FORMULATIONS, Formulation
    from pipecert.results import BoundResult, Status
    from pipecert.testing import brute_force

    class MarginBound(Formulation):
        name = "t_margin_bound"

        def lower_bound(self, instance, k, budget, context=None):  # type: ignore[no-untyped-def]
            opt, _ = brute_force(instance, k)
            return BoundResult(opt * (1 - rel_below), Status.OPTIMAL,
                               stats={"margin": opt * rel_margin})

    FORMULATIONS.register(MarginBound)
    return MarginBound


@pytest.mark.parametrize("rel_below, rel_margin, closes", [
    (1.2e-5, 2e-5, True),    # within the bound's own margin: the solvers' resolution
    (1.2e-5, 0.0, False),    # no margin recorded: the gap stays open
    (0.3, 0.5, False),       # a margin that swamps the bound closes nothing
])
def test_portfolio_closes_a_gap_within_the_bounds_numerical_margin(rel_below, rel_margin,
                                                                    closes):
    from experiments.portfolio import Step
    from formulations.base import FORMULATIONS
    from pipecert.testing import random_dag

    _margin_bound(rel_below, rel_margin)
    try:
        inst = random_dag(3, 7, name="margin")
        plan = [Step("heuristic", "brkga-100", 0.5),
                Step("bound", "t_margin_bound", 0.1),
                Step("heuristic", "downset_dp", 0.5)]  # proves OPT when the gap is open
        res = solve(inst, 3, time_limit_s=30.0, plan=plan)
        ran = [r.method for r in res.runs]
        assert ("downset_dp" not in ran) is closes, ran
        if closes:  # the reported gap is what was proven, not rounded to 0
            assert res.gap is not None and res.gap > 0
    finally:
        FORMULATIONS.unregister("t_margin_bound")
