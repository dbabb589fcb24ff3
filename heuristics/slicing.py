"""Algorithm 1: exact slicing of a unit order into at most k blocks (docs/theory/algorithms.md).

**The unconstrained problem.** Given a topological order ``pi`` of the instance (over its
ordering edges), every way of cutting ``pi`` into at most ``k`` contiguous segments is a
feasible partition, and by the topological-slicing lemma (docs/theory/problem.md) every feasible
partition arises this way for some order. :func:`slice_order` computes the best slicing of
one order exactly with the min-max dynamic program

    D[b][j] = min( D[b-1][j],  min_{i<j} max(D[b-1][i], cost(i, j)) ),   answer D[k][n],

where ``cost(i, j) = f({pi_i, ..., pi_{j-1}})``. The implementation is a numba kernel
(``cache=True``, ``nogil=True`` so threads can run several in parallel) that

* runs the DP in "push" order: when start ``i`` is reached, row ``D[i]`` is final; the row
  is laid out as ``D[j, b]`` so the inner loop over ``b`` is contiguous (SIMD);
* computes every segment cost incrementally while growing ``j`` for a fixed ``i``
  (O(n + m) per start): work ``W``, in-cost ``INC`` (producers before ``i`` with a consumer
  in the segment, each stamped once) and out-cost ``OUTC`` (producers in the segment whose
  last consumer is after the segment; a bucket of nodes by the position of their last
  consumer removes a producer's charge when its last consumer joins);
* prunes with an incumbent ``U`` (all pruning is exact for "find the optimum if it is < U"):

  - ``W + INC`` is non-decreasing in ``j`` (work only grows; the in-boundary restricted to
    positions before ``i`` only grows because ``pi`` is topological), so once it reaches
    ``U`` no longer segment from ``i`` can help: stop growing ``j``;
  - a start ``i`` with ``D[k-1][i] >= U`` cannot lead below ``U``: skip it, and only the
    layers ``b`` with ``D[b-1][i] < U`` are updated;
  - ``U`` starts at ``min(upper, best of the equal-work slicing of pi and of greedy
    slicings found by bisection on a target T)`` (each greedy probe is O(n + m) and only
    accepted if feasible with at most k blocks), and drops to ``D[k][n]`` each time a
    segment ending at ``n`` improves it.

Total time O(n (n + m) + k n^2) in the worst case, far less with the pruning.

**The constrained problem** (co-location groups, data-only edges, a memory cap; see
:attr:`pipecert.instance.Instance.constraints`). A *unit* (:attr:`Instance.unit_of`) is a set
of nodes that must share a stage; the units form a DAG over the ordering edges (data-only
edges order nothing). A *unit order* is a node order in which every unit's members are
contiguous and whose sequence of units is a topological order of the unit DAG; a *unit
slicing* cuts it only between two units. On such orders the DP above is run with three
changes, and it is then **optimal over the unit slicings of the order whose every segment
meets the memory cap**:

* *Cuts only at unit boundaries*: ``D[·][j]`` is only written for positions ``j`` between
  two units (``cut_ok[j]``), so a segment never splits a unit, and every unit slicing is
  still a sequence of segments the DP scans.
* *Memory-infeasible segments excluded*: the memory of ``pi_i..pi_{j-1}`` only grows with
  ``j``, so the scan from ``i`` stops at the first ``j`` whose segment exceeds the cap;
  exactly the segments within the cap are candidates, and a slicing of the order is
  feasible for the cap iff all its segments are. The cap is the instance's
  (:func:`kernel_arrays`, relative slack 1e-13, inside :func:`check_feasible`'s 1e-12).
* *The exact cost f over all data edges*, which may now point backward in ``pi`` (a
  data-only gradient edge, or an ordering edge inside a unit). With ``first[u]`` and
  ``last[u]`` the first and last positions of ``u``'s consumers: a producer before the
  segment with a consumer in it pays in (``INC``, as before); a producer *after* the
  segment with a consumer in it pays in too (``FUT``: charged when its first consumer
  joins, refunded when it joins itself); a segment producer with a consumer before the
  segment (``first[u] < i``) pays out for good (``OUTP``); otherwise it pays out while its
  last consumer is after the segment (``OUTC``, as before). ``W + INC + OUTP`` is still
  non-decreasing in ``j`` (each term only grows) and a lower bound on the segment's cost,
  so the pruning stays exact with it.

*Why every unit slicing is feasible.* Segment ``b`` is stage ``b``; whole units stay
together (co-location groups lie in one unit, so in one stage); an ordering edge between
two units goes forward in the unit order, hence to the same or a later stage; ordering
edges inside a unit stay inside a stage; data-only edges impose nothing; every segment is
within the cap. *Why the best over all unit orders is OPT.* In a feasible partition every
unit lies in one stage and stages are non-decreasing along the unit DAG, so listing the
units by (stage, topological index) gives a unit order of which the partition is a unit
slicing into at most ``k`` segments. Without constraints units are single nodes, unit
orders are the topological orders and nothing changes.

When the order has no feasible unit slicing (a memory cap it cannot meet with ``k``
segments) the answer is ``(inf, [])``: the callers then return no partition, with the
reason. Unconstrained instances (and memory-only ones) run the original kernels; the
constrained ones run their ``_g`` counterparts, which compute the same thing when there are
no backward data edges and every position is a unit boundary.

The compiled functions are public so other packages can reuse them: :func:`slice_order`
(value and cuts), :func:`slice_value` (value only) and :func:`kernel_arrays`.
:func:`slice_order_within` runs the same DP in chunks of starts (``_dp_prepare``,
``_dp_starts``, ``_dp_finish``; one call of ``_slice_dp`` chains them) and checks a budget
between chunks, returning the greedy incumbent if the budget ends first (the DP is
quadratic in n on large graphs: minutes for one order at 200,000 nodes).
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numba as nb
import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipecert.errors import InputError
from pipecert.instance import Instance, validate_k
from pipecert.memo import InstanceKey, Memo, instance_key
from pipecert.partition import Partition
from pipecert.results import Budget

__all__ = [
    "KernelArrays",
    "kernel_arrays",
    "slice_order",
    "slice_order_within",
    "slice_value",
    "slice_partition",
    "check_topological",
    "slice_arrays",
    "dp_within",
    "memory_cap",
    "general_kernel",
    "MEM_SLACK",
]

INF = math.inf


class KernelArrays(NamedTuple):
    """The flat arrays the compiled kernels take (data-edge CSR, costs, memory).

    ``general`` selects the constrained kernels (module docstring): set when co-location
    groups or data-only edges are active; ``unit`` is then the unit of every node (cuts
    only between units), else an empty array.
    """

    work: NDArray[np.float64]
    comm: NDArray[np.float64]
    pred_ptr: NDArray[np.int64]
    pred_idx: NDArray[np.int64]
    succ_ptr: NDArray[np.int64]
    succ_idx: NDArray[np.int64]
    mem: NDArray[np.float64]
    mem_limit: float
    unit: NDArray[np.int64] = np.empty(0, np.int64)
    general: bool = False


#: Relative slack of the kernels' memory cap: a segment is accepted if its memory sum is at
#: most ``cap * (1 + MEM_SLACK)``, well inside :func:`pipecert.partition.check_feasible`'s
#: relative tolerance of 1e-12 (so summation order never makes an accepted stage fail it).
MEM_SLACK = 1e-13

#: :func:`kernel_arrays` of the last graphs and memory caps (by fingerprint and cap).
_KERNEL_ARRAYS: Memo[InstanceKey, KernelArrays] = Memo("heuristics.kernel_arrays", 64)


def memory_cap(instance: Instance, memory_limit: float | None = None) -> float | None:
    """The memory cap a slicing must meet: ``memory_limit`` if given (``inf``: none), else
    the instance's cap when the memory constraint is active (None when there is none)."""
    if memory_limit is None:
        if "memory" not in instance.constraints:
            return None
        return instance.memory_limit
    return None if math.isinf(memory_limit) else float(memory_limit)


