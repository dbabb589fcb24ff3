"""Algorithm 2 (BrkgaSortAndSliceDecoder, docs/theory/algorithms.md) and the topological orders.

The decoder maps a chromosome ``r in [0, 1)^g`` of random keys to a partition:

1. **Sort**: Kahn's algorithm with a binary min-heap keyed by ``(r[x], x)`` over the
   *genes*: the nodes and the ordering edges (ordering data edges and precedence edges)
   when no co-location group is active, else the *units* (:attr:`Instance.unit_of`, nodes
   that must share a stage) and the unit DAG. It yields the topological order of the genes
   that is lexicographically smallest with respect to the keys; a unit order is expanded
   to nodes, each unit's members contiguous (in topological position order). Every
   topological order of the genes is the image of some key vector (keys increasing along
   it, see :func:`keys_from_order`), so the search space is complete: every unit order,
   hence (by the slicing lemma of :mod:`heuristics.slicing`) every feasible partition, is
   reachable.
2. **Slice**: Algorithm 1 (:mod:`heuristics.slicing`) on that order; fitness = its value.
   On a constrained instance the slicing cuts only between units and skips segments over
   the memory cap, so every decoded partition is feasible for the instance (proof in
   :mod:`heuristics.slicing`); a chromosome whose order has no slicing within the cap gets
   fitness ``inf``.

Everything is compiled with numba (``cache=True``, ``nogil=True``), so a thread pool can
decode a population in parallel. :func:`decode_batch` decodes many chromosomes with one
pruning bound each; :func:`decode` returns the order and cuts of one chromosome.

Also here: the deterministic orders used by the baselines, :func:`input_order` (the
instance's own topological order, by units), :func:`bfs_order` (Kahn with a FIFO queue) and
:func:`dfs_order` (Kahn with a LIFO stack, which follows a chain as deep as it can before
switching), ties broken by gene index; all three are unit orders (gene-level Kahn orders
expanded), so every slicing of them is feasible for groups and data-only edges.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
from numpy.typing import ArrayLike, NDArray

from heuristics.slicing import (
    _slice_dp,
    _slice_dp_g,
    kernel_arrays,
    slice_arrays,
    slice_order_within,
)
from pipecert.instance import Instance, validate_k
from pipecert.memo import InstanceKey, Memo, instance_key
from pipecert.results import Budget

__all__ = [
    "gene_arrays",
    "n_genes",
    "input_order",
    "stage_major_order",
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


_OrderArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]
_GeneArrays = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64],
                    NDArray[np.int64], NDArray[np.int64]]
#: :func:`order_arrays` and :func:`gene_arrays` of the last instances (by fingerprint).
_ORDER_ARRAYS: Memo[InstanceKey, _OrderArrays] = Memo("heuristics.order_arrays", 32)
_GENE_ARRAYS: Memo[InstanceKey, _GeneArrays] = Memo("heuristics.gene_arrays", 32)


def order_arrays(instance: Instance) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                              NDArray[np.int64]]:
    """``(ptr, succ, indegree)`` of the nodes over the ordering edges (ordering data edges and
    precedence edges), contiguous int64 (cached)."""
    def compute() -> _OrderArrays:
        ptr, succ = instance.order_succ_csr
        indeg = np.bincount(succ, minlength=instance.n_nodes).astype(np.int64)
        return (np.ascontiguousarray(ptr), np.ascontiguousarray(succ), indeg)

    return _ORDER_ARRAYS.get_or_compute(instance_key(instance), compute)


def unitised(instance: Instance) -> bool:
    """True when the genes are units (co-location groups active), False for nodes."""
    return "groups" in instance.constraints


def n_genes(instance: Instance) -> int:
    """Length of a chromosome: the number of units with active groups, else of nodes."""
    return instance.n_units if unitised(instance) else instance.n_nodes


def gene_arrays(instance: Instance) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                             NDArray[np.int64], NDArray[np.int64],
                                             NDArray[np.int64]]:
    """``(ptr, succ, indegree, mptr, members)`` of the gene DAG (cached).

    Genes are the units when co-location groups are active (the unit DAG over ordering
    edges; ``members[mptr[u]:mptr[u+1]]`` are unit ``u``'s nodes in topological position
    order), else the nodes (the ordering DAG, identity members).
    """
    return _GENE_ARRAYS.get_or_compute(instance_key(instance), lambda: _gene_arrays(instance))


def _gene_arrays(instance: Instance) -> _GeneArrays:
    """The arrays of :func:`gene_arrays` (computed)."""
    if unitised(instance):
        ptr, succ = instance.unit_succ_csr
        nu = instance.n_units
        pos = np.empty(instance.n_nodes, dtype=np.int64)
        pos[instance.topo_order] = np.arange(instance.n_nodes)
        members = np.lexsort((pos, instance.unit_of)).astype(np.int64)
        mptr = np.zeros(nu + 1, dtype=np.int64)
        np.cumsum(np.bincount(instance.unit_of, minlength=nu), out=mptr[1:])
        indeg = np.bincount(succ, minlength=nu).astype(np.int64)
        return (np.ascontiguousarray(ptr), np.ascontiguousarray(succ), indeg, mptr,
                np.ascontiguousarray(members))
    ptr, succ, indeg = order_arrays(instance)
    n = instance.n_nodes
    return (ptr, succ, indeg, np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64))


@nb.njit(cache=True, nogil=True)
def _expand(gorder, mptr, members):  # type: ignore[no-untyped-def]
    """The node order of a gene order (each unit's members contiguous)."""
    out = np.empty(members.size, np.int64)
    q = 0
    for g in gorder:
        for e in range(mptr[g], mptr[g + 1]):
            out[q] = members[e]
            q += 1
    return out


def _to_nodes(instance: Instance, gorder: NDArray[np.int64]) -> NDArray[np.int64]:
    if not unitised(instance):
        return gorder
    _, _, _, mptr, members = gene_arrays(instance)
    return _expand(gorder, mptr, members)  # type: ignore[no-any-return]


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


@nb.njit(cache=True, nogil=True)
def _decode_rows_g(keys2d, k, uppers, ptr, succ, indeg0, mptr, members, work, comm,  # type: ignore[no-untyped-def]
                   pred_ptr, pred_idx, succ_ptr, succ_idx, mem, mem_limit, unit):
    """:func:`_decode_rows` on genes: min-key gene order, expanded, constrained slicing."""
    out = np.empty(keys2d.shape[0])
    for r in range(keys2d.shape[0]):
        order = _expand(_kahn_minkey(keys2d[r], ptr, succ, indeg0), mptr, members)
        val, _ = _slice_dp_g(order, k, uppers[r], False, work, comm, pred_ptr, pred_idx,
                             succ_ptr, succ_idx, mem, mem_limit, unit)
        out[r] = val
    return out


def minkey_order(instance: Instance, keys: ArrayLike) -> NDArray[np.int64]:
    """The node order of the min-key gene order of ``keys`` (step 1 of the decoder).

    ``keys`` has one value per gene (:func:`n_genes`: units when groups are active).
    """
    ptr, succ, indeg, _, _ = gene_arrays(instance)
    g = _kahn_minkey(np.ascontiguousarray(keys, dtype=np.float64), ptr, succ, indeg)
    return _to_nodes(instance, g)


def decode(
    instance: Instance, keys: ArrayLike, k: int, upper: float = math.inf,
    *, memory_limit: float | None = None,
) -> tuple[float, NDArray[np.int64], NDArray[np.int64]]:
    """Decode one chromosome: ``(value, order, cuts)`` (value inf if nothing < ``upper``).

    ``memory_limit`` defaults to the instance's cap (:func:`heuristics.slicing.
    kernel_arrays`).
    """
    order = minkey_order(instance, keys)
    a = kernel_arrays(instance, memory_limit=memory_limit)
    val, cuts = slice_arrays(order, validate_k(k), float(upper), True, a)
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

    ``keys2d`` has one column per gene (:func:`n_genes`). ``uppers`` (scalar or one per
    row) prunes: a row whose best slicing is not below its bound gets ``inf``.
    """
    keys = np.ascontiguousarray(keys2d, dtype=np.float64)
    ng = n_genes(instance)
    if keys.ndim != 2 or keys.shape[1] != ng:
        raise ValueError(f"keys must have shape (rows, {ng})")
    ub = np.ascontiguousarray(np.broadcast_to(np.asarray(uppers, dtype=np.float64),
                                              (keys.shape[0],)))
    a = kernel_arrays(instance, memory_limit=memory_limit)
    if a.general:
        ptr, succ, indeg, mptr, members = gene_arrays(instance)
        return _decode_rows_g(keys, validate_k(k), ub, ptr, succ, indeg, mptr, members,  # type: ignore[no-any-return]
                              a.work, a.comm, a.pred_ptr, a.pred_idx, a.succ_ptr,
                              a.succ_idx, a.mem, a.mem_limit, a.unit)
    ptr, succ, indeg = order_arrays(instance)
    return _decode_rows(keys, validate_k(k), ub, ptr, succ, indeg, a.work, a.comm,  # type: ignore[no-any-return]
                        a.pred_ptr, a.pred_idx, a.succ_ptr, a.succ_idx, a.mem, a.mem_limit)


def keys_from_order(order: ArrayLike, instance: Instance | None = None) -> NDArray[np.float64]:
    """Keys in ``[0, 1)`` increasing along ``order``: the decoder maps them back to it.

    With ``instance`` given and co-location groups active, ``order`` (a unit order of
    nodes) gives one key per unit, increasing with the unit's first position; otherwise one
    key per node.
    """
    o = np.asarray(order, dtype=np.int64)
    if instance is not None and unitised(instance):
        u = instance.unit_of[o]
        nu = instance.n_units
        first = np.full(nu, o.size, dtype=np.int64)
        np.minimum.at(first, u, np.arange(o.size))
        keys = np.empty(nu)
        keys[np.argsort(first, kind="stable")] = np.arange(nu) / max(nu, 1)
        return keys
    keys = np.empty(o.size)
    keys[o] = np.arange(o.size) / max(o.size, 1)
    return keys


def input_order(instance: Instance) -> NDArray[np.int64]:
    """The instance's own topological order (:attr:`Instance.topo_order`) as a unit order.

    Without active groups it is ``topo_order`` itself; with them, the units in their
    topological numbering (by smallest topological position of a member), each unit's
    members together in topological position order.
    """
    if not unitised(instance):
        return np.ascontiguousarray(instance.topo_order, dtype=np.int64)
    return _to_nodes(instance, np.arange(instance.n_units, dtype=np.int64))


def stage_major_order(instance: Instance, stage_of: ArrayLike) -> NDArray[np.int64]:
    """A unit order listing the stages of a feasible partition one after the other.

    Keys ``stage + topological position / (count + 1)`` per gene: the min-key order is
    topological for the gene DAG and, as stages are non-decreasing along it, sorted by
    stage, so the partition is one slicing of it (each stage contiguous).
    """
    s = np.asarray(stage_of, dtype=np.float64)
    if unitised(instance):
        nu = instance.n_units
        _, _, _, mptr, members = gene_arrays(instance)
        keys = s[members[mptr[:-1]]] + np.arange(nu) / (nu + 1.0)
    else:
        n = instance.n_nodes
        topo_pos = np.empty(n, dtype=np.float64)
        topo_pos[instance.topo_order] = np.arange(n) / (n + 1.0)
        keys = s + topo_pos
    return minkey_order(instance, keys)


def bfs_order(instance: Instance) -> NDArray[np.int64]:
    """Breadth-first topological order of the genes (Kahn with a FIFO queue, ties by
    index), as a unit order of nodes."""
    ptr, succ, indeg, _, _ = gene_arrays(instance)
    return _to_nodes(instance, _kahn_queue(ptr, succ, indeg, False))


def dfs_order(instance: Instance) -> NDArray[np.int64]:
    """Depth-first topological order of the genes (Kahn with a LIFO stack, ties by index),
    as a unit order of nodes."""
    ptr, succ, indeg, _, _ = gene_arrays(instance)
    return _to_nodes(instance, _kahn_queue(ptr, succ, indeg, True))
