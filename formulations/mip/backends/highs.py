"""``highs``: HiGHS through highspy, straight from the model's arrays (the default backend).

One ``passModel``-free build (:func:`build_highs`: columns, costs, integrality and rows from
the CSR arrays). Options: time limit, relative gap, threads, random seed, node limit, warm
start; the dual bound is ``getInfo().mip_dual_bound``; an improving-solution callback
records the incumbent log; an interrupt callback enforces the wall-clock deadline (HiGHS
overruns its own ``time_limit``: its root cut separation ran 5 s past a 1 s limit here) and
a :class:`threading.Event` cancels the solve (``SolveOptions.cancel``, and always the
process-wide flag of :mod:`pipecert.cancel` set by SIGINT / SIGTERM): the interrupt callback
stops HiGHS and the global dual bound proven so far is read after ``run`` returns. HiGHS
runs in a worker thread; if it has not stopped ``2 * HARD_GRACE_S`` after the limit
(``CANCEL_GRACE_S`` after a cancel), the backend returns what the callbacks saw (the last
global dual bound and incumbent) and abandons the thread, which stops at its next interrupt
check; abandoned threads are joined before the interpreter exits (a HiGHS thread still
running at exit aborts the process).

Tolerance: 1e-7 (primal feasibility) + 1e-7 (dual feasibility) + 1e-6 (integrality) at
HiGHS's defaults (``tests/test_mip_layer.py`` reads them from HiGHS).
"""

from __future__ import annotations

import atexit
import math
import threading
import time
from typing import Any

import numpy as np

from formulations.mip.backends.base import (
    BACKENDS,
    SolveOptions,
    SolverBackend,
    SolveRecord,
    clean_x,
    finite_limit,
)
from formulations.mip.model import MipModel
from pipecert import cancel as _cancel
from pipecert.results import Status

__all__ = ["HighsBackend", "build_highs", "stop_abandoned", "HARD_GRACE_S", "CANCEL_GRACE_S"]

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


@BACKENDS.register
class HighsBackend(SolverBackend):
    """HiGHS through highspy (module docstring)."""

    name = "highs"
    requires = ("highspy",)
    #: ``HighsModelStatus`` member names; ``kUnknown`` / ``kNotset`` end without a proof:
    #: a stop at a limit if a bound or a solution exists (:meth:`SolverBackend.record`).
    status_map = {
        "kOptimal": Status.OPTIMAL,
        "kInfeasible": Status.INFEASIBLE,
        "kTimeLimit": Status.TIME_LIMIT,
        "kInterrupt": Status.TIME_LIMIT,
        "kIterationLimit": Status.TIME_LIMIT,
        "kSolutionLimit": Status.TIME_LIMIT,
        "kObjectiveBound": Status.TIME_LIMIT,
        "kObjectiveTarget": Status.TIME_LIMIT,
        "kHighsInterrupt": Status.TIME_LIMIT,
        "kUnknown": Status.NO_SOLUTION,
        "kNotset": Status.NO_SOLUTION,
    }
    tolerance = 1.2e-6
    threads = True
    node_limit = True
    warm_start = True
    incumbent_log = True
    cancellable = True

    def solve(self, model: MipModel, opts: SolveOptions) -> SolveRecord:
        """Solve in a worker thread, interrupted at the deadline or on cancel."""
        import highspy

        t0 = time.perf_counter()
        h, is_mip = build_highs(model)
        version = f"{h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
        h.setOptionValue("time_limit", finite_limit(opts.time_limit_s))
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
            elif opts.cancelled():
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
        # deadline, or on cancel, return what the callbacks saw (the last global dual bound
        # and the last incumbent) and leave the thread to stop at its next interrupt check.
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
            if cancel_seen == math.inf and opts.cancelled():
                cancel_seen = now
            if now > hard + HARD_GRACE_S or now > cancel_seen + CANCEL_GRACE_S:
                break
        if not done.is_set():
            interrupted["why"] = interrupted["why"] or (
                "cancelled" if opts.cancelled() else "deadline")
            xa = clean_x(model, seen["x"])
            _ABANDONED.append(worker)
            return self.record(None, seen["dual"], seen["primal"] if xa is not None else None,
                               xa, version, time.perf_counter() - t0, nodes=seen["nodes"],
                               log=trace, message="abandoned at the deadline",
                               stopped_by=interrupted["why"], status=Status.TIME_LIMIT)
        solve_time = time.perf_counter() - t0
        ms = h.getModelStatus()
        info = h.getInfo()
        has_x = int(info.primal_solution_status) == int(highspy.kSolutionStatusFeasible)
        x = clean_x(model, list(h.getSolution().col_value)) if has_x else None
        primal = float(info.objective_function_value) if x is not None else None
        if is_mip:
            dual: float | None = float(info.mip_dual_bound)
            nodes = int(info.mip_node_count)
        else:
            dual = primal if ms == highspy.HighsModelStatus.kOptimal else None
            nodes = 0
        h.clear()
        return self.record(ms.name, dual, primal, x, version, solve_time, nodes=nodes,
                           log=trace, message=str(ms), stopped_by=interrupted["why"])
