"""Backends that solve one :class:`~formulations._mip.model.MipModel`.

``solve_model(model, solver, ...)`` dispatches on the solver name:

``highs`` (default)
    highspy directly from the arrays (one ``passModel`` of a column-wise matrix). Options:
    time limit, relative gap, threads, random seed, node limit; the dual bound is
    ``getInfo().mip_dual_bound``; an improving-solution callback records the incumbent log;
    an interrupt callback enforces the wall-clock deadline (HiGHS overruns its own
    ``time_limit``: its root cut separation ran 5 s past a 1 s limit here) and a
    :class:`threading.Event` cancels the solve (``SolveOptions.cancel``, and always the
    process-wide flag of :mod:`pipecert.cancel` set by SIGINT / SIGTERM): the interrupt
    callback stops HiGHS and the global dual bound proven so far is read after ``run``
    returns. HiGHS runs in a worker thread; if it has not stopped ``2 * HARD_GRACE_S``
    after the limit (``CANCEL_GRACE_S`` after a cancel), the backend returns what the
    callbacks saw (the last global dual bound and incumbent) and abandons the thread, which
    stops at its next interrupt check; abandoned threads are joined before the interpreter
    exits (a HiGHS thread still running at exit aborts the process).
``cvxpy:<SOLVER>``
    The same arrays as one cvxpy vector variable, to reach every MIP solver cvxpy drives
    (``cvxpy:SCIP``, ``cvxpy:HIGHS``, ``cvxpy:GUROBI``...). The dual bound is read from the
    raw solver (SCIP ``getDualbound()``, HiGHS ``mip_dual_bound``, Gurobi ``ObjBound``).
    Pitfall handled here: at a time limit without a solution cvxpy reports ``user_limit``
    (or raises) with value 0 and x = 0; that is never read as a result.
``scipy``
    :func:`scipy.optimize.milp` (HiGHS inside scipy), the fallback with no extra dependency;
    no warm start, no incumbent log, no cancellation: it has no callback, so a running
    scipy solve goes on to its own time limit after a cancel (a new one is not started).
``cpsat``
    OR-Tools CP-SAT (a cancel calls ``StopSearch``; the bound so far is kept). It needs
    integer data: every coefficient must be integral (the
    formulation floors the scaled costs, which keeps the bound valid, and solutions are
    re-scored by the reference cost function) and row bounds are rounded inwards, which is
    exact for integer rows. Its ``best_objective_bound`` is the dual bound.

Every backend returns the same :class:`SolveRecord`. The dual bound in it is *raw* (model
units, no safety margin): the caller applies :func:`pipecert.results.safe_dual_bound`.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from formulations._mip.model import MipModel
from pipecert import cancel as _cancel
from pipecert.results import Status

__all__ = ["SolveRecord", "SolveOptions", "solve_model", "available_solvers", "parse_solver",
           "solver_available"]

log = logging.getLogger(__name__)

#: Seconds a backend may run past the deadline before it is interrupted (and as much
#: again before an unresponsive HiGHS run is abandoned).
HARD_GRACE_S = 0.5
#: Seconds a cancelled HiGHS run may take to return through its interrupt callback (and
#: report its final dual bound) before it is abandoned. HiGHS calls no callback in some
#: phases (presolve, parts of the root node: 7 s on inception_v3, k = 16, exact_mip).
CANCEL_GRACE_S = 1.0
#: Seconds the interpreter waits at exit for abandoned HiGHS threads to stop.
EXIT_JOIN_S = 10.0
#: HiGHS threads abandoned at a deadline (they stop at their next interrupt check).
_ABANDONED: list[threading.Thread] = []


def _cancelled(opts: SolveOptions) -> bool:
    """True once the caller's event or the process-wide cancel flag is set."""
    return _cancel.requested() or (opts.cancel is not None and opts.cancel.is_set())


def stop_abandoned(timeout: float = EXIT_JOIN_S) -> bool:
    """Stop and join abandoned HiGHS threads; True if none is left running.

    A HiGHS thread still inside ``run`` at interpreter exit has C++ threads that are
    destroyed while joinable: ``terminate called without an active exception`` (SIGABRT).
    Setting the cancel flag makes its interrupt callback stop it at its next check.
    """
    alive = [t for t in _ABANDONED if t.is_alive()]
    if not alive:
        return True
    _cancel.request("exit")
    end = time.monotonic() + timeout
    for t in alive:
        t.join(max(0.0, end - time.monotonic()))
    return not any(t.is_alive() for t in alive)


_cancel.register_worker_stopper(stop_abandoned)
atexit.register(stop_abandoned)


