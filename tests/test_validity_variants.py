"""Every registered method on every constrained variant it claims, against brute force.

docs/constraints.md. Parametrized over the ``FORMULATIONS`` and ``HEURISTICS`` registries at
collection time, one test per (method, variant) of :data:`pipecert.testing.VARIANTS`
(training graphs with and without memory caps, random groups, data-only edges, binding /
tight / impossible caps, mixtures, extreme costs; k from 1 to n + 1). A method that
declares a constraint in ``handles`` (or, for a bound, ``relaxes``) is tested on it with
no edit here; one that does not must answer ``unsupported`` with a reason. Every case
goes through the framework gate (``method.run``) and :func:`pipecert.testing.check_run`:

* a bound is at most OPT (``BOUND_RTOL``/``BOUND_ATOL``, as in tests/test_validity.py);
  an exact formulation at ``optimal`` equals OPT (up to its documented margin);
* a partition passes :func:`pipecert.partition.check_feasible` (order on ordering edges
  only, groups, memory cap) and is worth at least OPT; a heuristic at ``optimal`` (and the
  exact down-set DP always) is worth OPT;
* an infeasible instance (brute force finds no partition) gets ``infeasible`` (with a
  reason, no bound) or no partition, never a partition nor ``optimal``; a proof of
  infeasibility (``Instance.infeasible_reason``) gives ``infeasible``; a feasible
  instance is never called infeasible. (A finite lower bound on an infeasible instance
  whose infeasibility no method proved is valid, OPT being +inf: a bound that relaxes or
  does not decide the cap, like the combinatorial one, may report one.)
* an unclaimed active constraint gives ``unsupported`` with a reason, no bound, no
  partition; a method claiming every active constraint of a case is not
  ``unsupported`` on it.

Half the formulation cases run with the optimum as context (warm start, cutoff, proven
lower bound), as in tests/test_validity.py; the other MIP backends run the ``memory``
and ``mixed`` variants. Runtime: slow methods get fewer instances (``FEWER``). Measured
on main (where only ``combinatorial`` handles constraints): about 42 s of CPU for this
file and tests/test_core_constraints.py (about 25 s on 2 free cores); with every method
handling every constraint, about 90 s more CPU (measured on unconstrained stand-ins of
the same cases), so about a minute on 2 cores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from formulations import FORMULATIONS
from formulations.base import combinatorial_bound
from formulations.mip import available_solvers
from heuristics import HEURISTICS
from pipecert.partition import Partition
from pipecert.results import Budget, SolveContext, Status
from pipecert.testing import (
    VARIANTS,
    brute_force,
    check_formulation,
    check_heuristic,
    check_run,
    claimed_constraints,
    make_formulation,
    random_training_dag,
    variant_cases,
    warmup_instances,
    worked_example,
)

pytestmark = pytest.mark.solver

SEED = 12
#: instances per variant (each with 2-3 values of k)
COUNT = 8
#: fewer instances for the slow methods (same checks): ``best`` composes methods tested
#: on their own; the BRKGA presets run a fixed number of generations
FEWER = {"best": 2, "brkga": 2, "brkga-10000": 1, "tube": 3, "exact_mip": 4, "guess": 4,
         "bottleneck": 5}
#: heuristics checked for reproducibility (same seed, same value) on every n-th case
REPRO_EVERY = 4
#: heuristics that must always find OPT
EXACT = {"downset_dp"}
TIME_LIMIT_S = 60.0


#: the other MIP backends (the default one runs every variant): these variants, fewer
#: instances; ``best`` composes the MIPs and is not repeated per backend
OTHER_SOLVER_VARIANTS = ("memory", "mixed")
OTHER_SOLVER_COUNT = {"cvxpy:SCIP": 1}
OTHER_SOLVER_DEFAULT = 2


def _params() -> list:
    out = []
    for role, registry in (("bound", FORMULATIONS), ("heuristic", HEURISTICS)):
        for name in registry.names():
            for variant in VARIANTS:
                out.append(pytest.param(role, name, None, variant, id=f"{name}-{variant}"))
    solvers = available_solvers()
    for name in FORMULATIONS.names():
        cls = FORMULATIONS.get(name)
        if name == "best" or "solver" not in cls.param_names():
            continue
        default = cls.param_defaults()["solver"]
        for solver in solvers:
            if solver != default:
                for variant in OTHER_SOLVER_VARIANTS:
                    out.append(pytest.param("bound", name, solver, variant,
                                            id=f"{name}-{solver}-{variant}"))
    return out


def _make(role: str, name: str, solver: str | None):
    return make_formulation(name, solver) if role == "bound" else HEURISTICS.make(name)


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    """Compile (or load from numba's cache) every kernel before the checks, untimed."""
    tiny = [worked_example()] + [w for w in warmup_instances() if w.constraints]
    for inst in tiny:
        for name in HEURISTICS.names():
            HEURISTICS.make(name).run(inst, 2, Budget(time_limit_s=TIME_LIMIT_S), 0)


@pytest.mark.parametrize(("role", "name", "solver", "variant"), _params())
def test_method_on_variant(role: str, name: str, solver: str | None, variant: str) -> None:
    method = _make(role, name, solver)
    count = FEWER.get(name, COUNT) if solver is None else \
        OTHER_SOLVER_COUNT.get(solver, OTHER_SOLVER_DEFAULT)
    cases = [c for c in variant_cases(variant, COUNT, seed=SEED) if c.index < count]
    claimed = claimed_constraints(method)
    ran = unsupported = 0
    for i, case in enumerate(cases):
        inst, k = case.instance, case.k
        opt, part = case.solution
        ctx = None
        if role == "bound" and i % 2 == 1 and math.isfinite(opt):
            lb = combinatorial_bound(inst, k) if i % 4 == 1 else None
            ctx = SolveContext(upper_bound=opt, partition=part, lower_bound=lb)
        out = check_run(method, inst, k, solution=case.solution, context=ctx,
                        time_limit_s=TIME_LIMIT_S, exact=name in EXACT,
                        reproducible=role == "heuristic" and i % REPRO_EVERY == 0,
                        floor=ctx is not None)
        if ctx is not None:  # with the optimum known a bound always comes back
            assert out.status is Status.UNSUPPORTED or out.bound is not None, \
                f"{name} on {inst.name} (k={k}): no bound with the optimum as context"
        if out.status is Status.UNSUPPORTED:
            unsupported += 1
            assert not inst.constraints <= claimed, (
                f"{name} claims {sorted(claimed)} but is unsupported on {inst.name} "
                f"(k={k}, constraints {sorted(inst.constraints)}): {out.error}")
        else:
            ran += 1
    assert ran + unsupported == len(cases) > 0


def test_every_variant_has_its_constraints_and_infeasible_cases() -> None:
    """The generators make what the variants promise (else the suite tests less)."""
    want = {
        "training": {"groups", "data_only_edges"},
        "training-memory-loose": {"groups", "data_only_edges"},
        "training-memory-binding": {"groups", "data_only_edges", "memory"},
        "training-memory-tight": {"groups", "data_only_edges", "memory"},
        "groups": {"groups"},
        "data-only": {"data_only_edges"},
        "memory": {"memory"},
        "memory-loose": set(),
        "mixed": {"groups", "data_only_edges", "memory"},
        "extreme": {"groups", "data_only_edges", "memory"},
    }
    assert set(want) == set(VARIANTS)
    ks_seen: set[tuple[int, int]] = set()
    infeasible_all: list = []
    for variant, cons in want.items():
        cases = variant_cases(variant, COUNT, seed=SEED)
        seen = set().union(*(c.instance.constraints for c in cases))
        assert seen == cons, (variant, seen)
        for c in cases:
            ks_seen.add((c.k, c.instance.n_nodes))
            if variant in ("training", "groups", "data-only", "memory-loose"):
                assert math.isfinite(c.opt), (variant, c)
        infeasible = [c for c in cases if math.isinf(c.opt)]
        if variant in ("training-memory-tight", "memory", "mixed"):
            assert infeasible, f"{variant}: no infeasible case"
        if variant in ("training-memory-binding", "memory"):  # the cap changes the answer
            assert any(math.isfinite(c.opt)
                       and c.opt > brute_force(c.instance.relaxed("memory"), c.k)[0] + 1e-9
                       for c in cases), f"{variant}: the cap never binds"
        infeasible_all += infeasible
    assert any(k == 1 for k, _ in ks_seen) and any(k == n + 1 for k, n in ks_seen)
    # infeasible cases both proven by the gate (Instance.infeasible_reason) and not
    proven = [c for c in infeasible_all if c.instance.infeasible_reason(c.k)]
    assert proven and len(proven) < len(infeasible_all)


def test_extreme_costs_span_eighteen_orders_of_magnitude() -> None:
    vals = np.concatenate([np.r_[c.instance.work, c.instance.comm]
                           for c in variant_cases("extreme", COUNT, seed=SEED)])
    pos = vals[vals > 0]
    assert pos.min() <= 1e-9 and pos.max() >= 1e9 and (vals == 0).any()


def test_warmup_instances_cover_every_constraint() -> None:
    """A warm-up graph with every constraint active and feasible at k = 2 and 3 (the ks
    portfolio.warm_up runs), so constrained kernels compile before timed runs."""
    full = [w for w in warmup_instances()
            if w.constraints == {"groups", "memory", "data_only_edges"}]
    assert full
    for k in (2, 3):
        assert full[0].infeasible_reason(k) is None
        assert math.isfinite(brute_force(full[0], k)[0])


def _numba_signatures() -> int:
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


def test_warm_up_covers_the_kernels_of_constrained_graphs() -> None:
    """After the portfolio's warm-up, a solve on a constrained training graph (groups,
    data-only edges, a binding cap; larger than the warm-up graphs) needs no new numba
    specialisation: constrained kernels compile before the timed budget (as
    tests/test_limits.py checks for unconstrained graphs)."""
    from portfolio import build_plan, solve, warm_up

    plan = build_plan()
    warm_up(plan)
    before = _numba_signatures()
    for seed in (0, 1):
        inst = random_training_dag(seed, 12, memory="binding", orphan_prob=0.2,
                                   integer=bool(seed), name=f"train12-{seed}")
        assert inst.constraints == {"groups", "memory", "data_only_edges"}
        solve(inst, 4, time_limit_s=2.0, plan=plan)
    assert _numba_signatures() == before


# ------------------------------------------------------------ the checks catch cheaters
def _cheaters():
    """Methods that answer a different problem: the checks must reject each one."""
    from formulations.base import Formulation
    from heuristics.base import Heuristic
    from pipecert.results import BoundResult, HeuristicResult

    class OrdersDataOnly(Formulation):
        """Claims data-only edges but makes them ordering (a restricted problem)."""

        name = "t_orders_data_only"
        handles = frozenset({"groups", "memory", "data_only_edges"})

        def lower_bound(self, instance, k, budget, context=None):  # type: ignore[no-untyped-def]
            strict = instance.replace(orders=np.ones(instance.n_edges, dtype=bool))
            return BoundResult(brute_force(strict, k)[0], Status.OPTIMAL)

    class SplitsGroups(Heuristic):
        """Claims groups but returns the optimum of the problem without them."""

        name = "t_splits_groups"
        handles = frozenset({"groups", "data_only_edges", "memory"})

        def solve(self, instance, k, budget, rng, context=None):  # type: ignore[no-untyped-def]
            return HeuristicResult(brute_force(instance.relaxed("groups"), k)[1], Status.SOLVED)

    class IgnoresGate(Heuristic):
        """Claims nothing but says it supports every variant (bypassing the gate)."""

        name = "t_ignores_gate"

        def supports_variant(self, instance):  # type: ignore[no-untyped-def]
            return True, None

        def solve(self, instance, k, budget, rng, context=None):  # type: ignore[no-untyped-def]
            return HeuristicResult(brute_force(instance.relaxed("groups", "memory"), k)[1],
                                   Status.SOLVED)

    class FalseOptimal(Heuristic):
        """Claims optimality for a one-stage partition."""

        name = "t_false_optimal"
        handles = frozenset({"groups", "data_only_edges"})

        def solve(self, instance, k, budget, rng, context=None):  # type: ignore[no-untyped-def]
            return HeuristicResult(Partition(np.zeros(instance.n_nodes, np.int64), k),
                                   Status.OPTIMAL)

    return {"bound": OrdersDataOnly(), "split": SplitsGroups(), "gate": IgnoresGate(),
            "optimal": FalseOptimal()}


@pytest.mark.parametrize(("cheater", "match"), [
    ("bound", "the lower bound is invalid"),
    ("split", "infeasible partition|co-location group"),
    ("gate", "must return unsupported"),
    ("optimal", "exact or optimal"),
])
def test_the_checks_reject_a_method_answering_another_problem(cheater: str,
                                                              match: str) -> None:
    method = _cheaters()[cheater]
    check = check_formulation if cheater == "bound" else check_heuristic
    with pytest.raises(AssertionError, match=match):
        check(method, variants=("training", "training-memory-binding"), count=COUNT,
              seed=SEED, time_limit_s=10.0)


def test_plugin_checks_accept_variants_and_instances() -> None:
    """check_formulation / check_heuristic take variant names, instances or (instance, k)
    pairs and run every case through the gate (a method claiming nothing passes by
    answering unsupported)."""
    from formulations.combinatorial import CombinatorialBound
    from heuristics.order_baselines import InputOrder

    n_cases = sum(len(variant_cases(v, 2, seed=SEED)) for v in VARIANTS)
    assert check_formulation(CombinatorialBound(), variants="all", count=2,
                             seed=SEED) == n_cases
    assert check_heuristic(InputOrder(), variants="all", count=2, seed=SEED) == n_cases
    inst = random_training_dag(5, 3, memory="binding")
    assert check_formulation(CombinatorialBound(), cases=[inst], ks=(1, 2, 7)) == 3
    assert check_heuristic(InputOrder(), cases=[(inst, 2), (inst.relaxed("groups"), 3)]) == 2