def general_kernel(instance: Instance) -> bool:
    """True when the constrained kernels are needed (groups or data-only edges active)."""
    return bool(instance.constraints & {"groups", "data_only_edges"})


def kernel_arrays(instance: Instance, *, memory_limit: float | None = None) -> KernelArrays:
    """Arrays of ``instance`` for the kernels (kept per graph and memory cap).

    ``memory_limit`` makes segments whose memory exceeds it infeasible (it needs
    ``instance.memory``); the default None is the instance's own cap whenever the memory
    constraint is active (:attr:`Instance.constraints`), so every slicing is feasible for
    the instance; ``math.inf`` drops the cap (the relaxed problem).
    """
    cap = memory_cap(instance, memory_limit)
    return _KERNEL_ARRAYS.get_or_compute(instance_key(instance, cap),
                                         lambda: _kernel_arrays(instance, cap))


def _kernel_arrays(instance: Instance, cap: float | None) -> KernelArrays:
    """The arrays of :func:`kernel_arrays` for the memory cap ``cap`` (computed)."""
    if cap is not None and instance.memory is None:
        raise InputError("a memory limit needs memory data on the instance",
                         source=instance.source)
    pptr, pidx = instance.pred_csr
    sptr, sidx = instance.succ_csr
    mem = (np.zeros(instance.n_nodes) if instance.memory is None
           else np.ascontiguousarray(instance.memory, dtype=np.float64))
    general = general_kernel(instance)
    return KernelArrays(
        np.ascontiguousarray(instance.work, dtype=np.float64),
        np.ascontiguousarray(instance.comm, dtype=np.float64),
        np.ascontiguousarray(pptr), np.ascontiguousarray(pidx),
        np.ascontiguousarray(sptr), np.ascontiguousarray(sidx),
        mem, INF if cap is None else float(cap) * (1.0 + MEM_SLACK),
        np.ascontiguousarray(instance.unit_of, dtype=np.int64) if general
        else np.empty(0, np.int64),
        general,
    )


# ---------------------------------------------------------------------------- kernels
@nb.njit(cache=True, nogil=True)
def _order_tables(order, succ_ptr, succ_idx):  # type: ignore[no-untyped-def]
    """pos[v], last consumer position per node, and nodes bucketed by that position."""
    n = order.size
    pos = np.empty(n, np.int64)
    for p in range(n):
        pos[order[p]] = p
    last = np.full(n, -1, np.int64)
    for u in range(n):
        m = -1
        for e in range(succ_ptr[u], succ_ptr[u + 1]):
            q = pos[succ_idx[e]]
            if q > m:
                m = q
        last[u] = m
    bptr = np.zeros(n + 1, np.int64)
    for u in range(n):
        if last[u] >= 0:
            bptr[last[u] + 1] += 1
    for p in range(n):
        bptr[p + 1] += bptr[p]
    fill = bptr[:-1].copy()
    bidx = np.empty(bptr[n], np.int64)
    for u in range(n):
        if last[u] >= 0:
            bidx[fill[last[u]]] = u
            fill[last[u]] += 1
    return pos, last, bptr, bidx