@dataclass
class SolveOptions:
    """Solver-independent options.

    ``stop_below``: stop as soon as an incumbent with objective ``<= stop_below`` exists
    (the caller cannot use a better dual bound any more). ``stop_dual_above``: stop once
    the dual bound reaches it. Both are best-effort (HiGHS, CP-SAT).
    """

    time_limit_s: float = math.inf
    gap: float = 1e-6
    threads: int = 1
    seed: int = 0
    node_limit: int | None = None
    warm_start: NDArray[np.float64] | None = None
    cancel: threading.Event | None = None
    stop_below: float | None = None
    stop_dual_above: float | None = None


@dataclass
class SolveRecord:
    """What every backend returns.

    ``status`` is one of OPTIMAL (model solved to optimality), TIME_LIMIT (stopped by a
    limit or interrupted; ``dual_bound`` and ``x`` may exist), INFEASIBLE, NO_SOLUTION,
    ERROR. ``dual_bound`` is raw (no margin), None if the solver proved none.
    ``x`` is a primal solution (None if none was found), ``primal`` its objective.
    ``log`` holds ``(time_s, dual_bound, primal)`` at each improving solution.
    ``stopped_by`` names an early stop requested through :class:`SolveOptions`
    (``stop_below``, ``stop_dual_above``, ``deadline``, ``cancelled``), empty otherwise.
    """

    status: Status
    dual_bound: float | None
    primal: float | None
    x: NDArray[np.float64] | None
    solver: str
    solver_version: str
    solve_time_s: float
    nodes: int | None = None
    log: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    message: str = ""
    stopped_by: str = ""


def parse_solver(solver: str) -> tuple[str, str | None]:
    """``"cvxpy:SCIP"`` -> ``("cvxpy", "SCIP")``; ``"highs"`` -> ``("highs", None)``."""
    s = solver.strip()
    if ":" in s:
        head, sub = s.split(":", 1)
        head = head.lower()
        if head != "cvxpy" or not sub:
            raise ValueError(f"unknown solver {solver!r} (expected highs, scipy, cpsat or "
                             "cvxpy:<SOLVER>)")
        return head, sub.upper()
    low = s.lower()
    if low not in ("highs", "scipy", "cpsat"):
        raise ValueError(f"unknown solver {solver!r} (expected highs, scipy, cpsat or "
                         "cvxpy:<SOLVER>)")
    return low, None


_CVXPY_MIP = ("SCIP", "HIGHS", "GUROBI", "CPLEX", "COPT", "XPRESS", "MOSEK", "CBC", "GLPK_MI",
              "SCIPY")


def solver_available(solver: str) -> tuple[bool, str | None]:
    """Whether ``solver`` can run here, with a reason if not."""
    import importlib.util

    try:
        head, sub = parse_solver(solver)
    except ValueError as exc:
        return False, str(exc)
    need = {"highs": "highspy", "scipy": "scipy", "cpsat": "ortools", "cvxpy": "cvxpy"}[head]
    if importlib.util.find_spec(need) is None:
        return False, f"solver {solver!r} needs the missing module {need}"
    if head == "cvxpy":
        import cvxpy

        if sub not in cvxpy.installed_solvers():
            return False, f"cvxpy solver {sub} is not installed"
        if sub not in _CVXPY_MIP:
            return False, f"cvxpy solver {sub} does not solve MILPs"
    return True, None


def available_solvers() -> list[str]:
    """Every solver name usable here (``highs``, ``scipy``, ``cpsat``, ``cvxpy:...``)."""
    out = [s for s in ("highs", "scipy", "cpsat") if solver_available(s)[0]]
    try:
        import cvxpy

        out += [f"cvxpy:{s}" for s in cvxpy.installed_solvers() if s in _CVXPY_MIP]
    except ImportError:  # pragma: no cover - cvxpy is a core dependency
        pass
    return out


def solve_model(model: MipModel, solver: str = "highs",
                options: SolveOptions | None = None) -> SolveRecord:
    """Solve ``model`` with the named backend (see the module docstring)."""
    opts = options or SolveOptions()
    head, sub = parse_solver(solver)
    if head == "highs":
        return _solve_highs(model, opts)
    if head == "scipy":
        return _solve_scipy(model, opts)
    if head == "cpsat":
        return _solve_cpsat(model, opts)
    return _solve_cvxpy(model, sub or "SCIP", opts)


def _finite_limit(t: float) -> float:
    return float(t) if math.isfinite(t) else 1e30


