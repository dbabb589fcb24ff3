"""``cpsat``: OR-Tools CP-SAT, exact on integer data.

It needs integer data: every coefficient must be integral (the formulation floors the scaled
costs, which keeps the bound valid, and solutions are re-scored by the reference cost
function) and row bounds are rounded inwards, which is exact for integer rows. Its
``best_objective_bound`` is the dual bound; it is exact (tolerance 0). A cancel calls
``StopSearch``; the bound so far is kept.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np

from formulations.mip.backends.base import BACKENDS, SolveOptions, SolverBackend, SolveRecord
from formulations.mip.model import MipModel
from pipecert.results import Status

__all__ = ["CpSatBackend"]


@BACKENDS.register
class CpSatBackend(SolverBackend):
    """OR-Tools CP-SAT (module docstring)."""

    name = "cpsat"
    requires = ("ortools",)
    #: ``CpSolver.status_name``; FEASIBLE and UNKNOWN are stops at a limit.
    status_map = {
        "OPTIMAL": Status.OPTIMAL,
        "FEASIBLE": Status.TIME_LIMIT,
        "INFEASIBLE": Status.INFEASIBLE,
        "UNKNOWN": Status.TIME_LIMIT,
    }
    tolerance = 0.0
    integer_data = True
    threads = True
    warm_start = True
    incumbent_log = True
    cancellable = True

    def solve(self, model: MipModel, opts: SolveOptions) -> SolveRecord:
        """Build the integer model, solve it, stop on cancel or ``stop_below``."""
        import ortools
        from ortools.sat.python import cp_model

        t0 = time.perf_counter()
        A = model.A.tocsr()
        if A.nnz and not np.all(A.data == np.round(A.data)):
            raise ValueError("cpsat needs integer coefficients (floor the scaled costs)")
        if not np.all(model.c == np.round(model.c)):
            raise ValueError("cpsat needs an integer objective")
        lbs = np.ceil(model.col_lb - 1e-9)
        ubs = np.floor(model.col_ub + 1e-9)
        if not (np.all(np.isfinite(lbs)) and np.all(np.isfinite(ubs))):
            raise ValueError("cpsat needs finite variable bounds")
        cp = cp_model.CpModel()
        xs = [cp.new_int_var(int(lo), int(hi), f"x{j}") for j, (lo, hi) in
              enumerate(zip(lbs.tolist(), ubs.tolist()))]
        big = cp_model.INT_MAX if hasattr(cp_model, "INT_MAX") else 2**62
        rlb = np.where(np.isfinite(model.row_lb), np.ceil(model.row_lb - 1e-9), -big)
        rub = np.where(np.isfinite(model.row_ub), np.floor(model.row_ub + 1e-9), big)
        ptr, idx, dat = A.indptr, A.indices, A.data.astype(np.int64)
        for r in range(A.shape[0]):
            a, b = ptr[r], ptr[r + 1]
            expr = cp_model.LinearExpr.weighted_sum([xs[j] for j in idx[a:b].tolist()],
                                                    dat[a:b].tolist())
            lo, hi = int(rlb[r]), int(rub[r])
            if lo <= -big:
                cp.add(expr <= hi)
            elif hi >= big:
                cp.add(expr >= lo)
            else:
                cp.add_linear_constraint(expr, lo, hi)
        nz = np.flatnonzero(model.c)
        cp.minimize(cp_model.LinearExpr.weighted_sum([xs[j] for j in nz.tolist()],
                                                     model.c[nz].astype(np.int64).tolist()))
        if opts.warm_start is not None:
            for j, v in enumerate(np.round(opts.warm_start).astype(np.int64).tolist()):
                cp.add_hint(xs[j], v)
        solver = cp_model.CpSolver()
        p = solver.parameters
        if math.isfinite(opts.time_limit_s):
            p.max_time_in_seconds = float(max(opts.time_limit_s, 1e-3))
        p.num_workers = int(max(1, opts.threads))
        p.random_seed = int(opts.seed) % (2**31 - 1)
        p.relative_gap_limit = float(opts.gap)
        trace: list[tuple[float, float | None, float | None]] = []
        why = {"why": ""}

        class _Cb(cp_model.CpSolverSolutionCallback):
            def on_solution_callback(self) -> None:
                trace.append((self.wall_time, self.best_objective_bound, self.objective_value))
                if opts.stop_below is not None and self.objective_value <= opts.stop_below:
                    why["why"] = "stop_below"
                    self.stop_search()
                if opts.cancelled():
                    why["why"] = "cancelled"
                    self.stop_search()

        done = threading.Event()

        def watch() -> None:  # the process-wide flag (SIGINT / SIGTERM) or the caller's event
            while not done.wait(0.05):
                if opts.cancelled():
                    why["why"] = "cancelled"
                    solver.stop_search()
                    return
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        st = solver.solve(cp, _Cb())
        done.set()
        watcher.join()
        solve_time = time.perf_counter() - t0
        has_x = st in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        x = np.array([solver.value(v) for v in xs], dtype=np.float64) if has_x else None
        primal = float(solver.objective_value) if has_x else None
        name = solver.status_name(st)
        return self.record(name, float(solver.best_objective_bound), primal, x,
                           ortools.__version__,  # type: ignore[attr-defined]
                           solve_time, nodes=int(solver.num_branches),
                           log=trace, message=name, stopped_by=why["why"])
