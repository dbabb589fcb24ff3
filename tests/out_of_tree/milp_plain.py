"""An out-of-tree solver backend in one file: scipy's ``milp`` called plainly.

The worked example of ``docs/extending-mip.md``; ``tests/test_mip_plugins.py`` loads this
file by path and solves MIP formulations with ``solver="milp-plain"``. (The built-in
``scipy`` backend wraps the same solver, with retries on HiGHS's "Solve error".)
"""

from __future__ import annotations

import math
import time
from typing import Any

from formulations.mip import BACKENDS, MipModel, SolveOptions, SolverBackend, SolveRecord
from pipecert.results import Status


@BACKENDS.register
class MilpPlain(SolverBackend):
    """scipy.optimize.milp, no retry (an out-of-tree example)."""

    name = "milp-plain"
    requires = ("scipy",)
    # OptimizeResult.status -> status; anything else (3 unbounded, 4 error) is ERROR
    status_map = {0: Status.OPTIMAL, 1: Status.TIME_LIMIT, 2: Status.INFEASIBLE}
    # HiGHS inside: primal 1e-7 + dual 1e-7 + integrality 1e-6 (the safety margin uses it)
    tolerance = 1.2e-6
    node_limit = True

    def solve(self, model: MipModel, opts: SolveOptions) -> SolveRecord:
        """One ``milp`` call; the dual bound is ``mip_dual_bound`` (the LP value for an LP)."""
        import scipy
        from scipy.optimize import milp

        t0 = time.perf_counter()
        options: dict[str, Any] = {"disp": False, "mip_rel_gap": float(opts.gap)}
        if math.isfinite(opts.time_limit_s):
            options["time_limit"] = max(opts.time_limit_s, 1e-3)
        if opts.node_limit is not None:
            options["node_limit"] = int(opts.node_limit)
        res = milp(model.c, integrality=model.integrality, bounds=model.bounds(),
                   constraints=model.linear_constraint(), options=options)
        x = res.x if res.x is not None else None
        primal = float(res.fun) if x is not None else None
        dual = getattr(res, "mip_dual_bound", None)
        if not model.integrality.any():  # an LP: its optimal value is the bound
            dual = primal if res.status == 0 else None
        return self.record(int(res.status), dual, primal, x, scipy.__version__,
                           time.perf_counter() - t0, message=str(res.message))
