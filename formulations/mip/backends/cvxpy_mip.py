"""``cvxpy:<SOLVER>``: the model as one cvxpy problem, to reach every MIP solver cvxpy drives.

``cvxpy:SCIP``, ``cvxpy:HIGHS``, ``cvxpy:GUROBI``... The dual bound is read from the raw
solver (SCIP ``getDualbound()``, HiGHS ``mip_dual_bound``, Gurobi ``ObjBound``). Pitfall
handled here: at a time limit without a solution cvxpy reports ``user_limit`` (or raises)
with value 0 and x = 0; that is never read as a result. A solver whose dual bound cannot be
read and that reports ``optimal`` is trusted down to the gap it was given
(:data:`CVXPY_UNKNOWN_GAP` if it was given none).

Tolerances (the safety margin): HiGHS's for ``HIGHS`` and ``SCIPY``; SCIP
``numerics/feastol`` 1e-6 + ``dualfeastol`` 1e-7 + integrality (feastol) 1e-6 for ``SCIP``;
:data:`~formulations.mip.backends.base.DEFAULT_TOLERANCE` for the others.
"""

from __future__ import annotations

import importlib.util
import math
import time
import warnings
from typing import Any

import numpy as np

from formulations.mip.backends.base import (
    BACKENDS,
    DEFAULT_TOLERANCE,
    SolveOptions,
    SolverBackend,
    SolveRecord,
    clean_x,
)
from formulations.mip.model import MipModel
from pipecert.results import Status

__all__ = ["CvxpyBackend", "build_cvxpy_problem", "CVXPY_UNKNOWN_GAP", "CVXPY_MIP"]

#: cvxpy solvers that solve MILPs.
CVXPY_MIP = ("SCIP", "HIGHS", "GUROBI", "CPLEX", "COPT", "XPRESS", "MOSEK", "CBC", "GLPK_MI",
             "SCIPY")
#: Relative gap assumed for a cvxpy solver whose dual bound cannot be read: its reported
#: optimum is only trusted down to this gap (the default MIP gap of most solvers).
CVXPY_UNKNOWN_GAP = 1e-4
#: Solvers we pass our gap to (their ``optimal`` is within it).
_GAP_PASSED = ("SCIP", "HIGHS", "SCIPY", "GUROBI")
#: Summed absolute tolerances per cvxpy solver (module docstring).
_TOLERANCE = {"HIGHS": 1.2e-6, "SCIPY": 1.2e-6, "SCIP": 2.1e-6}
#: The package whose version is reported with cvxpy's.
_PACKAGE = {"SCIP": "pyscipopt", "HIGHS": "highspy", "GUROBI": "gurobipy", "SCIPY": "scipy"}


def _cvxpy_options(sub: str, opts: SolveOptions) -> dict[str, Any]:
    t = opts.time_limit_s
    if sub == "SCIP":
        params: dict[str, Any] = {"limits/gap": float(opts.gap),
                                  "randomization/randomseedshift": int(opts.seed) % 2**30}
        if math.isfinite(t):
            params["limits/time"] = float(max(t, 1e-2))
        if opts.node_limit is not None:
            params["limits/nodes"] = int(opts.node_limit)
        return {"scip_params": params}
    if sub == "HIGHS":
        o: dict[str, Any] = {"mip_rel_gap": float(opts.gap), "threads": int(opts.threads),
                             "random_seed": int(opts.seed) % (2**31 - 1)}
        if math.isfinite(t):
            o["time_limit"] = float(t)
        return o
    if sub == "SCIPY":
        so: dict[str, Any] = {"mip_rel_gap": float(opts.gap)}
        if math.isfinite(t):
            so["time_limit"] = float(max(t, 1e-3))
        return {"scipy_options": so}
    if sub == "GUROBI":
        g: dict[str, Any] = {"MIPGap": float(opts.gap), "Threads": int(opts.threads),
                             "Seed": int(opts.seed) % 2**30}
        if math.isfinite(t):
            g["TimeLimit"] = float(t)
        return g
    return {}


def _cvxpy_dual(sub: str, prob: Any) -> float | None:
    stats = getattr(prob, "solver_stats", None)
    extra = getattr(stats, "extra_stats", None) if stats is not None else None
    try:
        if sub == "SCIP" and isinstance(extra, dict) and "model" in extra:
            return float(extra["model"].getDualbound())
        if sub == "HIGHS" and extra is not None and hasattr(extra, "mip_dual_bound"):
            return float(extra.mip_dual_bound)
        if sub == "SCIPY" and isinstance(extra, dict) and "mip_dual_bound" in extra:
            return float(extra["mip_dual_bound"])
        if sub == "GUROBI" and extra is not None and hasattr(extra, "ObjBound"):
            return float(extra.ObjBound)
    except Exception:  # noqa: BLE001 - a bound we cannot read is no bound
        return None
    return None


