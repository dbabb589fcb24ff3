"""``MipFormulation``: what every MIP-based bound shares, and why its bound is safe.

A subclass builds its model with :class:`~formulations.mip.model.ModelBuilder` and
:class:`~formulations.mip.chain.Chain`, then calls :meth:`MipFormulation.solve_model`,
which picks the backend from the ``solver`` parameter, and :meth:`MipFormulation.bound_of`,
which turns the raw record into a valid bound.

Scaling
-------
Costs are scaled by a power of two so that ``max(w, c)`` is about 1000 (exact in floating
point; docs/theory/bounds.md#dual-bound), floored to a grid of ``2**-20`` (1e-9 of the top cost);
for ``cpsat`` they are scaled to about 1e6 and floored to integers. Flooring only lowers
costs, which keeps every bound valid (:class:`~formulations.mip.chain.ScaledCosts`).

The safety margin (why a reported bound is <= OPT)
--------------------------------------------------
A floating-point MIP solver does not solve our model exactly. It accepts a row violated by
its feasibility tolerance, a binary within its integrality tolerance of 0 or 1 and a reduced
cost within its dual tolerance of the right sign; its presolve and propagation fix and
tighten with the same tolerances, and it stops at an absolute gap. The tolerances are
*absolute* on the solver's internally scaled model, in which every row and column is
equilibrated (HiGHS and SCIP scale by powers of two so that the largest entry is about 1).
In our units a tolerance ``eps`` on a row therefore amounts to ``eps`` times the row's
largest term. In every model here the objective is the single column ``T`` and each row
that bounds it reads ``sum_j a_ij x_j <= m_i T`` with ``m_i >= 1``: its largest term is
at most ``m_i * max(R, T)``, where ``R`` is the largest term per unit of ``T`` of a row
bounding ``T`` (:func:`row_magnitude`, from the model's coefficients and column bounds), and
a perturbation ``delta`` of the row moves the smallest feasible ``T`` by ``delta / m_i``.
Hence the reported dual bound ``D`` exceeds the model's true optimum by at most
``eps * max(R, |D|)`` per kind of tolerance. Three kinds are counted (feasibility and
integrality on the rows bounding T; the linking rows ``y >= x_v - x_u``, with unit
coefficients, which reach the T-rows through charge coefficients already counted in ``R``;
and the dual side), plus the absolute gap::

    margin = MARGIN_FACTOR * eps * max(R, |D|) + ABS_GAP   (model units, MARGIN_FACTOR = 3)
    bound  = (D - margin) / scale, then minus DUAL_BOUND_MARGIN relative and BOUND_ATOL

``eps`` is the sum of the backend's absolute tolerances (:func:`solver_tolerance`: the
``tolerance`` its backend class declares, 1.2e-6 for HiGHS). With the largest cost scaled
to about 1000, ``R`` is at most about 1400, so the margin is about 3.6e-6 times
``max(D, largest cost)`` for HiGHS (6.3e-6 for SCIP): a few 1e-6 relative on usual data,
where the optimum is at least the largest work. The errors it
must cover, measured on the fuzz cases, were 1e-9 (HiGHS's absolute gap: ``case281``,
``case1123``, ``case2064``), 2.3e-8 (``case1130``) and 1e-6 (``case386``, ``case1576``: the
solver's own tolerance) in model units, three orders of magnitude below it. When the
optimum lies far below the largest cost (1e-9 next to 1e9), the margin exceeds the solver's
answer and the bound drops to 0: the solver cannot resolve such values, and the framework
floors the result at the combinatorial bound, which is exact arithmetic. CP-SAT solves the
integer model exactly (tolerance 0: only the relative ``DUAL_BOUND_MARGIN`` is taken off).
A backend that declares no tolerance gets :data:`DEFAULT_TOLERANCE` (1e-5).

The T range
-----------
``T`` gets the valid bounds ``T >= max(LB_comb, context.lower_bound)`` (any proven lower
bound ``L <= OPT`` keeps an optimal partition feasible with ``T = OPT``) and the cutoff
``T <= min(W + 2 sum c, context.upper_bound)`` (no block of the true problem costs more than
``W + 2 sum c``, unfloored, and the optimum is ``<= UB``), each behind an option. Both ends
are widened by :data:`T_SLACK` relative, so that ``T = OPT`` lies strictly inside the range
whatever the rounding of the scaled values (a wider range only lowers the optimum).
A model the solver still declares infeasible is numerically doubtful: it gives no bound
(never an error, :func:`doubtful_infeasible`).
"""

from __future__ import annotations

import inspect
import math
import time
from typing import Any, ClassVar

import numpy as np

