"""Exact dynamic program over down-sets (ideals), after Tarnawski et al. (NeurIPS 2020).

Exact on the paper's problem and on every constrained variant (co-location groups, the
memory cap, data-only edges: ``handles`` all three).

**Units.** A *unit* (:attr:`Instance.unit_of`) is a strongly connected component of the
ordering edges plus a cycle through every co-location group; the *unit DAG* has an arc
``U -> U'`` when an ordering edge (an ordering data edge or a precedence edge; never a
data-only edge) goes from ``U`` to ``U'``. On the paper's problem every node is a unit.

**Why it is exact.** A partition is feasible iff it puts whole units in stages, its stage
index is non-decreasing along the arcs of the unit DAG, and every stage's memory is at most
the cap (:class:`Instance`). In a feasible partition ``(S_1, ..., S_k)`` every prefix
``P_b = S_1 ∪ ... ∪ S_b`` is therefore a union of units closed under unit-DAG
predecessors, an *ideal* of the unit DAG, and ``S_b = P_b \\ P_{b-1}``. Conversely any
chain of ideals ``∅ = I_0 ⊆ I_1 ⊆ ... ⊆ I_k = V`` gives the partition
``S_b = I_b \\ I_{b-1}`` of whole units, ordered along every arc (an arc ``U -> U'`` with
``U' ⊆ S_b`` has ``U ⊆ I_b``, so ``U`` is in a block ``<= b``); it is feasible iff every
block's memory is at most the cap. Groups and ordering are thus exact by construction,
and memory is a per-block condition: a block over the cap gets the cost ``+inf``. The
stage cost ``f(S)`` depends on ``S`` only (work, and the In/Out charges over *all* data
edges, data-only ones included, per producer), so

    D[b][I] = min( D[b-1][I],  min_{I' ⊊ I ideal} max(D[b-1][I'], f(I \\ I')) ),
    D[0][∅] = 0,  OPT = D[k][V]  (inf: no feasible partition: ``infeasible``),

is exact. Layer 1 is ``D[1][I] = f(I)`` and the last layer only needs ``I = V``, where
``f(V \\ I') = W - 2 w(I') + f(I')`` (``In(V \\ I') = Out(I')`` and
``Out(V \\ I') = In(I')``, also with data-only edges, which may feed an earlier
stage): both cost O(1) per ideal, so ``k <= 2`` is linear in the number of ideals.
Ideals are enumerated breadth-first from ``∅`` (adding one unit whose unit-DAG
predecessors are all present), deduplicated by a 64-bit Zobrist hash with a full bitset
comparison on every hit (a hash collision stops the run; it is never silently merged).

**Block costs along the lattice.** For a fixed ``I'`` the supersets ``I`` are visited by a
BFS over the lattice edges ``P -> P ∪ X`` (``X`` a unit); ``f(P ∪ X \\ I')`` follows from
``f(P \\ I')`` by adding the whole unit at once. With ``B = P \\ I'``, a producer ``u``
is charged ``c(u)`` iff ``u ∈ B`` has a data consumer outside ``B`` or ``u ∉ B`` has one
in ``B``; only the members of ``X`` and their data producers change state, each examined
once, with ``cnt(B, u)`` and ``cnt(X, u)`` (data consumers of ``u`` in ``B`` and in ``X``)
counted over all data edges:

* ``+ w(X)``; a member ``x``: ``- c(x)`` if ``cnt(B, x) > 0``, ``+ c(x)`` if
  ``cnt(B, x) + cnt(X, x) < outdeg(x)``;
* a producer ``u ∈ B``: ``- c(u)`` if ``cnt(B, u) < outdeg(u) = cnt(B, u) + cnt(X, u)``;
* a producer ``u ∉ B ∪ X`` (in ``I'``, or outside ``P`` along a data-only edge):
  ``+ c(u)`` if ``cnt(B, u) = 0``.

The block's memory is a sum over its units (memory is non-negative).

**Pruning (exact).** An incumbent ``U`` (a feasible partition: Algorithm 1 on the DFS, BFS
and input orders on the paper's problem, the best split of a topological order of the unit
DAG into segments within the cap (:func:`slice_units`) on a constrained one, or a better
known partition) bounds the search; only values ``< U`` are sought and ``U`` drops
whenever ``D[k][V]`` improves. ``lb(I) = w(I \\ I') + c({u ∈ I' : cnt(I \\ I', u) > 0})``
is monotone under inclusion (work grows; that part of the in-boundary lies in ``I'`` and
only grows; producers outside ``I`` are left out since they may join later), so the BFS
does not expand an ``I`` with ``lb(I) >= U``: no superset can give a block cheaper than
``U``. The block memory ``m(I \\ I')`` is monotone in ``I`` too (for a fixed ``I'``), so
the BFS does not expand an ``I`` whose block is over the cap: every superset's block is
over it as well, hence infeasible, and nothing reachable only through it is lost. A
start ``I'`` with ``D[k-1][I'] >= U`` is skipped. *Remainder work*: with non-negative
work and charges every block costs at least its work, so a chain whose blocks all cost
``< U`` has ``W - w(I) < (k - b) U`` after its ``b``-th block ``I`` (the ``k - b`` blocks
left hold ``V \\ I``; empty ones cost 0). A push ``D[b][I] <- max(D[b-1][I'], f(I \\ I'))``
is therefore skipped when ``W - w(I) >= (k - b) U``, and a start ``I'`` serves only the
layers ``b`` with ``W - w(I') < (k - b + 1) U`` (its BFS keeps ``w(I \\ I') < U``); a
start with none is skipped. (A relative slack of 1e-9 covers the rounding of the work
sums; only values ``< U`` are ever sought, so nothing that could improve on ``U`` is
lost.) On balanced splits this confines the starts of layer ``b`` to a band of width
``~U`` around ``w(I') = (b - 1) U``. *Threshold passes*: the DP with ``U = T`` (any
``T``) computes the least value over the chains whose blocks all cost ``< T``, so if it
finds a value ``< T`` that value is OPT, and otherwise OPT ``>= T``. Since a smaller ``U``
prunes far more, on lattices of at least ``_T_SEARCH_MIN_IDEALS`` ideals (``k >= 3``,
finite incumbent, non-negative work and charges) the DP first runs passes with ``T =
L (1 + 0.005 * 1.5^i)``, ``L = max(W / k, max unit work) <= OPT``, below the incumbent,
stopping at the first that finds a value ``< T``; the last pass is the plain one with the
incumbent. If nothing below ``U`` exists, the
incumbent is optimal; without an incumbent, ``D[k][V] = inf`` proves that no partition
into at most ``k`` stages meets the cap (``Status.INFEASIBLE`` with ``stats["reason"]``).

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

*Scope.* Rules 1-4 are proved for the paper's problem only (every data edge orders, no
groups, no binding cap): with a data-only edge "only successor" and "consumer" differ,
with groups a node cannot move alone, and the exchanges move memory. They run only when
``instance.constraints`` is empty (:func:`reduce_instance` returns the instance
unchanged otherwise, for every caller: this DP, BRKGA, the order baselines); the reduced
instance drops ``memory`` and ``memory_limit``, which constrain nothing there (the whole
graph fits under the cap).

**Unit reductions** (:func:`reduce_units`; on a constrained instance, and after rules 1-4
on the paper's problem). They act on units, count every data edge (data-only ones
included) and every ordering edge, and need ``w(Z) = 0`` and either ``m(Z) = 0`` or a cap
that is not active (then every stage fits):

A. *A zero-work unit with a single neighbour joins it.* Every data or ordering edge with
   one end in unit ``Z`` has its other end in ``Z`` or in one other unit ``H``; ``Z`` and
   ``H`` are merged (a co-location group in the reduced instance, same nodes).
   (a) Exchange: in a feasible partition move ``Z`` to ``σ(H)``. Feasible: ``Z``'s
   ordering edges all go to ``H`` (equal stages satisfy them), ``Z`` moves whole, its
   memory is 0 or the cap is inactive. Costs: only producers in ``Z`` and producers in
   ``H`` with consumers in ``Z`` can change charge. A producer in ``Z`` then has all its
   consumers (in ``Z ∪ H``) in its own stage: never charged. For ``u ∈ H`` the set of
   stages other than ``σ(u)`` holding a consumer of ``u`` only shrinks, and ``u``'s Out
   charge and its In charges are "that set is non-empty" and "this stage is in it": none
   appears. ``Z`` adds no work. So no stage gets more expensive, and some optimal
   partition has ``Z`` beside ``H``: the added co-location keeps OPT. Merging creates no
   cycle (a cycle through the merged unit would need a second neighbour of ``Z``).
   (b) The reduced instance has the same nodes, edges and costs: its partitions are
   partitions of the current one, at equal cost.
B. *A silent zero-work source unit goes to stage 0.* ``Z`` has no ordering
   predecessor, no data producer outside ``Z``, and every member with a consumer outside
   ``Z`` has ``c = 0``. Then ``Z`` adds nothing to any stage wherever it is (no work, no
   charge of its own, and no other producer has a consumer in ``Z``), and stage 0 is
   before all its ordering successors. Removing ``Z`` with its edges gives an instance
   with the same OPT; the lift puts ``Z`` in stage 0, feasible and at equal cost.

Applied to a fixpoint (a merge or removal can expose new candidates, e.g. a zero-work
node fed only by a removed zero-comm source); by induction each step keeps OPT and lifts
at equal cost, and :func:`reductions` composes the lifts (and the exchanges, to move a
known partition onto the reduced instance at no extra cost). On the shared training
graphs they take gnmt_training from more than 200,000 ideals to 100 (96 units to 68) and
bert24_training from 39 to 28; a zero-work unit holding memory under an active cap is
never touched (moving it could break the cap).

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
from collections.abc import Callable
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
from pipecert.memo import InstanceKey, Memo, instance_key
from pipecert.partition import Partition, check_feasible, evaluate
from pipecert.results import Budget, HeuristicResult, SolveContext, Status

__all__ = ["DownsetDP", "reduce_instance", "lift_partition", "downset_solve", "slice_units",
           "unit_orders", "reduce_units", "lift_units",
           "reductions"]

_ONE = np.uint64(1)
#: the threshold passes of the DP (:func:`downset_solve`): only on lattices this large
_T_SEARCH_MIN_IDEALS = 2000
#: first threshold above the lower bound (relative); the step grows by ``_T_GROW`` per pass
_T_SEARCH_STEP = 0.005
#: growth of the threshold step per pass
_T_GROW = 1.5

_Reduction = tuple[Instance, NDArray[np.int64], NDArray[np.int64]]
#: :func:`reduce_instance` and :func:`reduce_units` of the last graphs (by fingerprint).
_REDUCED: Memo[InstanceKey, _Reduction] = Memo("heuristics.reduce_instance", 16)
_UNIT_REDUCED: Memo[InstanceKey, _Reduction] = Memo("heuristics.reduce_units", 16)


# ---------------------------------------------------------------------------- reductions
def reduce_instance(instance: Instance) -> tuple[Instance, NDArray[np.int64], NDArray[np.int64]]:
    """Apply the exact reductions 1-4 of the module docstring to a fixpoint.

    Returns ``(reduced, kept, host)``: ``kept`` are the original indices of the reduced
    instance's nodes; ``host[v]`` for a removed node ``v`` is the original index of the
    *kept* node whose stage it joins (chains of hosts are already resolved), or ``-1`` for
    stage 0 (``host[v] = v`` for kept nodes). Rule 4 can lower a kept node's
    communication cost, so ``reduced.comm`` may differ from ``instance.comm[kept]``.

    Every rule needs a zero-work node: without one the instance is returned at once. The
    result is memoised by fingerprint (the reduction is deterministic; it is O(n + m)
    Python, about 4 s at 200,000 nodes, and several methods of a portfolio ask for it).
    """
    n = instance.n_nodes
    if n == 0 or instance.constraints or not np.any(instance.work == 0):
        ident = np.arange(n, dtype=np.int64)
        return instance, ident, ident.copy()
    # the reduced instance's name is derived from the input's: part of the key
    red, kept, host = _REDUCED.get_or_compute(instance_key(instance, instance.name),
                                              lambda: _reduce_instance(instance))
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


def reduce_units(instance: Instance
                 ) -> tuple[Instance, NDArray[np.int64], NDArray[np.int64]]:
    """Exact unit reductions A and B (module docstring) for the constrained problem.

    Returns ``(reduced, kept, rep)``: ``kept`` are the original indices of the reduced
    instance's nodes (rule B removes units, which go to stage 0 in :func:`lift_units`);
    rule A adds co-location groups (every node's group in ``reduced`` is its merged
    unit); ``rep[i]`` is an original node of the unit that reduced node ``i``'s merged
    unit was merged into, so ``stage_of[rep]`` moves every merged unit beside its host
    (the exchange of rule A: feasible and never worse). Identity when nothing applies.
    Memoised by fingerprint.
    """
    n = instance.n_nodes
    ident = np.arange(n, dtype=np.int64)
    if n == 0 or not np.any(instance.work == 0):
        return instance, ident, ident.copy()
    # the reduced instance's name is derived from the input's: part of the key
    got = _UNIT_REDUCED.get_or_compute(instance_key(instance, instance.name),
                                       lambda: _reduce_units(instance))
    return got[0], got[1].copy(), got[2].copy()


def _reduce_units(instance: Instance
                  ) -> tuple[Instance, NDArray[np.int64], NDArray[np.int64]]:
    """The reduction itself (see :func:`reduce_units`)."""
    n = instance.n_nodes
    unit = instance.unit_of.tolist()
    nu = instance.n_units
    wU = instance.unit_sums(instance.work).tolist()
    mem_free = "memory" not in instance.constraints
    mU = (instance.unit_sums(instance.memory).tolist() if instance.memory is not None
          else [0.0] * nu)
    comm = instance.comm.tolist()
    mptr, midx = instance.unit_members
    members: list[list[int]] = [midx[mptr[u]:mptr[u + 1]].tolist() for u in range(nu)]
    # unit-level neighbours (data edges either way, ordering edges) with multiplicity
    nbr: list[dict[int, int]] = [{} for _ in range(nu)]
    opred: list[set[int]] = [set() for _ in range(nu)]
    feeds_in: list[set[int]] = [set() for _ in range(nu)]  # units with a producer of a member
    src, dst = instance.src.tolist(), instance.dst.tolist()
    for a, b in zip(src + instance.all_src.tolist(), dst + instance.all_dst.tolist(),
                    strict=True):
        ua, ub = unit[a], unit[b]
        if ua != ub:
            nbr[ua][ub] = nbr[ua].get(ub, 0) + 1
            nbr[ub][ua] = nbr[ub].get(ua, 0) + 1
    for a, b in zip(instance.all_src.tolist(), instance.all_dst.tolist(), strict=True):
        if unit[a] != unit[b]:
            opred[unit[b]].add(unit[a])
    for a, b in zip(src, dst, strict=True):
        if unit[a] != unit[b]:
            feeds_in[unit[b]].add(unit[a])
    ptr, succ = instance.succ_csr
    # units whose every producer with a consumer outside the unit sends nothing (c = 0)
    silent = [all(comm[x] == 0 or all(unit[y] == u for y in succ[ptr[x]:ptr[x + 1]].tolist())
                  for x in members[u]) for u in range(nu)]
    root = list(range(nu))
    alive = [True] * nu
    removed = np.zeros(n, dtype=bool)
    changed = False

    def drop(z: int) -> list[int]:
        for y in nbr[z]:
            nbr[y].pop(z, None)
            opred[y].discard(z)
            feeds_in[y].discard(z)
        out = list(nbr[z])
        nbr[z].clear()
        alive[z] = False
        return out

    stack = list(range(nu - 1, -1, -1))
    while stack:
        z = stack.pop()
        if not alive[z] or wU[z] != 0 or not (mem_free or mU[z] == 0):
            continue
        if not opred[z] and not feeds_in[z] and silent[z]:  # rule B: adds 0 anywhere
            removed[members[z]] = True
            stack.extend(drop(z))
            changed = True
        elif len(nbr[z]) == 1:  # rule A: z joins its only neighbour h
            (h,) = nbr[z]
            stack.extend(y for y in drop(z) if y != h)
            root[z] = h
            members[h].extend(members[z])
            stack.append(h)
            changed = True
    if not changed:
        return instance, np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)

    def find(u: int) -> int:
        while root[u] != u:
            root[u] = root[root[u]]
            u = root[u]
        return u

    kept = np.flatnonzero(~removed)
    new_idx = np.full(n, -1, dtype=np.int64)
    new_idx[kept] = np.arange(kept.size)
    groups = np.asarray([find(unit[v]) for v in kept.tolist()], dtype=np.int64)
    rep = np.asarray(midx[mptr[groups]], dtype=np.int64)
    s_, d_ = instance.src, instance.dst
    ek = ~removed[s_] & ~removed[d_]
    ps_, pd_ = instance.prec_src, instance.prec_dst
    pk = ~removed[ps_] & ~removed[pd_]
    red = Instance.from_arrays(
        [instance.ids[i] for i in kept.tolist()], instance.work[kept], instance.comm[kept],
        new_idx[s_[ek]], new_idx[d_[ek]], new_idx[ps_[pk]], new_idx[pd_[pk]],
        orders=instance.edge_orders[ek],
        memory=None if instance.memory is None else instance.memory[kept],
        groups=groups, memory_limit=instance.memory_limit,
        name=f"{instance.name}[unit-reduced]",
    )
    return red, kept, rep


def lift_units(instance: Instance, kept: NDArray[np.int64], stage_red: NDArray[np.int64],
               k: int) -> Partition:
    """Map stages of :func:`reduce_units`' instance back (removed units go to stage 0)."""
    stage = np.zeros(instance.n_nodes, dtype=np.int64)
    stage[kept] = stage_red
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
def _counts(bits, P, A, has_a, X, u, unit_of, succ_ptr, succ_idx):  # type: ignore[no-untyped-def]
    """``(cnt(P \\ A, u), cnt(X, u))``: data successors of node ``u`` in the block
    ``P \\ A`` (``A`` ignored unless ``has_a``) and in unit ``X`` (ideal rows of ``bits``
    are sets of units)."""
    cb = 0
    cx = 0
    for e in range(succ_ptr[u], succ_ptr[u + 1]):
        us = unit_of[succ_idx[e]]
        if us == X:
            cx += 1
        elif bits[P, us >> 6] & (_ONE << np.uint64(us & 63)):
            if not (has_a and (bits[A, us >> 6] & (_ONE << np.uint64(us & 63)))):
                cb += 1
    return cb, cx