@nb.njit(cache=True, nogil=True)
def _slicing_cost(order, pos, cuts, kk, work, comm, succ_ptr, succ_idx):  # type: ignore[no-untyped-def]
    """Bottleneck of slicing ``order`` at ``cuts`` (block b = positions cuts[b-1]..cuts[b])."""
    n = order.size
    stage_at = np.empty(n, np.int64)
    b = 0
    for p in range(n):
        while b < cuts.size and p >= cuts[b]:
            b += 1
        stage_at[p] = b
    cost = np.zeros(kk + 1)
    mark = np.full(kk + 1, -1, np.int64)
    for u in range(n):
        su = stage_at[pos[u]]
        cost[su] += work[u]
        out = False
        for e in range(succ_ptr[u], succ_ptr[u + 1]):
            sv = stage_at[pos[succ_idx[e]]]
            if sv != su:
                out = True
                if mark[sv] != u:
                    mark[sv] = u
                    cost[sv] += comm[u]
        if out:
            cost[su] += comm[u]
    return cost.max()


@nb.njit(cache=True, nogil=True)
def _equal_work_cuts(order, work, kk):  # type: ignore[no-untyped-def]
    """Cut positions splitting ``order`` into <= kk segments of about equal work."""
    n = order.size
    total = 0.0
    for p in range(n):
        total += work[order[p]]
    cuts = np.empty(max(kk - 1, 0), np.int64)
    nc = 0
    acc = 0.0
    t = 1
    for p in range(n - 1):
        acc += work[order[p]]
        if t < kk and acc >= total * t / kk and (nc == 0 or cuts[nc - 1] < p + 1):
            cuts[nc] = p + 1
            nc += 1
            while t < kk and acc >= total * t / kk:
                t += 1
    return cuts[:nc]


@nb.njit(cache=True, nogil=True)
def _greedy(order, pos, last, bptr, bidx, T, kk, work, comm, pred_ptr, pred_idx, mem,  # type: ignore[no-untyped-def]
            mem_limit, stamp, cuts):
    """Greedy slicing with target ``T``: each block is the longest one of cost <= T.

    Not exact (``f`` is not monotone) but feasible when it succeeds; returns the bottleneck
    reached and the number of cuts written to ``cuts``, or ``(inf, 0)`` on failure.
    """
    n = order.size
    stamp[:] = -1  # stamps of an earlier probe must not leak into this one
    i = 0
    nseg = 0
    worst = 0.0
    while i < n:
        W = 0.0
        INC = 0.0
        OUTC = 0.0
        MEM = 0.0
        best_j = -1
        best_c = 0.0
        for j in range(i + 1, n + 1):
            v = order[j - 1]
            W += work[v]
            MEM += mem[v]
            for e in range(pred_ptr[v], pred_ptr[v + 1]):
                u = pred_idx[e]
                if pos[u] < i and stamp[u] != -2 - i:
                    stamp[u] = -2 - i
                    INC += comm[u]
            if last[v] > j - 1:
                OUTC += comm[v]
            for e in range(bptr[j - 1], bptr[j]):
                u = bidx[e]
                pu = pos[u]
                if pu >= i and pu < j - 1:
                    OUTC -= comm[u]
            if W + INC > T or MEM > mem_limit:
                break
            if W + INC + OUTC <= T:
                best_j = j
                best_c = W + INC + OUTC
        if best_j < 0:
            return np.inf, 0
        nseg += 1
        if nseg > kk:
            return np.inf, 0
        if best_c > worst:
            worst = best_c
        if best_j < n:
            cuts[nseg - 1] = best_j
        i = best_j
    return worst, nseg - 1


@nb.njit(cache=True, nogil=True)
def _slicing_mem_ok(order, cuts, mem, mem_limit):  # type: ignore[no-untyped-def]
    """Whether every segment of slicing ``order`` at ``cuts`` is within ``mem_limit``."""
    n = order.size
    c = 0
    acc = 0.0
    for p in range(n):
        if c < cuts.size and p == cuts[c]:
            acc = 0.0
            c += 1
        acc += mem[order[p]]
        if acc > mem_limit:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _bisect_interval(n, kk, upper, ew_val, work, comm, mem_limit):  # type: ignore[no-untyped-def]
    """``[lo, hi]`` of the greedy bisection: ``lo`` the trivial bound max(w, W/k); ``hi``
    the incumbent, or (no incumbent under a memory cap) the cost of any one segment."""
    lo = 0.0
    tot = 0.0
    totc = 0.0
    for v in range(n):
        if work[v] > lo:
            lo = work[v]
        tot += work[v]
        totc += comm[v]
    if tot / kk > lo:
        lo = tot / kk
    hi = min(upper, ew_val)
    if not (hi < np.inf) and mem_limit < np.inf:
        # a segment costs at most W + sum(c): greedy probes below it may meet the cap
        hi = (tot + totc) * (1.0 + 1e-9) + 1e-9
    return lo, hi


@nb.njit(cache=True, nogil=True)
def _dp_tables(order, k, upper, work, comm, succ_ptr, succ_idx, mem, mem_limit):  # type: ignore[no-untyped-def]
    """Order tables, the equal-work incumbent and the bisection interval ``[lo, hi]``."""
    n = order.size
    kk = min(k, n)
    pos, last, bptr, bidx = _order_tables(order, succ_ptr, succ_idx)
    # incumbent: the equal-work slicing (kept as the answer if nothing beats it)
    ew_cuts = _equal_work_cuts(order, work, kk)
    ew_val = _slicing_cost(order, pos, ew_cuts, kk, work, comm, succ_ptr, succ_idx)
    if mem_limit < np.inf and not _slicing_mem_ok(order, ew_cuts, mem, mem_limit):
        ew_val = np.inf  # the equal-work slicing breaks the memory limit
    stamp = np.full(n, -1, np.int64)
    gcuts = np.empty(kk, np.int64)
    lo, hi = _bisect_interval(n, kk, upper, ew_val, work, comm, mem_limit)
    return kk, pos, last, bptr, bidx, ew_val, ew_cuts, stamp, gcuts, lo, hi