from formulations.base import Formulation
from formulations.mip.backends import (
    DEFAULT_TOLERANCE,
    SolveOptions,
    SolveRecord,
    make_backend,
    solve_model,
    solver_available,
)
from formulations.mip.chain import ScaledCosts
from formulations.mip.model import MipModel
from pipecert.instance import Instance
from pipecert.results import Budget, SolveContext, Status, bound_exceeds, safe_dual_bound

__all__ = ["MipFormulation", "t_range", "row_magnitude", "numerical_margin",
           "solver_tolerance", "doubtful_infeasible", "T_SLACK", "DEFAULT_TOLERANCE"]

#: Relative slack added to both ends of T's range (kept for the name: the cutoff slack).
T_SLACK = 1e-7
CUTOFF_SLACK = T_SLACK

#: Tolerance kinds summed into the margin (see the module docstring).
MARGIN_FACTOR = 3.0
#: Absolute gap at which a backend may stop (we set HiGHS's ``mip_abs_gap`` to 1e-9; the
#: others stop on the relative gap only); model units.
ABS_GAP = 1e-9


def t_range(costs: ScaledCosts, k: int, context: SolveContext | None, *, comb_cut: bool,
            context_lb_cut: bool, cutoff: bool) -> tuple[float, float]:
    """Valid bounds ``(lo, hi)`` for ``T`` in scaled units (see the module docstring).

    Raises
    ------
    ValueError
        If the context's lower bound is above its upper bound beyond rounding (one of them is
        invalid). Equal values, or values a rounding apart, are accepted.
    """
    lo = costs.lb_comb(k) if comb_cut else 0.0
    ctx = context or SolveContext()
    hi = costs.upper()
    if cutoff and ctx.upper_bound is not None and math.isfinite(ctx.upper_bound):
        hi = min(hi, float(ctx.upper_bound) * costs.scale)
    if context_lb_cut and ctx.lower_bound is not None and math.isfinite(ctx.lower_bound):
        lb = float(ctx.lower_bound) * costs.scale
        if ctx.upper_bound is not None and math.isfinite(ctx.upper_bound) and \
                bound_exceeds(float(ctx.lower_bound), float(ctx.upper_bound)):
            raise ValueError(
                f"context lower bound {ctx.lower_bound!r} is above the upper bound "
                f"{ctx.upper_bound!r}: one of them is invalid")
        lo = max(lo, lb)
    lo = max(0.0, lo * (1 - T_SLACK))
    hi = hi * (1 + T_SLACK) + costs.quantum
    if costs.integer:
        lo, hi = math.floor(lo), math.ceil(hi)
    lo = min(lo, hi)  # a lower bound a rounding above the cutoff: T = hi is still valid
    return float(lo), float(hi)


def row_magnitude(model: MipModel) -> float:
    """``R``: the largest term, per unit of ``T``, of a row that bounds ``T``.

    For each row with a non-zero coefficient ``m_i`` on the objective column(s) ``T``:
    ``max_{j != T} |a_ij| max(|lb_j|, |ub_j|) / |m_i|``; ``R`` is the largest. ``inf`` if
    a column in such a row is unbounded. Without such a row: the largest term of any row.
    """
    xmax = np.maximum(np.abs(model.col_lb), np.abs(model.col_ub))
    A = abs(model.A.tocsr()).tocoo()
    is_obj = np.zeros(model.n_vars, dtype=bool)
    is_obj[np.flatnonzero(model.c)] = True
    m = np.zeros(A.shape[0])
    np.add.at(m, A.row[is_obj[A.col]], A.data[is_obj[A.col]])
    rest = ~is_obj[A.col]
    term = A.data[rest] * xmax[A.col[rest]]
    rows = A.row[rest]
    big = np.zeros(A.shape[0])
    if term.size:
        if not np.all(np.isfinite(term)):
            return math.inf
        np.maximum.at(big, rows, term)
    if np.any(m > 0):
        return float(np.max(big[m > 0] / m[m > 0]))
    return float(np.max(big, initial=0.0))


def solver_tolerance(solver: str) -> float:
    """The summed absolute tolerance ``eps`` of a solver name (its backend's declaration).

    HiGHS 1e-7 + 1e-7 + 1e-6 (also inside scipy and ``cvxpy:HIGHS`` / ``cvxpy:SCIPY``);
    SCIP ``numerics/feastol`` 1e-6 + ``dualfeastol`` 1e-7 + integrality (feastol) 1e-6;
    CP-SAT 0 (exact on integer data); :data:`DEFAULT_TOLERANCE` for a backend that declares
    none.

    Raises
    ------
    ValueError
        For an unknown solver name.
    """
    return make_backend(solver).tolerance_for()


