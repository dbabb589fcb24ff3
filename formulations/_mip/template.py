"""``MipFormulation``: what every MIP-based bound shares.

A subclass builds its model with :class:`~formulations._mip.model.ModelBuilder` and
:class:`~formulations._mip.chain.Chain`, then calls :meth:`MipFormulation.solve_model`,
which picks the backend from the ``solver`` parameter and turns the raw record into a
valid bound:

* costs are scaled by a power of two so that ``max(w, c)`` is about 1000 (exact in floating
  point; spec §4.6); for ``cpsat`` they are scaled to about 1e6 and floored, which keeps the
  bound valid (every cost only decreases);
* the dual bound is unscaled and reduced by :data:`pipecert.results.DUAL_BOUND_MARGIN`
  (:func:`pipecert.results.safe_dual_bound`); an incumbent is only ever used as a partition,
  re-scored by the reference cost function;
* ``T`` gets the valid bounds ``T >= max(LB_comb, context.lower_bound)`` (any proven lower
  bound ``L <= OPT`` keeps an optimal partition feasible with ``T = OPT``) and the cutoff
  ``T <= context.upper_bound`` (the optimum is ``<= UB``), each behind an option.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from formulations._mip.backends import SolveOptions, SolveRecord, solve_model, solver_available
from formulations._mip.chain import ScaledCosts
from formulations._mip.model import MipModel
from formulations.base import Formulation
from pipecert.instance import Instance
from pipecert.results import Budget, SolveContext, safe_dual_bound

__all__ = ["MipFormulation", "t_range"]

#: Relative slack added to a cutoff ``T <= UB`` so that rounding never cuts the optimum.
CUTOFF_SLACK = 1e-7


def t_range(costs: ScaledCosts, k: int, context: SolveContext | None, *, comb_cut: bool,
            context_lb_cut: bool, cutoff: bool) -> tuple[float, float]:
    """Valid bounds ``(lo, hi)`` for ``T`` in scaled units (see the module docstring)."""
    lo = costs.lb_comb(k) if comb_cut else 0.0
    ctx = context or SolveContext()
    if context_lb_cut and ctx.lower_bound is not None and math.isfinite(ctx.lower_bound):
        lb = float(ctx.lower_bound) * costs.scale
        lb = math.floor(lb) if costs.integer else lb * (1 - 1e-9) - 1e-9
        lo = max(lo, lb)
    hi = costs.upper()
    if cutoff and ctx.upper_bound is not None and math.isfinite(ctx.upper_bound):
        ub = float(ctx.upper_bound) * costs.scale
        ub = math.ceil(ub) if costs.integer else ub * (1 + CUTOFF_SLACK) + 1e-9
        hi = min(hi, ub)
    if costs.integer:
        hi = math.ceil(hi)
    if lo > hi:
        raise ValueError(
            f"context lower bound {ctx.lower_bound!r} is above the upper bound "
            f"{ctx.upper_bound!r}: one of them is invalid")
    return float(max(lo, 0.0)), float(hi)


class MipFormulation(Formulation):
    """Base of the MIP bounds: backend choice, scaling, safe dual bounds.

    Subclasses store a ``solver`` parameter (``highs``, ``scipy``, ``cpsat`` or
    ``cvxpy:<SOLVER>``) and ``gap`` and ``seed`` parameters.
    """

    solver: str
    gap: float
    seed: int

    def supports(self, instance: Any, k: int) -> tuple[bool, str | None]:
        """The backend must be installed."""
        ok, why = super().supports(instance, k)
        if not ok:
            return ok, why
        return solver_available(self.solver)

    def scaled_costs(self, instance: Instance) -> ScaledCosts:
        """Scaled costs for this backend (integer for CP-SAT)."""
        return ScaledCosts.of(instance, integer=self.solver.lower() == "cpsat")

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

    @staticmethod
    def bound_of(rec: SolveRecord, costs: ScaledCosts) -> float | None:
        """The record's dual bound in original units, minus the safety margin."""
        return safe_dual_bound(rec.dual_bound, scale=1.0 / costs.scale)

    @staticmethod
    def base_stats(model: MipModel, rec: SolveRecord, costs: ScaledCosts) -> dict[str, Any]:
        """Model size and solver facts for ``BoundResult.stats``."""
        return {
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

    @staticmethod
    def scaled_log(rec: SolveRecord, costs: ScaledCosts,
                   offset_s: float = 0.0) -> list[tuple[float, float | None, float | None]]:
        """The incumbent log in original units (bounds with the margin)."""
        out = []
        for t, d, p in rec.log:
            out.append((offset_s + float(t), safe_dual_bound(d, scale=1 / costs.scale),
                        None if p is None else float(p) / costs.scale))
        return out