@nb.njit(cache=True)
def _delta(bits, P, A, has_a, X, wX, mptr, midx, unit_of, comm, outdeg, pred_ptr,  # type: ignore[no-untyped-def]
           pred_idx, succ_ptr, succ_idx, mark, tok):
    """Change of ``f`` and of ``lb`` when unit ``X`` joins the block ``B = P \\ A``.

    ``f(B) = w(B) + sum_u c(u) [u charged]`` with ``u`` charged iff ``u in B`` has a data
    consumer outside ``B`` or ``u not in B`` has one inside (all data edges). Only the
    members of ``X`` and their data producers can change state; each is examined once
    (``mark``/``tok``). ``lb(B) = w(B) + c({u in A : cnt(B, u) > 0})`` (module docstring).
    """
    df = wX
    dl = wX
    t = tok[0] + 1
    tok[0] = t
    for j in range(mptr[X], mptr[X + 1]):
        mark[midx[j]] = t
    for j in range(mptr[X], mptr[X + 1]):
        x = midx[j]
        if outdeg[x] > 0:  # x joins B: was charged iff it fed B, now iff it feeds outside
            cb, cx = _counts(bits, P, A, has_a, X, x, unit_of, succ_ptr, succ_idx)
            if cb > 0:
                df -= comm[x]
            if cb + cx < outdeg[x]:
                df += comm[x]
        for e in range(pred_ptr[x], pred_ptr[x + 1]):
            u = pred_idx[e]
            if mark[u] == t:
                continue
            mark[u] = t
            cb, cx = _counts(bits, P, A, has_a, X, u, unit_of, succ_ptr, succ_idx)
            uu = unit_of[u]
            in_p = (bits[P, uu >> 6] & (_ONE << np.uint64(uu & 63))) != 0
            in_a = has_a and (bits[A, uu >> 6] & (_ONE << np.uint64(uu & 63))) != 0
            if in_p and not in_a:  # u in B: leaves Out(B) when its last outside consumer joins
                if cb < outdeg[u] and cb + cx == outdeg[u]:
                    df -= comm[u]
            elif cb == 0:  # u outside B: joins In(B) with its first consumer in B
                df += comm[u]
                if in_a:
                    dl += comm[u]
    return df, dl