def _clean_x(model: MipModel, x: Any) -> NDArray[np.float64] | None:
    if x is None:
        return None
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (model.n_vars,) or not np.all(np.isfinite(arr)):
        return None
    return arr


# ---------------------------------------------------------------------------- HiGHS
_HIGHS_BANNER_SHOWN = False


def _new_highs() -> Any:
    """A silent ``highspy.Highs``.

    HiGHS writes its copyright banner straight to file descriptor 1 when the first instance of
    a process is constructed, before any option can be set; a library must not write to the
    caller's stdout (it corrupts ``--json`` output and pipes), so the first construction runs
    with fd 1 pointed at /dev/null.
    """
    global _HIGHS_BANNER_SHOWN
    import highspy

    if _HIGHS_BANNER_SHOWN:
        h = highspy.Highs()
    else:
        import os
        import sys

        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            h = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
            _HIGHS_BANNER_SHOWN = True
    h.silent()
    return h


def build_highs(model: MipModel) -> tuple[Any, bool]:
    """A silent ``highspy.Highs`` holding ``model``, passed as arrays.

    ``addVars`` + ``changeColsCost`` + ``changeColsIntegrality`` + ``addRows`` from the CSR
    arrays: 0.8 s for 3e5 columns and 1.9e6 non-zeros here, where filling a ``HighsLp``'s
    matrix fields from numpy took 1.6 s on its own.
    """
    import highspy

    h = _new_highs()
    n, m = model.n_vars, model.n_cons
    h.addVars(n, np.ascontiguousarray(model.col_lb, dtype=np.float64),
              np.ascontiguousarray(model.col_ub, dtype=np.float64))
    nz = np.flatnonzero(model.c).astype(np.int32)
    if nz.size:
        h.changeColsCost(int(nz.size), nz, np.ascontiguousarray(model.c[nz], dtype=np.float64))
    ints = np.flatnonzero(model.integrality).astype(np.int32)
    is_mip = bool(ints.size)
    if is_mip:
        kint = highspy.HighsVarType.kInteger
        h.changeColsIntegrality(int(ints.size), ints,
                                np.full(ints.size, int(kint), dtype=np.uint8))
    if m:
        csr = model.A.tocsr()
        csr.sort_indices()
        h.addRows(m, np.ascontiguousarray(model.row_lb, dtype=np.float64),
                  np.ascontiguousarray(model.row_ub, dtype=np.float64), int(csr.nnz),
                  csr.indptr[:-1].astype(np.int32), csr.indices.astype(np.int32),
                  np.ascontiguousarray(csr.data, dtype=np.float64))
    return h, is_mip