def numerical_margin(model: MipModel, solver: str, value: float = 0.0) -> float:
    """The safety margin of a dual bound ``value`` of ``model`` from ``solver`` (model units).

    ``MARGIN_FACTOR * eps * (R + |value|) + ABS_GAP`` (module docstring); 0 for an exact
    backend; ``inf`` for an unknown solver name or an unbounded row.
    """
    try:
        eps = solver_tolerance(solver)
    except ValueError:
        return math.inf
    if eps == 0.0:
        return 0.0
    v = abs(value) if math.isfinite(value) else math.inf
    return MARGIN_FACTOR * eps * max(row_magnitude(model), v) + ABS_GAP


def doubtful_infeasible(what: str, lo: float, hi: float) -> dict[str, Any]:
    """Stats for a model the solver called infeasible although ``T = OPT`` is feasible."""
    return {"numerics": f"{what} reported infeasible with T in [{lo!r}, {hi!r}] (scaled): "
                        "numerically doubtful, no bound"}


class MipFormulation(Formulation):
    """Base of the MIP bounds: shared parameters, backend choice, scaling, safe dual bounds.

    Subclass it for a new MIP relaxation: build the model with
    :class:`~formulations.mip.model.ModelBuilder` (and :class:`~formulations.mip.chain.Chain`
    for the k ordered blocks), take ``T``'s range from :func:`t_range`, solve with
    :meth:`solve_t_model` and report :meth:`bound_of`, the dual bound with the safety margin
    taken off (``docs/extending-mip.md`` has a worked example).

    Parameters
    ----------
    solver : str
        Backend name: ``highs`` (default), ``scipy``, ``cpsat``, ``cvxpy:<SOLVER>`` or any
        backend registered in :data:`formulations.mip.backends.BACKENDS`.
    form : {"cumulative", "assign"}
        Block encoding of :class:`~formulations.mip.chain.Chain`.
    comb_cut, context_lb_cut, cutoff : bool
        ``T >= LB_comb``, ``T >= context.lower_bound``, ``T <= context.upper_bound``
        (:func:`t_range`; all valid).
    warm_start : bool
        Seed the solver with ``context.partition`` when the formulation can.
    gap : float
        Relative MIP gap at which the solver stops (its dual bound stays valid).
    seed : int
        The solver's random seed.

    Notes
    -----
    These eight parameters are declared here once. A subclass with parameters of its own
    declares only those and passes the rest on::

        def __init__(self, *, variant: str = "max", **shared: Any) -> None:
            super().__init__(**shared)
            self.variant = variant

    :meth:`__init_subclass__` then gives its ``__init__`` the merged signature (its own
    keyword-only parameters and the shared ones), which is what
    :meth:`~pipecert.registry.Method.param_names`, method ids and ``pipecert list`` read.
    A subclass without parameters of its own defines no ``__init__``.
    """

    #: Names of the parameters every MIP formulation has.
    SHARED_PARAMS: ClassVar[tuple[str, ...]] = (
        "solver", "form", "comb_cut", "context_lb_cut", "cutoff", "warm_start", "gap", "seed")

    solver: str
    form: str
    comb_cut: bool
    context_lb_cut: bool
    cutoff: bool
    warm_start: bool
    gap: float
    seed: int

    def __init__(
        self,
        *,
        solver: str = "highs",
        form: str = "cumulative",
        comb_cut: bool = True,
        context_lb_cut: bool = True,
        cutoff: bool = True,
        warm_start: bool = True,
        gap: float = 1e-6,
        seed: int = 0,
    ) -> None:
        self.solver = solver
        self.form = form
        self.comb_cut = comb_cut
        self.context_lb_cut = context_lb_cut
        self.cutoff = cutoff
        self.warm_start = warm_start
        self.gap = gap
        self.seed = seed

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give an ``__init__(self, *, own..., **shared)`` the merged signature (class notes)."""
        super().__init_subclass__(**kwargs)
        init = vars(cls).get("__init__")  # the class's own __init__, not an inherited one
        if init is None:
            return
        sig = inspect.signature(init)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        if len(own) == len(sig.parameters):
            return  # every parameter written out: nothing to merge
        names = {p.name for p in own}
        parent = inspect.signature(super(cls, cls).__init__)
        inherited = [p for p in parent.parameters.values()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in names]
        init.__signature__ = sig.replace(parameters=own + inherited)

    def supports(self, instance: Any, k: int) -> tuple[bool, str | None]:
        """The backend must be installed."""
        ok, why = super().supports(instance, k)
        if not ok:
            return ok, why
        return solver_available(self.solver)

    def scaled_costs(self, instance: Instance) -> ScaledCosts:
        """Scaled costs for this backend (integer for CP-SAT)."""
        return ScaledCosts.of(instance, integer=make_backend(self.solver).integer_data)

    def solve_model(self, model: MipModel, budget: Budget, *,
                    time_limit_s: float | None = None,
                    warm_start: np.ndarray | None = None,
                    stop_below: float | None = None,
                    stop_dual_above: float | None = None) -> SolveRecord:
        """Solve with the configured backend within the budget (or ``time_limit_s``)."""
        t = budget.remaining() if time_limit_s is None else min(time_limit_s,
                                                                 budget.remaining())
        if warm_start is not None and model.violation(warm_start) > 1e-6:
            warm_start = None
        opts = SolveOptions(time_limit_s=t, gap=self.gap, threads=budget.threads,
                            seed=self.seed, node_limit=budget.node_limit,
                            warm_start=warm_start, stop_below=stop_below,
                            stop_dual_above=stop_dual_above)
        return solve_model(model, self.solver, opts)

    def solve_t_model(self, model: MipModel, t_col: int, costs: ScaledCosts,
                      budget: Budget, *, time_limit_s: float | None = None,
                      warm_start: np.ndarray | None = None,
                      stop_below: float | None = None,
                      stop_dual_above: float | None = None) -> tuple[SolveRecord, str]:
        """:meth:`solve_model`, retried once with ``T`` in ``[0, W + 2 sum c]`` if infeasible.

        A model whose T range came from the context (a cutoff, a proven lower bound) and that
        the solver calls infeasible is solved again with the widest valid range, in the time
        left: a false context then shows as a bound above it (an error the framework
        reports), and a claim that survives the wide range is numerically doubtful (the
        caller gives no bound). Returns the record and a note (empty if no retry).
        """
        t0 = time.monotonic()
        rec = self.solve_model(model, budget, time_limit_s=time_limit_s,
                               warm_start=warm_start, stop_below=stop_below,
                               stop_dual_above=stop_dual_above)
        if rec.status is not Status.INFEASIBLE:
            return rec, ""
        lo0, hi0 = 0.0, float(math.ceil(costs.upper())) if costs.integer else costs.upper()
        lo, hi = float(model.col_lb[t_col]), float(model.col_ub[t_col])
        if lo <= lo0 and hi >= hi0:
            return rec, ""
        model.col_lb[t_col], model.col_ub[t_col] = lo0, max(hi, hi0)
        left = None if time_limit_s is None else max(0.0, time_limit_s - (time.monotonic() - t0))
        rec2 = self.solve_model(model, budget, time_limit_s=left, stop_below=stop_below,
                                stop_dual_above=stop_dual_above)
        return rec2, (f"infeasible with T in [{lo!r}, {hi!r}] (scaled), re-solved with "
                      f"T in [{lo0!r}, {max(hi, hi0)!r}]: {rec2.status}")

    def bound_of(self, rec: SolveRecord, costs: ScaledCosts, model: MipModel) -> float | None:
        """The record's dual bound in original units, minus the safety margin."""
        return self.safe_bound(rec.dual_bound, costs, model)

    def safe_bound(self, value: float | None, costs: ScaledCosts,
                   model: MipModel) -> float | None:
        """A raw dual bound (model units) as a valid bound in original units, or None.

        None when the margin cannot be computed (an unbounded row).
        """
        if value is None:
            return None
        margin = numerical_margin(model, self.solver, value)
        if not math.isfinite(margin):
            return None
        return safe_dual_bound(value, scale=1.0 / costs.scale, abs_margin=margin)

    def base_stats(self, model: MipModel, rec: SolveRecord,
                   costs: ScaledCosts) -> dict[str, Any]:
        """Model size, solver facts and the safety margin (original units)."""
        return {
            "margin": numerical_margin(model, self.solver, rec.dual_bound or 0.0)
            / costs.scale,
            "quantum": costs.quantum / costs.scale,
            "n_vars": model.n_vars,
            "n_int": model.n_integer,
            "n_cons": model.n_cons,
            "n_nonzeros": int(model.A.nnz),
            "nodes": rec.nodes,
            "solver": rec.solver,
            "solver_version": rec.solver_version,
            "solver_status": rec.message,
            "build_time_s": model.build_time_s,
            "solve_time_s": rec.solve_time_s,
            "scale": costs.scale,
            "integer_costs": costs.integer,
        }

    def scaled_log(self, rec: SolveRecord, costs: ScaledCosts, model: MipModel,
                   offset_s: float = 0.0) -> list[tuple[float, float | None, float | None]]:
        """The incumbent log in original units (bounds with the margin)."""
        out = []
        for t, d, p in rec.log:
            out.append((offset_s + float(t), self.safe_bound(d, costs, model),
                        None if p is None else float(p) / costs.scale))
        return out
