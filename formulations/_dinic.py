"""A compiled maximum-flow engine (Dinic's algorithm, int64 capacities) with min-cut sides.

The min-cut bounds (:mod:`formulations._maxflow`) need one integer max flow per anchored
block. OR-Tools' ``SimpleMaxFlow`` is an optional dependency; this module is the engine that
always exists (numpy + numba are core dependencies), so ``node_bound`` and ``path_bound`` run
on a plain install.

Algorithm
---------
Dinic: a breadth-first search labels the residual graph by distance from the source, then a
depth-first search with per-node arc pointers saturates a blocking flow in the level graph;
repeat until the sink is unreachable. At most ``O(V)`` phases; each phase is ``O(V E)``
(``O(E sqrt(V))`` on unit networks). All arithmetic is on ``int64``: the caller guarantees
that every capacity is ``>= 0`` and that the sum of the capacities out of the source fits in
``int64`` (the value of a flow never exceeds it, and neither does any residual capacity), so
the returned value is the exact integer max flow = min cut (max-flow/min-cut theorem).

Cut sides
---------
After the last phase the nodes reachable from the source in the residual graph form the
smallest minimum cut's source side; the complement of the nodes that reach the sink is the
largest one.

Residual graph layout: arc ``i`` of the input is stored as residual arc ``2 i`` (forward,
capacity ``cap[i]``) and ``2 i + 1`` (reverse, capacity 0); ``to[a]`` is the head of residual
arc ``a`` and ``adj[start[v]:start[v + 1]]`` lists the residual arcs leaving ``v``.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.typing import NDArray

__all__ = ["ResidualGraph", "max_flow"]

I64 = NDArray[np.int64]


@njit(cache=True, nogil=True)
def _build(n_nodes, tails, heads):  # type: ignore[no-untyped-def]
    m = tails.size
    start = np.zeros(n_nodes + 1, np.int64)
    for i in range(m):
        start[tails[i] + 1] += 1
        start[heads[i] + 1] += 1
    for v in range(n_nodes):
        start[v + 1] += start[v]
    fill = start[:-1].copy()
    adj = np.empty(2 * m, np.int64)
    to = np.empty(2 * m, np.int64)
    for i in range(m):
        a = 2 * i
        to[a] = heads[i]
        to[a + 1] = tails[i]
        adj[fill[tails[i]]] = a
        fill[tails[i]] += 1
        adj[fill[heads[i]]] = a + 1
        fill[heads[i]] += 1
    return start, adj, to


@njit(cache=True, nogil=True)
def _dinic(start, adj, to, caps, s, t):  # type: ignore[no-untyped-def]
    """Max flow from ``s`` to ``t``; returns the value and the residual capacities."""
    n = start.size - 1
    m2 = to.size
    res = np.zeros(m2, np.int64)
    for i in range(m2 // 2):
        res[2 * i] = caps[i]
    level = np.empty(n, np.int64)
    queue = np.empty(n, np.int64)
    it = np.empty(n, np.int64)
    path = np.empty(n, np.int64)
    flow = 0
    if s == t:
        return flow, res
    while True:
        level[:] = -1
        level[s] = 0
        qh, qt = 0, 1
        queue[0] = s
        while qh < qt and level[t] < 0:
            v = queue[qh]
            qh += 1
            for q in range(start[v], start[v + 1]):
                a = adj[q]
                w = to[a]
                if res[a] > 0 and level[w] < 0:
                    level[w] = level[v] + 1
                    queue[qt] = w
                    qt += 1
        if level[t] < 0:
            break
        for v in range(n):
            it[v] = start[v]
        # blocking flow: iterative DFS along level-increasing arcs with residual capacity
        depth = 0
        v = s
        while True:
            if v == t:
                b = res[path[0]]
                for p in range(1, depth):
                    if res[path[p]] < b:
                        b = res[path[p]]
                first = -1
                for p in range(depth):
                    a = path[p]
                    res[a] -= b
                    res[a ^ 1] += b
                    if first < 0 and res[a] == 0:
                        first = p
                flow += b
                # retreat to the tail of the first saturated arc
                depth = first
                v = s if first == 0 else to[path[first - 1]]
                continue
            advanced = False
            while it[v] < start[v + 1]:
                a = adj[it[v]]
                w = to[a]
                if res[a] > 0 and level[w] == level[v] + 1:
                    path[depth] = a
                    depth += 1
                    v = w
                    advanced = True
                    break
                it[v] += 1
            if advanced:
                continue
            if v == s:
                break
            level[v] = -1  # dead end for the rest of the phase
            depth -= 1
            v = to[path[depth] ^ 1]
            it[v] += 1
    return flow, res


@njit(cache=True, nogil=True)
def _source_side(start, adj, to, res, s, largest):  # type: ignore[no-untyped-def]
    n = start.size - 1
    seen = np.zeros(n, np.bool_)
    queue = np.empty(n, np.int64)
    if not largest:
        seen[s] = True
        queue[0] = s
        qh, qt = 0, 1
        while qh < qt:
            v = queue[qh]
            qh += 1
            for q in range(start[v], start[v + 1]):
                a = adj[q]
                w = to[a]
                if res[a] > 0 and not seen[w]:
                    seen[w] = True
                    queue[qt] = w
                    qt += 1
        return seen
    # nodes that reach the sink in the residual graph; s is the source argument reused as t
    seen[s] = True
    queue[0] = s
    qh, qt = 0, 1
    while qh < qt:
        w = queue[qh]
        qh += 1
        for q in range(start[w], start[w + 1]):
            b = adj[q]
            u = to[b]
            if res[b ^ 1] > 0 and not seen[u]:  # residual arc u -> w
                seen[u] = True
                queue[qt] = u
                qt += 1
    return ~seen


class ResidualGraph:
    """The arc structure of one network, built once; :meth:`max_flow` per capacity vector.

    Parameters
    ----------
    n_nodes : int
    tails, heads : ndarray of int64
        Arc ``i`` goes from ``tails[i]`` to ``heads[i]``.
    """

    def __init__(self, n_nodes: int, tails: I64, heads: I64) -> None:
        self.n_nodes = int(n_nodes)
        self.start, self.adj, self.to = _build(
            self.n_nodes, np.ascontiguousarray(tails, dtype=np.int64),
            np.ascontiguousarray(heads, dtype=np.int64),
        )
        self._res: I64 | None = None

    def max_flow(self, caps: I64, s: int, t: int) -> int:
        """The exact maximum ``s``-``t`` flow value for arc capacities ``caps`` (int64 >= 0).

        The caller must keep the total capacity out of ``s`` below ``2**63``.
        """
        caps = np.ascontiguousarray(caps, dtype=np.int64)
        flow, self._res = _dinic(self.start, self.adj, self.to, caps, int(s), int(t))
        return int(flow)

    def cut(self, s: int, t: int, *, largest: bool) -> NDArray[np.bool_]:
        """Source side of the smallest (or ``largest``) minimum cut of the last max flow."""
        if self._res is None:
            raise RuntimeError("cut() needs a max_flow() first")
        return _source_side(self.start, self.adj, self.to, self._res,
                            int(t) if largest else int(s), largest)  # type: ignore[no-any-return]


def max_flow(n_nodes: int, tails: I64, heads: I64, caps: I64, s: int, t: int) -> int:
    """One-shot :meth:`ResidualGraph.max_flow`."""
    return ResidualGraph(n_nodes, tails, heads).max_flow(caps, s, t)
