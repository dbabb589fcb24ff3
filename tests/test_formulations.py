"""The paper's formulations: oracle values, dominance, options, budgets and safety checks."""

from __future__ import annotations

import importlib
import math
import time

import pytest

from formulations import FORMULATIONS
from formulations.best import default_methods
from formulations.guess import guess_order, per_b_values
from formulations.mip import available_solvers
from pipecert.errors import InvalidBoundError
from pipecert.partition import Partition, evaluate
from pipecert.results import Budget, SolveContext, Status
from pipecert.testing import (
    assert_bound_valid,
    brute_force,
    random_dag,
    small_cases,
    worked_example,
)

pytestmark = pytest.mark.solver

SOLVERS = available_solvers()
CASES = list(small_cases(60, seed=99, max_nodes=7))
B = 10.0  # seconds: tiny models finish in milliseconds


def _close(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


def _within_margin(r, opt: float) -> bool:
    """The bound is OPT less at most its documented safety margin (``stats["margin"]``)."""
    m = float(r.stats.get("margin", 0.0))
    return r.bound is not None and opt - m - 1e-5 * abs(opt) - 1e-6 <= r.bound <= opt + 1e-6


# ------------------------------------------------------- docs/theory/problem.md#worked-example
@pytest.mark.parametrize("solver", SOLVERS)
def test_worked_example_values_of_spec_2_8(solver: str) -> None:
    inst = worked_example()
    bott = FORMULATIONS.make("bottleneck")
    bott.solver = solver
    exact = FORMULATIONS.make("exact_mip")
    exact.solver = solver
    guess = FORMULATIONS.make("guess")
    guess.solver = solver
    for k, b_val, per_b, opt in ((2, 10.0, [10.0, 10.0], 10.0), (3, 6.0, [6.0, 10.0, 6.0], 10.0),
                                 (1, 12.0, [12.0], 12.0)):
        assert _close(bott.lower_bound(inst, k, Budget(B)).bound, b_val), (solver, k)
        got = [guess.solve_one(inst, k, b, Budget(B))[0] for b in range(1, k + 1)]
        assert all(_close(g, w) for g, w in zip(got, per_b, strict=True)), (solver, k, got)
        assert _close(guess.lower_bound(inst, k, Budget(B)).bound, max(per_b))
        r = exact.lower_bound(inst, k, Budget(B))
        assert r.status is Status.OPTIMAL and _close(r.bound, opt)
        assert r.partition is not None and evaluate(inst, r.partition) == opt


def test_combinatorial_bound_of_the_worked_example() -> None:
    inst = worked_example()
    comb = FORMULATIONS.make("combinatorial")
    assert comb.lower_bound(inst, 2, Budget()).bound == 6.0
    assert comb.lower_bound(inst, 3, Budget()).bound == 4.0


# ---------------------------------------------------------------------------- dominance
def test_each_guess_b_is_at_least_the_bottleneck_relaxation() -> None:
    """Guess(b) >= bottleneck for every b (docs/theory/bounds.md#guess), both solved to optimum."""
    bott = FORMULATIONS.make("bottleneck[comb_cut=false]")
    guess = FORMULATIONS.make("guess[comb_cut=false]")
    checked = 0
    for inst in CASES[:40]:
        for k in (2, 3, 4):
            rb = bott.lower_bound(inst, k, Budget(B))
            assert rb.status is Status.OPTIMAL
            opt = brute_force(inst, k)[0]
            for b in range(1, k + 1):
                val, rec, _ = guess.solve_one(inst, k, b, Budget(B))
                assert rec.status is Status.OPTIMAL
                assert val >= rb.bound * (1 - 1e-5) - 1e-6, (inst.name, k, b, val, rb.bound)
                assert_bound_valid(val, opt, f"Guess({b}) on {inst.name} k={k}")
                checked += 1
    assert checked >= 300


def test_claimed_dominance_holds_when_both_are_solved() -> None:
    """Every ``dominates`` claim of a registered formulation, on small cases."""
    pairs = [(n, d) for n in FORMULATIONS.names() for d in FORMULATIONS.get(n).dominates]
    assert ("guess", "bottleneck") in pairs
    for name, other in pairs:
        a, b = FORMULATIONS.make(name), FORMULATIONS.make(other)
        for inst in CASES[:15]:
            for k in (2, 3):
                oa = a.run(inst, k, Budget(B))
                ob = b.run(inst, k, Budget(B))
                if oa.status is Status.OPTIMAL and ob.status in (Status.OPTIMAL, Status.BOUND):
                    assert oa.bound >= ob.bound * (1 - 1e-5) - 1e-6, (name, other, inst.name)


# ---------------------------------------------------------------------------- variants
def test_guess_min_variant_is_valid_and_solves_every_b() -> None:
    g = FORMULATIONS.make("guess[variant='min']")
    for inst in CASES[:40]:
        for k in (2, 3, 4):
            opt = brute_force(inst, k)[0]
            r = g.lower_bound(inst, k, Budget(B))
            assert_bound_valid(r.bound, opt, f"min_b Guess2 on {inst.name} k={k}")
            assert r.stats["models_solved"] == k


@pytest.mark.parametrize("spec", [
    "exact_mip[prefix_cuts=true]",
    "exact_mip[symmetry=true]",
    "exact_mip[prefix_cuts=true,symmetry=true,form='assign']",
    "exact_mip[form='assign',comb_cut=false]",
    "exact_mip[solver='cpsat',symmetry=true]",
])
def test_exact_mip_options_keep_the_optimum(spec: str) -> None:
    f = FORMULATIONS.make(spec)
    for inst in CASES[:30]:
        for k in (2, 3, 4):
            opt, part = brute_force(inst, k)
            r = f.lower_bound(inst, k, Budget(B))
            assert r.status is Status.OPTIMAL and _within_margin(r, opt), (spec, inst.name, k)
            # and with the optimum as warm start and cutoff
            r2 = f.lower_bound(inst, k, Budget(B), SolveContext(upper_bound=opt, partition=part))
            assert _within_margin(r2, opt) and r2.stats["warm_started"], (spec, inst.name, k)


def test_cpsat_bound_stays_valid_on_fractional_costs() -> None:
    """CP-SAT floors the scaled costs: the bound stays <= OPT on non-integer data."""
    for seed in range(12):
        inst = random_dag(seed, 6, integer=False)
        for k in (2, 3):
            opt = brute_force(inst, k)[0]
            for name in ("exact_mip", "bottleneck", "guess"):
                f = FORMULATIONS.make(f"{name}[solver='cpsat']")
                r = f.lower_bound(inst, k, Budget(B))
                assert r.stats.get("integer_costs", True)
                assert_bound_valid(r.bound, opt, f"{name}[cpsat] on {inst.name} k={k}")
                if name == "exact_mip":  # floored costs: within 1e-5 relative of OPT
                    assert r.bound >= opt * (1 - 1e-4) - 1e-6


# ---------------------------------------------------------------------------- budgets
def test_guess_order_starts_at_the_bottleneck_and_spreads_out() -> None:
    assert guess_order(5, 2) == [2, 1, 3, 4, 5]
    assert guess_order(4) == [2, 1, 3, 4]
    assert guess_order(1) == [1]
    assert sorted(guess_order(7, 7)) == list(range(1, 8))


def test_guess_stops_when_the_bound_meets_the_incumbent() -> None:
    inst = worked_example()
    opt, part = brute_force(inst, 3)
    ctx = SolveContext(upper_bound=opt, partition=part)
    r = FORMULATIONS.make("guess").lower_bound(inst, 3, Budget(B), ctx)
    assert _close(r.bound, opt)
    assert r.stats["models_solved"] < 3, r.stats["order"]
    assert r.status is Status.OPTIMAL


def test_formulations_honour_their_time_limit_on_a_large_graph() -> None:
    inst = random_dag(5, 160, edge_prob=0.04)
    for spec in ("exact_mip", "bottleneck", "guess", "best[methods=('combinatorial','guess')]"):
        f = FORMULATIONS.make(spec)
        t0 = time.monotonic()
        out = f.run(inst, 16, Budget(time_limit_s=2.0))
        elapsed = time.monotonic() - t0
        assert out.status is not Status.ERROR, out.error
        assert out.bound is not None and out.bound > 0
        assert elapsed < 2.0 + 3.0, (spec, elapsed)  # limit + grace on a loaded machine
        if out.incumbent is not None:
            assert out.bound <= out.incumbent * (1 + 1e-6)


def test_guess_per_b_values_are_reported() -> None:
    r = FORMULATIONS.make("guess[comb_cut=false]").lower_bound(worked_example(), 3, Budget(B))
    vals = per_b_values(r)  # b = 2 first (the middle), then b = 1, 3 with T >= 10
    assert r.stats["order"] == [2, 1, 3] and len(vals) == 3
    assert _close(vals[1], 10.0)
    assert all(v is not None and v <= 10.0 + 1e-6 for v in vals)


# ---------------------------------------------------------------------------- safety
def test_a_bound_above_a_known_feasible_value_is_an_error_never_a_result() -> None:
    inst = worked_example()
    lie = SolveContext(upper_bound=7.0)  # false: OPT is 10 at k = 3
    for spec in ("guess[cutoff=false]", "exact_mip[cutoff=false]", "bottleneck[cutoff=false]",
                 "guess", "exact_mip"):
        out = FORMULATIONS.make(spec).run(inst, 3, Budget(B), lie)
        if spec.startswith("bottleneck"):
            continue  # its value (6) is below the false bound: nothing to detect
        assert out.status is Status.ERROR and out.bound is None, (spec, out)
    with pytest.raises(InvalidBoundError):
        FORMULATIONS.make("guess[cutoff=false]").lower_bound(inst, 3, Budget(B), lie)


def test_context_lower_bound_is_used_as_a_cut() -> None:
    inst = worked_example()
    r = FORMULATIONS.make("bottleneck").lower_bound(inst, 3, Budget(B),
                                                    SolveContext(lower_bound=9.0))
    assert _close(r.bound, 9.0)
    r = FORMULATIONS.make("bottleneck[context_lb_cut=false]").lower_bound(
        inst, 3, Budget(B), SolveContext(lower_bound=9.0))
    assert _close(r.bound, 6.0)


def test_exact_mip_reports_an_incumbent_log_and_solver_facts() -> None:
    inst = random_dag(2, 30, edge_prob=0.15)
    r = FORMULATIONS.make("exact_mip").lower_bound(inst, 4, Budget(5.0))
    for key in ("n_vars", "n_cons", "nodes", "solver", "solver_version", "build_time_s",
                "solve_time_s"):
        assert key in r.stats
    assert r.log and r.partition is not None
    value = evaluate(inst, r.partition)
    assert all(b is None or b <= value * (1 + 1e-6) for _, b, _ in r.log)


# ---------------------------------------------------------------------------- best
def test_best_runs_cheap_bounds_first_and_reports_the_maximum() -> None:
    order = default_methods()
    assert "best" not in order and order[0] == "combinatorial" or "combinatorial" in order
    mip_pos = [order.index(n) for n in ("bottleneck", "guess", "exact_mip")]
    assert mip_pos == sorted(mip_pos)
    assert all(order.index(c) < mip_pos[0] for c in order
               if c not in ("bottleneck", "guess", "exact_mip"))
    inst = worked_example()
    out = FORMULATIONS.make("best").run(inst, 4, Budget(B))
    bounds = [r["bound"] for r in out.stats["runs"] if r["bound"] is not None]
    assert out.bound == pytest.approx(max(bounds))
    assert out.bound <= brute_force(inst, 4)[0] + 1e-6


def test_best_accepts_an_explicit_method_list_and_passes_the_solver() -> None:
    f = FORMULATIONS.make("best[methods=('combinatorial','guess[variant=min]'),solver='cpsat']")
    out = f.run(worked_example(), 3, Budget(B))
    assert [r["method"] for r in out.stats["runs"]][0] == "combinatorial"
    assert out.stats["methods"] == ["combinatorial", "guess[solver=cpsat,variant=min]"]


# ---------------------------------------------------------------------------- docs
@pytest.mark.parametrize("module", ["exact_mip", "bottleneck", "guess", "best"])
def test_module_docstring_states_model_relaxation_validity_size(module: str) -> None:
    doc = importlib.import_module(f"formulations.{module}").__doc__ or ""
    for word in ("Model", "relaxes", "valid", "Size", "References"):
        assert word in doc, f"formulations/{module}.py docstring lacks {word!r}"


def test_every_partition_returned_is_rescored_by_the_framework() -> None:
    inst = CASES[3]
    out = FORMULATIONS.make("exact_mip").run(inst, 3, Budget(B))
    assert out.partition is not None
    assert out.incumbent == evaluate(inst, Partition(out.partition.stage_of, 3))


# ---------------------------------------------------------------------------- statuses
def test_relaxation_statuses_say_solved_unless_a_feasible_value_is_met() -> None:
    """A solved relaxation is ``solved``; ``optimal`` only when it meets a known feasible
    value (docs/methods/lower-bounds.md); an exact method that finished is ``optimal``."""
    inst = worked_example()
    out = FORMULATIONS.make("bottleneck").run(inst, 3, Budget(B))
    assert out.status is Status.SOLVED  # 6 < OPT = 10: a gap remains
    out = FORMULATIONS.make("bottleneck").run(inst, 2, Budget(B))
    assert out.status is Status.SOLVED  # equals OPT = 10, but no feasible value is known
    out = FORMULATIONS.make("bottleneck").run(inst, 2, Budget(B), SolveContext(upper_bound=10.0))
    assert out.status is Status.OPTIMAL
    out = FORMULATIONS.make("exact_mip").run(inst, 3, Budget(B))
    assert out.status is Status.OPTIMAL and out.incumbent == 10.0


def test_unsupported_always_carries_a_reason() -> None:
    inst = worked_example()
    for spec in ("exact_mip[solver='cvxpy:NOSUCH']", "bottleneck[solver='nosuch']",
                 "best[methods=('exact_mip[solver=\"cvxpy:NOSUCH\"]',)]"):
        out = FORMULATIONS.make(spec).run(inst, 2, Budget(B))
        assert out.status is Status.UNSUPPORTED and out.error, spec


# ---------------------------------------------------------------------------- numerics
def _infeasible_record():
    from formulations.mip.backends import SolveRecord

    return SolveRecord(Status.INFEASIBLE, None, None, None, "fake", "0", 0.0)


def test_a_model_called_infeasible_gives_no_bound_not_an_error(monkeypatch) -> None:
    """A floating-point infeasibility claim on a feasible instance is numerics: the bound is
    None (the framework floors it), the run is not an error, and the reason is in stats."""
    from formulations.base import combinatorial_bound
    from formulations.mip.base import MipFormulation

    monkeypatch.setattr(MipFormulation, "solve_model",
                        lambda self, model, budget, **kw: _infeasible_record())
    inst = worked_example()
    for spec in ("bottleneck", "exact_mip", "guess", "guess[variant=min]"):
        raw = FORMULATIONS.make(spec).lower_bound(inst, 3, Budget(B))
        assert raw.bound is None, spec
        out = FORMULATIONS.make(spec).run(inst, 3, Budget(B))
        assert out.status is not Status.ERROR, (spec, out.error)
        assert out.stats.get("fallback") == "combinatorial", spec
        assert out.bound == combinatorial_bound(inst, 3), spec
        assert "numerics" in str(raw.stats), spec


def test_guess_min_replaces_an_infeasible_guess2_by_guess(monkeypatch) -> None:
    """case948 (k = 2): HiGHS called the true bottleneck's Guess2(b) infeasible and the
    minimum over the other b was above OPT. Such a b now stands in with Guess(b) <= Guess2(b)."""
    from formulations.mip.base import MipFormulation

    real = MipFormulation.solve_model

    def fake(self, model, budget, **kw):
        if any(name == "B_exact" for name, _, _ in model.row_names):
            return _infeasible_record()
        return real(self, model, budget, **kw)

    monkeypatch.setattr(MipFormulation, "solve_model", fake)
    g = FORMULATIONS.make("guess[variant=min]")
    for inst in CASES[:20]:
        for k in (2, 3):
            opt = brute_force(inst, k)[0]
            r = g.lower_bound(inst, k, Budget(B))
            assert_bound_valid(r.bound, opt, f"min_b on {inst.name} k={k}")
            assert set(r.stats["numerics"]) == set(range(1, k + 1))
