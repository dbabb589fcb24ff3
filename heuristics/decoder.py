"""Algorithm 2 (BrkgaSortAndSliceDecoder, spec §3.2) and the topological orders it builds on.

The decoder maps a chromosome ``r in [0, 1)^n`` of random keys to a partition:

1. **Sort**: Kahn's algorithm with a binary min-heap keyed by ``(r[v], v)``, over data and
   precedence edges. It yields the topological order that is lexicographically smallest with
   respect to the keys. Every topological order is the image of some key vector (keys
   increasing along it, see :func:`keys_from_order`), so the search space is complete.
2. **Slice**: Algorithm 1 (:mod:`heuristics.slicing`) on that order; fitness = its value.

Everything is compiled with numba (``cache=True``, ``nogil=True``), so a thread pool can
decode a population in parallel. :func:`decode_batch` decodes many chromosomes with one
pruning bound each; :func:`decode` returns the order and cuts of one chromosome.

Also here: the deterministic orders used by the baselines, :func:`bfs_order` (Kahn with a
FIFO queue) and :func:`dfs_order` (Kahn with a LIFO stack, which follows a chain as deep as
it can before switching), both breaking ties by node index.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import ArrayLike, NDArray

from heuristics.slicing import _slice_dp, kernel_arrays, slice_order_within
from pipecert.instance import Instance, validate_k
from pipecert.results import Budget

__all__ = [
    "minkey_order",
    "decode",
    "decode_batch",
    "decode_within",
    "LARGE_N",
    "keys_from_order",
    "bfs_order",
    "dfs_order",
    "order_arrays",
]


def order_arrays(instance: Instance) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                              NDArray[np.int64]]:
    """``(ptr, succ, indegree)`` over data and precedence edges, contiguous int64 (cached)."""
    cache = instance.__dict__.setdefault("_pipecert_cache", {})
    got = cache.get("_order_arrays")
    if got is None:
        ptr, succ = instance.order_succ_csr
        indeg = np.bincount(succ, minlength=instance.n_nodes).astype(np.int64)
        got = (np.ascontiguousarray(ptr), np.ascontiguousarray(succ), indeg)
        cache["_order_arrays"] = got
    return got  # type: ignore[no-any-return]


@nb.njit(cache=True, nogil=True)
def _less(keys, a, b):  # type: ignore[no-untyped-def]
    ka = keys[a]
    kb = keys[b]
    return ka < kb or (ka == kb and a < b)


@nb.njit(cache=True, nogil=True)
def _kahn_minkey(keys, ptr, succ, indeg0):  # type: ignore[no-untyped-def]
    """Topological order popping the ready node with the smallest ``(key, index)``."""
    n = indeg0.size
    indeg = indeg0.copy()
    heap = np.empty(n, np.int64)
    hs = 0
    order = np.empty(n, np.int64)
    for v in range(n):
        if indeg[v] == 0:
            # sift up
            i = hs
            heap[hs] = v
            hs += 1
            while i > 0:
                p = (i - 1) >> 1
                if _less(keys, heap[i], heap[p]):
                    t = heap[i]
                    heap[i] = heap[p]
                    heap[p] = t
                    i = p
                else:
                    break
    no = 0
    while hs > 0:
        u = heap[0]
        hs -= 1
        heap[0] = heap[hs]
        i = 0
        while True:
            lft = 2 * i + 1
            if lft >= hs:
                break
            c = lft
            if lft + 1 < hs and _less(keys, heap[lft + 1], heap[lft]):
                c = lft + 1
            if _less(keys, heap[c], heap[i]):
                t = heap[i]
                heap[i] = heap[c]
                heap[c] = t
                i = c
            else:
                break
        order[no] = u
        no += 1
        for e in range(ptr[u], ptr[u + 1]):
            v = succ[e]
            indeg[v] -= 1
            if indeg[v] == 0:
                i = hs
                heap[hs] = v
                hs += 1
                while i > 0:
                    p = (i - 1) >> 1
                    if _less(keys, heap[i], heap[p]):
                        t = heap[i]
                        heap[i] = heap[p]
                        heap[p] = t
                        i = p
                    else:
                        break
    return order


@nb.njit(cache=True, nogil=True)
def _kahn_queue(ptr, succ, indeg0, lifo):  # type: ignore[no-untyped-def]
    """Kahn's algorithm with a FIFO queue (``lifo=False``) or a LIFO stack, ties by index."""
    n = indeg0.size
    indeg = indeg0.copy()
    buf = np.empty(n, np.int64)
    head = 0
    tail = 0
    if lifo:
        for v in range(n - 1, -1, -1):  # lowest index on top
            if indeg[v] == 0:
                buf[tail] = v
                tail += 1
    else:
        for v in range(n):
            if indeg[v] == 0:
                buf[tail] = v
                tail += 1
    order = np.empty(n, np.int64)
    no = 0
    ready = np.empty(n, np.int64)
    while (tail > 0) if lifo else (head < tail):
        if lifo:
            tail -= 1
            u = buf[tail]
        else:
            u = buf[head]
            head += 1
        order[no] = u
        no += 1
        nr = 0
        for e in range(ptr[u], ptr[u + 1]):
            v = succ[e]
            indeg[v] -= 1
            if indeg[v] == 0:
                ready[nr] = v
                nr += 1
        if lifo:
            for r in range(nr - 1, -1, -1):  # successors in index order, lowest on top
                buf[tail] = ready[r]
                tail += 1
        else:
            for r in range(nr):
                buf[tail] = ready[r]
                tail += 1
    return order