@nb.njit(cache=True, nogil=True)
def _dp_bisect(n_probes, lo, hi, ew_val, ew_cuts, order, pos, last, bptr, bidx, kk, work,  # type: ignore[no-untyped-def]
               comm, pred_ptr, pred_idx, mem, mem_limit, stamp, gcuts):
    """Up to ``n_probes`` steps of the bisection on the greedy slicing's target.

    Each probe is O(n + m); a feasible greedy slicing lowers ``hi`` and, if better, the
    incumbent. Returns ``(lo, hi, ew_val, ew_cuts, probes_done, finished)``.
    """
    done = 0
    if not (hi < np.inf):
        return lo, hi, ew_val, ew_cuts, done, True
    for _ in range(n_probes):
        if hi <= lo * (1.0 + 1e-9):
            return lo, hi, ew_val, ew_cuts, done, True
        T = 0.5 * (lo + hi)
        g, nc = _greedy(order, pos, last, bptr, bidx, T, kk, work, comm, pred_ptr,
                        pred_idx, mem, mem_limit, stamp, gcuts)
        done += 1
        if g <= T:
            hi = g
            if g < ew_val:
                ew_val = g
                ew_cuts = gcuts[:nc].copy()
        else:
            lo = T
    return lo, hi, ew_val, ew_cuts, done, False


@nb.njit(cache=True, nogil=True)
def _dp_alloc(n, kk, want_cuts):  # type: ignore[no-untyped-def]
    """The DP table ``D[j, b]`` (row 0 = 0) and the parent pointers."""
    D = np.full((n + 1, kk + 1), np.inf)
    D[0, :] = 0.0
    if want_cuts:
        par = np.full((n + 1, kk + 1), -2, np.int32)
    else:
        par = np.full((1, 1), -2, np.int32)
    return D, par


#: Probes of the greedy bisection before the DP (each O(n + m)).
N_PROBES = 30


@nb.njit(cache=True, nogil=True)
def _dp_prepare(order, k, upper, want_cuts, work, comm, pred_ptr, pred_idx, succ_ptr,  # type: ignore[no-untyped-def]
                succ_idx, mem, mem_limit):
    """Tables, the incumbent (equal-work, then greedy bisection) and the empty DP arrays.

    Returns ``(kk, pos, last, bptr, bidx, ew_val, ew_cuts, stamp, U, D, par)``; the DP
    then runs over the starts ``i = 0 .. n-1`` (:func:`_dp_starts`) and ends with
    :func:`_dp_finish`. The incumbent bounds the DP: it only scans segments with
    ``W + INC`` below it.
    """
    n = order.size
    kk, pos, last, bptr, bidx, ew_val, ew_cuts, stamp, gcuts, lo, hi = _dp_tables(
        order, k, upper, work, comm, succ_ptr, succ_idx, mem, mem_limit)
    lo, hi, ew_val, ew_cuts, _, _ = _dp_bisect(
        N_PROBES, lo, hi, ew_val, ew_cuts, order, pos, last, bptr, bidx, kk, work, comm, pred_ptr,
        pred_idx, mem, mem_limit, stamp, gcuts)
    U = min(upper, ew_val)
    D, par = _dp_alloc(n, kk, want_cuts)
    stamp[:] = -1
    return kk, pos, last, bptr, bidx, ew_val, ew_cuts, stamp, U, D, par


@nb.njit(cache=True, nogil=True)
def _dp_starts(i0, i1, U, order, kk, want_cuts, D, par, stamp, pos, last, bptr, bidx,  # type: ignore[no-untyped-def]
               work, comm, pred_ptr, pred_idx, mem, mem_limit):
    """Push the DP from the starts ``i0 .. i1-1`` (rows before ``i0`` are final).

    Returns the incumbent ``U`` (lowered when a segment ending at ``n`` improves it).
    Running the starts in chunks gives the same result as one call (the state is the
    arrays and ``U``), which lets the caller check its budget between chunks.
    """
    n = order.size
    for i in range(i0, i1):
        row = D[i]
        for b in range(1, kk + 1):
            if row[b - 1] < row[b]:
                row[b] = row[b - 1]
                if want_cuts:
                    par[i, b] = -1
        if not (row[kk - 1] < U):
            continue
        bstart = kk
        while bstart > 1 and row[bstart - 2] < U:
            bstart -= 1
        W = 0.0
        INC = 0.0
        OUTC = 0.0
        MEM = 0.0
        for j in range(i + 1, n + 1):
            v = order[j - 1]
            W += work[v]
            MEM += mem[v]
            for e in range(pred_ptr[v], pred_ptr[v + 1]):
                u = pred_idx[e]
                if pos[u] < i and stamp[u] != i:
                    stamp[u] = i
                    INC += comm[u]
            if last[v] > j - 1:
                OUTC += comm[v]
            for e in range(bptr[j - 1], bptr[j]):
                u = bidx[e]
                pu = pos[u]
                if pu >= i and pu < j - 1:
                    OUTC -= comm[u]
            lb = W + INC
            if lb >= U or MEM > mem_limit:
                break
            cost = lb + OUTC
            if cost >= U:
                continue
            rj = D[j]
            for b in range(bstart, kk + 1):
                val = row[b - 1]
                if cost > val:
                    val = cost
                if val < rj[b]:
                    rj[b] = val
                    if want_cuts:
                        par[j, b] = i
            if j == n and rj[kk] < U:
                U = rj[kk]
    return U


