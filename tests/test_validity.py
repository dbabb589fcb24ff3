"""Every registered formulation, on every supported backend, against brute-force optima.

Parametrized over the ``FORMULATIONS`` registry at collection time: a bound added by a new
module is checked here with no test edit. For each (case, k) it asserts

* the raw bound of ``lower_bound`` is <= OPT (within ``BOUND_RTOL``/``BOUND_ATOL``);
* a returned partition is feasible and no better than OPT;
* an ``exact`` method reporting ``optimal`` equals OPT (up to its documented safety margin);
* on every other case, instead, :meth:`Formulation.run` with the optimum as context
  (upper bound, partition, and a proven lower bound, which exercises warm starts, cutoffs
  and ``T >= lower_bound``) never errors and never reports a bound above OPT.

Methods with a ``solver`` parameter run on every installed backend (``highs``, ``scipy``,
``cpsat``, ``cvxpy:SCIP``...), the default backend on the most cases.
"""

from __future__ import annotations

from functools import cache

import pytest

from formulations import FORMULATIONS
from formulations.base import combinatorial_bound
from formulations.mip import available_solvers
from pipecert.partition import check_feasible, evaluate
from pipecert.results import Budget, SolveContext, Status
from pipecert.testing import (
    assert_bound_valid,
    brute_force,
    make_formulation,
    meets_optimum,
    small_cases,
)

pytestmark = pytest.mark.solver

#: (case count, ks) per backend: the default backend gets the most cases; cvxpy adds a
#: compile step per model and SCIP a start-up cost, so they get fewer.
DEFAULT_PLAN = (150, (1, 2, 3, 4))
BEST_PLAN = (60, (1, 2, 3, 4))
OTHER_PLAN = {"scipy": (30, (2, 3, 4)), "cpsat": (40, (2, 3, 4)),
              "cvxpy:SCIP": (10, (2, 3)), "cvxpy:HIGHS": (16, (2, 3)),
              "cvxpy:SCIPY": (16, (2, 3))}
OTHER_DEFAULT = (12, (2, 3))
SEED = 4242
MAX_NODES = 7
TIME_LIMIT_S = 10.0

CASES = list(small_cases(DEFAULT_PLAN[0], seed=SEED, max_nodes=MAX_NODES))


@cache
def _opt(i: int, k: int):
    return brute_force(CASES[i], k)


def _tol(x: float) -> float:
    return 1e-9 + 1e-6 * abs(x)


def _params() -> list:
    out = []
    solvers = available_solvers()
    for name in FORMULATIONS.names():
        cls = FORMULATIONS.get(name)
        if "solver" in cls.param_names():
            default = cls.param_defaults()["solver"]
            for s in [default] + [s for s in solvers if s != default]:
                if s == default:
                    plan = BEST_PLAN if name == "best" else DEFAULT_PLAN
                else:
                    plan = OTHER_PLAN.get(s, OTHER_DEFAULT)
                    if name == "best":
                        plan = (max(4, plan[0] // 3), plan[1])
                out.append(pytest.param(name, s, plan, id=f"{name}-{s}"))
        else:
            out.append(pytest.param(name, None, DEFAULT_PLAN, id=name))
    return out


_make = make_formulation


@pytest.mark.parametrize(("name", "solver", "plan"), _params())
def test_bound_is_at_most_brute_force_optimum(name: str, solver: str | None, plan) -> None:
    method = _make(name, solver)
    count, ks = plan
    checked = 0
    for i in range(count):
        inst = CASES[i]
        for k in ks:
            ok, why = method.supports(inst, k)
            assert ok, f"{method.method_id()} does not support {inst.name}: {why}"
            opt, opt_part = _opt(i, k)
            where = f"{method.method_id()} on {inst.name} (k={k}, OPT={opt})"
            if i % 2 == 0:
                # the raw method, no context
                res = method.lower_bound(inst, k, Budget(time_limit_s=TIME_LIMIT_S),
                                         SolveContext())
                assert res.status is not Status.ERROR, where
                assert_bound_valid(res.bound, opt, where)
                if res.partition is not None:
                    probs = check_feasible(inst, res.partition, k=k)
                    assert not probs, f"{where}: infeasible incumbent: {probs[0]}"
                    assert evaluate(inst, res.partition) >= opt - _tol(opt), where
                if method.exact and res.status is Status.OPTIMAL:
                    assert res.bound is not None and meets_optimum(res.bound, opt, res.stats), \
                        f"{where}: exact method reports optimal {res.bound}"
            else:
                # the optimum as context: warm start, cutoff, T >= a proven lower bound
                lb = combinatorial_bound(inst, k) if i % 4 == 1 else None
                ctx = SolveContext(upper_bound=opt, partition=opt_part, lower_bound=lb)
                out = method.run(inst, k, Budget(time_limit_s=TIME_LIMIT_S), ctx)
                assert out.status is not Status.ERROR, f"{where}: {out.error}"
                assert out.bound is not None and out.bound <= opt + _tol(opt), where
                raw = out.stats.get("per_b", {})
                for b, v in raw.items():
                    assert_bound_valid(v, opt, f"{where}, Guess({b})")
            checked += 1
    assert checked == count * len(ks)