@nb.njit(cache=True)
def _ideal_costs(n_id, bits, fpar, fv, wU, mU, mptr, midx, unit_of, comm, outdeg,  # type: ignore[no-untyped-def]
                 pred_ptr, pred_idx, succ_ptr, succ_idx, mark, tok):
    """``w(I)``, ``f(I)`` and the memory of every ideal, along its first parent."""
    wI = np.zeros(n_id)
    fI = np.zeros(n_id)
    mI = np.zeros(n_id)
    for q in range(1, n_id):
        P = fpar[q]
        X = fv[q]
        d, _ = _delta(bits, P, 0, False, X, wU[X], mptr, midx, unit_of, comm, outdeg,
                      pred_ptr, pred_idx, succ_ptr, succ_idx, mark, tok)
        wI[q] = wI[P] + wU[X]
        fI[q] = fI[P] + d
        mI[q] = mI[P] + mU[X]
    return wI, fI, mI


@nb.njit(cache=True)
def _dp(a0, a1, full, kk, Uarr, total_w, total_m, cap, wI, fI, mI, bits, eptr, ev, edst, D,  # type: ignore[no-untyped-def]
        par, stamp, queue, fc, lbv, mc, rem_ok, wU, mU, mptr, midx, unit_of, comm, outdeg,
        pred_ptr, pred_idx, succ_ptr, succ_idx, mark, tok):
    """DP pushes from ideals ``a0..a1-1`` (in BFS order, so each row is final when used).

    Layer 1 is ``D[1][I] = f(I)`` and the last layer only targets ``V`` with
    ``f(V \\ I') = W - 2 w(I') + f(I')`` (O(1) each); the lattice BFS serves layers
    ``2..k-1`` only. A block is used only if its memory is at most ``cap`` (already
    including the tolerance), and the BFS does not expand past it.
    """
    U = Uarr[0]
    pairs = 0
    for a in range(a0, a1):
        row = D[a]
        if a > 0 and fI[a] < row[1] and mI[a] <= cap:
            row[1] = fI[a]
            par[a, 1] = 0
        for b in range(2, kk + 1):
            if row[b - 1] < row[b]:
                row[b] = row[b - 1]
                par[a, b] = -1
        if a == full or kk == 1:
            continue
        # last block = V \ I'
        if row[kk - 1] < U and total_m - mI[a] <= cap:
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
        # remainder work: a block of layer b from ``a`` to ``Q`` helps only if the
        # kk - b blocks after it can hold ``V \ Q`` below ``U``, which needs
        # ``W - w(Q) < (kk - b) U`` (every block costs at least its work); ``w(Q) <
        # w(a) + U`` inside the BFS, so layer b needs ``W - w(a) < (kk - b + 1) U``
        Ut = U + 1e-9 * (U + total_w)  # slack for the rounding of the work sums
        bend = kk - 1
        if rem_ok:
            while bend >= bstart and not (total_w - wI[a] < (kk - bend + 1) * Ut):
                bend -= 1
            if bend < bstart:
                continue
        stamp[a] = a
        fc[a] = 0.0
        lbv[a] = 0.0
        mc[a] = 0.0
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
                X = ev[e]
                m = mc[P] + mU[X]
                if m > cap:  # every superset holds this block's memory too
                    continue
                df, dl = _delta(bits, P, a, True, X, wU[X], mptr, midx, unit_of, comm,
                                outdeg, pred_ptr, pred_idx, succ_ptr, succ_idx, mark, tok)
                f = fc[P] + df
                lb = lbv[P] + dl
                fc[Q] = f
                lbv[Q] = lb
                mc[Q] = m
                if lb >= U:
                    continue
                queue[qt] = Q
                qt += 1
                pairs += 1
                if f < U and Q != full:
                    rq = D[Q]
                    for b in range(bstart, bend + 1):
                        if rem_ok and not (total_w - wI[Q] < (kk - b) * Ut):
                            break
                        val = row[b - 1]
                        if f > val:
                            val = f
                        if val < rq[b]:
                            rq[b] = val
                            par[Q, b] = a
    Uarr[0] = U
    return pairs


