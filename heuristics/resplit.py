"""Exact re-splitting of two adjacent stages (a large-neighbourhood local search).

For a feasible partition and adjacent stages ``s, s + 1`` with union ``U``, every split of
``U`` into a down-set ``A`` of ``U`` (closed under ordering predecessors inside ``U``) and
``U \\ A`` gives a feasible partition with ``A`` as stage ``s`` and ``U \\ A`` as stage
``s + 1``: an ordering edge ``u -> v`` inside ``U`` never goes from ``U \\ A`` to ``A``
(``A`` is a down-set), an edge entering ``U`` comes from a stage ``< s`` and an edge leaving
``U`` goes to a stage ``> s + 1`` (the partition was feasible), and every other edge keeps
its stages. A stage's cost ``f(S) = w(S) + c(In(S)) + c(Out(S))`` depends only on its own
node set, so only the two stages change, and the best split minimises
``max(f(A), f(U \\ A))``. :func:`resplit_pair` enumerates the down-sets of ``U``
breadth-first from the empty set; ``w(A) <= f(A)`` and ``w`` grows with ``A``, so a
down-set with ``w(A)`` at or above the best value found so far is not expanded (exact).
The enumeration stops at ``max_ideals`` (then the best split seen is used: still feasible,
never worse than the current split, which is itself one of the candidates only if reached;
a split is applied only if it is strictly better).

**Constraints.** With co-location groups the enumeration is over down-sets of the *units*
inside ``U`` (a feasible partition keeps every unit in one stage, so ``U`` is a union of
units; the unit DAG of the ordering edges gives the predecessors): ``A`` and ``U \\ A`` are
unions of whole units, so groups stay whole, and the argument above holds with units for
nodes. Only ordering edges define the down-sets (data-only edges order nothing; their
charges are in ``f``). A split is a candidate only if both sides are within the memory cap
(the cap itself, stricter than :func:`check_feasible`'s relative tolerance of 1e-12).
The swept result is re-checked with :func:`check_feasible` and the input is kept if it
fails, so the result is always feasible.

:func:`resplit_partition` sweeps all adjacent pairs, applying a strictly better split,
until a sweep changes nothing (or ``max_sweeps`` / the budget). Every applied split lowers
the larger of two stage costs and never raises another stage, so the bottleneck never
rises; the result is re-scored by the reference cost function.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pipecert.instance import Instance
from pipecert.partition import Partition, check_feasible, evaluate, stage_costs
from pipecert.results import Budget

__all__ = ["resplit_pair", "resplit_partition"]


class _Local:
    """Stage costs of subsets of ``U`` from the data edges touching ``U`` only."""

    def __init__(self, instance: Instance, nodes: NDArray[np.int64]) -> None:
        inu = np.zeros(instance.n_nodes, dtype=bool)
        inu[nodes] = True
        touch = inu[instance.src] | inu[instance.dst]
        self.src = instance.src[touch]
        self.dst = instance.dst[touch]
        self.work = instance.work
        self.comm = instance.comm
        self.n = instance.n_nodes

    def cost(self, mask: NDArray[np.bool_]) -> float:
        a = mask[self.src]
        b = mask[self.dst]
        out_nodes = np.unique(self.src[a & ~b])
        in_nodes = np.unique(self.src[~a & b])
        return float(self.work[mask].sum() + self.comm[in_nodes].sum()
                     + self.comm[out_nodes].sum())


def resplit_pair(
    instance: Instance, stage: NDArray[np.int64], s: int, *, max_ideals: int = 5_000,
) -> tuple[float, NDArray[np.int64] | None, int]:
    """Best split of stages ``s`` and ``s + 1``: ``(value, nodes of A, ideals visited)``.

    ``value`` is ``max(f(A), f(U \\ A))`` of the best down-set ``A`` found (exact unless
    ``max_ideals`` was reached); ``A`` is ``None`` if ``U`` is empty.
    """
    U = np.flatnonzero((stage == s) | (stage == s + 1))
    if U.size == 0:
        return math.inf, None, 0
    local = _Local(instance, U)
    # items: the units inside U (whole units move together; single nodes without groups)
    unit = instance.unit_of if "groups" in instance.constraints else np.arange(instance.n_nodes)
    items, item_of = np.unique(unit[U], return_inverse=True)
    n_items = items.size
    pos = {int(v): int(item_of[i]) for i, v in enumerate(U)}
    pp, pr = instance.order_pred_csr
    pred_sets: list[set[int]] = [set() for _ in range(n_items)]
    for i, v in enumerate(U.tolist()):
        it = int(item_of[i])
        for u in pr[pp[v]:pp[v + 1]].tolist():
            j = pos.get(u)
            if j is not None and j != it:
                pred_sets[it].add(j)
    preds = [sorted(x) for x in pred_sets]
    work = np.bincount(item_of, weights=instance.work[U], minlength=n_items)
    mem_limit = instance.memory_limit
    mem = (np.bincount(item_of, weights=instance.memory[U], minlength=n_items)
           if mem_limit is not None and instance.memory is not None else None)
    best_val, best_set = math.inf, None
    start: frozenset[int] = frozenset()
    seen = {start}
    frontier = [start]
    visited = 0
    while frontier and visited < max_ideals:
        nxt: list[frozenset[int]] = []
        for ideal in frontier:
            visited += 1
            inside = np.zeros(n_items, dtype=bool)
            if ideal:
                inside[list(ideal)] = True
            ok = mem is None or (mem[inside].sum() <= mem_limit
                                 and mem[~inside].sum() <= mem_limit)
            if ok:
                node_in = inside[item_of]
                mask = np.zeros(local.n, dtype=bool)
                mask[U[node_in]] = True
                fa = local.cost(mask) if ideal else 0.0
                rest = np.zeros(local.n, dtype=bool)
                rest[U[~node_in]] = True
                fb = local.cost(rest) if len(ideal) < n_items else 0.0
                if max(fa, fb) < best_val:
                    best_val, best_set = max(fa, fb), ideal
            if float(work[inside].sum()) >= best_val:
                continue  # f(A') >= w(A') >= w(A) >= best for every A' containing A
            # an item can join when all its predecessors inside U are in the ideal
            for i in range(n_items):
                if i in ideal or not all(j in ideal for j in preds[i]):
                    continue
                nxt_ideal = ideal | {i}
                if nxt_ideal not in seen:
                    seen.add(nxt_ideal)
                    nxt.append(nxt_ideal)
        frontier = nxt
    if best_set is None:
        return best_val, None, visited
    chosen = np.zeros(n_items, dtype=bool)
    if best_set:
        chosen[sorted(best_set)] = True
    return best_val, U[chosen[item_of]], visited


def resplit_partition(
    instance: Instance, partition: Partition, k: int, budget: Budget | None = None, *,
    max_ideals: int = 5_000, max_sweeps: int = 20,
) -> tuple[Partition, dict[str, Any]]:
    """Sweep adjacent stage pairs with :func:`resplit_pair` (module docstring).

    Returns the partition (never worse; the input if rounding ever made it worse) and stats
    ``rs_splits`` (applied splits), ``rs_before``, ``rs_after``.
    """
    budget = budget if budget is not None else Budget()
    part = partition if partition.k == k else partition.with_k(max(k, partition.k))
    kk = part.k
    stage = np.asarray(part.stage_of, dtype=np.int64).copy()
    before = evaluate(instance, partition)
    cost = np.asarray(stage_costs(instance, Partition(stage, kk)).total, dtype=np.float64)
    tol = 1e-9 * max(1.0, float(cost.max()))
    splits = 0
    for _ in range(max_sweeps):
        changed = False
        for s in range(kk - 1):
            if budget.expired():
                break
            cur = max(cost[s], cost[s + 1])
            val, nodes_a, _ = resplit_pair(instance, stage, s, max_ideals=max_ideals)
            if nodes_a is None or val >= cur - tol:
                continue
            pair = (stage == s) | (stage == s + 1)
            stage[pair] = s + 1
            stage[nodes_a] = s
            cost = np.asarray(stage_costs(instance, Partition(stage, kk)).total,
                              dtype=np.float64)
            splits += 1
            changed = True
        if not changed or budget.expired():
            break
    out = Partition(stage, kk)
    after = evaluate(instance, out)
    if after > before or check_feasible(instance, out, k=k):
        out, after = partition, before
    return out, {"rs_splits": splits, "rs_before": before, "rs_after": after}
