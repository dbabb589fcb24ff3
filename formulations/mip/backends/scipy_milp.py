"""``scipy``: :func:`scipy.optimize.milp` (HiGHS inside scipy), the fallback with no extra
dependency.

No warm start, no incumbent log, no cancellation: it has no callback, so a running scipy
solve goes on to its own time limit after a cancel (a new one is not started). Its
tolerances are HiGHS's.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from formulations.mip.backends.base import (
    BACKENDS,
    SolveOptions,
    SolverBackend,
    SolveRecord,
    clean_x,
)
from formulations.mip.model import MipModel
from pipecert.results import Status

__all__ = ["ScipyBackend"]


@BACKENDS.register
class ScipyBackend(SolverBackend):
    """scipy's ``milp`` (module docstring)."""

    name = "scipy"
    requires = ("scipy",)
    #: ``OptimizeResult.status``: 0 optimal, 1 iteration or time limit, 2 infeasible,
    #: 3 unbounded, 4 other (both errors here).
    status_map = {0: Status.OPTIMAL, 1: Status.TIME_LIMIT, 2: Status.INFEASIBLE}
    tolerance = 1.2e-6
    node_limit = True

    def solve(self, model: MipModel, opts: SolveOptions) -> SolveRecord:
        """One ``milp`` call (retried without presolve on a HiGHS "Solve error")."""
        import scipy
        from scipy.optimize import Bounds, LinearConstraint, milp

        t0 = time.perf_counter()
        o: dict[str, Any] = {"disp": False, "mip_rel_gap": float(opts.gap)}
        if math.isfinite(opts.time_limit_s):
            o["time_limit"] = float(max(opts.time_limit_s, 1e-3))
        if opts.node_limit is not None:
            o["node_limit"] = int(opts.node_limit)
        res = milp(model.c, integrality=model.integrality, bounds=model.bounds(),
                   constraints=model.linear_constraint(), options=o)
        if res.status == 4:
            # scipy's bundled HiGHS reports "Solve error" on some tiny models (seen with a
            # positive lower bound on the continuous objective column). Retry without
            # presolve, first with column bounds written as rows, then as given, in the
            # time left.
            A2, lb2, ub2, clb2 = _bounds_as_rows(model)
            for A_, rlb, rub, clb in ((A2, lb2, ub2, clb2),
                                      (model.A, model.row_lb, model.row_ub, model.col_lb)):
                left = opts.time_limit_s - (time.perf_counter() - t0)
                if left <= 0 or res.status != 4:
                    break
                o["presolve"] = False
                if math.isfinite(left):
                    o["time_limit"] = float(max(left, 1e-3))
                res = milp(model.c, integrality=model.integrality,
                           bounds=Bounds(clb, model.col_ub),
                           constraints=LinearConstraint(A_, rlb, rub), options=o)
        solve_time = time.perf_counter() - t0
        x = clean_x(model, res.x) if res.x is not None else None
        primal = float(res.fun) if x is not None and res.fun is not None else None
        dual = getattr(res, "mip_dual_bound", None)
        if not model.integrality.any():
            dual = primal if res.status == 0 else None
        return self.record(int(res.status), None if dual is None else float(dual), primal, x,
                           scipy.__version__, solve_time,
                           nodes=getattr(res, "mip_node_count", None), message=str(res.message))


def _bounds_as_rows(model: MipModel) -> tuple[Any, Any, Any, Any]:
    """Rows ``x_j >= lb_j`` for continuous columns with a non-zero lower bound."""
    import scipy.sparse as sp

    cols = np.flatnonzero((model.integrality == 0) & (model.col_lb != 0)
                          & np.isfinite(model.col_lb))
    extra = sp.csr_array((np.ones(cols.size), (np.arange(cols.size), cols)),
                         shape=(cols.size, model.n_vars))
    A2 = sp.vstack([model.A, extra]).tocsr()
    lb2 = np.concatenate([model.row_lb, model.col_lb[cols]])
    ub2 = np.concatenate([model.row_ub, np.full(cols.size, np.inf)])
    clb2 = model.col_lb.copy()
    clb2[cols] = np.minimum(0.0, clb2[cols])
    return A2, lb2, ub2, clb2