def _solve_highs(model: MipModel, opts: SolveOptions) -> SolveRecord:
    import highspy

    t0 = time.perf_counter()
    h, is_mip = build_highs(model)
    version = f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
    h.setOptionValue("time_limit", _finite_limit(opts.time_limit_s))
    h.setOptionValue("mip_rel_gap", float(opts.gap))
    h.setOptionValue("mip_abs_gap", 1e-9)
    h.setOptionValue("threads", int(max(1, opts.threads)))
    h.setOptionValue("random_seed", int(opts.seed) % (2**31 - 1))
    if opts.node_limit is not None:
        h.setOptionValue("mip_max_nodes", int(opts.node_limit))
    if opts.warm_start is not None and is_mip:
        sol = highspy.HighsSolution()
        sol.col_value = np.asarray(opts.warm_start, dtype=np.float64)
        sol.value_valid = True
        h.setSolution(sol)

    start = time.monotonic()
    hard = start + opts.time_limit_s + HARD_GRACE_S if math.isfinite(opts.time_limit_s) \
        else math.inf
    trace: list[tuple[float, float | None, float | None]] = []
    interrupted = {"why": ""}
    seen: dict[str, Any] = {"dual": None, "x": None, "primal": None, "nodes": 0}
    MIP_INT = highspy.cb.HighsCallbackType.kCallbackMipInterrupt

    def on_improve(e: Any) -> None:
        d = e.data_out
        trace.append((float(d.running_time), float(d.mip_dual_bound),
                      float(d.objective_function_value)))
        seen["x"] = np.array(d.mip_solution, dtype=np.float64)
        seen["primal"] = float(d.objective_function_value)
        if opts.stop_below is not None and d.objective_function_value <= opts.stop_below:
            interrupted["why"] = "stop_below"

    def on_interrupt(e: Any) -> None:
        if e.callback_type == MIP_INT and e.data_out is not None:
            seen["dual"] = float(e.data_out.mip_dual_bound)
            seen["nodes"] = int(e.data_out.mip_node_count)
        if interrupted["why"]:
            e.interrupt()
            return
        if time.monotonic() > hard:
            interrupted["why"] = "deadline"
        elif _cancelled(opts):
            interrupted["why"] = "cancelled"
        elif (opts.stop_dual_above is not None and e.callback_type == MIP_INT
              and e.data_out is not None
              and e.data_out.mip_dual_bound >= opts.stop_dual_above):
            interrupted["why"] = "stop_dual_above"
        if interrupted["why"]:
            e.interrupt()

    if is_mip:
        h.cbMipImprovingSolution.subscribe(on_improve)
        h.cbMipInterrupt.subscribe(on_interrupt)
    h.cbSimplexInterrupt.subscribe(on_interrupt)
    h.cbIpmInterrupt.subscribe(on_interrupt)
    # HiGHS does not check its time limit or the interrupt callbacks in every phase (root
    # cut separation ran 5 s past a 1 s limit here). Run it in a thread; at the hard
    # deadline, or on cancel, return what the callbacks saw (the last global dual bound and
    # the last incumbent) and leave the thread to stop at its next interrupt check.
    done = threading.Event()

    def target() -> None:
        try:
            h.run()
        finally:
            done.set()

    worker = threading.Thread(target=target, name="highs-solve", daemon=True)
    worker.start()
    cancel_seen = math.inf
    while not done.wait(0.05):
        now = time.monotonic()
        if cancel_seen == math.inf and _cancelled(opts):
            cancel_seen = now
        if now > hard + HARD_GRACE_S or now > cancel_seen + CANCEL_GRACE_S:
            break
    if not done.is_set():
        interrupted["why"] = interrupted["why"] or (
            "cancelled" if _cancelled(opts) else "deadline")
        xa = _clean_x(model, seen["x"])
        dual_a = seen["dual"] if seen["dual"] is not None and math.isfinite(seen["dual"]) \
            else None
        _ABANDONED.append(worker)
        return SolveRecord(Status.TIME_LIMIT, dual_a, seen["primal"] if xa is not None
                           else None, xa, "highs", version, time.perf_counter() - t0,
                           seen["nodes"], trace, message="abandoned at the deadline",
                           stopped_by=interrupted["why"])
    solve_time = time.perf_counter() - t0
    ms = h.getModelStatus()
    info = h.getInfo()
    MS = highspy.HighsModelStatus
    has_x = int(info.primal_solution_status) == int(highspy.kSolutionStatusFeasible)
    x = _clean_x(model, list(h.getSolution().col_value)) if has_x else None
    primal = float(info.objective_function_value) if x is not None else None
    if is_mip:
        dual = float(info.mip_dual_bound)
        nodes = int(info.mip_node_count)
    else:
        dual = primal if ms == MS.kOptimal else None
        nodes = 0
    if dual is not None and not math.isfinite(dual):
        dual = None
    if ms == MS.kOptimal:
        status = Status.OPTIMAL
    elif ms == MS.kInfeasible:
        status, dual, x, primal = Status.INFEASIBLE, None, None, None
    elif ms in (MS.kTimeLimit, MS.kInterrupt, MS.kIterationLimit, MS.kSolutionLimit,
                MS.kObjectiveBound, MS.kObjectiveTarget, MS.kHighsInterrupt):
        status = Status.TIME_LIMIT
    elif ms in (MS.kUnknown, MS.kNotset):
        status = Status.TIME_LIMIT if (dual is not None or x is not None) else \
            Status.NO_SOLUTION
    else:
        status, dual = Status.ERROR, None
    h.clear()
    return SolveRecord(status, dual, primal, x, "highs", version, solve_time, nodes, trace,
                       message=str(ms), stopped_by=interrupted["why"])


# ---------------------------------------------------------------------------- scipy
def _solve_scipy(model: MipModel, opts: SolveOptions) -> SolveRecord:
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
        # positive lower bound on the continuous objective column). Retry without presolve,
        # first with column bounds written as rows, then as given, in the time left.
        A2, lb2, ub2, clb2 = _bounds_as_rows(model)
        for A_, rlb, rub, clb in ((A2, lb2, ub2, clb2),
                                  (model.A, model.row_lb, model.row_ub, model.col_lb)):
            left = opts.time_limit_s - (time.perf_counter() - t0)
            if left <= 0 or res.status != 4:
                break
            o["presolve"] = False
            if math.isfinite(left):
                o["time_limit"] = float(max(left, 1e-3))
            res = milp(model.c, integrality=model.integrality, bounds=Bounds(clb, model.col_ub),
                       constraints=LinearConstraint(A_, rlb, rub), options=o)
    solve_time = time.perf_counter() - t0
    x = _clean_x(model, res.x) if res.x is not None else None
    primal = float(res.fun) if x is not None and res.fun is not None else None
    dual = getattr(res, "mip_dual_bound", None)
    if not model.integrality.any():
        dual = primal if res.status == 0 else None
    if dual is not None and not math.isfinite(float(dual)):
        dual = None
    if res.status == 0:
        status = Status.OPTIMAL
    elif res.status == 1:
        status = Status.TIME_LIMIT
    elif res.status == 2:
        status, dual, x, primal = Status.INFEASIBLE, None, None, None
    else:
        status, dual = Status.ERROR, None
    return SolveRecord(status, None if dual is None else float(dual), primal, x, "scipy",
                       scipy.__version__, solve_time, getattr(res, "mip_node_count", None),
                       [], message=str(res.message))


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