@nb.njit(cache=True, nogil=True)
def _dp_finish(n, kk, want_cuts, D, par, ew_val, ew_cuts, upper):  # type: ignore[no-untyped-def]
    """The DP's answer ``(value, cuts)`` once every start ran (the incumbent if no better)."""
    rn = D[n]
    for b in range(1, kk + 1):
        if rn[b - 1] < rn[b]:
            rn[b] = rn[b - 1]
            if want_cuts:
                par[n, b] = -1
    val = rn[kk]
    if not (val < np.inf):
        if ew_val < upper:
            return ew_val, ew_cuts
        return np.inf, np.empty(0, np.int64)
    if not want_cuts:
        return val, np.empty(0, np.int64)
    cuts = np.empty(kk, np.int64)
    nc = 0
    j = n
    b = kk
    while j > 0:
        p = par[j, b]
        if p == -1:
            b -= 1
            continue
        if p > 0:
            cuts[nc] = p
            nc += 1
        j = p
        b -= 1
    return val, cuts[:nc][::-1].copy()


@nb.njit(cache=True, nogil=True)
def _slice_dp(order, k, upper, want_cuts, work, comm, pred_ptr, pred_idx, succ_ptr,  # type: ignore[no-untyped-def]
              succ_idx, mem, mem_limit):
    """Algorithm 1 in one call. Returns (value, cuts); value is inf if none is < ``upper``."""
    n = order.size
    kk, pos, last, bptr, bidx, ew_val, ew_cuts, stamp, U, D, par = _dp_prepare(
        order, k, upper, want_cuts, work, comm, pred_ptr, pred_idx, succ_ptr, succ_idx, mem,
        mem_limit)
    _dp_starts(0, n, U, order, kk, want_cuts, D, par, stamp, pos, last, bptr, bidx, work,
               comm, pred_ptr, pred_idx, mem, mem_limit)
    return _dp_finish(n, kk, want_cuts, D, par, ew_val, ew_cuts, upper)


# ---------------------------------------------------------------------------- constrained
# The ``_g`` kernels: the same DP on a unit order (module docstring, "The constrained
# problem"): cuts only where ``cut_ok``, data edges in either direction along the order.
@nb.njit(cache=True, nogil=True)
def _order_tables_g(order, succ_ptr, succ_idx, unit):  # type: ignore[no-untyped-def]
    """pos, first/last consumer positions, nodes bucketed by last consumer, ``cut_ok``."""
    n = order.size
    pos = np.empty(n, np.int64)
    for p in range(n):
        pos[order[p]] = p
    first = np.full(n, n, np.int64)
    last = np.full(n, -1, np.int64)
    for u in range(n):
        lo = n
        hi = -1
        for e in range(succ_ptr[u], succ_ptr[u + 1]):
            q = pos[succ_idx[e]]
            if q > hi:
                hi = q
            if q < lo:
                lo = q
        first[u] = lo
        last[u] = hi
    bptr = np.zeros(n + 1, np.int64)
    for u in range(n):
        if last[u] >= 0:
            bptr[last[u] + 1] += 1
    for p in range(n):
        bptr[p + 1] += bptr[p]
    fill = bptr[:-1].copy()
    bidx = np.empty(bptr[n], np.int64)
    for u in range(n):
        if last[u] >= 0:
            bidx[fill[last[u]]] = u
            fill[last[u]] += 1
    cut_ok = np.ones(n + 1, np.bool_)
    for p in range(1, n):
        cut_ok[p] = unit[order[p - 1]] != unit[order[p]]
    return pos, first, last, bptr, bidx, cut_ok


@nb.njit(cache=True, nogil=True)
def _equal_work_cuts_g(order, work, kk, cut_ok):  # type: ignore[no-untyped-def]
    """:func:`_equal_work_cuts` with each cut moved to the next unit boundary."""
    n = order.size
    total = 0.0
    for p in range(n):
        total += work[order[p]]
    cuts = np.empty(max(kk - 1, 0), np.int64)
    nc = 0
    acc = 0.0
    t = 1
    for p in range(n - 1):
        acc += work[order[p]]
        if t < kk and acc >= total * t / kk and cut_ok[p + 1] \
                and (nc == 0 or cuts[nc - 1] < p + 1):
            cuts[nc] = p + 1
            nc += 1
            while t < kk and acc >= total * t / kk:
                t += 1
    return cuts[:nc]


@nb.njit(cache=True, nogil=True)
def _greedy_g(order, pos, first, last, bptr, bidx, cut_ok, T, kk, work, comm, pred_ptr,  # type: ignore[no-untyped-def]
              pred_idx, mem, mem_limit, stamp, fstamp, cuts):
    """:func:`_greedy` on a unit order: blocks end at unit boundaries only."""
    n = order.size
    stamp[:] = -1
    fstamp[:] = -1
    i = 0
    nseg = 0
    worst = 0.0
    while i < n:
        W = 0.0
        INC = 0.0
        FUT = 0.0
        OUTP = 0.0
        OUTC = 0.0
        MEM = 0.0
        best_j = -1
        best_c = 0.0
        for j in range(i + 1, n + 1):
            p = j - 1
            v = order[p]
            W += work[v]
            MEM += mem[v]
            for e in range(pred_ptr[v], pred_ptr[v + 1]):
                u = pred_idx[e]
                pu = pos[u]
                if pu < i:
                    if stamp[u] != i:
                        stamp[u] = i
                        INC += comm[u]
                elif pu > p and fstamp[u] != i:
                    fstamp[u] = i
                    FUT += comm[u]
            if fstamp[v] == i:
                FUT -= comm[v]
            if first[v] < i:
                OUTP += comm[v]
            elif last[v] > p:
                OUTC += comm[v]
            for e in range(bptr[p], bptr[j]):
                u = bidx[e]
                pu = pos[u]
                if pu >= i and pu < p and first[u] >= i:
                    OUTC -= comm[u]
            lb = W + INC + OUTP
            if lb > T or MEM > mem_limit:
                break
            if cut_ok[j]:
                c = lb + FUT + OUTC
                if c <= T:
                    best_j = j
                    best_c = c
        if best_j < 0:
            return np.inf, 0
        nseg += 1
        if nseg > kk:
            return np.inf, 0
        if best_c > worst:
            worst = best_c
        if best_j < n:
            cuts[nseg - 1] = best_j
        i = best_j
    return worst, nseg - 1


