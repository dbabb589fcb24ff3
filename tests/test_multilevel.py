"""The multilevel heuristic: contract suite, acyclic quotients, feasible and re-scored lifts."""

from __future__ import annotations

import numpy as np
import pytest

from heuristics import HEURISTICS
from heuristics.multilevel import Multilevel, coarsen_along_order, coarsen_once, quotient
from pipecert import Budget, Partition, SolveContext, check_feasible, evaluate
from pipecert.contract import HeuristicContract
from pipecert.instance import Instance
from pipecert.testing import random_constrained_dag, random_dag


class TestMultilevel(HeuristicContract):
    """Default (small graphs are solved uncoarsened) and forced coarsening to 2 nodes."""

    @pytest.fixture(params=[{}, {"coarse_nodes": 2}, {"coarse_nodes": 2, "refine": False}])
    def method(self, request: pytest.FixtureRequest) -> Multilevel:
        return Multilevel(**request.param)


def _levels(inst: Instance, cap: float, mem_cap: float, intervals: bool
            ) -> list[tuple[Instance, np.ndarray]]:
    """Every level of the coarsening (units first), with the map from the level below:
    matchings, or (``intervals``) pairs along a topological order."""
    out = []
    cur = inst
    if cur.n_units < cur.n_nodes:
        unit = np.asarray(cur.unit_of, dtype=np.int64)
        cur = quotient(cur, unit, cur.n_units)
        out.append((cur, unit))
    while cur.n_nodes > 1:
        cluster, nc = (coarsen_along_order if intervals else coarsen_once)(cur, cap, mem_cap)
        if nc == cur.n_nodes:
            break
        cur = quotient(cur, cluster, nc)  # raises on a cycle
        out.append((cur, cluster))
    return out


CASES = ([random_dag(s, 40, edge_prob=0.08) for s in range(6)]
         + [random_constrained_dag(s, 30, edge_prob=0.1, groups=0.2, memory="loose")
            for s in range(6)]
         + [random_constrained_dag(s, 30, edge_prob=0.1, memory="tight") for s in range(6)])


@pytest.mark.parametrize("intervals", [False, True], ids=["matching", "intervals"])
@pytest.mark.parametrize("inst", CASES, ids=lambda i: i.name)
def test_lift_is_feasible_and_no_worse_than_coarse(inst: Instance, intervals: bool) -> None:
    """Coarsening contracts something, every quotient is a DAG, and a partition of any level
    (a random slicing of its topological order) lifted to the fine graph is feasible when it
    is feasible on its level, with a re-scored value at most its coarse value."""
    rng = np.random.default_rng(0)
    levels = _levels(inst, cap=np.inf, mem_cap=np.inf
                     if inst.memory_limit is None else inst.memory_limit, intervals=intervals)
    assert levels and levels[-1][0].n_nodes < inst.n_nodes
    for depth, (coarse, _) in enumerate(levels):
        for k in (2, 3):
            cuts = sorted(rng.choice(np.arange(1, coarse.n_nodes), size=min(
                k - 1, coarse.n_nodes - 1), replace=False).tolist())
            part = Partition.from_slices(coarse.topo_order, cuts, k)
            stage = np.asarray(part.stage_of)
            for _, m in reversed(levels[:depth + 1]):
                stage = stage[m]
            fine = Partition(stage, k)
            if check_feasible(coarse, part, k=k):
                continue  # over the cap on the coarse level: nothing is claimed
            assert check_feasible(inst, fine, k=k) == []
            assert evaluate(inst, fine) <= evaluate(coarse, part) * (1 + 1e-9) + 1e-9


def test_coarsens_and_rescored_on_a_larger_graph() -> None:
    """A 300-node graph is coarsened; the graded run re-scores the
    lifted, refined partition (feasible) and it is no worse than the coarse solve alone."""
    inst = random_dag(7, 300, edge_prob=0.01)
    k = 4
    raw = Multilevel(coarse_nodes=30, refine=False).run(inst, k, Budget(60), 0,
                                                        raise_errors=True)
    ref = Multilevel(coarse_nodes=30).run(inst, k, Budget(60), 0, raise_errors=True)
    for out in (raw, ref):
        assert out.partition is not None and out.incumbent is not None
        assert check_feasible(inst, out.partition, k=k) == []
        assert out.incumbent == pytest.approx(evaluate(inst, out.partition))
        assert out.stats["n_coarse"] < out.stats["n_reduced"]  # it coarsened
    assert ref.incumbent is not None and raw.incumbent is not None
    assert ref.incumbent <= raw.incumbent * (1 + 1e-12)
    assert raw.incumbent <= raw.stats["coarse_value"] * (1 + 1e-9)


def test_registered_and_context_ignored() -> None:
    """The name resolves; an incumbent in the context does not break the run."""
    inst = random_dag(3, 12)
    m = HEURISTICS.make("multilevel[coarse_nodes=3]")
    opt = Multilevel(coarse_nodes=3).run(inst, 2, Budget(30), 0)
    out = m.run(inst, 2, Budget(30), 0, SolveContext(partition=opt.partition))
    assert out.partition is not None and check_feasible(inst, out.partition, k=2) == []