@nb.njit(cache=True)
def _slice_costs(order, words, cap, wU, mU, mptr, midx, unit_of, comm, outdeg, pred_ptr,  # type: ignore[no-untyped-def]
                 pred_idx, succ_ptr, succ_idx, mark, tok):
    """``seg[i, j]`` = cost of the block ``order[i:j]`` (inf if over the memory cap).

    ``order`` is a topological order of the unit DAG, so every prefix is an ideal and
    every segment a block of a feasible chain.
    """
    L = order.size
    seg = np.full((L + 1, L + 1), np.inf)
    bb = np.zeros((2, words), dtype=np.uint64)
    for i in range(L):
        for w in range(words):
            bb[1, w] = bb[0, w]
        f = 0.0
        m = 0.0
        for j in range(i, L):
            X = order[j]
            m += mU[X]
            if m > cap:
                break
            df, _ = _delta(bb, 1, 0, True, X, wU[X], mptr, midx, unit_of, comm, outdeg,
                           pred_ptr, pred_idx, succ_ptr, succ_idx, mark, tok)
            f += df
            bb[1, X >> 6] |= _ONE << np.uint64(X & 63)
            seg[i, j + 1] = f
        X = order[i]
        bb[0, X >> 6] |= _ONE << np.uint64(X & 63)
    return seg