@nb.njit(cache=True, nogil=True)
def _dp_tables_g(order, k, upper, work, comm, succ_ptr, succ_idx, mem, mem_limit, unit):  # type: ignore[no-untyped-def]
    """:func:`_dp_tables` on a unit order (cuts at unit boundaries, memory-checked)."""
    n = order.size
    kk = min(k, n)
    pos, first, last, bptr, bidx, cut_ok = _order_tables_g(order, succ_ptr, succ_idx, unit)
    ew_cuts = _equal_work_cuts_g(order, work, kk, cut_ok)
    ew_val = _slicing_cost(order, pos, ew_cuts, kk, work, comm, succ_ptr, succ_idx)
    if mem_limit < np.inf and not _slicing_mem_ok(order, ew_cuts, mem, mem_limit):
        ew_val = np.inf
    stamp = np.full(n, -1, np.int64)
    fstamp = np.full(n, -1, np.int64)
    gcuts = np.empty(kk, np.int64)
    lo, hi = _bisect_interval(n, kk, upper, ew_val, work, comm, mem_limit)
    return (kk, pos, first, last, bptr, bidx, cut_ok, ew_val, ew_cuts, stamp, fstamp, gcuts,
            lo, hi)


@nb.njit(cache=True, nogil=True)
def _dp_bisect_g(n_probes, lo, hi, ew_val, ew_cuts, order, pos, first, last, bptr, bidx,  # type: ignore[no-untyped-def]
                 cut_ok, kk, work, comm, pred_ptr, pred_idx, mem, mem_limit, stamp, fstamp,
                 gcuts):
    """:func:`_dp_bisect` with the unit-order greedy slicing."""
    done = 0
    if not (hi < np.inf):
        return lo, hi, ew_val, ew_cuts, done, True
    for _ in range(n_probes):
        if hi <= lo * (1.0 + 1e-9):
            return lo, hi, ew_val, ew_cuts, done, True
        T = 0.5 * (lo + hi)
        g, nc = _greedy_g(order, pos, first, last, bptr, bidx, cut_ok, T, kk, work, comm,
                          pred_ptr, pred_idx, mem, mem_limit, stamp, fstamp, gcuts)
        done += 1
        if g <= T:
            hi = g
            if g < ew_val:
                ew_val = g
                ew_cuts = gcuts[:nc].copy()
        else:
            lo = T
    return lo, hi, ew_val, ew_cuts, done, False


@nb.njit(cache=True, nogil=True)
def _dp_starts_g(i0, i1, U, order, kk, want_cuts, D, par, stamp, fstamp, pos, first, last,  # type: ignore[no-untyped-def]
                 bptr, bidx, cut_ok, work, comm, pred_ptr, pred_idx, mem, mem_limit):
    """:func:`_dp_starts` on a unit order: segments end at unit boundaries, their cost
    counts data edges in both directions (``FUT``, ``OUTP``: module docstring)."""
    n = order.size
    for i in range(i0, i1):
        row = D[i]
        for b in range(1, kk + 1):
            if row[b - 1] < row[b]:
                row[b] = row[b - 1]
                if want_cuts:
                    par[i, b] = -1
        if not (row[kk - 1] < U):
            continue  # also every start inside a unit (its row stays inf)
        bstart = kk
        while bstart > 1 and row[bstart - 2] < U:
            bstart -= 1
        W = 0.0
        INC = 0.0
        FUT = 0.0
        OUTP = 0.0
        OUTC = 0.0
        MEM = 0.0
        for j in range(i + 1, n + 1):
            p = j - 1
            v = order[p]
            W += work[v]
            MEM += mem[v]
            for e in range(pred_ptr[v], pred_ptr[v + 1]):
                u = pred_idx[e]
                pu = pos[u]
                if pu < i:
                    if stamp[u] != i:
                        stamp[u] = i
                        INC += comm[u]
                elif pu > p and fstamp[u] != i:
                    fstamp[u] = i
                    FUT += comm[u]
            if fstamp[v] == i:
                FUT -= comm[v]
            if first[v] < i:
                OUTP += comm[v]
            elif last[v] > p:
                OUTC += comm[v]
            for e in range(bptr[p], bptr[j]):
                u = bidx[e]
                pu = pos[u]
                if pu >= i and pu < p and first[u] >= i:
                    OUTC -= comm[u]
            lb = W + INC + OUTP
            if lb >= U or MEM > mem_limit:
                break
            if not cut_ok[j]:
                continue
            cost = lb + FUT + OUTC
            if cost >= U:
                continue
            rj = D[j]
            for b in range(bstart, kk + 1):
                val = row[b - 1]
                if cost > val:
                    val = cost
                if val < rj[b]:
                    rj[b] = val
                    if want_cuts:
                        par[j, b] = i
            if j == n and rj[kk] < U:
                U = rj[kk]
    return U


