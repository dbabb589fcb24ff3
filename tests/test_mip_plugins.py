"""The public MIP extension points, used from outside the repository's packages.

* an out-of-tree MIP relaxation (``tests/out_of_tree/lp_chain.py``, one file, subclassing
  :class:`formulations.mip.MipFormulation`) gives valid bounds against brute force;
* an out-of-tree solver backend (``tests/out_of_tree/milp_plain.py``, one file, one
  registered :class:`formulations.mip.SolverBackend`) solves small MIPs through the
  formulations, with the safety margin of its declared tolerance;
* the shared parameters live once in :class:`MipFormulation`; backends state their status
  map and capabilities as class attributes.

Both plug-ins are loaded by file path (they belong to no package here) and unregistered
afterwards.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from formulations import FORMULATIONS
from formulations.bottleneck import Bottleneck
from formulations.exact_mip import ExactMip
from formulations.guess import Guess
from formulations.mip import (
    BACKENDS,
    MipFormulation,
    MipModel,
    ModelBuilder,
    SolveOptions,
    SolverBackend,
    SolveRecord,
    available_solvers,
    make_backend,
    numerical_margin,
    parse_solver,
    solve_model,
    solver_available,
    solver_tolerance,
)
from formulations.mip.backends import DEFAULT_TOLERANCE
from pipecert.errors import InputError
from pipecert.results import Budget, SolveContext, Status
from pipecert.testing import (
    assert_bound_valid,
    brute_force,
    check_formulation,
    meets_optimum,
    small_cases,
)

pytestmark = pytest.mark.solver

HERE = Path(__file__).parent / "out_of_tree"
CASES = list(small_cases(30, seed=1414, max_nodes=7))


def _load(stem: str) -> ModuleType:
    """Import ``tests/out_of_tree/<stem>.py`` by path, as a module of no package."""
    name = f"pipecert_out_of_tree_{stem}"
    spec = importlib.util.spec_from_file_location(name, HERE / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def lp_chain() -> Iterator[type[MipFormulation]]:
    mod = _load("lp_chain")
    yield mod.LpChain
    FORMULATIONS.unregister("lp_chain")


@pytest.fixture(scope="module")
def milp_plain() -> Iterator[type[SolverBackend]]:
    mod = _load("milp_plain")
    yield mod.MilpPlain
    BACKENDS.unregister("milp-plain")


# ---------------------------------------------------------------------------- relaxation
def test_out_of_tree_relaxation_is_registered_with_the_shared_parameters(lp_chain) -> None:
    assert FORMULATIONS.get("lp_chain") is lp_chain
    assert set(lp_chain.param_names()) == set(MipFormulation.SHARED_PARAMS) | {"relax"}
    defaults = lp_chain.param_defaults()
    assert defaults["relax"] is True and defaults["solver"] == "highs"
    m = FORMULATIONS.make("lp_chain[relax=false,solver=scipy,gap=0.001]")
    assert (m.relax, m.solver, m.gap, m.form) == (False, "scipy", 0.001, "cumulative")
    assert m.method_id() == "lp_chain[gap=0.001,relax=False,solver=scipy]"
    assert FORMULATIONS.make("lp_chain").method_id() == "lp_chain"
    with pytest.raises(InputError, match="nosuch"):
        FORMULATIONS.make("lp_chain[nosuch=1]")


def test_out_of_tree_relaxation_bounds_are_valid_against_brute_force(lp_chain) -> None:
    """The LP relaxation is <= OPT on every case and k; with integrality kept it is the
    exact model, so it meets OPT whenever it finishes."""
    checked = 0
    for i, inst in enumerate(CASES):
        for k in (1, 2, 3, 4):
            opt, part = brute_force(inst, k)
            lp = FORMULATIONS.make("lp_chain").lower_bound(inst, k, Budget(time_limit_s=10))
            assert lp.status in (Status.OPTIMAL, Status.TIME_LIMIT), lp.stats
            assert_bound_valid(lp.bound, opt, f"lp_chain case {i} k={k}")
            ctx = SolveContext(upper_bound=opt, partition=part)
            out = FORMULATIONS.make("lp_chain").run(inst, k, Budget(time_limit_s=10), ctx,
                                                    floor=False)
            assert out.status is not Status.ERROR, out.error
            assert_bound_valid(out.bound, opt, f"lp_chain run case {i} k={k}")
            if i % 3 == 0:
                ex = FORMULATIONS.make("lp_chain[relax=false]").lower_bound(
                    inst, k, Budget(time_limit_s=10))
                assert ex.bound is not None
                assert_bound_valid(ex.bound, opt, f"lp_chain[relax=false] case {i} k={k}")
                if ex.status is Status.OPTIMAL:
                    assert meets_optimum(ex.bound, opt, ex.stats), (i, k, ex.bound, opt)
                    assert lp.bound is not None and lp.bound <= ex.bound + 1e-9 * (1 + opt)
            checked += 1
    assert checked == 4 * len(CASES)


def test_out_of_tree_relaxation_passes_the_constrained_checks(lp_chain) -> None:
    """The constraints it claims to handle (groups, memory, data-only edges), through the
    framework gate, with the brute-force optimum of each variant case."""
    assert check_formulation(lp_chain(), variants="all", count=3, time_limit_s=10) > 0


def test_out_of_tree_relaxation_runs_on_every_builtin_backend(lp_chain) -> None:
    inst = CASES[4]
    opt, _ = brute_force(inst, 3)
    for solver in available_solvers():
        if solver.startswith("cvxpy:") and solver != "cvxpy:HIGHS":
            continue  # compile time; one cvxpy solver is enough here
        out = lp_chain(solver=solver).run(inst, 3, Budget(time_limit_s=20), floor=False)
        assert out.status is not Status.ERROR, (solver, out.error)
        assert_bound_valid(out.bound, opt, f"lp_chain[solver={solver}]")


# ---------------------------------------------------------------------------- backend
def test_out_of_tree_backend_is_registered_with_its_capabilities(milp_plain) -> None:
    assert BACKENDS.get("milp-plain") is milp_plain
    assert "milp-plain" in available_solvers()
    assert parse_solver("MILP-plain") == ("milp-plain", None)
    assert solver_available("milp-plain") == (True, None)
    b = make_backend("milp-plain")
    assert isinstance(b, milp_plain) and b.solver == "milp-plain"
    assert solver_tolerance("milp-plain") == 1.2e-6
    assert (b.integer_variables, b.integer_data, b.dual_bound, b.time_limit, b.node_limit,
            b.threads, b.warm_start, b.cancellable) == (True, False, True, True, True,
                                                        False, False, False)
    with pytest.raises(ValueError, match="unknown solver"):
        parse_solver("milp-plain:X")


def test_out_of_tree_backend_solves_mips_through_formulations(milp_plain) -> None:
    """exact_mip, bottleneck and guess with ``solver='milp-plain'``: valid bounds, exact_mip
    meets OPT, and the same bounds as the built-in ``scipy`` backend (the same solver)."""
    for i, inst in enumerate(CASES[:12]):
        for k in (2, 3):
            opt, _ = brute_force(inst, k)
            for name in ("exact_mip", "bottleneck", "guess"):
                mine = FORMULATIONS.make(f"{name}[solver='milp-plain']").run(
                    inst, k, Budget(time_limit_s=10))
                ref = FORMULATIONS.make(f"{name}[solver=scipy]").run(
                    inst, k, Budget(time_limit_s=10))
                assert mine.status is not Status.ERROR, mine.error
                assert_bound_valid(mine.bound, opt, f"{name}[milp-plain] case {i} k={k}")
                assert mine.stats["solver"] in ("milp-plain", None)
                if mine.status is ref.status and mine.bound is not None:
                    assert mine.bound == pytest.approx(ref.bound, rel=1e-12, abs=1e-12)
                if name == "exact_mip" and mine.status in (Status.OPTIMAL, Status.SOLVED):
                    assert meets_optimum(mine.bound, opt, mine.stats)


def test_backend_record_applies_the_shared_rules(milp_plain) -> None:
    b = make_backend("milp-plain")
    x = np.zeros(3)
    r = b.record(2, 5.0, 1.0, x, "v", 0.1)
    assert (r.status, r.dual_bound, r.x, r.primal) == (Status.INFEASIBLE, None, None, None)
    r = b.record(4, 5.0, 1.0, x, "v", 0.1)  # not in the map: an error, with no bound
    assert r.status is Status.ERROR and r.dual_bound is None and r.x is x
    r = b.record(1, math.inf, None, None, "v", 0.1)
    assert r.status is Status.TIME_LIMIT and r.dual_bound is None
    r = b.record(None, 3.0, None, None, "v", 0.1, status=Status.NO_SOLUTION)
    assert r.status is Status.TIME_LIMIT and r.dual_bound == 3.0  # a bound: a limit
    r = b.record(0, 2.0, 2.5, x, "v", 0.1)
    assert isinstance(r, SolveRecord) and r.solver == "milp-plain" and r.message == "0"


def test_a_backend_without_a_declared_tolerance_gets_the_default_margin() -> None:
    """An undeclared tolerance must not shrink the margin: DEFAULT_TOLERANCE applies."""

    class Quiet(SolverBackend):
        name = "quiet-test"
        status_map = {"ok": Status.OPTIMAL}

        def solve(self, model: MipModel, opts: SolveOptions) -> SolveRecord:
            res = solve_model(model, "highs", opts)
            return self.record("ok" if res.status is Status.OPTIMAL else "?", res.dual_bound,
                               res.primal, res.x, "0", res.solve_time_s)

    BACKENDS.register(Quiet)
    try:
        mb = ModelBuilder()
        x = mb.add_block("x", (2,), integer=True, ub=3.0)
        t = mb.add_block("T", (), cost=1.0, ub=100.0)
        mb.add_le(x.at(0) * 2.0 + x.at(1) * 3.0 - t.at(), -7.0, name="r")
        model = mb.build()
        rec = solve_model(model, "quiet-test")
        assert rec.status is Status.OPTIMAL and rec.solver == "quiet-test"
        assert rec.dual_bound == pytest.approx(7.0)
        assert solver_tolerance("quiet-test") == DEFAULT_TOLERANCE
        assert numerical_margin(model, "quiet-test", 7.0) > numerical_margin(model, "highs",
                                                                             7.0)
    finally:
        BACKENDS.unregister("quiet-test")
    with pytest.raises(ValueError, match="unknown solver"):
        make_backend("quiet-test")


def test_builtin_backends_declare_status_maps_and_capabilities() -> None:
    names = BACKENDS.names()
    assert {"highs", "scipy", "cpsat", "cvxpy"} <= set(names)
    for name in names:
        cls = BACKENDS.get(name)
        assert cls.status_map, name
        assert Status.OPTIMAL in cls.status_map.values(), name
        assert cls.__module__.rsplit(".", 1)[-1] != "base", name  # one file per backend
    assert BACKENDS.get("cpsat").integer_data and BACKENDS.get("cpsat").tolerance == 0.0
    assert BACKENDS.get("highs").cancellable and BACKENDS.get("highs").incumbent_log
    assert solver_tolerance("cvxpy:SCIP") == 2.1e-6
    assert solver_tolerance("cvxpy:HIGHS") == solver_tolerance("highs") == 1.2e-6
    assert solver_tolerance("cvxpy:GLPK_MI") == DEFAULT_TOLERANCE
    assert len({BACKENDS.get(n).__module__ for n in names}) == len(names)


# ---------------------------------------------------------------------------- parameters
def test_shared_parameters_are_declared_once() -> None:
    """Bottleneck declares no parameter, Guess and ExactMip only their own; the registry
    still sees every parameter with the same defaults as before."""
    assert "__init__" not in Bottleneck.__dict__
    shared = set(MipFormulation.SHARED_PARAMS)
    assert set(Bottleneck.param_names()) == shared
    assert set(Guess.param_names()) == shared | {"variant"}
    assert set(ExactMip.param_names()) == shared | {"prefix_cuts", "symmetry"}
    for cls in (Bottleneck, Guess, ExactMip):
        d = cls.param_defaults()
        assert (d["solver"], d["form"], d["comb_cut"], d["context_lb_cut"], d["cutoff"],
                d["warm_start"], d["gap"], d["seed"]) == ("highs", "cumulative", True, True,
                                                          True, True, 1e-6, 0)
    g = FORMULATIONS.make("guess[variant=min,seed=3]")
    assert (g.variant, g.seed, g.solver) == ("min", 3, "highs")
    assert g.method_id() == "guess[seed=3,variant=min]"
    assert Guess(**g.params()).params() == g.params()