@nb.njit(cache=True)
def _slice_dp(seg, kk):  # type: ignore[no-untyped-def]
    """Best split of the order into at most ``kk`` segments: ``(value, cuts)``."""
    L = seg.shape[0] - 1
    best = np.full((kk + 1, L + 1), np.inf)
    arg = np.full((kk + 1, L + 1), -1, dtype=np.int64)
    best[0, 0] = 0.0
    for b in range(1, kk + 1):
        for j in range(L + 1):
            best[b, j] = best[b - 1, j]
            arg[b, j] = j
            for i in range(j):
                v = best[b - 1, i]
                if seg[i, j] > v:
                    v = seg[i, j]
                if v < best[b, j]:
                    best[b, j] = v
                    arg[b, j] = i
    cuts = np.zeros(kk + 1, dtype=np.int64)  # segment b is order[cuts[b]:cuts[b+1]]
    j = L
    cuts[kk] = L
    if best[kk, L] < np.inf:
        for b in range(kk, 0, -1):
            j = arg[b, j]
            cuts[b - 1] = j
    return best[kk, L], cuts


# ---------------------------------------------------------------------------- driver
def _grow(a: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((size, *a.shape[1:]), dtype=a.dtype) if a.ndim > 1 else np.zeros(size, a.dtype)
    out[: a.shape[0]] = a
    return out


class _UnitData:
    """The unit-level arrays the kernels need (units, their members, costs, memory)."""

    def __init__(self, instance: Instance) -> None:
        self.n = instance.n_nodes
        self.n_units = instance.n_units
        self.unit_of = np.ascontiguousarray(instance.unit_of, dtype=np.int64)
        self.mptr, self.midx = (np.ascontiguousarray(x, dtype=np.int64)
                                for x in instance.unit_members)
        self.opp, self.opi = (np.ascontiguousarray(x, dtype=np.int64)
                              for x in instance.unit_pred_csr)
        self.wU = np.ascontiguousarray(instance.unit_sums(instance.work))
        if "memory" in instance.constraints:
            assert instance.memory is not None and instance.memory_limit is not None
            self.mU = np.ascontiguousarray(instance.unit_sums(instance.memory))
            self.cap = float(instance.memory_limit) * (1 + 1e-12)  # check_feasible's tolerance
        else:
            self.mU = np.zeros(self.n_units)
            self.cap = math.inf
        self.comm = np.ascontiguousarray(instance.comm, dtype=np.float64)
        self.outdeg = np.ascontiguousarray(instance.out_degree, dtype=np.int64)
        self.pp, self.pi = (np.ascontiguousarray(x, dtype=np.int64) for x in instance.pred_csr)
        self.sp, self.si = (np.ascontiguousarray(x, dtype=np.int64) for x in instance.succ_csr)
        self.mark = np.zeros(self.n, dtype=np.int64)
        self.tok = np.zeros(1, dtype=np.int64)

    def cost_args(self) -> tuple[Any, ...]:
        """Arguments of :func:`_delta` after ``wX``."""
        return (self.mptr, self.midx, self.unit_of, self.comm, self.outdeg, self.pp, self.pi,
                self.sp, self.si, self.mark, self.tok)

    def unit_stages(self, stage_of: NDArray[np.int64]) -> NDArray[np.int64]:
        """Stage of every unit (of its first member) under a node partition."""
        return np.ascontiguousarray(stage_of[self.midx[self.mptr[:-1]]], dtype=np.int64)


def unit_orders(instance: Instance) -> list[NDArray[np.int64]]:
    """Two topological orders of the unit DAG: its numbering, and a depth-first one
    (after a unit, a ready successor of the most recently placed unit if any)."""
    nu = instance.n_units
    ptr, succ = instance.unit_succ_csr
    indeg = np.bincount(succ, minlength=nu).tolist()
    ptr_l, succ_l = ptr.tolist(), succ.tolist()
    stack = [u for u in range(nu - 1, -1, -1) if indeg[u] == 0]
    out: list[int] = []
    while stack:
        u = stack.pop()
        out.append(u)
        for j in range(ptr_l[u + 1] - 1, ptr_l[u] - 1, -1):
            v = succ_l[j]
            indeg[v] -= 1
            if indeg[v] == 0:
                stack.append(v)
    return [np.arange(nu, dtype=np.int64), np.asarray(out, dtype=np.int64)]


def slice_units(instance: Instance, k: int, *, max_units: int = 2000,
                orders: list[NDArray[np.int64]] | None = None,
                budget: Budget | None = None) -> tuple[float, Partition] | None:
    """A feasible partition of the constrained problem: the best split of a topological
    order of the unit DAG into at most ``k`` contiguous segments within the memory cap.

    Every prefix of a topological order of the unit DAG is an ideal, so every split is a
    feasible partition (whole units, stages non-decreasing along ordering edges) once each
    segment fits the cap; segment costs are the reference ``f`` (all data edges). O(L^2)
    segment costs and an O(k L^2) split per order (``L`` units; about 3 s at 2,000 units);
    None if ``L > max_units`` or no split of the orders tried fits the cap. The next
    order is not tried once ``budget`` has expired.
    """
    nu = instance.n_units
    if nu == 0 or nu > max_units:
        return None
    ud = _UnitData(instance)
    kk = max(1, min(k, nu))
    best: tuple[float, Partition] | None = None
    for order in orders if orders is not None else unit_orders(instance):
        if best is not None and budget is not None and budget.expired():
            break
        seg = _slice_costs(order, (nu + 63) // 64, ud.cap, ud.wU, ud.mU, *ud.cost_args())
        val, cuts = _slice_dp(seg, kk)
        if not val < math.inf:
            continue
        ustage = np.empty(nu, dtype=np.int64)
        for b in range(kk):
            ustage[order[cuts[b]:cuts[b + 1]]] = b
        part = Partition(ustage[ud.unit_of], k)
        v = evaluate(instance, part)
        if best is None or v < best[0]:
            best = (v, part)
    return best


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
    """Solve ``instance`` (already reduced, or constrained) exactly; see the module docstring.

    The lattice is the one of the ideals of the unit DAG (:attr:`Instance.unit_of`; every
    node is its own unit on the paper's problem). ``upper`` is a feasible incumbent
    ``(value, partition)``. Returns ``(status, partition, stats)`` with status OPTIMAL,
    INFEASIBLE (no partition meets the memory cap; ``stats["reason"]``), UNSUPPORTED (too
    many ideals), TIME_LIMIT or ERROR (hash collision). ``tube = (stage_of, width)``
    restricts the DP to the ideals of the tube around the feasible partition ``stage_of``
    (:func:`heuristics.tube.tube_search`); OPTIMAL then means optimal in the tube.
    """
    ud = _UnitData(instance)
    n = ud.n_units
    kk = min(k, n)
    words = (n + 63) // 64
    if tube is not None:
        st = ud.unit_stages(np.asarray(tube[0], dtype=np.int64))
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
    stats: dict[str, Any] = {"n_units": n}
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
                                     fpar, fv, zob, table, ud.opp, ud.opi, tube is not None,
                                     st, width, hi, lo, miss, smask, ssize, rej)
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
    mc = np.zeros(n_id)
    Uarr = np.array([U0])
    args = ud.cost_args()
    wI, fI, mI = _ideal_costs(n_id, bits, fpar, fv, ud.wU, ud.mU, *args)
    total_w, total_m = float(ud.wU.sum()), float(ud.mU.sum())
    # the remainder-work pruning needs f(B) >= w(B) >= 0 (non-negative work and charges)
    rem_ok = bool((ud.wU >= 0).all() and (args[3] >= 0).all())
    # thresholds: a pass with ``U = T`` finds OPT exactly if OPT < T and proves OPT >= T
    # otherwise; smaller T prunes far more, so T climbs from the lower bound
    # max(W / k, max unit work) (valid when rem_ok: every block costs at least its work)
    # to the incumbent, the last pass being the plain one
    thresholds = [U0]
    if rem_ok and kk >= 3 and n_id >= _T_SEARCH_MIN_IDEALS and math.isfinite(U0):
        lo_t = max(total_w / kk, float(ud.wU.max()))
        step = _T_SEARCH_STEP
        while lo_t > 0 and lo_t * (1.0 + step) < U0:
            thresholds.insert(-1, lo_t * (1.0 + step))
            step *= _T_GROW
    pairs = 0
    t1 = time.perf_counter()
    for i, T in enumerate(thresholds):
        if i > 0:  # a fresh DP for the next threshold
            D[:] = np.inf
            D[0, :] = 0.0
            par[:] = -2
            stamp[:] = -1
        Uarr[0] = T
        a = 0
        while a < n_id:
            if budget.expired():
                stats.update(reason="time limit in the down-set DP", pairs=pairs)
                return Status.TIME_LIMIT, None, stats
            a1 = min(n_id, a + max(1, chunk // 10))
            pairs += _dp(a, a1, full, kk, Uarr, total_w, total_m, ud.cap, wI, fI, mI, bits,
                         eptr, ev, edst, D, par, stamp, queue, fc, lbv, mc, rem_ok, ud.wU,
                         ud.mU, *args)
            a = a1
        if D[full, kk] < T:
            break
    stats["threshold_passes"] = i + 1
    stats["pairs"] = int(pairs)
    stats["dp_time_s"] = time.perf_counter() - t1
    val = D[full, kk]
    if not val < U0:
        if upper is None:
            scope = "in the tube" if tube is not None else "of the unit DAG"
            stats["reason"] = (
                f"no partition into at most {k} stages meets the memory cap "
                f"{instance.memory_limit:g}: every chain of ideals {scope} has a block over "
                f"it (exact DP over {n_id} ideals)")
            return Status.INFEASIBLE, None, stats
        stats["optimum"] = U0
        stats["incumbent_optimal"] = True
        return Status.OPTIMAL, upper[1], stats
    # reconstruct: block of layer b is stage b - 1
    ustage = np.full(n, -1, dtype=np.int64)
    Q, b = full, kk
    while Q != 0:
        p = int(par[Q, b])
        if p == -1:
            b -= 1
            continue
        diff = bits[Q] & ~bits[p]
        mask = np.unpackbits(diff.view(np.uint8), bitorder="little")[:n].astype(bool)
        ustage[mask] = b - 1
        Q, b = p, b - 1
    assert (ustage >= 0).all()
    stats["optimum"] = float(val)
    return Status.OPTIMAL, Partition(ustage[ud.unit_of], k), stats


@HEURISTICS.register
class DownsetDP(Heuristic):
    """Exact down-set (ideal) DP (Tarnawski et al. 2020): optimal while ideals are few.

    Exact on the constrained problem too (co-location groups, the memory cap, data-only
    edges): ideals of the unit DAG, blocks over the cap excluded (module docstring).

    Parameters
    ----------
    max_ideals : int
        Give up (``unsupported``, with the count reached) beyond this many down-sets.
    reduce : bool
        Apply the exact graph reductions of the module docstring first (only on the
        paper's problem; they are skipped when a constraint is active).
    """

    name = "downset_dp"
    citation = "Tarnawski et al., NeurIPS 2020, arXiv:2006.16423 (DP over ideals)"
    deterministic: ClassVar[bool] = True
    exact: ClassVar[bool] = True
    handles = frozenset({"groups", "memory", "data_only_edges"})

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
        """Reduce, find an incumbent, run the DP, lift the result back."""
        t0 = time.perf_counter()
        red, lift, normalize = reductions(instance, k, self.reduce)
        best: tuple[float, Partition] | None = None
        if not instance.constraints:
            # Algorithm 1 on the instance reduced by rules 1-4 (the paper's problem), moved
            # onto ``red`` by the exchanges of rules A-B (feasible, never worse)
            base = reduce_instance(instance)[0] if self.reduce else instance
            rep = reduce_units(base)[2] if red is not base else None
            for order in (dfs_order(base), bfs_order(base),
                          np.ascontiguousarray(base.topo_order, dtype=np.int64)):
                # budget-aware (the slicing DP is quadratic in n): the greedy slicing if
                # stopped
                val, cuts, _done = slice_order_within(base, order, k, budget, check=False)
                cand = Partition.from_slices(order, cuts.tolist(), k)
                if rep is not None:
                    cand = Partition(cand.stage_of[rep], k)
                    if check_feasible(red, cand, k=k):  # not expected (the exchanges)
                        continue
                    val = evaluate(red, cand)
                if best is None or val < best[0]:
                    best = (val, cand)
        else:  # Algorithm 1 over unit orders, segments within the memory cap
            best = slice_units(red, k, budget=budget)
        # the context's partition (on the original instance), normalised to the reduced
        # instance (removed nodes beside their hosts: never worse), re-scored there
        if context is not None and context.partition is not None:
            red_part = normalize(context.partition)
            if red_part is not None:
                v = evaluate(red, red_part)
                if best is None or v < best[0]:
                    best = (v, red_part)
        status, part, stats = downset_solve(red, k, budget, max_ideals=self.max_ideals,
                                            upper=best)
        stats = {"n_nodes_reduced": red.n_nodes,
                 "incumbent": math.inf if best is None else best[0], **stats,
                 "time_s": time.perf_counter() - t0}
        if part is None:
            return HeuristicResult(None, status, stats)
        return HeuristicResult(lift(part.stage_of), status, stats)


def reductions(instance: Instance, k: int, on: bool = True) -> tuple[
        Instance, Callable[[NDArray[np.int64]], Partition],
        Callable[[Partition], Partition | None]]:
    """The exact reductions that apply to ``instance``: ``(reduced, lift, normalize)``.

    Rules 1-4 on the paper's problem, rules A-B when a constraint is active (module
    docstring). ``lift(stage_red)`` maps a partition of ``reduced`` back (feasible, equal
    cost); ``normalize(p)`` maps a partition of ``instance`` to one of ``reduced`` by
    moving every removed or merged node beside its host (the exchanges of the rules), or
    None if the result is infeasible for ``reduced`` (e.g. ``p`` itself is infeasible).
    Its value on ``reduced`` is the value of its lift, at most ``p``'s when ``p`` is
    feasible.
    """
    n = instance.n_nodes
    if not on:
        red, kept = instance, np.arange(n, dtype=np.int64)

        def lift(st: NDArray[np.int64]) -> Partition:
            return Partition(st, k)
    elif not instance.constraints:  # rules 1-4, then A-B on the result
        red1, kept1, host = reduce_instance(instance)
        red, kept2, rep2 = reduce_units(red1)
        kept = kept1[rep2]

        def lift(st: NDArray[np.int64]) -> Partition:
            st1 = lift_units(red1, kept2, st, k).stage_of
            return lift_partition(instance, kept1, host, st1, k)
    else:
        red, keptu, kept = reduce_units(instance)

        def lift(st: NDArray[np.int64]) -> Partition:
            return lift_units(instance, keptu, st, k)

    def normalize(p: Partition) -> Partition | None:
        if p.stage_of.size != n or p.k > k:
            return None
        part = Partition(np.ascontiguousarray(p.stage_of[kept], dtype=np.int64), k)
        return None if check_feasible(red, part, k=k) else part

    return red, lift, normalize
