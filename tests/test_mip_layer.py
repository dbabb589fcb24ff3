"""The MIP layer: vectorized model building, the MTPP chain encoding, and every backend."""

from __future__ import annotations

import itertools
import math
import threading
import time

import numpy as np
import pytest

from formulations.mip import (
    Chain,
    Expr,
    ModelBuilder,
    ScaledCosts,
    SolveOptions,
    available_solvers,
    complete_free_column,
    parse_solver,
    solve_model,
    solver_available,
)
from formulations.mip.backends import HARD_GRACE_S
from pipecert.partition import Partition, stage_costs
from pipecert.results import Status
from pipecert.testing import enumerate_partitions, random_dag, small_cases

pytestmark = pytest.mark.solver

SOLVERS = available_solvers()


# ---------------------------------------------------------------------------- Expr
def test_expr_algebra_matches_numpy_evaluation() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=10)
    a = Expr(np.array([[0, 1], [2, -1], [3, 4]]), [[1.0, 2.0], [3.0, 5.0], [-1.0, 1.0]],
             [0.5, 0.0, 1.0])
    b = Expr(np.array([[5], [6], [7]]), 2.0)
    np.testing.assert_allclose((a + b).value(x),
                               [x[0] + 2 * x[1] + 0.5 + 2 * x[5], 3 * x[2] + 2 * x[6],
                                -x[3] + x[4] + 1 + 2 * x[7]])
    np.testing.assert_allclose((a - b).value(x), a.value(x) - b.value(x))
    np.testing.assert_allclose((a * np.array([1.0, 2.0, 3.0])).value(x),
                               a.value(x) * [1, 2, 3])
    np.testing.assert_allclose((3 - a).value(x), 3 - a.value(x))
    np.testing.assert_allclose(a.sum(axis=0).value(x), a.value(x).sum())
    np.testing.assert_allclose(a[1].value(x), a.value(x)[1])


def test_expr_broadcasts_leading_shapes() -> None:
    x = np.arange(20, dtype=float)
    col = Expr(np.arange(4)[:, None, None], 1.0)  # shape (4, 1)
    row = Expr(np.arange(10, 13)[None, :, None], 1.0)  # shape (1, 3)
    s = col - row
    assert s.shape == (4, 3)
    np.testing.assert_allclose(s.value(x), np.arange(4)[:, None] - np.arange(10, 13)[None, :])
    np.testing.assert_allclose(s.sum(axis=1).value(x), (np.arange(4)[:, None]
                                                        - np.arange(10, 13)).sum(axis=1))
    np.testing.assert_allclose(Expr.constant([1.0, 2.0]).value(x), [1.0, 2.0])


def test_builder_assembles_rows_sums_duplicates_and_moves_constants() -> None:
    mb = ModelBuilder()
    X = mb.add_block("X", (2, 2), integer=True)
    T = mb.add_block("T", (), lb=0.0, ub=np.inf, cost=1.0)
    # rows: X[i,0] + X[i,0] + X[i,1] - T + 1 <= 3  (duplicate column summed, constant moved)
    i = np.arange(2)
    e = X.at(i, 0) + X.at(i, 0) + X.at(i, 1) - T.at() + 1.0
    mb.add_le(e, 3.0, name="r")
    m = mb.build()
    assert (m.n_vars, m.n_cons, m.n_integer) == (5, 2, 4)
    np.testing.assert_allclose(m.A.toarray(), [[2, 1, 0, 0, -1], [0, 0, 2, 1, -1]])
    np.testing.assert_allclose(m.row_ub, [2.0, 2.0])
    assert np.all(np.isinf(m.row_lb))
    np.testing.assert_allclose(m.c, [0, 0, 0, 0, 1])
    assert m.row_names == [("r", 0, 2)]
    assert m.violation(np.array([1, 0, 1, 0, 0.0])) == pytest.approx(0.0)
    assert m.violation(np.array([1, 1, 0, 0, 0.0])) == pytest.approx(1.0)


