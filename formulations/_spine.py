"""Kernels of the path bound (docs/theory/min-cut-bounds.md#path-bound): chains, run estimates, DP.

A *chain* is a sequence of nodes ``v_0, ..., v_{L-1}`` in which every ``v_p`` reaches
``v_{p+1}`` over ordering edges (data and precedence); a path is a chain, and so is every
subsequence of one. Two integer indices per node describe all the run sets at once:

* ``a[x]`` = the first position ``j`` with ``x ∈ anc(v_j)`` (``L`` if none); since ``v_j``
  reaches ``v_{j+1}``, ``x ∈ anc(v_j)`` iff ``a[x] <= j``;
* ``d[x]`` = the last position ``i`` with ``x ∈ desc(v_i)`` (``-1`` if none);
  ``x ∈ desc(v_i)`` iff ``d[x] >= i``.

For the run of positions ``i..j``: ``H(i, j) = {x : d[x] >= i, a[x] <= j}`` and
``X(i, j) = {x : a[x] <= i - 1 or d[x] >= j + 1}``. (``d[x] <= a[x]`` whenever both are
defined, otherwise the DAG would have a cycle, so ``H`` and ``X`` are disjoint.)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

from pipecert.instance import Instance

__all__ = [
    "heaviest_path",
    "path_tables",
    "chain_indices",
    "run_sets",
    "run_classes",
    "run_estimates",
    "run_memory_over",
    "min_runs_dp",
    "segment_value",
    "row_suffix_min",
]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@njit(cache=True)
def _path_tables(topo, pptr, pidx, sptr, sidx, weight):  # type: ignore[no-untyped-def]
    """Heaviest path weight ending at / starting from each node, with the best neighbours."""
    n = topo.size
    to = np.zeros(n)
    frm = np.zeros(n)
    bp = np.full(n, -1, np.int64)
    bs = np.full(n, -1, np.int64)
    for t in range(n):
        v = topo[t]
        best = 0.0
        for q in range(pptr[v], pptr[v + 1]):
            u = pidx[q]
            if bp[v] < 0 or to[u] > best:
                best = to[u]
                bp[v] = u
        to[v] = best + weight[v]
    for t in range(n - 1, -1, -1):
        v = topo[t]
        best = 0.0
        for q in range(sptr[v], sptr[v + 1]):
            u = sidx[q]
            if bs[v] < 0 or frm[u] > best:
                best = frm[u]
                bs[v] = u
        frm[v] = best + weight[v]
    return to, frm, bp, bs


def _path_through(v: int, bp: I64, bs: I64) -> I64:
    back = []
    u = v
    while u >= 0:
        back.append(u)
        u = int(bp[u])
    fwd = []
    u = int(bs[v])
    while u >= 0:
        fwd.append(u)
        u = int(bs[u])
    return np.asarray(back[::-1] + fwd, dtype=np.int64)


def path_tables(instance: Instance, weight: F64) -> tuple[F64, F64, I64, I64]:
    """``(to, frm, bp, bs)``: heaviest path weights into / out of each node, and parents."""
    pptr, pidx = instance.order_pred_csr
    sptr, sidx = instance.order_succ_csr
    return _path_tables(instance.topo_order, pptr, pidx, sptr, sidx,  # type: ignore[no-any-return]
                        np.asarray(weight, dtype=np.float64))


def heaviest_path(instance: Instance, weight: F64, through: int | None = None) -> I64:
    """A source-to-sink path over ordering edges of maximum total ``weight`` (>= 0).

    With ``through``, the heaviest such path that contains that node.
    """
    w = np.asarray(weight, dtype=np.float64)
    to, frm, bp, bs = path_tables(instance, w)
    v = int(np.argmax(to + frm - w)) if through is None else int(through)
    return _path_through(v, bp, bs)


@njit(cache=True)
def _chain_indices(topo, pptr, pidx, sptr, sidx, chain):  # type: ignore[no-untyped-def]
    n = topo.size
    L = chain.size
    pos = np.full(n, -1, np.int64)
    for p in range(L):
        pos[chain[p]] = p
    a = np.full(n, L, np.int64)
    d = np.full(n, -1, np.int64)
    for t in range(n - 1, -1, -1):
        v = topo[t]
        best = L if pos[v] < 0 else pos[v]
        for q in range(sptr[v], sptr[v + 1]):
            if a[sidx[q]] < best:
                best = a[sidx[q]]
        a[v] = best
    for t in range(n):
        v = topo[t]
        best = pos[v]
        for q in range(pptr[v], pptr[v + 1]):
            if d[pidx[q]] > best:
                best = d[pidx[q]]
        d[v] = best
    return a, d


def chain_indices(instance: Instance, chain: I64) -> tuple[I64, I64]:
    """``(a, d)`` of the module docstring for ``chain`` (over ordering edges)."""
    pptr, pidx = instance.order_pred_csr
    sptr, sidx = instance.order_succ_csr
    return _chain_indices(instance.topo_order, pptr, pidx, sptr, sidx,
                          np.asarray(chain, dtype=np.int64))


@njit(cache=True)
def run_classes(a, d, i, j):  # type: ignore[no-untyped-def]
    """Per node: 0 if in ``H(i, j)``, 2 if in ``X(i, j)``, 1 otherwise (free)."""
    n = a.size
    out = np.ones(n, np.int8)
    for x in range(n):
        if d[x] >= i and a[x] <= j:
            out[x] = 0
        elif a[x] <= i - 1 or d[x] >= j + 1:
            out[x] = 2
    return out


def run_sets(a: I64, d: I64, i: int, j: int) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """Masks of ``H(i, j)`` and ``X(i, j)`` (positions ``i..j`` inclusive, 0-based)."""
    hold = (d >= i) & (a <= j)
    excl = (a <= i - 1) | (d >= j + 1)
    return hold, excl


@njit(cache=True, nogil=True)
def _run_estimates(a, d, w, c, sptr, sidx, node_low, L):  # type: ignore[no-untyped-def]
    """Integer run estimates (``w``, ``c`` already scaled and floored) and node-low maxima.

    Every sum and difference is on int64 and exact (the true totals fit), so the
    inclusion-exclusion of the 2D prefix sums cannot round an estimate up.
    """
    n = a.size
    wm = np.zeros((L + 1, L + 1), np.int64)  # wm[d, a] += w: suffix over d, prefix over a
    mx = np.zeros((L + 1, L + 1))
    diff = np.zeros((L + 2, L + 2), np.int64)  # 2D difference array of forced communication
    for x in range(n):
        if d[x] >= 0 and a[x] < L:
            wm[d[x], a[x]] += w[x]
            if node_low[x] > mx[d[x], a[x]]:
                mx[d[x], a[x]] = node_low[x]
    ds = np.empty(0, np.int64)
    for u in range(n):
        if c[u] <= 0 or sptr[u + 1] == sptr[u]:
            continue
        cu = c[u]
        # Out: u in H (i <= d[u], j >= a[u]) and a consumer in desc(v_{j+1}): j <= max d - 1
        if d[u] >= 0 and a[u] < L:
            dmax = -1
            for q in range(sptr[u], sptr[u + 1]):
                if d[sidx[q]] > dmax:
                    dmax = d[sidx[q]]
            j0 = a[u]
            j1 = min(dmax - 1, L - 1)
            if j1 >= j0:
                # rows i in [0, d[u]], cols j in [j0, j1]
                diff[0, j0] += cu
                diff[0, j1 + 1] -= cu
                diff[d[u] + 1, j0] -= cu
                diff[d[u] + 1, j1 + 1] += cu
        # In: u in anc(v_{i-1}) (i >= a[u] + 1) and a consumer v in H (d[v] >= i, a[v] <= j)
        if a[u] < L:
            cnt = 0
            for q in range(sptr[u], sptr[u + 1]):
                v = sidx[q]
                if d[v] >= 0 and a[v] < L:
                    cnt += 1
            if cnt == 0:
                continue
            ds = np.empty(cnt, np.int64)
            as_ = np.empty(cnt, np.int64)
            cnt = 0
            for q in range(sptr[u], sptr[u + 1]):
                v = sidx[q]
                if d[v] >= 0 and a[v] < L:
                    ds[cnt] = d[v]
                    as_[cnt] = a[v]
                    cnt += 1
            order = np.argsort(-ds)
            amin = L
            ilo_all = a[u] + 1
            q = 0
            while q < cnt:
                dcur = ds[order[q]]
                while q < cnt and ds[order[q]] == dcur:
                    if as_[order[q]] < amin:
                        amin = as_[order[q]]
                    q += 1
                dnext = ds[order[q]] if q < cnt else -1
                i0 = max(dnext + 1, ilo_all)
                i1 = dcur
                if i1 >= i0 and amin < L:
                    diff[i0, amin] += cu
                    diff[i0, L] -= cu
                    diff[i1 + 1, amin] -= cu
                    diff[i1 + 1, L] += cu
    est = np.full((L, L), -1, np.int64)
    low = np.zeros((L, L))
    # forced comm = 2D prefix sums of diff
    for i in range(L):
        for j in range(L):
            v = diff[i, j]
            if i > 0:
                v += diff[i - 1, j]
            if j > 0:
                v += diff[i, j - 1]
            if i > 0 and j > 0:
                v -= diff[i - 1, j - 1]
            diff[i, j] = v
    # W(i, j) = sum_{dd >= i, aa <= j} wm[dd, aa]; same with max for node lows
    for dd in range(L - 1, -1, -1):
        for aa in range(L):
            v = wm[dd, aa]
            m = mx[dd, aa]
            if aa > 0:
                v += wm[dd, aa - 1]
                m = max(m, mx[dd, aa - 1])
            if dd < L - 1:
                v += wm[dd + 1, aa]
                m = max(m, mx[dd + 1, aa])
            if aa > 0 and dd < L - 1:
                v -= wm[dd + 1, aa - 1]
            wm[dd, aa] = v
            mx[dd, aa] = m
    for i in range(L):
        for j in range(i, L):
            est[i, j] = wm[i, j] + diff[i, j]
            low[i, j] = mx[i, j]
    return est, low


def run_estimates(instance: Instance, a: I64, d: I64, node_low: F64, length: int) -> F64:
    """``g~(i, j) <= F(H(i, j), X(i, j))`` for all runs ``i <= j`` (upper triangle), O(L^2 + m).

    ``g~ = max(w(H) + forced In + forced Out, max_{x in H} node_low[x])``: a producer in
    ``X`` with a consumer in ``H`` is in ``In(S)`` of every feasible ``S``, a producer in ``H``
    with a consumer in ``X`` is in ``Out(S)``; each producer is counted once per side, and
    ``F(H, X) >= F({x}, ∅) >= node_low[x]`` for ``x ∈ H``.

    Numerics: the sums run on integers, ``floor(w 2^e)`` and ``floor(c 2^e)`` with
    ``(sum w + sum c) 2^e <= 2^51``, exactly (int64; the 2D prefix sums subtract, and a
    float inclusion-exclusion could round ``1e9 + 1e-9 - 1e9`` up). Each floored term is at
    most its true scaled value, so the integer estimate is at most ``2^e`` times the true
    ``w(H) + forced comm``; it is below ``2^53``, converts to float exactly, and
    :func:`scaled_down` divides by ``2^e`` without rounding up. The node-bound part is a
    maximum (no arithmetic).
    """
    sptr, sidx = instance.succ_csr
    L = int(length)
    w = np.asarray(instance.work, dtype=np.float64)
    c = np.asarray(instance.comm, dtype=np.float64)
    total = float(w.sum() + c.sum())
    e = 0
    if total > 0.0:
        e = 51 - math.ceil(math.log2(total * (1 + 1e-9)))
    wi = np.floor(np.ldexp(w, e)).astype(np.int64)
    ci = np.floor(np.ldexp(c, e)).astype(np.int64)
    est, low = _run_estimates(a, d, wi, ci, sptr, sidx,
                              np.asarray(node_low, dtype=np.float64), L)
    g = np.maximum(scaled_down(est, e), low)
    g[est < 0] = np.inf  # below the diagonal
    return g


@njit(cache=True)
def _unit_run_memory(a, d, uptr, uidx, umem, L):  # type: ignore[no-untyped-def]
    """Integer ``mem`` of the units meeting ``H(i, j)``, for all runs (2D difference array).

    A unit meets ``H(i, j)`` iff a member ``x`` has ``d[x] >= i`` and ``a[x] <= j``: for ``i``
    between two consecutive member values of ``d`` (descending), iff ``j >= min a`` over the
    members with ``d >= i`` (a staircase, added as one rectangle per step).
    """
    diff = np.zeros((L + 2, L + 2), np.int64)
    nu = uptr.size - 1
    for u in range(nu):
        m = umem[u]
        if m <= 0:
            continue
        cnt = 0
        for q in range(uptr[u], uptr[u + 1]):
            x = uidx[q]
            if d[x] >= 0 and a[x] < L:
                cnt += 1
        if cnt == 0:
            continue
        ds = np.empty(cnt, np.int64)
        as_ = np.empty(cnt, np.int64)
        cnt = 0
        for q in range(uptr[u], uptr[u + 1]):
            x = uidx[q]
            if d[x] >= 0 and a[x] < L:
                ds[cnt] = d[x]
                as_[cnt] = a[x]
                cnt += 1
        order = np.argsort(-ds)
        amin = L
        q = 0
        while q < cnt:
            dcur = ds[order[q]]
            while q < cnt and ds[order[q]] == dcur:
                if as_[order[q]] < amin:
                    amin = as_[order[q]]
                q += 1
            dnext = ds[order[q]] if q < cnt else -1
            i0 = dnext + 1
            i1 = dcur
            if i1 >= i0 and amin < L:
                diff[i0, amin] += m
                diff[i0, L] -= m
                diff[i1 + 1, amin] -= m
                diff[i1 + 1, L] += m
    out = np.zeros((L, L), np.int64)
    for i in range(L):
        for j in range(L):
            v = diff[i, j]
            if i > 0:
                v += out[i - 1, j]
            if j > 0:
                v += out[i, j - 1]
            if i > 0 and j > 0:
                v -= out[i - 1, j - 1]
            out[i, j] = v
    return out


def run_memory_over(instance: Instance, a: I64, d: I64, length: int) -> NDArray[np.bool_] | None:
    """Runs ``i..j`` whose units need more memory than the cap: no single block holds them.

    ``out[i, j]`` is True when the units meeting ``H(i, j)`` (a block holding the run holds
    them whole) need more than ``M (1 + 1e-9)``; None when the memory cap is not an active
    constraint. Exact integer sums of ``floor(mem 2^e)`` (every term at most its true scaled
    value, ``sum 2^e <= 2^51``), converted down: the computed memory never exceeds the true
    one, so a True entry is a proof.
    """
    if "memory" not in instance.constraints:
        return None
    assert instance.memory is not None and instance.memory_limit is not None
    L = int(length)
    mem = np.asarray(instance.memory, dtype=np.float64)
    total = float(mem.sum())
    e = 51 - math.ceil(math.log2(total * (1 + 1e-9))) if total > 0 else 0
    mi = np.floor(np.ldexp(mem, e)).astype(np.int64)
    umem = np.bincount(instance.unit_of, weights=mi.astype(np.float64),
                       minlength=instance.n_units)
    # per-unit integer sums (each below 2^51: exact in float64 too)
    umem_i = umem.astype(np.int64)
    uptr, uidx = instance.unit_members
    est = _unit_run_memory(a, d, uptr, uidx, umem_i, L)
    used = scaled_down(est, e)
    over = used > float(instance.memory_limit) * (1 + 1e-9)
    return np.triu(over)


def scaled_down(x: NDArray[np.int64], e: int) -> F64:
    """Element-wise the largest float ``<= x 2^-e`` for ``|x| < 2^53`` (exact ints).

    ``np.ldexp`` is exact unless the result is subnormal, where it rounds to nearest; such
    entries are stepped down one ulp.
    """
    xf = x.astype(np.float64)
    with np.errstate(over="ignore"):
        y = np.ldexp(xf, -e)
        y[np.isinf(y)] = np.finfo(np.float64).max  # beyond every float: the largest is below
        up = np.ldexp(y, e) > xf
    if up.any():
        y[up] = np.nextafter(y[up], -np.inf)
    return y


@njit(cache=True)
def _min_runs(g, smin, T, kmax):  # type: ignore[no-untyped-def]
    """Fewest runs (if <= kmax) covering 0..L-1 with every run value <= T; parents.

    ``smin[i, j] = min(g[i, j:])`` stops the scan of row ``i`` once no later run fits.
    """
    L = g.shape[0]
    big = L + 10
    cnt = np.full(L + 1, big, np.int64)
    par = np.full(L + 1, -1, np.int64)
    cnt[0] = 0
    for i in range(L):  # push from prefix i (final once reached); rows of g are contiguous
        ci = cnt[i] + 1
        if ci > kmax:  # also skips unreachable prefixes
            continue
        row = g[i]
        srow = smin[i]
        for j in range(i, L):
            if srow[j] > T:
                break
            if row[j] <= T and ci < cnt[j + 1]:
                cnt[j + 1] = ci
                par[j + 1] = i
    return cnt[L], par


def row_suffix_min(g: F64) -> F64:
    """``out[i, j] = min(g[i, j:])`` (the early exit of the segmentation DP)."""
    return np.ascontiguousarray(np.minimum.accumulate(g[:, ::-1], axis=1)[:, ::-1])


def min_runs_dp(
    g: F64, T: float, kmax: int | None = None, smin: F64 | None = None
) -> tuple[int, list[tuple[int, int]]]:
    """Fewest runs with value <= ``T`` and one such split (list of ``(i, j)``, inclusive).

    Returns the largest int64 and an empty split when no split with at most ``kmax`` runs
    (default: any number) exists. ``smin`` is :func:`row_suffix_min` of ``g`` (computed if
    not given).
    """
    L = g.shape[0]
    if smin is None:
        smin = row_suffix_min(g)
    count, par = _min_runs(g, smin, T, L if kmax is None else int(kmax))
    if count > L:  # no split with every run <= T
        return np.iinfo(np.int64).max, []
    runs = []
    j = L
    while j > 0:
        i = int(par[j])
        runs.append((i, j - 1))
        j = i
    return int(count), runs[::-1]


def segment_value(
    g: F64,
    k: int,
    lower: float = 0.0,
    hint: list[tuple[int, int]] | None = None,
    smin: F64 | None = None,
    cand: F64 | None = None,
) -> tuple[float, list[tuple[int, int]]]:
    """``min over splits of 0..L-1 into <= k runs of max g(run)`` (Algorithm 1's recurrence).

    ``g`` holds the run values on and above the diagonal and ``+inf`` below it. The answer is
    an entry of ``g``: the smallest entry ``T`` whose fewest-runs split (:func:`min_runs_dp`)
    needs at most ``k`` runs. The search only looks at entries in ``[lower, m]``, where
    ``lower`` must be known to be <= the answer and ``m`` is the largest value on a feasible
    split (``hint``, a previous split, or the single run ``0..L-1``). ``smin`` is
    :func:`row_suffix_min` of ``g`` (kept up to date by the caller, computed if not given).

    ``cand`` (optional) is a sorted array that contains every entry of ``g`` in
    ``[lower, m]`` and possibly other values (kept by the caller across refinements,
    :meth:`formulations.path_bound.ChainState.candidates`); it replaces the ``O(L^2 log L)``
    selection and sort of the entries per call by two binary searches. The result is the same:
    feasibility of a threshold is monotone in ``T``, the answer ``a*`` is a candidate and
    feasible, so the smallest feasible candidate ``c`` has ``c <= a*``; a split with every
    run ``<= c`` gives ``a* <= c``. Hence ``c = a*`` for any superset, and the split returned
    is the fewest-runs split at ``T = a*`` either way.

    Returns
    -------
    (float, list of (int, int))
        The value and an optimal split (inclusive position ranges).
    """
    L = g.shape[0]
    if L == 0:
        return 0.0, []
    m = float(g[0, L - 1])
    if hint is not None and 0 < len(hint) <= k:
        m = min(m, max(float(g[i, j]) for i, j in hint))
    if k >= L:
        m = min(m, float(np.diag(g).max()))
    if lower > m:  # pragma: no cover - contract violation by the caller
        raise ValueError("segment_value: lower is above a feasible split's value")
    if smin is None:
        smin = row_suffix_min(g)
    if lower > 0:
        # after a refinement the answer usually did not move: one O(L^2) check
        cnt, runs = min_runs_dp(g, lower, k, smin)
        if cnt <= k:
            return max(float(g[i, j]) for i, j in runs), runs
    if cand is None:
        cand = np.unique(g[(g >= lower) & (g <= m)])
    else:
        cand = cand[np.searchsorted(cand, lower, "left"):np.searchsorted(cand, m, "right")]
        if cand.size == 0 or cand[-1] != m:  # pragma: no cover - caller broke the contract
            raise ValueError("segment_value: cand does not hold the entries of g")
    # invariant: cand[hi] feasible (m is), every entry below cand[lo] infeasible or absent
    lo, hi = 0, cand.size - 1
    best_runs: list[tuple[int, int]] = []
    # gallop up from the bottom first: the answer is usually a little above ``lower``, and a
    # test at a small T is cheap (rows stop early)
    step = 1
    while lo + step < hi:
        cnt, runs = min_runs_dp(g, float(cand[lo + step - 1]), k, smin)
        if cnt <= k:
            hi = lo + step - 1
            best_runs = runs
            break
        lo += step
        step *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        cnt, runs = min_runs_dp(g, float(cand[mid]), k, smin)
        if cnt <= k:
            hi = mid
            best_runs = runs
        else:
            lo = mid + 1
    if not best_runs:
        cnt, best_runs = min_runs_dp(g, float(cand[hi]), k, smin)
        if cnt > k:  # pragma: no cover - cannot happen: m is feasible
            raise RuntimeError("segment_value: no feasible split")
    return float(cand[hi]), best_runs


@njit(cache=True)
def _pair_blocks(g, gu, T):  # type: ignore[no-untyped-def]
    """Fewest blocks for a split whose runs all have ``g <= T``, counting one extra block
    between consecutive runs ``[i', i-1], [i, j]`` whose union has ``g[i', j] > 2T``.

    ``D[i, j]`` = fewest blocks covering positions ``0..j`` with last run ``[i, j]``.
    Returns the count and the parent table (previous run start, -1 for the first run).
    """
    L = g.shape[0]
    big = 1 << 40
    D = np.full((L, L), big, np.int64)
    P = np.full((L, L), -1, np.int64)
    for j in range(L):
        if g[0, j] <= T:
            D[0, j] = 1
    for i in range(1, L):
        for j in range(i, L):
            if g[i, j] > T:
                continue
            best = big
            arg = -1
            for ip in range(i):
                prev = D[ip, i - 1]
                if prev >= big:
                    continue
                c = prev + 1
                if gu[ip, j] > 2.0 * T:
                    c += 1
                if c < best:
                    best = c
                    arg = ip
            D[i, j] = best
            P[i, j] = arg
    best = big
    arg = -1
    for i in range(L):
        if D[i, L - 1] < best:
            best = D[i, L - 1]
            arg = i
    return best, arg, P


def pair_segment_value(
    g: F64, k: int, lower: float = 0.0, gu: F64 | None = None
) -> tuple[float, list[tuple[int, int]]]:
    """The smallest ``T`` with a split of ``<= k`` blocks in the sense of :func:`_pair_blocks`.

    Valid lower bound when every ``g`` entry is a lower bound of its run's ``F``: in an optimal
    partition, consecutive runs in adjacent blocks ``S, S'`` hold every node between their
    ends, so ``g(union) <= f(S ∪ S') <= f(S) + f(S') <= 2 OPT`` (f is submodular and
    ``f(∅) = 0``); a pair with ``g(union) > 2 OPT`` has a block between them that meets no
    run. So the split of the optimal partition is feasible at ``T = OPT``. O(L^3) per test.

    ``gu`` (default ``g``) holds the values used for unions of two runs: lower bounds of
    ``F`` valid for a union of *two* blocks (a table that also encodes single-block
    constraints, such as the memory cap, in ``g`` must pass its table without them here).
    """
    L = g.shape[0]
    if gu is None:
        gu = g
    vals = g[np.isfinite(g)]
    uvals = gu[np.isfinite(gu)]
    # the test flips where T <= g or 2T >= g: at g and at the smallest float T with
    # 2T >= g, which is g / 2 unless that rounds down (subnormal g): keep both neighbours
    half = uvals / 2.0
    cand = np.unique(np.concatenate([vals, half, np.nextafter(half, np.inf)]))
    cand = cand[cand >= lower]
    if cand.size == 0:  # nothing above ``lower`` to test: ``lower`` is what is proven
        return float(lower), []
    lo, hi = 0, cand.size - 1
    while lo < hi:
        mid = (lo + hi) // 2
        cnt, _, _ = _pair_blocks(g, gu, float(cand[mid]))
        if cnt <= k:
            hi = mid
        else:
            lo = mid + 1
    T = float(cand[hi])
    cnt, i, P = _pair_blocks(g, gu, T)
    runs: list[tuple[int, int]] = []
    j = L - 1
    while i >= 0 and cnt <= k:
        runs.append((int(i), j))
        i, j = int(P[i, j]), i - 1
    return T, runs[::-1]