@nb.njit(cache=True, nogil=True)
def _slice_dp_g(order, k, upper, want_cuts, work, comm, pred_ptr, pred_idx, succ_ptr,  # type: ignore[no-untyped-def]
                succ_idx, mem, mem_limit, unit):
    """Algorithm 1 on a unit order in one call (the constrained :func:`_slice_dp`)."""
    n = order.size
    (kk, pos, first, last, bptr, bidx, cut_ok, ew_val, ew_cuts, stamp, fstamp, gcuts, lo,
     hi) = _dp_tables_g(order, k, upper, work, comm, succ_ptr, succ_idx, mem, mem_limit, unit)
    lo, hi, ew_val, ew_cuts, _, _ = _dp_bisect_g(
        N_PROBES, lo, hi, ew_val, ew_cuts, order, pos, first, last, bptr, bidx, cut_ok, kk,
        work, comm, pred_ptr, pred_idx, mem, mem_limit, stamp, fstamp, gcuts)
    U = min(upper, ew_val)
    D, par = _dp_alloc(n, kk, want_cuts)
    stamp[:] = -1
    fstamp[:] = -1
    _dp_starts_g(0, n, U, order, kk, want_cuts, D, par, stamp, fstamp, pos, first, last, bptr,
                 bidx, cut_ok, work, comm, pred_ptr, pred_idx, mem, mem_limit)
    return _dp_finish(n, kk, want_cuts, D, par, ew_val, ew_cuts, upper)


def slice_arrays(o: NDArray[np.int64], k: int, upper: float, want_cuts: bool,
                 a: KernelArrays) -> tuple[float, NDArray[np.int64]]:
    """One full DP on explicit kernel arrays (the constrained kernel if ``a.general``)."""
    if a.general:
        return _slice_dp_g(o, k, upper, want_cuts, a.work, a.comm, a.pred_ptr,  # type: ignore[no-any-return]
                           a.pred_idx, a.succ_ptr, a.succ_idx, a.mem, a.mem_limit, a.unit)
    return _slice_dp(o, k, upper, want_cuts, a.work, a.comm, a.pred_ptr, a.pred_idx,  # type: ignore[no-any-return]
                     a.succ_ptr, a.succ_idx, a.mem, a.mem_limit)


# ---------------------------------------------------------------------------- Python API
def check_topological(instance: Instance, order: ArrayLike) -> NDArray[np.int64]:
    """``order`` as an int64 array; :class:`InputError` unless it is a unit order.

    A unit order (module docstring) lists every unit's members contiguously and the units
    in a topological order of the unit DAG (ordering edges: ordering data edges and
    precedence edges; data-only edges order nothing). Without active groups units are
    single nodes and this is "a topological order over the ordering edges".
    """
    o = np.ascontiguousarray(np.asarray(order, dtype=np.int64).ravel())
    n = instance.n_nodes
    if o.size != n or not np.array_equal(np.sort(o), np.arange(n)):
        raise InputError(f"order is not a permutation of the {n} nodes")
    pos = np.empty(n, dtype=np.int64)
    pos[o] = np.arange(n)
    src, dst = instance.all_src, instance.all_dst
    if "groups" in instance.constraints:
        unit = instance.unit_of
        seq = unit[o]
        changes = np.flatnonzero(seq[1:] != seq[:-1])
        if changes.size != instance.n_units - 1:
            starts = np.r_[0, changes + 1]
            dup = np.flatnonzero(np.bincount(seq[starts], minlength=instance.n_units) > 1)
            v = int(o[np.flatnonzero(seq == dup[0])[0]])
            raise InputError(f"order splits the nodes that must share a stage with "
                             f"{instance.ids[v]!r} (not contiguous)")
        keep = unit[src] != unit[dst]
        src, dst = src[keep], dst[keep]
    bad = np.flatnonzero(pos[src] >= pos[dst])
    if bad.size:
        u, v = int(src[bad[0]]), int(dst[bad[0]])
        raise InputError(f"order is not topological: {instance.ids[u]!r} comes after "
                         f"{instance.ids[v]!r}")
    return o


def slice_order(
    instance: Instance,
    order: ArrayLike,
    k: int,
    upper: float = INF,
    *,
    memory_limit: float | None = None,
    check: bool = True,
) -> tuple[float, NDArray[np.int64]]:
    """Optimal slicing of a unit ``order`` into at most ``k`` blocks (Algorithm 1).

    Parameters
    ----------
    instance : Instance
    order : array_like of int
        A unit order (node indices; :func:`check_topological`): a topological order over
        the ordering edges when no co-location group is active.
    k : int
        Maximum number of blocks.
    upper : float
        Only slicings with value ``< upper`` are sought (pruning); default ``inf``.
    memory_limit : float, optional
        Memory per block; default the instance's cap when the memory constraint is active
        (``math.inf``: no cap). Needs ``instance.memory``.
    check : bool
        Validate that ``order`` is a unit order (O(n + m)); pass False in hot loops.

    Returns
    -------
    (float, ndarray of int)
        The optimal bottleneck over the slicings of ``order`` that cut only between units
        and keep every block within the memory cap, and the cut positions (block ``b`` is
        ``order[cuts[b-1]:cuts[b]]``, see :meth:`Partition.from_slices`), or ``(inf, [])``
        if no such slicing has value ``< upper``.

    Examples
    --------
    >>> from pipecert.testing import worked_example
    >>> inst = worked_example()
    >>> slice_order(inst, [0, 2, 1, 3, 4], 2)[0], slice_order(inst, [0, 1, 2, 3, 4], 2)[0]
    (12.0, 10.0)
    """
    k = validate_k(k)
    o = check_topological(instance, order) if check else np.ascontiguousarray(order, np.int64)
    a = kernel_arrays(instance, memory_limit=memory_limit)
    val, cuts = slice_arrays(o, k, float(upper), True, a)
    return float(val), cuts


#: Seconds of DP work between two budget checks of :func:`slice_order_within` (the chunk
#: of starts is resized after each call to take about this long).
CHUNK_S = 0.1