def test_absent_terms_and_zero_coefficients_are_dropped() -> None:
    mb = ModelBuilder()
    X = mb.add_block("X", 3)
    mb.add_ge(Expr(np.array([[0, -1, 2]]), [1.0, 5.0, 0.0]), 1.0)
    m = mb.build()
    assert m.A.nnz == 1 and m.A[0, 0] == 1.0
    assert X.size == 3


# ---------------------------------------------------------------------------- chain
@pytest.mark.parametrize("form", ["cumulative", "assign"])
def test_chain_block_costs_equal_reference_stage_costs(form: str) -> None:
    """At the point of any feasible partition, with charges at their smallest feasible
    values, the model's block cost expressions equal the reference f(S_j) (scaled)."""
    checked = 0
    for inst in small_cases(30, seed=7, max_nodes=6):
        costs = ScaledCosts.of(inst, grid=False)  # unfloored: exact comparison
        for k in (1, 2, 3):
            mb = ModelBuilder()
            chain = Chain(mb, inst, costs, k, form=form)
            f = chain.block_costs(list(range(1, k + 1)))
            model = mb.build()
            rows = enumerate_partitions(inst, k)
            for r in rows[:: max(1, len(rows) // 15)]:
                lab = r.astype(np.int64)
                x = np.zeros(model.n_vars)
                chain.set_labels(x, lab)
                chain.complete_charges(x)
                assert model.violation(x) < 1e-9
                assert np.array_equal(chain.labels(x), lab)
                want = stage_costs(inst, Partition(lab, k)).total * costs.scale
                np.testing.assert_allclose(f.value(x), want, rtol=1e-12, atol=1e-9)
                checked += 1
    assert checked > 300


def test_chain_rejects_backward_edges() -> None:
    inst = random_dag(3, 5, edge_prob=0.9)
    costs = ScaledCosts.of(inst)
    mb = ModelBuilder()
    chain = Chain(mb, inst, costs, 3)
    model = mb.build()
    u, v = int(inst.src[0]), int(inst.dst[0])
    lab = np.zeros(inst.n_nodes, dtype=np.int64)
    lab[u] = 2
    lab[v] = 0
    x = np.zeros(model.n_vars)
    chain.set_labels(x, lab)
    assert model.violation(x) >= 1.0


def test_scaled_costs_use_powers_of_two_and_round_down_for_integers() -> None:
    inst = random_dag(1, 6, integer=False)
    s = ScaledCosts.of(inst)
    assert math.log2(s.scale) == round(math.log2(s.scale))
    assert 500 <= max(s.w.max(), s.c.max()) <= 2000
    np.testing.assert_array_equal(ScaledCosts.of(inst, grid=False).w / s.scale,
                                  inst.work)  # exact in floating point
    # floored to the grid: never above the true scaled cost, less than one quantum below
    assert s.quantum == 2.0 ** -20
    assert np.all(s.w <= inst.work * s.scale) and np.all(s.w > inst.work * s.scale - s.quantum)
    assert np.all(s.c <= inst.comm * s.scale) and np.all(s.c > inst.comm * s.scale - s.quantum)
    assert np.all(np.floor(s.w / s.quantum) * s.quantum == s.w)
    assert s.upper() >= float((inst.work.sum() + 2 * inst.comm.sum()) * s.scale)
    si = ScaledCosts.of(inst, integer=True)
    assert np.all(si.w == np.floor(si.w)) and np.all(si.w <= inst.work * si.scale)
    assert np.all(si.c <= inst.comm * si.scale)


def test_complete_free_column_sets_the_smallest_feasible_value() -> None:
    mb = ModelBuilder()
    X = mb.add_block("X", 2)
    T = mb.add_block("T", (), lb=1.0, ub=10.0, cost=1.0)
    mb.add_le(X.at(np.arange(2)) * np.array([3.0, 5.0]) - T.at(), 0.0)
    m = mb.build()
    x = np.array([1.0, 1.0, 0.0])
    assert complete_free_column(m, x, int(T.cols))
    assert x[2] == 5.0
    m.col_ub[2] = 4.0
    assert not complete_free_column(m, x, int(T.cols))


# ---------------------------------------------------------------------------- backends
def _knapsack(seed: int):
    """min -v.x s.t. w.x <= cap, x binary, plus a continuous slack s in [0, 2] with cost 1,
    w.x - s <= cap - 1 (so using the slack costs). Optimum by enumeration."""
    rng = np.random.default_rng(seed)
    n = 8
    v = rng.integers(1, 20, n).astype(float)
    w = rng.integers(1, 10, n).astype(float)
    cap = float(w.sum() // 2)
    mb = ModelBuilder()
    X = mb.add_block("X", n, integer=True, cost=-v)
    S = mb.add_block("S", (), lb=0.0, ub=2.0, cost=1.0)
    mb.add_le((X.at(np.arange(n)) * w).sum(axis=0), cap)
    mb.add_le((X.at(np.arange(n)) * w).sum(axis=0) - S.at(), cap - 1)
    model = mb.build()
    best = math.inf
    for bits in itertools.product((0, 1), repeat=n):
        b = np.array(bits, dtype=float)
        load = float(w @ b)
        if load <= cap:
            s = max(0.0, load - (cap - 1))
            best = min(best, -float(v @ b) + s)
    return model, best


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_backend_solves_a_small_milp_to_its_optimum(solver: str) -> None:
    for seed in range(4):
        model, opt = _knapsack(seed)
        rec = solve_model(model, solver, SolveOptions(time_limit_s=30))
        assert rec.status is Status.OPTIMAL, rec.message
        assert rec.dual_bound is not None and rec.dual_bound <= opt + 1e-6
        assert rec.dual_bound == pytest.approx(opt, rel=1e-4, abs=1e-6)
        assert rec.x is not None and model.violation(rec.x) < 1e-6
        assert rec.primal == pytest.approx(opt, rel=1e-6, abs=1e-6)
        assert rec.solver == solver and rec.solver_version


@pytest.mark.parametrize("solver", SOLVERS)
def test_every_backend_reports_infeasible_without_a_bound(solver: str) -> None:
    mb = ModelBuilder()
    X = mb.add_block("X", 3, integer=True, cost=1.0)
    mb.add_ge(X.expr().sum(axis=0), 2.5)
    mb.add_le(X.expr().sum(axis=0), 2.2)
    rec = solve_model(mb.build(), solver, SolveOptions(time_limit_s=10))
    assert rec.status in (Status.INFEASIBLE, Status.ERROR, Status.TIME_LIMIT)
    assert rec.dual_bound is None and rec.x is None


def _hard_model():
    from formulations.mip.base import t_range

    inst = random_dag(11, 70, edge_prob=0.08, regime="mixed")
    costs = ScaledCosts.of(inst)
    k = 8
    lo, hi = t_range(costs, k, None, comb_cut=True, context_lb_cut=False, cutoff=False)
    mb = ModelBuilder()
    chain = Chain(mb, inst, costs, k)
    T = mb.add_block("T", (), lb=lo, ub=hi, cost=1.0)
    mb.add_le(chain.block_costs(list(range(1, k + 1))) - T.at(), 0.0)
    return mb.build(), chain, T


def test_highs_enforces_the_time_limit_and_keeps_a_valid_dual_bound() -> None:
    model, _, _ = _hard_model()
    t0 = time.monotonic()
    rec = solve_model(model, "highs", SolveOptions(time_limit_s=1.0))
    elapsed = time.monotonic() - t0
    assert rec.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    # limit + interrupt grace + abandon grace, plus 1 s for a loaded machine (HiGHS alone
    # overran this 1 s limit by 5 s in its root cut loop)
    assert elapsed < 1.0 + 2 * HARD_GRACE_S + 1.0
    if rec.x is not None and rec.dual_bound is not None:
        assert rec.dual_bound <= rec.primal + 1e-6


def test_highs_solve_can_be_cancelled() -> None:
    model, _, _ = _hard_model()
    ev = threading.Event()
    ev.set()
    rec = solve_model(model, "highs", SolveOptions(time_limit_s=60.0, cancel=ev))
    assert rec.stopped_by == "cancelled"
    assert rec.status is Status.TIME_LIMIT
    assert rec.solve_time_s < 10.0


@pytest.mark.parametrize("solver", [s for s in ("highs", "cpsat") if s in SOLVERS])
def test_warm_start_is_used_and_stop_below_stops_at_it(solver: str) -> None:
    model, chain, T = _hard_model()
    integer = solver == "cpsat"
    if integer:  # CP-SAT needs integer data: rebuild on floored costs
        from formulations.mip.base import t_range

        inst = chain.inst
        costs = ScaledCosts.of(inst, integer=True)
        lo, hi = t_range(costs, 8, None, comb_cut=True, context_lb_cut=False, cutoff=False)
        mb = ModelBuilder()
        chain = Chain(mb, inst, costs, 8)
        T = mb.add_block("T", (), lb=lo, ub=hi, cost=1.0, integer=True)
        mb.add_le(chain.block_costs(list(range(1, 9))) - T.at(), 0.0)
        model = mb.build()
    order = chain.inst.topo_order
    lab = np.zeros(chain.n, dtype=np.int64)
    lab[order] = np.arange(chain.n) * 8 // chain.n
    x0 = np.zeros(model.n_vars)
    chain.set_labels(x0, lab)
    chain.complete_charges(x0)
    assert complete_free_column(model, x0, int(T.cols))
    value = float(model.c @ x0)
    rec = solve_model(model, solver, SolveOptions(time_limit_s=20.0, warm_start=x0,
                                                  stop_below=value))
    assert rec.x is not None and rec.primal is not None and rec.primal <= value + 1e-6
    assert rec.stopped_by == "stop_below" or rec.status is Status.OPTIMAL
    assert rec.log, "the incumbent log records the warm start or a better solution"


def test_cpsat_rejects_fractional_coefficients() -> None:
    if "cpsat" not in SOLVERS:
        pytest.fail("ortools is a dev dependency and must be installed")
    mb = ModelBuilder()
    X = mb.add_block("X", 2, integer=True, cost=1.0)
    mb.add_ge((X.expr() * np.array([0.5, 1.0])).sum(axis=0), 1.0)
    with pytest.raises(ValueError, match="integer coefficients"):
        solve_model(mb.build(), "cpsat")


def test_cvxpy_limit_without_solution_is_never_read_as_a_result(monkeypatch) -> None:
    """cvxpy's pitfall: status user_limit with value 0 and x = 0 is not a solution."""
    import cvxpy

    def fake_solve(self, *args, **kwargs):
        for var in self.variables():
            var.value = np.zeros(var.shape)
        self._status = "user_limit"
        self._value = 0.0
        return 0.0

    monkeypatch.setattr(cvxpy.Problem, "solve", fake_solve)
    model, _ = _knapsack(0)
    rec = solve_model(model, "cvxpy:HIGHS", SolveOptions(time_limit_s=1.0))
    assert rec.status is Status.TIME_LIMIT
    assert rec.x is None and rec.primal is None


def test_solver_names_are_parsed_and_checked() -> None:
    assert parse_solver("cvxpy:scip") == ("cvxpy", "SCIP")
    assert parse_solver("HiGHS") == ("highs", None)
    with pytest.raises(ValueError, match="unknown solver"):
        parse_solver("gurobi")
    ok, why = solver_available("cvxpy:NOPE")
    assert not ok and "not installed" in why
    assert {"highs", "scipy"} <= set(SOLVERS)


def test_cvxpy_scip_at_a_time_limit_returns_only_feasible_solutions() -> None:
    """SCIP stopped almost at once: no solution (cvxpy raises) or a feasible one, never x = 0
    read as a result; any dual bound is at most the incumbent."""
    if "cvxpy:SCIP" not in SOLVERS:
        pytest.fail("pyscipopt is in the dev extra and must be installed")
    model, _, _ = _hard_model()
    rec = solve_model(model, "cvxpy:SCIP", SolveOptions(time_limit_s=0.01))
    assert rec.status in (Status.TIME_LIMIT, Status.OPTIMAL)
    if rec.x is None:
        assert rec.primal is None
    else:
        assert model.violation(rec.x) < 1e-5
        if rec.dual_bound is not None:
            assert rec.dual_bound <= rec.primal + 1e-6


def test_highs_backend_writes_nothing_to_stdout():
    """HiGHS prints a banner on fd 1 at its first construction; the library must not."""
    import subprocess
    import sys

    code = (
        "from formulations import FORMULATIONS\n"
        "from pipecert import Budget\n"
        "from pipecert.testing import worked_example\n"
        "r = FORMULATIONS.make('exact_mip').run(worked_example(), 2, Budget(time_limit_s=10))\n"
        "assert r.bound is not None\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout == ""


# ---------------------------------------------------------------------------- numerics
def test_highs_default_tolerances_are_those_the_safety_margin_assumes() -> None:
    """The margin of formulations/mip/base.py assumes HiGHS's tolerances (1.2e-6 in
    all); a HiGHS release that loosened them would make it too small."""
    from formulations.mip.backends.highs import _new_highs
    from formulations.mip.base import solver_tolerance

    h = _new_highs()

    def value(name: str) -> float:
        v = h.getOptionValue(name)
        return float(v[-1] if isinstance(v, tuple) else v)  # (status, value) in highspy

    total = sum(value(o) for o in (
        "primal_feasibility_tolerance", "dual_feasibility_tolerance",
        "mip_feasibility_tolerance"))
    assert total <= solver_tolerance("highs") * (1 + 1e-9)
    assert solver_tolerance("cpsat") == 0.0


def test_scaled_costs_survive_extreme_magnitudes() -> None:
    """1e200, subnormal and all-zero costs: a finite power-of-two scale, costs floored."""
    from pipecert.instance import Instance

    for work, comm in (([1e200, 1e-9, 0.0], [3e200, 0.0, 1.0]),
                       ([5e-324, 0.0, 1e-310], [0.0, 0.0, 0.0]),
                       ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
                       ([1e-9, 1.0, 1e9], [1e9, 1e-9, 2e-9])):
        inst = Instance(["a", "b", "c"], work=work, comm=comm, edges=[("a", "b"), ("b", "c")])
        for integer in (False, True):
            s = ScaledCosts.of(inst, integer=integer)
            assert math.isfinite(s.scale) and s.scale > 0
            assert math.log2(s.scale) == round(math.log2(s.scale))
            assert np.all(s.w <= np.asarray(work) * s.scale)
            assert np.all(s.c <= np.asarray(comm) * s.scale)
            assert math.isfinite(s.upper())


def test_t_range_accepts_equal_context_bounds_and_rejects_inconsistent_ones() -> None:
    """CP-SAT once rejected a context whose lower and upper bounds were equal (case146)."""
    from formulations.mip.base import t_range
    from pipecert.results import SolveContext

    inst = random_dag(4, 5, integer=False)
    for integer in (False, True):
        costs = ScaledCosts.of(inst, integer=integer)
        for k in (1, 2, 3):
            v = float(inst.total_work) / k + 1.0
            lo, hi = t_range(costs, k, SolveContext(upper_bound=v, lower_bound=v),
                             comb_cut=True, context_lb_cut=True, cutoff=True)
            assert lo <= v * costs.scale <= hi
    with pytest.raises(ValueError, match="above the upper bound"):
        t_range(ScaledCosts.of(inst), 2, SolveContext(upper_bound=1.0, lower_bound=2.0),
                comb_cut=True, context_lb_cut=True, cutoff=True)


def test_margin_scales_with_the_largest_term_per_unit_of_t() -> None:
    from formulations.mip.base import numerical_margin, row_magnitude

    mb = ModelBuilder()
    X = mb.add_block("X", 2, integer=True)
    T = mb.add_block("T", (), lb=0.0, ub=50.0, cost=1.0)
    mb.add_le(X.at(np.arange(2)) * np.array([3.0, 500.0]) - T.at() * 4.0, 0.0)
    model = mb.build()
    assert row_magnitude(model) == pytest.approx(125.0)
    assert numerical_margin(model, "cpsat", 10.0) == 0.0
    m = numerical_margin(model, "highs", 10.0)
    assert m == pytest.approx(3 * 1.2e-6 * 125.0 + 1e-9)
    assert numerical_margin(model, "highs", 1000.0) > m  # |D| above R dominates