# ---------------------------------------------------------------------------- CP-SAT
def _solve_cpsat(model: MipModel, opts: SolveOptions) -> SolveRecord:
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
            if _cancelled(opts):
                why["why"] = "cancelled"
                self.stop_search()

    done = threading.Event()

    def watch() -> None:  # the process-wide flag (SIGINT / SIGTERM) or the caller's event
        while not done.wait(0.05):
            if _cancelled(opts):
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
    dual: float | None = float(solver.best_objective_bound)
    if st == cp_model.OPTIMAL:
        status = Status.OPTIMAL
    elif st == cp_model.FEASIBLE:
        status = Status.TIME_LIMIT
    elif st == cp_model.INFEASIBLE:
        status, dual = Status.INFEASIBLE, None
    elif st == cp_model.UNKNOWN:
        status = Status.TIME_LIMIT
    else:
        status, dual = Status.ERROR, None
    if dual is not None and not math.isfinite(dual):
        dual = None
    return SolveRecord(status, dual, primal, x, "cpsat", ortools.__version__, solve_time,
                       int(solver.num_branches), trace, message=solver.status_name(st),
                       stopped_by=why["why"])


# ---------------------------------------------------------------------------- cvxpy
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


#: Relative gap assumed for a cvxpy solver whose dual bound cannot be read: its reported
#: optimum is only trusted down to this gap (the default MIP gap of most solvers).
CVXPY_UNKNOWN_GAP = 1e-4


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
    parts = []
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


def _solve_cvxpy(model: MipModel, sub: str, opts: SolveOptions) -> SolveRecord:
    import cvxpy as cpx

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

        pkg = {"SCIP": "pyscipopt", "HIGHS": "highspy", "GUROBI": "gurobipy",
               "SCIPY": "scipy"}.get(sub)
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
        return SolveRecord(Status.TIME_LIMIT, None, None, None, f"cvxpy:{sub}", version,
                           time.perf_counter() - t0, None, [],
                           message=f"SolverError: {exc}")
    solve_time = time.perf_counter() - t0
    st = prob.status
    dual = _cvxpy_dual(sub, prob)
    extra = getattr(getattr(prob, "solver_stats", None), "extra_stats", None)
    if sub == "SCIP" and isinstance(extra, dict) and extra.get("scip_status") == "gaplimit":
        st = "optimal"  # stopped at our own gap limit: solved
    xv = _clean_x(model, x.value) if st in ("optimal", "optimal_inaccurate") else None
    if xv is not None and model.violation(xv) > 1e-5:
        # cvxpy may hand back x = 0 with a limit status: never read that as a solution
        xv = None
    primal = float(model.c @ xv) if xv is not None else None
    if not model.integrality.any():  # an LP: its optimal value is the bound
        dual = primal if st == "optimal" else None
    if st == "optimal":
        status = Status.OPTIMAL
        if dual is None and primal is not None:
            # a solver we passed our gap to stops within it; others within their default
            g = opts.gap if sub in ("SCIP", "HIGHS", "SCIPY", "GUROBI") else CVXPY_UNKNOWN_GAP
            dual = primal * (1 - g) - 1e-9
    elif st in ("optimal_inaccurate", "user_limit"):
        status = Status.TIME_LIMIT
    elif st in ("infeasible", "infeasible_inaccurate"):
        status, dual, xv, primal = Status.INFEASIBLE, None, None, None
    else:
        status, dual = Status.ERROR, None
    if dual is not None and not math.isfinite(dual):
        dual = None
    return SolveRecord(status, dual, primal, xv, f"cvxpy:{sub}", version, solve_time, None,
                       [], message=str(st))


SolverFn = Callable[[MipModel, SolveOptions], SolveRecord]