def build_cvxpy_problem(model: MipModel) -> tuple[Any, Any, Any, Any, Any, Any]:
    """``model`` as one cvxpy problem: ``(problem, x, x_int, x_cont, int_cols, cont_cols)``.

    Integer and continuous columns are two cvxpy variables, stacked and permuted back into
    column order (a vectorized compile: no per-column Python expression).
    """
    import cvxpy as cpx

    n = model.n_vars
    ints = np.flatnonzero(model.integrality)
    conts = np.flatnonzero(model.integrality == 0)
    xi = cpx.Variable(ints.size, integer=True) if ints.size else None
    xc = cpx.Variable(conts.size) if conts.size else None
    parts = [p for p in (xi, xc) if p is not None]
    inv = np.empty(n, dtype=np.int64)
    inv[np.concatenate([ints, conts])] = np.arange(n)
    x = (cpx.hstack(parts) if len(parts) > 1 else parts[0])[inv]
    cons = []
    lb, ub = model.col_lb, model.col_ub
    f = np.isfinite(lb)
    if f.any():
        cons.append(x[np.flatnonzero(f)] >= lb[f])
    f = np.isfinite(ub)
    if f.any():
        cons.append(x[np.flatnonzero(f)] <= ub[f])
    A = model.A.tocsr()
    eq = model.row_lb == model.row_ub
    if eq.any():
        r = np.flatnonzero(eq)
        cons.append(A[r] @ x == model.row_lb[r])
    for mask, side in ((np.isfinite(model.row_lb) & ~eq, "lb"),
                       (np.isfinite(model.row_ub) & ~eq, "ub")):
        if mask.any():
            r = np.flatnonzero(mask)
            cons.append(A[r] @ x >= model.row_lb[r] if side == "lb" else
                        A[r] @ x <= model.row_ub[r])
    prob = cpx.Problem(cpx.Minimize(model.c @ x), cons)
    return prob, x, xi, xc, ints, conts


@BACKENDS.register
class CvxpyBackend(SolverBackend):
    """Any MILP solver cvxpy drives, as ``cvxpy:<SOLVER>`` (module docstring)."""

    name = "cvxpy"
    requires = ("cvxpy",)
    option = "required"
    #: ``Problem.status``; a limit is ``user_limit`` or ``optimal_inaccurate``.
    status_map = {
        "optimal": Status.OPTIMAL,
        "optimal_inaccurate": Status.TIME_LIMIT,
        "user_limit": Status.TIME_LIMIT,
        "infeasible": Status.INFEASIBLE,
        "infeasible_inaccurate": Status.INFEASIBLE,
    }
    threads = True  # HIGHS and GUROBI
    node_limit = True  # SCIP
    warm_start = True

    @classmethod
    def usage(cls) -> str:
        """``cvxpy:<SOLVER>``."""
        return "cvxpy:<SOLVER>"

    @classmethod
    def normalize_option(cls, sub: str) -> str:
        """cvxpy's solver names are upper case."""
        return sub.upper()

    def available(self) -> tuple[bool, str | None]:
        """cvxpy must be installed, and the solver installed in cvxpy and a MILP solver."""
        if importlib.util.find_spec("cvxpy") is None:
            return False, f"solver {self.solver!r} needs the missing module cvxpy"
        import cvxpy

        if self.sub not in cvxpy.installed_solvers():
            return False, f"cvxpy solver {self.sub} is not installed"
        if self.sub not in CVXPY_MIP:
            return False, f"cvxpy solver {self.sub} does not solve MILPs"
        return True, None

    @classmethod
    def installed(cls) -> list[str]:
        """``cvxpy:<S>`` for every MILP solver installed in cvxpy."""
        try:
            import cvxpy
        except ImportError:  # pragma: no cover - cvxpy is a core dependency
            return []
        return [f"cvxpy:{s}" for s in cvxpy.installed_solvers() if s in CVXPY_MIP]

    def tolerance_for(self) -> float:
        """The driven solver's tolerance (module docstring)."""
        return _TOLERANCE.get(self.sub or "", DEFAULT_TOLERANCE)

    def solve(self, model: MipModel, opts: SolveOptions) -> SolveRecord:
        """Compile once, solve with the driven solver, read its dual bound."""
        import cvxpy as cpx

        sub = self.sub or "SCIP"
        t0 = time.perf_counter()
        prob, x, xi, xc, ints, conts = build_cvxpy_problem(model)
        warm = opts.warm_start is not None
        if warm:
            x0 = np.asarray(opts.warm_start, dtype=np.float64)
            if xi is not None:
                xi.value = x0[ints]
            if xc is not None:
                xc.value = x0[conts]
        version = cpx.__version__
        try:
            import importlib.metadata as md

            pkg = _PACKAGE.get(sub)
            if pkg:
                version = f"cvxpy {cpx.__version__}, {pkg} {md.version(pkg)}"
        except Exception:  # noqa: BLE001 - version is informative only
            pass
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "solution may be inaccurate"
                prob.solve(solver=sub, warm_start=warm, **_cvxpy_options(sub, opts))
        except cpx.error.SolverError as exc:
            # e.g. SCIP at a time limit without a solution: no bound and no solution
            return self.record(None, None, None, None, version, time.perf_counter() - t0,
                               message=f"SolverError: {exc}", status=Status.TIME_LIMIT)
        solve_time = time.perf_counter() - t0
        st = prob.status
        dual = _cvxpy_dual(sub, prob)
        extra = getattr(getattr(prob, "solver_stats", None), "extra_stats", None)
        if sub == "SCIP" and isinstance(extra, dict) and extra.get("scip_status") == "gaplimit":
            st = "optimal"  # stopped at our own gap limit: solved
        xv = clean_x(model, x.value) if st in ("optimal", "optimal_inaccurate") else None
        if xv is not None and model.violation(xv) > 1e-5:
            # cvxpy may hand back x = 0 with a limit status: never read that as a solution
            xv = None
        primal = float(model.c @ xv) if xv is not None else None
        if not model.integrality.any():  # an LP: its optimal value is the bound
            dual = primal if st == "optimal" else None
        if st == "optimal" and dual is None and primal is not None:
            # a solver we passed our gap to stops within it; others within their default
            g = opts.gap if sub in _GAP_PASSED else CVXPY_UNKNOWN_GAP
            dual = primal * (1 - g) - 1e-9
        return self.record(st, dual, primal, xv, version, solve_time, message=str(st))
