"""The exact down-set DP and the tube search on the constrained problem.

Oracle: brute force over all partitions (``pipecert.testing.brute_force``, which enforces
co-location groups, the memory cap and orders stages along ordering edges only). Cases:
random training graphs (forward chain with skips, mirrored backward nodes in the forward
node's group, data-only gradient and stash edges; memory None / loose / binding / tight;
orphaned layers; comm- and compute-heavy regimes; float costs), random DAGs with random
groups, random data-only edges and memory caps, every k from 1 to n + 1; the unit
reductions A and B; infeasible caps; and the peer's optima on the shared training graphs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from heuristics.downset_dp import (
    DownsetDP,
    downset_solve,
    lift_units,
    reduce_instance,
    reduce_units,
    slice_units,
)
from heuristics.tube import TubeSearch, tube_search
from pipecert.instance import Instance
from pipecert.partition import Partition, check_feasible, evaluate
from pipecert.results import Budget, Status
from pipecert.testing import (  # the oracle's independent feasibility and cost code
    _constrained_rows,
    _costs_of_rows,
    brute_force,
    enumerate_partitions,
    random_dag,
    random_training_dag,
)

RNG = np.random.default_rng


def _close(a: float | None, b: float | None) -> bool:
    assert a is not None and b is not None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def opt_every_k(inst: Instance) -> list[float]:
    """``OPT(k)`` for ``k = 0..n`` from one brute-force enumeration.

    Dropping the empty stages of a feasible partition keeps it feasible with the same
    cost, so ``OPT(k)`` is the least cost of the rows with at most ``k`` non-empty stages;
    a feasible partition has at most ``n_units`` non-empty stages (whole units per stage),
    so ``n_units`` stages are enumerated. Uses the brute-force oracle's own (independent)
    feasibility and cost code.
    """
    n = inst.n_nodes
    m = inst.n_units
    rows = _constrained_rows(inst, enumerate_partitions(inst, m))
    if len(rows) == 0:
        return [math.inf] * (n + 1)
    cost = _costs_of_rows(inst, rows, m)
    used = np.zeros(len(rows), dtype=np.int64)
    for b in range(m):
        used += (rows == b).any(axis=1)
    return [float(cost[used <= k].min()) if (used <= k).any() else math.inf
            for k in range(n + 1)]


def _check_dp(inst: Instance, k: int, *, reduce: bool = True,
              opt: float | None = None) -> None:
    """DownsetDP.run equals brute force (value or infeasibility), partition feasible."""
    if opt is None:
        opt, _ = brute_force(inst, k)
    out = DownsetDP(reduce=reduce).run(inst, k, raise_errors=True)
    where = f"{inst.name} k={k} reduce={reduce} constraints={sorted(inst.constraints)}"
    if math.isinf(opt):
        assert out.status is Status.INFEASIBLE, f"{where}: {out.status} (OPT infeasible)"
        assert out.partition is None and out.error, where
        return
    assert out.status is Status.OPTIMAL, f"{where}: {out.status} {out.error}"
    assert out.partition is not None
    assert not check_feasible(inst, out.partition, k=k), where
    assert _close(out.incumbent, opt), f"{where}: DP {out.incumbent} != OPT {opt}"


def _group_dag(seed: int, n: int, *, memory: str | None, data_only_prob: float,
               regime: str = "mixed", integer: bool = True) -> Instance:
    """random_dag with random co-location groups, data-only edges and a memory cap."""
    gen = RNG(seed)
    inst = random_dag(gen, n, edge_prob=0.4, regime=regime, integer=integer,
                      precedence_prob=0.1, memory=memory is not None)
    groups = gen.integers(-2, max(1, n // 2), size=n)  # several groups, some nodes free
    groups[groups < 0] = -1
    orders = gen.random(inst.n_edges) >= data_only_prob
    kw: dict[str, object] = {"groups": groups, "orders": orders}
    if memory is not None:
        assert inst.memory is not None
        total = float(inst.memory.sum())
        kw["memory_limit"] = {"loose": total, "binding": 0.45 * total,
                              "tight": 0.3 * total}[memory]
    return inst.replace(**kw)


# ------------------------------------------------------------------ DP vs brute force
@pytest.mark.parametrize("memory", [None, "loose", "binding", "tight"])
@pytest.mark.parametrize("regime", ["mixed", "comm", "compute"])
def test_dp_equals_brute_force_on_training_dags(memory: str | None, regime: str) -> None:
    for seed in range(6):
        gen = RNG(1000 * seed + len(regime))
        L = int(gen.integers(2, 5))
        inst = random_training_dag(gen, L, memory=memory, regime=regime,
                                   orphan_prob=0.3 if seed % 2 else 0.0,
                                   integer=seed % 3 != 2, zero_prob=0.3)
        opts = opt_every_k(inst)
        for k in range(1, inst.n_nodes + 2):
            _check_dp(inst, k, opt=opts[min(k, inst.n_nodes)])
        _check_dp(inst, 2, reduce=False, opt=opts[2])


@pytest.mark.parametrize("seed", range(8))
def test_dp_equals_brute_force_on_five_layer_training_dags(seed: int) -> None:
    gen = RNG(77 + seed)
    memory = [None, "loose", "binding", "tight"][seed % 4]
    inst = random_training_dag(gen, 5, memory=memory, orphan_prob=0.2, zero_prob=0.4,
                               integer=seed % 2 == 0)
    for k in (1, 2, 3, 4):
        _check_dp(inst, k)


@pytest.mark.parametrize("memory", [None, "loose", "binding", "tight"])
def test_dp_equals_brute_force_on_random_dags_with_groups(memory: str | None) -> None:
    for seed in range(10):
        n = 5 + seed % 4
        inst = _group_dag(seed, n, memory=memory, data_only_prob=0.35,
                          regime=["mixed", "comm", "compute"][seed % 3], integer=seed % 2 == 0)
        opts = opt_every_k(inst)
        for k in range(1, n + 2):
            _check_dp(inst, k, opt=opts[min(k, n)])


def test_the_dp_never_orders_along_a_data_only_edge() -> None:
    # c -> a orders; a -> b is data-only; b shares a group with c. Ordering a -> b would
    # force c <= a <= b = c (one stage, 12); data-only, {b, c} before {a} gives 11.
    inst = Instance(["a", "b", "c"], [1, 10, 1], [0, 0, 0], [("c", "a")],
                    data_only_edges=[("a", "b")], groups=[-1, 0, 0])
    assert inst.constraints == {"groups", "data_only_edges"}
    out = DownsetDP().run(inst, 2, raise_errors=True)
    assert out.status is Status.OPTIMAL and _close(out.incumbent, 11.0)
    assert out.partition is not None
    assert out.partition.stage_of[inst.index["a"]] > out.partition.stage_of[inst.index["b"]]
    _check_dp(inst, 2)


# ------------------------------------------------------------------ infeasible caps
def test_infeasible_caps_return_infeasible_with_a_reason() -> None:
    seen = 0
    for seed in range(40):
        inst = random_training_dag(RNG(seed), 4, memory="tight", zero_prob=0.2)
        for k in (2, 3):
            opt, _ = brute_force(inst, k)
            if not math.isinf(opt):
                continue
            seen += 1
            out = DownsetDP().run(inst, k, raise_errors=True)
            assert out.status is Status.INFEASIBLE and out.error, (seed, k)
            res = DownsetDP().solve(inst, k, Budget(), RNG(0))
            # either the DP itself proves it (the cap cannot be met by any chain of
            # ideals) or the run's necessary conditions caught it before
            if inst.infeasible_reason(k) is None:
                assert res.status is Status.INFEASIBLE and res.partition is None
                assert "memory cap" in res.stats["reason"]
    assert seen >= 5


def test_dp_proves_infeasibility_that_the_simple_conditions_miss() -> None:
    # chain a -> b -> c with memory (2, 2, 2), cap 3: every unit fits, total 6 <= 2 x 3,
    # yet no 2-stage split of the chain fits (a+b or b+c = 4 > 3)
    inst = Instance(["a", "b", "c"], [1, 1, 1], [1, 1, 1], [("a", "b"), ("b", "c")],
                    memory=[2, 2, 2], memory_limit=3.0, groups=[0, 1, 2])
    assert inst.infeasible_reason(2) is None
    res = DownsetDP().solve(inst, 2, Budget(), RNG(0))
    assert res.status is Status.INFEASIBLE and res.partition is None
    assert "no partition into at most 2 stages meets the memory cap" in res.stats["reason"]
    assert DownsetDP().run(inst, 2).status is Status.INFEASIBLE
    out = DownsetDP().run(inst, 3, raise_errors=True)
    assert out.status is Status.OPTIMAL and _close(out.incumbent, 3.0)  # {b}: 1 + in + out


def test_a_binding_cap_changes_the_answer_and_is_respected() -> None:
    changed = 0
    for seed in range(30):
        inst = random_training_dag(RNG(seed), 4, memory="binding")
        free = inst.relaxed("memory")
        for k in (2, 3):
            a = DownsetDP().run(inst, k, raise_errors=True)
            b = DownsetDP().run(free, k, raise_errors=True)
            if a.status is Status.INFEASIBLE:
                continue
            assert a.partition is not None and not check_feasible(inst, a.partition, k=k)
            assert a.incumbent is not None and b.incumbent is not None
            assert a.incumbent >= b.incumbent - 1e-9
            changed += a.incumbent > b.incumbent + 1e-9
    assert changed >= 3


# ------------------------------------------------------------------ unit reductions
@pytest.mark.parametrize("seed", range(30))
def test_unit_reductions_keep_opt_and_lift_with_equal_cost(seed: int) -> None:
    gen = RNG(500 + seed)
    if seed % 2:
        inst = random_training_dag(gen, 4, zero_prob=0.5, orphan_prob=0.3,
                                   memory=[None, "loose", "binding"][seed % 3])
    else:
        inst = _group_dag(seed, 7, memory=[None, "binding"][seed % 4 // 2],
                          data_only_prob=0.3)
        inst = inst.replace(work=np.where(gen.random(7) < 0.5, 0.0, inst.work))
    red, kept, rep = reduce_units(inst)
    assert red.constraints <= inst.constraints | {"groups"}
    for k in (1, 2, 3, 4):
        opt, part = brute_force(inst, k)
        ropt, rpart = brute_force(red, k)
        if math.isinf(opt):
            assert math.isinf(ropt)
            continue
        assert _close(opt, ropt), (seed, k, opt, ropt)
        assert part is not None and rpart is not None
        lifted = lift_units(inst, kept, rpart.stage_of, k)
        assert not check_feasible(inst, lifted, k=k)
        assert _close(evaluate(inst, lifted), ropt)
        # the exchange: an optimal partition of inst moved to the reduced units
        norm = Partition(part.stage_of[rep], k)
        assert not check_feasible(red, norm, k=k)
        assert evaluate(red, norm) <= opt + 1e-9


def test_unit_reductions_on_a_zero_work_sink_and_source() -> None:
    # s (zero work, feeds only x) joins x; t (zero work sink of x) joins x;
    # z (zero work, no producers, comm 0) is removed to stage 0
    inst = Instance(["s", "x", "y", "t", "z"], [0, 4, 4, 0, 0], [3, 1, 1, 0, 0],
                    [("s", "x"), ("x", "y"), ("x", "t"), ("z", "y")],
                    data_only_edges=[("y", "x")], groups=[-1, 0, 1, -1, -1])
    red, kept, rep = reduce_units(inst)
    assert [red.ids[i] for i in range(red.n_nodes)] == ["s", "x", "y", "t"]
    assert red.n_units == 2
    assert inst.ids[int(rep[red.index["t"]])] == "x"
    assert reduce_instance(inst)[0] is inst  # rules 1-4 never run on a constrained one


def test_memory_keeps_a_zero_work_unit_with_memory_apart() -> None:
    # t has zero work but memory: merging it into x could break the cap, so it stays
    inst = Instance(["x", "t", "y"], [4, 0, 4], [1, 0, 1], [("x", "t"), ("x", "y")],
                    memory=[2, 2, 2], memory_limit=4.0, groups=[-1, -1, -1])
    red, _, _ = reduce_units(inst)
    assert red is inst
    _check_dp(inst, 2)


# ------------------------------------------------------------------ incumbent
def test_unit_slicing_incumbent_is_feasible_and_not_below_opt() -> None:
    for seed in range(20):
        inst = random_training_dag(RNG(seed), 4, memory=["binding", None][seed % 2],
                                   orphan_prob=0.3)
        for k in (1, 2, 3, 5):
            opt, _ = brute_force(inst, k)
            got = slice_units(inst, k)
            if got is None:
                continue
            val, part = got
            assert not check_feasible(inst, part, k=k)
            assert _close(val, evaluate(inst, part)) and val >= opt - 1e-9


def test_the_context_partition_prunes_without_changing_the_optimum() -> None:
    from pipecert.results import SolveContext

    inst = random_training_dag(RNG(3), 5, memory="binding")
    for k in (2, 3, 4):
        plain = DownsetDP().run(inst, k, raise_errors=True)
        if plain.partition is None:
            continue
        ctx = SolveContext(upper_bound=plain.incumbent, partition=plain.partition)
        again = DownsetDP().run(inst, k, context=ctx, raise_errors=True)
        assert again.status is Status.OPTIMAL and _close(again.incumbent, plain.incumbent)


# ------------------------------------------------------------------ tube search
@pytest.mark.parametrize("seed", range(12))
def test_tube_never_worse_than_its_start_and_feasible(seed: int) -> None:
    gen = RNG(900 + seed)
    inst = random_training_dag(gen, 5, memory=[None, "loose", "binding"][seed % 3],
                               orphan_prob=0.3, zero_prob=0.3)
    for k in (2, 3, 4):
        opt, _ = brute_force(inst, k)
        start = slice_units(inst, k)
        if start is None:
            continue
        for width in (0, 1, k):
            out, st = tube_search(inst, start[1], k, width=width)
            assert not check_feasible(inst, out, k=k), (seed, k, width)
            val = evaluate(inst, out)
            assert opt - 1e-9 <= val <= start[0] + 1e-9, (seed, k, width)
            if width >= k:  # a tube wider than the stage count is the whole lattice
                assert _close(val, opt), (seed, k, val, opt)


def test_tube_method_runs_on_constrained_instances() -> None:
    for seed in range(6):
        inst = random_training_dag(RNG(seed), 4, memory=[None, "binding"][seed % 2],
                                   orphan_prob=0.3)
        for k in (2, 3):
            opt, _ = brute_force(inst, k)
            out = TubeSearch(base="brkga-100").run(inst, k, rng=0, raise_errors=True)
            if math.isinf(opt):
                assert out.partition is None
                continue
            assert out.partition is not None, out.error
            assert not check_feasible(inst, out.partition, k=k)
            assert out.incumbent is not None and out.incumbent >= opt - 1e-9
            if out.status is Status.OPTIMAL:  # claimed only when the tube was the lattice
                assert out.stats["tube_optimal"] and _close(out.incumbent, opt)


def test_downset_solve_in_a_tube_keeps_its_centre() -> None:
    inst = random_training_dag(RNG(5), 5, memory="binding")
    got = slice_units(inst, 3)
    assert got is not None
    st, part, _ = downset_solve(inst, 3, Budget(), upper=got,
                                tube=(got[1].stage_of, 0))
    assert st is Status.OPTIMAL and part is not None
    assert evaluate(inst, part) <= got[0] + 1e-9


# ------------------------------------------------------------------ the peer's optima
PEER: dict[str, list[float | None]] = {
    "bert24": [109.917906, 58.545813, 33.378813, 16.792813, 9.536914, 9.536914],
    "resnet50": [None, 117.296070, 59.165625, 32.366406, 19.033777, 19.033777],
    "gnmt": [263.365695, 137.153902, 82.881621, 76.849414, 76.849414, 76.849414],
}
KS = (2, 4, 8, 16, 32, 64)


@pytest.mark.parametrize("graph", sorted(PEER))
def test_peer_optima_on_the_shared_training_graphs(graph: str, shared_instances: Path) -> None:
    """Tarnawski et al.'s exact DP (dnn-partitioning, maxCPUs = 0, maxFPGAs = k) on the
    training layer graphs read with their groups and caps; resnet50 k = 2 is infeasible
    (38.8 GB > 2 x 17.2 GB). All three graphs at every k take well under a second (gnmt
    thanks to the unit reductions: without them it has more than 3 million ideals)."""
    from instances.io import read_instance

    inst = read_instance(shared_instances / "dnn-partitioning" / "LayerGraphs"
                         / f"{graph}_training.json")
    assert {"groups", "data_only_edges"} <= inst.constraints
    t0 = time.perf_counter()
    for k, want in zip(KS, PEER[graph], strict=True):
        out = DownsetDP().run(inst, k, raise_errors=True)
        if want is None:
            assert out.status is Status.INFEASIBLE and "total memory" in (out.error or "")
            continue
        assert out.status is Status.OPTIMAL, (graph, k, out.error)
        assert out.partition is not None and not check_feasible(inst, out.partition, k=k)
        assert out.incumbent is not None
        assert math.isclose(out.incumbent, want, rel_tol=1e-6), (graph, k, out.incumbent)
        if graph != "gnmt" and k in (4, 16):  # the same without the unit reductions
            raw = DownsetDP(reduce=False).run(inst, k, raise_errors=True)
            assert raw.status is Status.OPTIMAL and raw.incumbent is not None
            assert math.isclose(raw.incumbent, want, rel_tol=1e-6), (graph, k, raw.incumbent)
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("seed", range(10))
def test_unit_rules_after_rules_1_to_4_on_the_papers_problem(seed: int) -> None:
    # zero-work-heavy graphs: rules 1-4 then A-B (co-location on the reduced instance)
    inst = random_dag(RNG(3000 + seed), 8, edge_prob=0.3, zero_prob=0.5,
                      precedence_prob=0.1)
    assert not inst.constraints
    opts = opt_every_k(inst)
    for k in (1, 2, 3, 4, 9):
        _check_dp(inst, k, opt=opts[min(k, inst.n_nodes)])