def slice_order_within(
    instance: Instance,
    order: ArrayLike,
    k: int,
    budget: Budget,
    upper: float = INF,
    *,
    memory_limit: float | None = None,
    check: bool = True,
) -> tuple[float, NDArray[np.int64], bool]:
    """:func:`slice_order` within ``budget``: ``(value, cuts, complete)``.

    The DP runs over the starts in chunks of about :data:`CHUNK_S` seconds and checks the
    budget (and with it the process-wide cancel flag) between chunks, so it stops within
    about that long of the deadline. Stopped early (``complete = False``), it returns the
    incumbent it starts from: the best of the equal-work slicing and the greedy slicings
    found by bisection (each O(n + m), a feasible slicing of ``order`` but not
    necessarily the optimal one), or ``(inf, [])`` if neither is below ``upper``.
    Complete, the result equals :func:`slice_order`'s.

    The DP is O(n (n + m) / k + n^2) on large graphs in the worst case (each start scans
    the segments whose work plus in-cost stays below the incumbent, about n / k
    positions); on a 200,000-node graph one order takes minutes, hence the budget.
    """
    k = validate_k(k)
    o = check_topological(instance, order) if check else np.ascontiguousarray(order, np.int64)
    return dp_within(o, k, budget, kernel_arrays(instance, memory_limit=memory_limit), upper)


def dp_within(o: NDArray[np.int64], k: int, budget: Budget, a: KernelArrays,
              upper: float = INF) -> tuple[float, NDArray[np.int64], bool]:
    """The chunked DP of :func:`slice_order_within` on explicit kernel arrays.

    ``a`` may differ from the instance's (``equal_work`` passes zero comm); ``a.general``
    selects the constrained kernels.
    """
    n = int(o.size)

    def stopped() -> tuple[float, NDArray[np.int64], bool]:
        if ew_val < upper:
            return float(ew_val), np.asarray(ew_cuts, dtype=np.int64), False
        return INF, np.empty(0, np.int64), False

    # the same steps as _dp_prepare, with budget checks between groups of probes
    if a.general:
        (kk, pos, first, last, bptr, bidx, cut_ok, ew_val, ew_cuts, stamp, fstamp, gcuts,
         lo, hi) = _dp_tables_g(o, k, float(upper), a.work, a.comm, a.succ_ptr, a.succ_idx,
                                a.mem, a.mem_limit, a.unit)
    else:
        kk, pos, last, bptr, bidx, ew_val, ew_cuts, stamp, gcuts, lo, hi = _dp_tables(
            o, k, float(upper), a.work, a.comm, a.succ_ptr, a.succ_idx, a.mem, a.mem_limit)
    left, finished = N_PROBES, False
    while left > 0 and not finished:
        if budget.expired():
            return stopped()
        if a.general:
            lo, hi, ew_val, ew_cuts, done, finished = _dp_bisect_g(
                min(4, left), lo, hi, ew_val, ew_cuts, o, pos, first, last, bptr, bidx,
                cut_ok, kk, a.work, a.comm, a.pred_ptr, a.pred_idx, a.mem, a.mem_limit, stamp,
                fstamp, gcuts)
        else:
            lo, hi, ew_val, ew_cuts, done, finished = _dp_bisect(
                min(4, left), lo, hi, ew_val, ew_cuts, o, pos, last, bptr, bidx, kk, a.work,
                a.comm, a.pred_ptr, a.pred_idx, a.mem, a.mem_limit, stamp, gcuts)
        left -= max(int(done), 1) if not finished else 0
    U = min(float(upper), float(ew_val))
    D, par = _dp_alloc(n, kk, True)
    stamp[:] = -1
    if a.general:
        fstamp[:] = -1
    i, chunk = 0, 16
    while i < n:
        if budget.expired():
            return stopped()
        t0 = time.perf_counter()
        j = min(n, i + chunk)
        if a.general:
            U = _dp_starts_g(i, j, U, o, kk, True, D, par, stamp, fstamp, pos, first, last,
                             bptr, bidx, cut_ok, a.work, a.comm, a.pred_ptr, a.pred_idx,
                             a.mem, a.mem_limit)
        else:
            U = _dp_starts(i, j, U, o, kk, True, D, par, stamp, pos, last, bptr, bidx,
                           a.work, a.comm, a.pred_ptr, a.pred_idx, a.mem, a.mem_limit)
        i = j
        dt = time.perf_counter() - t0
        # aim at CHUNK_S per call: grow at most 4x, shrink in proportion
        chunk = max(1, min(4 * chunk, int(chunk * CHUNK_S / max(dt, 1e-6))))
    val, cuts = _dp_finish(n, kk, True, D, par, ew_val, ew_cuts, float(upper))
    return float(val), cuts, True


def slice_value(
    instance: Instance,
    order: ArrayLike,
    k: int,
    upper: float = INF,
    *,
    memory_limit: float | None = None,
) -> float:
    """The value of :func:`slice_order` only (no parent pointers; the decoder's fast path).

    The order is not validated.
    """
    a = kernel_arrays(instance, memory_limit=memory_limit)
    o = np.ascontiguousarray(order, dtype=np.int64)
    val, _ = slice_arrays(o, validate_k(k), float(upper), False, a)
    return float(val)


def slice_partition(
    instance: Instance, order: ArrayLike, k: int, *, memory_limit: float | None = None
) -> Partition:
    """The optimal slicing of ``order`` as a :class:`Partition` with ``k`` stages.

    Raises :class:`InputError` when no slicing of the order meets the memory cap.
    """
    val, cuts = slice_order(instance, order, k, memory_limit=memory_limit)
    if not math.isfinite(val):
        raise InputError(f"no slicing of the order into {k} blocks meets the memory cap")
    return Partition.from_slices(order, cuts.tolist(), k)
