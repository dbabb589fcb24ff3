"""The portfolio package: improvers take the incumbent from the run context, the refine
step is an ordinary plan step run through the graded ``run``, methods are built from
parameters by the registry (no spec strings re-rendered), and ``best`` builds and runs its
components the same way."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from formulations import FORMULATIONS
from formulations.base import Formulation
from heuristics import HEURISTICS
from heuristics.base import Improver
from heuristics.local_search import refine_partition
from heuristics.tube import tube_search
from pipecert import Instance, Partition, check_feasible, evaluate
from pipecert.errors import InputError
from pipecert.results import Budget, SolveContext, Status
from pipecert.testing import brute_force, random_dag
from portfolio import (
    DEFAULT_PLAN,
    REFINE_TUBE,
    Step,
    StepKind,
    build_plan,
    make_method,
    plan_for,
    solve,
    warm_up,
)


def _inst(seed: int = 3, n: int = 14) -> Instance:
    return random_dag(seed, n, edge_prob=0.3, regime="mixed", name=f"pf{seed}")


def _poor(inst: Instance, k: int) -> Partition:
    """A feasible but poor partition: the input order sliced into k nearly equal counts."""
    order = np.asarray(inst.topo_order)
    n = inst.n_nodes
    cuts = [round(n * (i + 1) / k) for i in range(k - 1)]
    part = Partition.from_slices(order, cuts, k)
    assert not check_feasible(inst, part, k=k)
    return part


# ------------------------------------------------------------- improvers from the context
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_local_search_refines_the_incumbent_of_the_context(seed: int) -> None:
    inst, k = _inst(seed), 4
    start = _poor(inst, k)
    out = HEURISTICS.make("local_search").run(inst, k, Budget(), 0,
                                              SolveContext(partition=start))
    assert out.status is Status.FEASIBLE and out.stats["start"] == "incumbent"
    assert "base" not in out.stats  # no starting heuristic ran
    expect, _ = refine_partition(inst, start, k, Budget())
    assert out.incumbent == pytest.approx(evaluate(inst, expect))
    assert out.incumbent <= evaluate(inst, start) + 1e-12


@pytest.mark.parametrize("seed", [1, 4])
def test_tube_improves_the_incumbent_of_the_context(seed: int) -> None:
    inst, k = _inst(seed), 3
    start = _poor(inst, k)
    tube = HEURISTICS.make(REFINE_TUBE)
    out = tube.run(inst, k, Budget(), 0, SolveContext(partition=start))
    expect, st = tube_search(inst, start, k, Budget(), width=1, max_width=4,
                             max_ideals=50_000)
    assert out.stats["start"] == "incumbent"
    assert out.incumbent == pytest.approx(evaluate(inst, expect))
    # the tube held every down-set: the answer is optimal, and says so
    assert (out.status is Status.OPTIMAL) == bool(st.get("tube_optimal"))
    if out.status is Status.OPTIMAL:
        assert out.incumbent == pytest.approx(brute_force(inst, k)[0])


def test_an_improver_without_an_incumbent_starts_from_its_start_heuristic() -> None:
    inst, k = _inst(5), 4
    out = HEURISTICS.make("local_search").run(inst, k, Budget(), 0)
    base = HEURISTICS.make("input_order").run(inst, k, Budget(), 0)
    assert out.stats["base"] == "input_order"
    expect, _ = refine_partition(inst, base.partition, k, Budget())
    assert out.incumbent == pytest.approx(evaluate(inst, expect))


def test_the_old_base_form_still_runs_its_base_and_ignores_the_incumbent() -> None:
    inst, k = _inst(6), 4
    ctx = SolveContext(partition=_poor(inst, k))
    out = HEURISTICS.make("local_search[base=dfs_order]").run(inst, k, Budget(), 0, ctx)
    assert out.stats["base"] == "dfs_order" and "start" not in out.stats
    dfs = HEURISTICS.make("dfs_order").run(inst, k, Budget(), 0)
    expect, _ = refine_partition(inst, dfs.partition, k, Budget())
    assert out.incumbent == pytest.approx(evaluate(inst, expect))
    out = HEURISTICS.make("tube[base=input_order,width=0,max_width=1]").run(
        inst, k, Budget(), 0, ctx)
    assert out.stats["base"] == "input_order"


def test_an_infeasible_incumbent_is_an_error_of_the_run() -> None:
    inst, k = _inst(7), 3
    stage = np.zeros(inst.n_nodes, dtype=np.int64)
    stage[int(inst.src[0])] = k - 1  # a producer after its consumer: ordering violated
    bad = Partition(stage, k)
    assert check_feasible(inst, bad, k=k)
    out = HEURISTICS.make("local_search").run(inst, k, Budget(), 0,
                                              SolveContext(partition=bad))
    assert out.status is Status.ERROR and "not a feasible partition" in out.error


class _Keep(Improver):
    """Test improver: moves nothing, counts its calls (an out-of-tree improvement step)."""

    name = "t14_keep"
    calls: ClassVar[list[Partition]] = []

    def __init__(self, *, base: str | None = None) -> None:
        self.base = base

    def improve(self, instance: Instance, k: int, partition: Partition, budget: Budget,
                rng: np.random.Generator, context: SolveContext | None = None
                ) -> tuple[Partition, Status, dict[str, Any]]:
        type(self).calls.append(partition)
        return partition, Status.FEASIBLE, {"kept": True}


@pytest.fixture
def keep() -> Any:
    HEURISTICS.register(_Keep)
    _Keep.calls.clear()
    yield _Keep.name
    HEURISTICS.unregister(_Keep.name)


# --------------------------------------------------------------- the refine plan step
def test_the_refine_step_is_a_graded_plan_step_on_the_incumbent(keep: str) -> None:
    inst, k = _inst(8), 4
    plan = [Step("heuristic", "input_order", 0.5), Step("refine", keep, 0.5),
            Step("refine", "local_search", 1.0)]
    res = solve(inst, k, time_limit_s=30, plan=plan)
    methods = [r.method for r in res.runs]
    assert methods == ["input_order", keep, "local_search"]
    assert all(r.role == "heuristic" for r in res.runs)
    base = HEURISTICS.make("input_order").run(inst, k, Budget(), 0)
    # the improver got the incumbent (input_order's partition), from the context
    assert len(_Keep.calls) == 1
    assert np.array_equal(_Keep.calls[0].stage_of, base.partition.stage_of)
    expect, _ = refine_partition(inst, base.partition, k, Budget())
    assert res.upper_bound == pytest.approx(min(base.incumbent, evaluate(inst, expect)))
    assert not check_feasible(inst, res.partition, k=k)


def test_a_refine_step_without_an_incumbent_does_not_run(keep: str) -> None:
    inst = _inst(9)
    res = solve(inst, 3, time_limit_s=10, plan=[Step("refine", keep, 1.0),
                                                 Step("bound", "combinatorial", 1.0)])
    assert [r.method for r in res.runs] == ["combinatorial"] and not _Keep.calls


def test_an_improver_that_makes_the_partition_infeasible_is_graded_as_an_error() -> None:
    class Breaker(Improver):
        name = "t14_break"

        def __init__(self, *, base: str | None = None) -> None:
            self.base = base

        def improve(self, instance, k, partition, budget, rng, context=None):  # type: ignore[no-untyped-def]
            stage = np.asarray(partition.stage_of).copy()
            stage[np.asarray(instance.topo_order)[0]] = k - 1
            stage[np.asarray(instance.topo_order)[-1]] = 0
            return Partition(stage, k), Status.FEASIBLE, {}

    HEURISTICS.register(Breaker)
    try:
        inst = _inst(10)
        plan = [Step("heuristic", "input_order", 0.5), Step("refine", "t14_break", 1.0)]
        res = solve(inst, 3, time_limit_s=10, plan=plan)
    finally:
        HEURISTICS.unregister("t14_break")
    assert res.runs[1].status == "error" and "infeasible partition" in res.runs[1].error
    assert res.upper_method == "input_order"  # the incumbent is kept


def test_the_default_plan_refines_with_local_search_then_the_tube() -> None:
    refine = [s.spec for s in DEFAULT_PLAN if s.role is StepKind.REFINE]
    assert refine == ["local_search", REFINE_TUBE] * 2
    assert all(s.name in s.role.registry() for s in DEFAULT_PLAN)
    inst = _inst(11, n=12)
    warm_up(DEFAULT_PLAN)  # compile outside the clock
    res = solve(inst, 3, time_limit_s=60)  # stops once the gap is closed
    assert res.closed and res.upper_bound == pytest.approx(brute_force(inst, 3)[0])


def test_warm_up_runs_the_refine_steps(keep: str) -> None:
    secs, _ = warm_up([Step("heuristic", "bfs_order", 1.0), Step("refine", keep, 1.0)])
    assert secs >= 0 and _Keep.calls  # the improver ran on bfs_order's partition


# ------------------------------------------------- methods built from parameters
def test_make_method_passes_the_solver_as_a_parameter() -> None:
    assert make_method(Step("bound", "guess", 1.0), "cpsat").solver == "cpsat"
    assert make_method(Step("bound", "guess[solver=scipy]", 1.0), "cpsat").solver == "scipy"
    assert make_method(Step("bound", "guess", 1.0)).solver == "highs"
    # a bound without a solver parameter, a heuristic: the solver is not theirs
    assert make_method(Step("bound", "combinatorial", 1.0), "cpsat").method_id() \
        == "combinatorial"
    assert make_method(Step("heuristic", "brkga-100", 1.0), "cpsat").method_id() \
        == "brkga-100"


def test_make_method_never_renders_a_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipecert.registry as registry

    step = Step("bound", "guess[variant=min]", 1.0)

    def no_parse(spec: str) -> Any:
        raise AssertionError(f"spec {spec!r} parsed again")

    monkeypatch.setattr(registry, "parse_method_spec", no_parse)
    m = make_method(step, "cpsat")
    assert m.params()["variant"] == "min" and m.solver == "cpsat"


def test_registry_create_checks_names_and_parameters() -> None:
    with pytest.raises(InputError, match="unknown formulation"):
        FORMULATIONS.create("no_such_bound")
    with pytest.raises(InputError, match="bad parameters"):
        FORMULATIONS.create("guess", {"no_such_param": 1})
    assert FORMULATIONS.create("guess", {"solver": "scipy"},
                               settings={"solver": "cpsat", "other": 1}).solver == "scipy"


def test_steps_parse_their_spec_once_and_compare_by_value() -> None:
    s = Step("bound", "guess[variant=min]", 0.5)
    assert s.role is StepKind.BOUND and s.role == "bound"
    assert s.name == "guess" and dict(s.params) == {"variant": "min"}
    assert s == Step(StepKind.BOUND, "guess[variant=min]", 0.5)
    with pytest.raises(ValueError):
        Step("sideways", "guess", 1.0)
    with pytest.raises(InputError):
        Step("bound", "guess[", 1.0)


def test_build_plan_and_plan_for() -> None:
    plan = build_plan(["input_order"], ["guess"])
    assert [(s.role, s.spec) for s in plan] == [("heuristic", "input_order"),
                                                ("bound", "guess")]
    assert [s.share for s in plan] == [0.5, 1.0]
    with pytest.raises(InputError):
        build_plan(["no_such_heuristic"])
    inst = _inst(12)
    assert plan_for(DEFAULT_PLAN, inst) == list(DEFAULT_PLAN)


# ------------------------------------------------------------------------- best
def test_best_builds_its_components_with_the_solver_parameter() -> None:
    best = FORMULATIONS.make("best[methods=('combinatorial','guess','guess[solver=scipy]'),"
                             "solver='cpsat']")
    comps = [best._make(s) for s in best._specs()]
    assert [c.method_id() for c in comps] == [
        "combinatorial", "guess[solver=cpsat]", "guess[solver=scipy]"]


def test_best_runs_its_components_through_the_graded_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    graded = Formulation.run

    def spy(self: Formulation, *a: Any, **kw: Any) -> Any:
        seen.append(self.method_id())
        return graded(self, *a, **kw)

    monkeypatch.setattr(Formulation, "run", spy)
    inst = _inst(13)
    out = FORMULATIONS.make("best[methods=('combinatorial','node_bound')]").run(
        inst, 3, Budget(30))
    assert seen == ["best[methods=('combinatorial', 'node_bound')]", "combinatorial",
                    "node_bound"] or seen[1:] == ["combinatorial", "node_bound"]
    assert out.bound is not None and out.bound <= brute_force(inst, 3)[0] + 1e-9


def test_best_is_discovered_with_the_formulations() -> None:
    """``pipecert list`` lists ``FORMULATIONS``: importing the package registers best."""
    import subprocess
    import sys
    from pathlib import Path

    code = "import formulations; print('best' in formulations.FORMULATIONS.names())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    assert out.stdout.strip() == "True"


def test_a_refine_step_gives_partitions_only(keep: str) -> None:
    """An improver that says ``optimal`` improves the partition; the bound is left to the
    bounds and exact heuristics (as when refining was not a plan step)."""
    class Sure(_Keep):
        name = "t14_sure"

        def improve(self, instance, k, partition, budget, rng, context=None):  # type: ignore[no-untyped-def]
            return partition, Status.OPTIMAL, {}

    HEURISTICS.register(Sure)
    try:
        inst = _inst(14)
        plan = [Step("heuristic", "input_order", 0.5), Step("refine", "t14_sure", 1.0)]
        res = solve(inst, 3, time_limit_s=10, plan=plan)
    finally:
        HEURISTICS.unregister("t14_sure")
    assert res.runs[1].status == "optimal"
    assert res.lower_method == "combinatorial"