@nb.njit(cache=True, nogil=True)
def _decode_rows(keys2d, k, uppers, ptr, succ, indeg0, work, comm, pred_ptr, pred_idx,  # type: ignore[no-untyped-def]
                 succ_ptr, succ_idx, mem, mem_limit):
    out = np.empty(keys2d.shape[0])
    for r in range(keys2d.shape[0]):
        order = _kahn_minkey(keys2d[r], ptr, succ, indeg0)
        val, _ = _slice_dp(order, k, uppers[r], False, work, comm, pred_ptr, pred_idx,
                           succ_ptr, succ_idx, mem, mem_limit)
        out[r] = val
    return out


def minkey_order(instance: Instance, keys: ArrayLike) -> NDArray[np.int64]:
    """The min-key topological order of ``keys`` (step 1 of the decoder)."""
    ptr, succ, indeg = order_arrays(instance)
    return _kahn_minkey(np.ascontiguousarray(keys, dtype=np.float64), ptr, succ, indeg)


def decode(
    instance: Instance, keys: ArrayLike, k: int, upper: float = math.inf,
    *, memory_limit: float | None = None,
) -> tuple[float, NDArray[np.int64], NDArray[np.int64]]:
    """Decode one chromosome: ``(value, order, cuts)`` (value inf if nothing < ``upper``)."""
    order = minkey_order(instance, keys)
    a = kernel_arrays(instance, memory_limit=memory_limit)
    val, cuts = _slice_dp(order, validate_k(k), float(upper), True, a.work, a.comm,
                          a.pred_ptr, a.pred_idx, a.succ_ptr, a.succ_idx, a.mem, a.mem_limit)
    return float(val), order, cuts


#: Above this many nodes searches decode row by row with budget checks inside the slicing
#: DP (one exact decode of a 5,000-node layered graph takes about 0.3 s, of 40,000 nodes 30 s).
LARGE_N = 5_000


def decode_within(
    instance: Instance, keys: ArrayLike, k: int, budget: Budget, upper: float = math.inf,
    *, memory_limit: float | None = None,
) -> tuple[float, NDArray[np.int64], NDArray[np.int64], bool]:
    """:func:`decode` within ``budget``: ``(value, order, cuts, complete)``.

    The slicing DP runs in chunks with budget checks
    (:func:`heuristics.slicing.slice_order_within`); stopped early, the value and cuts
    are those of the greedy slicing of the same order (feasible, not necessarily optimal).
    For graphs where one decode takes longer than a budget check interval.
    """
    order = minkey_order(instance, keys)
    val, cuts, complete = slice_order_within(instance, order, k, budget, upper,
                                             memory_limit=memory_limit, check=False)
    return val, order, cuts, complete


def decode_batch(
    instance: Instance, keys2d: ArrayLike, k: int, uppers: ArrayLike | float = math.inf,
    *, memory_limit: float | None = None,
) -> NDArray[np.float64]:
    """Fitness of every row of ``keys2d`` (value-only path; releases the GIL).

    ``uppers`` (scalar or one per row) prunes: a row whose best slicing is not below its
    bound gets ``inf``.
    """
    keys = np.ascontiguousarray(keys2d, dtype=np.float64)
    if keys.ndim != 2 or keys.shape[1] != instance.n_nodes:
        raise ValueError(f"keys must have shape (rows, {instance.n_nodes})")
    ub = np.ascontiguousarray(np.broadcast_to(np.asarray(uppers, dtype=np.float64),
                                              (keys.shape[0],)))
    ptr, succ, indeg = order_arrays(instance)
    a = kernel_arrays(instance, memory_limit=memory_limit)
    return _decode_rows(keys, validate_k(k), ub, ptr, succ, indeg, a.work, a.comm,
                        a.pred_ptr, a.pred_idx, a.succ_ptr, a.succ_idx, a.mem, a.mem_limit)


def keys_from_order(order: ArrayLike) -> NDArray[np.float64]:
    """Keys in ``[0, 1)`` increasing along ``order``: the decoder maps them back to it."""
    o = np.asarray(order, dtype=np.int64)
    keys = np.empty(o.size)
    keys[o] = np.arange(o.size) / max(o.size, 1)
    return keys


def bfs_order(instance: Instance) -> NDArray[np.int64]:
    """Breadth-first topological order (Kahn with a FIFO queue, ties by node index)."""
    ptr, succ, indeg = order_arrays(instance)
    return _kahn_queue(ptr, succ, indeg, False)


def dfs_order(instance: Instance) -> NDArray[np.int64]:
    """Depth-first topological order (Kahn with a LIFO stack, ties by node index)."""
    ptr, succ, indeg = order_arrays(instance)
    return _kahn_queue(ptr, succ, indeg, True)
