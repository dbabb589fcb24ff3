"""Exact dynamic program over down-sets (ideals), after Tarnawski et al. (NeurIPS 2020).

**Why it is exact.** In a feasible partition ``(S_1, ..., S_k)`` every prefix
``P_b = S_1 ∪ ... ∪ S_b`` is a down-set (closed under predecessors, data and precedence
edges) and ``S_b = P_b \\ P_{b-1}``. Conversely any chain of down-sets
``∅ = I_0 ⊆ I_1 ⊆ ... ⊆ I_k = V`` gives a feasible partition ``S_b = I_b \\ I_{b-1}`` (an
edge ``u -> v`` with ``v ∈ S_b`` has ``u ∈ I_b``, so ``u`` is in a block ``<= b``). Hence

    D[b][I] = min( D[b-1][I],  min_{I' ⊊ I down-set} max(D[b-1][I'], f(I \\ I')) ),
    D[0][∅] = 0,  OPT = D[k][V],

is exact. Layer 1 is ``D[1][I] = f(I) = w(I) + cut(I)`` (a down-set has no in-boundary)
and the last layer only needs ``I = V``, where ``f(V \\ I') = W - w(I') + cut(I')`` (an
up-set has no out-boundary and ``In(V \\ I') = Out(I')``): both cost O(1) per ideal, so
``k <= 2`` is linear in the number of ideals. Ideals are enumerated breadth-first from
``∅`` (adding one node whose ordering predecessors are all present), deduplicated by a
64-bit Zobrist hash with a full bitset comparison on every hit (a hash collision stops the
run; it is never silently merged).

**Block costs along the lattice.** For a fixed ``I'`` the supersets ``I`` are visited by a
BFS over the lattice edges ``P -> P ∪ {v}``; ``f(P ∪ {v} \\ I')`` follows from
``f(P \\ I')`` in O(deg) with ``cnt(X, u)`` = number of data successors of ``u`` in ``X``:

* ``+ w(v)``; ``+ c(v)`` if ``v`` has a data successor (all of them are outside the ideal);
* for a data predecessor ``u ∈ I'``: ``+ c(u)`` if ``cnt(P, u) = cnt(I', u)`` (``u`` joins
  the in-boundary);
* for a data predecessor ``u ∈ P \\ I'``: ``- c(u)`` if ``cnt(P, u) + 1 = outdeg(u)`` (its
  last outside consumer joined, ``u`` leaves the out-boundary).

**Pruning (exact).** An incumbent ``U`` (Algorithm 1 on the DFS, BFS and input orders, or a
better known partition) bounds the search; only values ``< U`` are sought and ``U`` drops
whenever ``D[k][V]`` improves. ``lb(I) = w(I \\ I') + c(In(I \\ I'))`` is monotone under
inclusion (work grows; the in-boundary lies in ``I'`` and only grows), so the BFS does not
expand an ``I`` with ``lb(I) >= U``: no superset can give a block cheaper than ``U``. A
start ``I'`` with ``D[k-1][I'] >= U`` is skipped. If nothing below ``U`` exists, the
incumbent is optimal.

**Exact reductions** (applied first, repeatedly until none applies, undone on the result;
each preserves OPT). Every rule has the same two-part proof: (a) an *exchange*: in any
feasible partition, moving the removed node ``v`` into its host's stage keeps it feasible
and makes no stage more expensive, so some optimal partition has ``v`` beside its host;
(b) an *equal-cost lift*: every feasible partition of the reduced instance, with ``v`` put
in its host's stage, is feasible for the current instance and has the same stage costs.
Together: OPT(reduced) = OPT(current), and lifting preserves every value. Only the charges
of ``v``'s own tensor and of its producer's tensor can change when ``v`` moves (a charge of
producer ``x`` depends only on the stages of ``x`` and of its consumers), so those are the
only ones examined. Notation: ``σ(x)`` is the stage of ``x``; "only successor" counts data
and precedence edges (ordering edges) together.

1. *Zero-work source with a single consumer.* ``v`` has no ordering predecessors,
   ``w(v) = 0`` and its only ordering successor is a data consumer ``t``; host ``t``.
   (a) ``σ(v) <= σ(t)``, and ``σ(t)`` is at or after every predecessor of ``v`` (it has
   none); if ``σ(v) ≠ σ(t)``, ``σ(v)`` loses the out-charge ``c(v)`` and ``σ(t)`` the
   in-charge ``c(v)``, nothing is added (``v`` consumes nothing). (b) With ``v`` beside
   its only consumer and without predecessors it creates no charge; work is unchanged.
2. *Source that is never charged.* ``v`` has no ordering predecessors, ``w(v) = 0`` and
   ``c(v) = 0`` or no data consumer; host: stage 0. It adds 0 to any stage wherever it is
   (its charges are all ``c(v)`` or absent; it consumes nothing) and stage 0 precedes
   every stage.
3. *Zero-work pass-through, tensor not shrinking.* ``w(v) = 0``; the only ordering
   predecessor of ``v`` is a data producer ``u``, the only ordering successor a data
   consumer ``t``, and ``c(u) <= c(v)``; host ``t``; the reduced instance gets the data
   edge ``u -> t``. (a) Let ``A = σ(v) < T = σ(t)`` (``σ(u) <= A``). ``v``'s charges go
   (``A`` loses the out-charge ``c(v)``, ``T`` the in-charge ``c(v)``); ``u``'s charges
   may grow only on ``A`` (an out-charge ``c(u)`` if ``σ(u) = A``) and on ``T`` (an
   in-charge ``c(u)``), at most ``c(u) <= c(v)`` each; other stages keep their charges.
   (b) ``v`` beside ``t`` pays nothing for its own tensor; ``u``'s consumers occupy the
   same set of stages as ``u``'s consumers in the reduced instance (``t`` stands in for
   ``v``), so ``u``'s charges are equal; the edge ``u -> t`` is implied by
   ``u -> v -> t``.
4. *Zero-work pass-through, tensor not growing.* ``w(v) = 0``; the only ordering
   predecessor of ``v`` is a data producer ``u`` whose only ordering successor is ``v``,
   and ``c(v) <= c(u)``; host ``u``; in the reduced instance ``u`` takes over ``v``'s
   successors and its cost becomes ``c(v)`` (``u`` sends ``v``'s tensor). (a) Let
   ``U = σ(u) < A = σ(v)`` (``v``'s successors are at ``>= A``). ``u``'s charges go
   (``U`` loses the out-charge ``c(u)``, ``A`` the in-charge ``c(u)``); ``v``'s charges
   may grow only on ``U`` (an out-charge ``c(v)``) and on ``A`` (an in-charge ``c(v)`` if
   a consumer of ``v`` is in ``A``), at most ``c(v) <= c(u)`` each; a stage ``B ≠ U, A``
   with a consumer of ``v`` paid ``c(v)`` before and after. (b) With ``v`` beside ``u``,
   ``u``'s tensor is never charged and ``v``'s tensor is charged exactly as the reduced
   ``u``'s (same stage, same consumers, same cost).

*Iteration.* Each application turns the current instance into a smaller one with the same
OPT and an equal-cost lift, so any sequence of applications does, by induction; removals
expose new candidates (after a weight joins its transpose by rule 1, the transpose is a
zero-work source with a single consumer). The host of a removed node may be removed later;
hosts are resolved along the chain (a host is always removed after its guest, so resolving
in reverse removal order ends at a kept node or stage 0), and :func:`lift_partition`
follows unresolved chains too.

*Memory.* The statements are for the objective without a memory limit (spec §2.6): the
exchanges move a node's memory to its host's stage, so under a binding ``memory_limit``
they are not exact, and the reduced instance drops ``memory`` and ``memory_limit``. The
methods that use them (this DP, BRKGA, the order baselines) do not enforce memory limits
either; the bundled jamba-v0.1 and llama-3.1-405b-core-aten graphs carry limits that can
bind (total memory 1.5x and 11.8x the limit).

Not used: contracting a chain edge ``u -> v`` (``u``'s only successor is ``v``, ``v``'s only
predecessor is ``u``) is **not** safe in general: the chain ``u -> v`` with
``w = (10, 10)``, ``c(u) = 1`` at ``k = 2`` has OPT 11 only with ``u`` and ``v`` apart.

**Limits.** The number of ideals can be exponential in the graph's width. The enumeration
stops at ``max_ideals`` and the method returns ``Status.UNSUPPORTED`` with the count reached
(``stats["n_ideals"]``) and the reason; it polls the budget between chunks and returns
``Status.TIME_LIMIT`` (no partition) when the budget ends first. Memory is about
``max_ideals * (n / 8 + 12 (k + 1))`` bytes.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numba as nb
import numpy as np
from numba import types
from numba.typed import Dict
from numpy.typing import NDArray

from heuristics.base import HEURISTICS, Heuristic
from heuristics.decoder import bfs_order, dfs_order
from heuristics.slicing import slice_order_within
from pipecert.instance import Instance
from pipecert.partition import Partition, evaluate
from pipecert.results import Budget, HeuristicResult, SolveContext, Status

__all__ = ["DownsetDP", "reduce_instance", "lift_partition", "downset_solve"]

_ONE = np.uint64(1)


# ---------------------------------------------------------------------------- reductions
def reduce_instance(instance: Instance) -> tuple[Instance, NDArray[np.int64], NDArray[np.int64]]:
    """Apply the exact reductions 1-4 of the module docstring to a fixpoint.

    Returns ``(reduced, kept, host)``: ``kept`` are the original indices of the reduced
    instance's nodes; ``host[v]`` for a removed node ``v`` is the original index of the
    *kept* node whose stage it joins (chains of hosts are already resolved), or ``-1`` for
    stage 0 (``host[v] = v`` for kept nodes). Rule 4 can lower a kept node's
    communication cost, so ``reduced.comm`` may differ from ``instance.comm[kept]``.

    Every rule needs a zero-work node: without one the instance is returned at once. The
    result is cached on the instance (the reduction is deterministic; it is O(n + m)
    Python, about 4 s at 200,000 nodes, and several methods of a portfolio ask for it).
    """
    n = instance.n_nodes
    if n == 0 or not np.any(instance.work == 0):
        ident = np.arange(n, dtype=np.int64)
        return instance, ident, ident.copy()
    cache = instance.__dict__.setdefault("_pipecert_cache", {})
    got = cache.get("_reduce_instance")
    if got is None:
        got = _reduce_instance(instance)
        cache["_reduce_instance"] = got
    red, kept, host = got
    return red, kept.copy(), host.copy()


def _reduce_instance(instance: Instance
                     ) -> tuple[Instance, NDArray[np.int64], NDArray[np.int64]]:
    """The reduction itself (see :func:`reduce_instance`)."""
    n = instance.n_nodes
    work = instance.work
    comm = instance.comm.astype(np.float64, copy=True)
    dsucc: list[set[int]] = [set() for _ in range(n)]
    dpred: list[set[int]] = [set() for _ in range(n)]
    psucc: list[set[int]] = [set() for _ in range(n)]
    ppred: list[set[int]] = [set() for _ in range(n)]
    for u, v in zip(instance.src.tolist(), instance.dst.tolist(), strict=True):
        dsucc[u].add(v)
        dpred[v].add(u)
    for u, v in zip(instance.prec_src.tolist(), instance.prec_dst.tolist(), strict=True):
        if v not in dsucc[u]:  # a precedence edge beside a data edge adds nothing
            psucc[u].add(v)
            ppred[v].add(u)
    host = np.arange(n, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    removal: list[int] = []

    def n_pred(v: int) -> int:
        return len(dpred[v]) + len(ppred[v])

    def n_succ(v: int) -> int:
        return len(dsucc[v]) + len(psucc[v])

    def detach(v: int) -> list[int]:
        """Delete ``v`` and its edges; return its former neighbours."""
        nb_ = list(dsucc[v] | psucc[v] | dpred[v] | ppred[v])
        for x in dsucc[v]:
            dpred[x].discard(v)
        for x in psucc[v]:
            ppred[x].discard(v)
        for x in dpred[v]:
            dsucc[x].discard(v)
        for x in ppred[v]:
            psucc[x].discard(v)
        dsucc[v].clear()
        psucc[v].clear()
        dpred[v].clear()
        ppred[v].clear()
        alive[v] = False
        removal.append(v)
        return nb_

    def add_data_edge(u: int, v: int) -> None:
        dsucc[u].add(v)
        dpred[v].add(u)
        psucc[u].discard(v)
        ppred[v].discard(u)

    def try_rule(v: int) -> list[int] | None:
        """Apply the first rule that fits ``v``; return the nodes to re-examine."""
        if work[v] != 0:
            return None
        np_, ns = n_pred(v), n_succ(v)
        if np_ == 0:
            if comm[v] == 0 or not dsucc[v]:  # rule 2: never charged, goes to stage 0
                host[v] = -1
                return detach(v)
            if ns == 1:  # rule 1 (dsucc[v] is non-empty, so it is the only successor)
                (t,) = dsucc[v]
                host[v] = t
                return detach(v)
            return None
        if np_ != 1 or len(dpred[v]) != 1:
            return None
        (u,) = dpred[v]
        if ns == 1 and len(dsucc[v]) == 1 and comm[u] <= comm[v]:  # rule 3: v joins t
            (t,) = dsucc[v]
            host[v] = t
            touched = detach(v)
            add_data_edge(u, t)
            return touched
        if n_succ(u) == 1 and comm[v] <= comm[u]:  # rule 4: v joins u, u sends v's tensor
            ds, ps = list(dsucc[v]), list(psucc[v])
            host[v] = u
            touched = detach(v)
            for x in ds:
                add_data_edge(u, x)
            for x in ps:
                if x not in dsucc[u]:
                    psucc[u].add(x)
                    ppred[x].add(u)
            comm[u] = comm[v]
            return touched
        return None

    stack = list(range(n - 1, -1, -1))
    queued = np.ones(n, dtype=bool)
    while stack:
        v = stack.pop()
        queued[v] = False
        if not alive[v]:
            continue
        touched = try_rule(v)
        if touched is None:
            continue
        for x in touched:
            if alive[x] and not queued[x]:
                queued[x] = True
                stack.append(x)
    if not removal or not alive.any():
        return instance, np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)
    # resolve host chains: a host removed later than its guest is resolved first
    for v in reversed(removal):
        h = host[v]
        if h >= 0 and not alive[h]:
            host[v] = host[h]
    kept = np.flatnonzero(alive)
    new_idx = np.full(n, -1, dtype=np.int64)
    new_idx[kept] = np.arange(kept.size)

    def edges(succ: list[set[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        pairs = [(u, x) for u in kept.tolist() for x in succ[u]]
        arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return new_idx[arr[:, 0]], new_idx[arr[:, 1]]

    s2, d2 = edges(dsucc)
    ps2, pd2 = edges(psucc)
    red = Instance.from_arrays(
        [instance.ids[i] for i in kept], work[kept], comm[kept],
        s2, d2, ps2, pd2, name=f"{instance.name}[reduced]",
    )
    return red, kept, host


def lift_partition(instance: Instance, kept: NDArray[np.int64], host: NDArray[np.int64],
                   stage_red: NDArray[np.int64], k: int) -> Partition:
    """Map stages of the reduced instance back (removed nodes join their host's stage).

    ``host`` may chain (a removed node's host removed in turn); chains are followed to a
    kept node or to ``-1`` (stage 0).
    """
    n = instance.n_nodes
    stage = np.full(n, -1, dtype=np.int64)
    stage[kept] = stage_red
    for v in np.flatnonzero(stage < 0).tolist():
        path = []
        x = v
        while stage[x] < 0:
            path.append(x)
            h = int(host[x])
            if h < 0:
                s = 0
                break
            if h == x:
                raise ValueError(f"node {instance.ids[x]} is neither kept nor hosted")
            x = h
        else:
            s = int(stage[x])
        stage[path] = s
    return Partition(stage, k)


# ---------------------------------------------------------------------------- kernels
@nb.njit(cache=True)
def _expand(a, a_end, n_id, n_e, bits, hashes, eptr, ev, edst, fpar, fv, zob, table, opp, opi,  # type: ignore[no-untyped-def]
            tube, st, width, hi, lo, miss, smask, ssize, rej):
    """Expand ideals ``a..a_end-1`` (BFS). Returns (a, n_id, n_e, code).

    With ``tube`` only ideals ``Q`` with ``hi(Q) <= lo(Q) + width`` are kept (see
    :func:`tube_search`): ``hi`` = largest incumbent stage ``st`` inside ``Q`` (-1 if empty),
    ``lo`` = smallest stage with a node outside ``Q`` (number of stages if none), ``miss`` =
    how many nodes of stage ``lo`` are outside ``Q``; ``smask``/``ssize`` are the stages'
    bitsets and sizes; ``rej[0]`` counts the down-sets left out.

    code 0: done or needs more capacity (caller grows arrays if ``a < a_end``);
    code 2: a hash collision between different ideals.
    """
    n = zob.size
    words = bits.shape[1]
    nst = ssize.size
    while a < a_end and a < n_id:
        if n_id + n > bits.shape[0] or n_e + n > ev.size:
            return a, n_id, n_e, 0
        eptr[a] = n_e
        for v in range(n):
            wv = v >> 6
            bv = _ONE << np.uint64(v & 63)
            if bits[a, wv] & bv:
                continue
            ok = True
            for e in range(opp[v], opp[v + 1]):
                u = opi[e]
                if not (bits[a, u >> 6] & (_ONE << np.uint64(u & 63))):
                    ok = False
                    break
            if not ok:
                continue
            hq = 0
            lq = 0
            mq = 0
            if tube:
                sv = st[v]
                hq = hi[a] if hi[a] > sv else sv
                lq = lo[a]
                mq = miss[a]
                if sv == lq:
                    mq -= 1
                    while mq == 0 and lq < nst:  # stage lq complete: next stage with a gap
                        lq += 1
                        if lq < nst:
                            inq = 0
                            for w in range(words):
                                x = bits[a, w] & smask[lq, w]
                                if w == wv:
                                    x |= bv & smask[lq, w]
                                while x:  # popcount
                                    x &= x - _ONE
                                    inq += 1
                            mq = ssize[lq] - inq
                if hq > lq + width:
                    rej[0] += 1
                    continue
            h = hashes[a] ^ zob[v]
            if h in table:
                c = table[h]
            else:
                c = -1
            if c < 0:
                c = n_id
                for w in range(words):
                    bits[c, w] = bits[a, w]
                bits[c, wv] |= bv
                hashes[c] = h
                fpar[c] = a
                fv[c] = v
                table[h] = c
                if tube:
                    hi[c] = hq
                    lo[c] = lq
                    miss[c] = mq
                n_id += 1
            else:
                for w in range(words):
                    x = bits[a, w]
                    if w == wv:
                        x |= bv
                    if bits[c, w] != x:
                        return a, n_id, n_e, 2
            ev[n_e] = v
            edst[n_e] = c
            n_e += 1
        eptr[a + 1] = n_e
        a += 1
    return a, n_id, n_e, 0


@nb.njit(cache=True)
def _count_in(bits, x, u, succ_ptr, succ_idx):  # type: ignore[no-untyped-def]
    c = 0
    for e in range(succ_ptr[u], succ_ptr[u + 1]):
        s = succ_idx[e]
        if bits[x, s >> 6] & (_ONE << np.uint64(s & 63)):
            c += 1
    return c


@nb.njit(cache=True)
def _ideal_costs(n_id, bits, fpar, fv, work, comm, outdeg, pred_ptr, pred_idx, succ_ptr,  # type: ignore[no-untyped-def]
                 succ_idx):
    """``w(I)`` and ``f(I) = w(I) + cut(I)`` of every ideal, along its first parent."""
    wI = np.zeros(n_id)
    fI = np.zeros(n_id)
    for q in range(1, n_id):
        P = fpar[q]
        v = fv[q]
        d = work[v]
        if outdeg[v] > 0:
            d += comm[v]
        for ee in range(pred_ptr[v], pred_ptr[v + 1]):
            u = pred_idx[ee]
            if _count_in(bits, P, u, succ_ptr, succ_idx) + 1 == outdeg[u]:
                d -= comm[u]
        wI[q] = wI[P] + work[v]
        fI[q] = fI[P] + d
    return wI, fI


@nb.njit(cache=True)
def _dp(a0, a1, full, kk, Uarr, total_w, wI, fI, bits, eptr, ev, edst, D, par, stamp,  # type: ignore[no-untyped-def]
        queue, fc, lbv, cA, cAst, work, comm, outdeg, pred_ptr, pred_idx, succ_ptr, succ_idx):
    """DP pushes from ideals ``a0..a1-1`` (in BFS order, so each row is final when used).

    Layer 1 is ``D[1][I] = f(I)`` and the last layer only targets ``V`` with
    ``f(V \\ I') = W - w(I') + cut(I')`` (O(1) each); the lattice BFS serves layers
    ``2..k-1`` only.
    """
    U = Uarr[0]
    pairs = 0
    for a in range(a0, a1):
        row = D[a]
        if a > 0 and fI[a] < row[1]:
            row[1] = fI[a]
            par[a, 1] = 0
        for b in range(2, kk + 1):
            if row[b - 1] < row[b]:
                row[b] = row[b - 1]
                par[a, b] = -1
        if a == full or kk == 1:
            continue
        # last block = V \ I'
        if row[kk - 1] < U:
            last = total_w - 2.0 * wI[a] + fI[a]
            val = row[kk - 1]
            if last > val:
                val = last
            if val < D[full, kk]:
                D[full, kk] = val
                par[full, kk] = a
                if val < U:
                    U = val
        if a == 0 or kk < 3 or not (row[kk - 2] < U):
            continue
        bstart = kk - 1
        while bstart > 2 and row[bstart - 2] < U:
            bstart -= 1
        stamp[a] = a
        fc[a] = 0.0
        lbv[a] = 0.0
        qh = 0
        qt = 1
        queue[0] = a
        while qh < qt:
            P = queue[qh]
            qh += 1
            for e in range(eptr[P], eptr[P + 1]):
                Q = edst[e]
                if stamp[Q] == a:
                    continue
                stamp[Q] = a
                v = ev[e]
                df = work[v]
                if outdeg[v] > 0:
                    df += comm[v]
                dl = work[v]
                for ee in range(pred_ptr[v], pred_ptr[v + 1]):
                    u = pred_idx[ee]
                    cp = _count_in(bits, P, u, succ_ptr, succ_idx)
                    if bits[a, u >> 6] & (_ONE << np.uint64(u & 63)):
                        if cAst[u] != a:  # cnt(I', u), computed once per start
                            cA[u] = _count_in(bits, a, u, succ_ptr, succ_idx)
                            cAst[u] = a
                        if cp == cA[u]:
                            df += comm[u]
                            dl += comm[u]
                    elif cp + 1 == outdeg[u]:
                        df -= comm[u]
                f = fc[P] + df
                lb = lbv[P] + dl
                fc[Q] = f
                lbv[Q] = lb
                if lb >= U:
                    continue
                queue[qt] = Q
                qt += 1
                pairs += 1
                if f < U and Q != full:
                    rq = D[Q]
                    for b in range(bstart, kk):
                        val = row[b - 1]
                        if f > val:
                            val = f
                        if val < rq[b]:
                            rq[b] = val
                            par[Q, b] = a
    Uarr[0] = U
    return pairs


# ---------------------------------------------------------------------------- driver
def _grow(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *a.shape[1:]), dtype=a.dtype) if a.ndim > 1 else np.zeros(size, a.dtype)
    out[: a.shape[0]] = a
    return out


def downset_solve(
    instance: Instance,
    k: int,
    budget: Budget,
    *,
    max_ideals: int = 100_000,
    upper: tuple[float, Partition] | None = None,
    chunk: int = 2_000,
    tube: tuple[NDArray[np.int64], int] | None = None,
) -> tuple[Status, Partition | None, dict[str, Any]]:
    """Solve ``instance`` (already reduced) exactly; see the module docstring.

    ``upper`` is an incumbent ``(value, partition)``. Returns ``(status, partition, stats)``
    with status OPTIMAL, UNSUPPORTED (too many ideals), TIME_LIMIT or ERROR (hash collision).
    ``tube = (stage_of, width)`` restricts the DP to the down-sets of the tube around the
    partition ``stage_of`` (:func:`tube_search`); OPTIMAL then means optimal in the tube.
    """
    n = instance.n_nodes
    kk = min(k, n)
    words = (n + 63) // 64
    if tube is not None:
        st = np.ascontiguousarray(tube[0], dtype=np.int64)
        width = int(tube[1])
        nst = int(st.max()) + 1
        ssize = np.bincount(st, minlength=nst).astype(np.int64)
        smask = np.zeros((nst, words), dtype=np.uint64)
        np.bitwise_or.at(smask, (st, np.arange(n) >> 6),
                         np.left_shift(_ONE, (np.arange(n) & 63).astype(np.uint64)))
        first = int(np.flatnonzero(ssize)[0])
    else:
        st = np.zeros(1, dtype=np.int64)
        width, nst, first = 0, 1, 0
        ssize = np.ones(1, dtype=np.int64)
        smask = np.zeros((1, words), dtype=np.uint64)
    stats: dict[str, Any] = {}
    t0 = time.perf_counter()
    zob = np.random.default_rng(0x5EED).integers(1, 2**63 - 1, size=n, dtype=np.int64)
    table = Dict.empty(key_type=types.int64, value_type=types.int64)
    cap = min(max_ideals + n + 1, 4096)
    bits = np.zeros((cap, words), dtype=np.uint64)
    hashes = np.zeros(cap, dtype=np.int64)
    eptr = np.zeros(cap + 1, dtype=np.int64)
    ecap = 4 * cap
    ev = np.zeros(ecap, dtype=np.int64)
    edst = np.zeros(ecap, dtype=np.int64)
    fpar = np.zeros(cap, dtype=np.int64)
    fv = np.zeros(cap, dtype=np.int64)
    hi = np.full(cap, -1, dtype=np.int64)
    lo = np.zeros(cap, dtype=np.int64)
    miss = np.zeros(cap, dtype=np.int64)
    lo[0], miss[0] = first, ssize[first]
    rej = np.zeros(1, dtype=np.int64)
    table[0] = 0
    n_id, n_e, a = 1, 0, 0
    opp, opi = (np.ascontiguousarray(x) for x in instance.order_pred_csr)
    while a < n_id:
        if budget.expired():
            stats.update(n_ideals=n_id, reason="time limit while enumerating down-sets")
            return Status.TIME_LIMIT, None, stats
        if n_id > max_ideals:
            stats.update(n_ideals=n_id, reason=(
                f"more than max_ideals={max_ideals} down-sets (reached {n_id} after "
                f"expanding {a}); the graph is too wide for the exact DP"))
            return Status.UNSUPPORTED, None, stats
        a, n_id, n_e, code = _expand(a, a + chunk, n_id, n_e, bits, hashes, eptr, ev, edst,
                                     fpar, fv, zob, table, opp, opi, tube is not None, st,
                                     width, hi, lo, miss, smask, ssize, rej)
        if code == 2:
            stats.update(n_ideals=n_id, reason="64-bit hash collision between down-sets")
            return Status.ERROR, None, stats
        if n_id + n > bits.shape[0]:
            new = max(2 * bits.shape[0], n_id + n + 1)
            bits, hashes, eptr = _grow(bits, new), _grow(hashes, new), _grow(eptr, new + 1)
            fpar, fv = _grow(fpar, new), _grow(fv, new)
            hi, lo, miss = _grow(hi, new), _grow(lo, new), _grow(miss, new)
        if n_e + n > ev.size:
            ev, edst = _grow(ev, 2 * ev.size + n), _grow(edst, 2 * ev.size + n)
    stats["n_ideals"] = n_id
    stats["n_lattice_edges"] = n_e
    if tube is not None:  # 0: the tube is the whole lattice, so the result is OPT
        stats["tube_left_out"] = int(rej[0])
    stats["enumerate_time_s"] = time.perf_counter() - t0
    full = n_id - 1
    U0 = math.inf if upper is None else float(upper[0])
    D = np.full((n_id, kk + 1), np.inf)
    D[0, :] = 0.0
    par = np.full((n_id, kk + 1), -2, dtype=np.int32)
    stamp = np.full(n_id, -1, dtype=np.int64)
    queue = np.zeros(n_id, dtype=np.int64)
    fc = np.zeros(n_id)
    lbv = np.zeros(n_id)
    Uarr = np.array([U0])
    w = np.ascontiguousarray(instance.work)
    c = np.ascontiguousarray(instance.comm)
    outdeg = np.ascontiguousarray(instance.out_degree, dtype=np.int64)
    pp, pi = (np.ascontiguousarray(x) for x in instance.pred_csr)
    sp, si = (np.ascontiguousarray(x) for x in instance.succ_csr)
    cA = np.zeros(n, dtype=np.int64)
    cAst = np.full(n, -1, dtype=np.int64)
    wI, fI = _ideal_costs(n_id, bits, fpar, fv, w, c, outdeg, pp, pi, sp, si)
    pairs = 0
    a = 0
    t1 = time.perf_counter()
    while a < n_id:
        if budget.expired():
            stats.update(reason="time limit in the down-set DP", pairs=pairs)
            return Status.TIME_LIMIT, None, stats
        a1 = min(n_id, a + max(1, chunk // 10))
        pairs += _dp(a, a1, full, kk, Uarr, float(w.sum()), wI, fI, bits, eptr, ev, edst, D,
                     par, stamp, queue, fc, lbv, cA, cAst, w, c, outdeg, pp, pi, sp, si)
        a = a1
    stats["pairs"] = int(pairs)
    stats["dp_time_s"] = time.perf_counter() - t1
    val = D[full, kk]
    if not val < U0:
        assert upper is not None, "without an incumbent the DP always finds a value"
        stats["optimum"] = U0
        stats["incumbent_optimal"] = True
        return Status.OPTIMAL, upper[1], stats
    # reconstruct: block of layer b is stage b - 1
    stage = np.full(n, -1, dtype=np.int64)
    Q, b = full, kk
    while Q != 0:
        p = int(par[Q, b])
        if p == -1:
            b -= 1
            continue
        diff = bits[Q] & ~bits[p]
        mask = np.unpackbits(diff.view(np.uint8), bitorder="little")[:n].astype(bool)
        stage[mask] = b - 1
        Q, b = p, b - 1
    assert (stage >= 0).all()
    stats["optimum"] = float(val)
    return Status.OPTIMAL, Partition(stage, k), stats


@HEURISTICS.register
class DownsetDP(Heuristic):
    """Exact down-set (ideal) DP (Tarnawski et al. 2020): optimal while ideals are few.

    Parameters
    ----------
    max_ideals : int
        Give up (``unsupported``, with the count reached) beyond this many down-sets.
    reduce : bool
        Apply the exact graph reductions of the module docstring first.
    """

    name = "downset_dp"
    citation = "Tarnawski et al., NeurIPS 2020 (DP over ideals); spec §7"
    deterministic: ClassVar[bool] = True

    def __init__(self, *, max_ideals: int = 200_000, reduce: bool = True) -> None:
        self.max_ideals = max_ideals
        self.reduce = reduce

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Reduce, find an incumbent with Algorithm 1, run the DP, lift the result back."""
        t0 = time.perf_counter()
        if self.reduce:
            red, kept, host = reduce_instance(instance)
        else:
            red, kept, host = (instance, np.arange(instance.n_nodes),
                               np.arange(instance.n_nodes))
        best: tuple[float, Partition] | None = None
        for order in (dfs_order(red), bfs_order(red),
                      np.ascontiguousarray(red.topo_order, dtype=np.int64)):
            # budget-aware (the slicing DP is quadratic in n): the greedy slicing if stopped
            val, cuts, _done = slice_order_within(red, order, k, budget, check=False)
            if best is None or val < best[0]:
                best = (val, Partition.from_slices(order, cuts.tolist(), k))
        assert best is not None
        # the context's partition (on the original instance) can only be used if it is
        # consistent with the reductions; it is re-scored on the reduced instance when so
        if context is not None and context.partition is not None:
            p = context.partition
            if p.stage_of.size == instance.n_nodes and p.k <= k:
                red_part = Partition(p.stage_of[kept], k)
                lifted = lift_partition(instance, kept, host, red_part.stage_of, k)
                if np.array_equal(lifted.stage_of, p.stage_of) and \
                        not _infeasible(red, red_part, k):
                    v = evaluate(red, red_part)
                    if v < best[0]:
                        best = (v, red_part)
        status, part, stats = downset_solve(red, k, budget, max_ideals=self.max_ideals,
                                            upper=best)
        stats = {"n_nodes_reduced": red.n_nodes, "incumbent": best[0], **stats,
                 "time_s": time.perf_counter() - t0}
        if part is None:
            return HeuristicResult(None, status, stats)
        lifted = lift_partition(instance, kept, host, part.stage_of, k)
        return HeuristicResult(lifted, status, stats)


def _infeasible(inst: Instance, part: Partition, k: int) -> bool:
    from pipecert.partition import check_feasible

    return bool(check_feasible(inst, part, k=k))
