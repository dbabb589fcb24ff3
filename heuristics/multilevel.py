"""Multilevel partitioning: coarsen the graph, solve the coarse graph, uncoarsen and refine.

The scheme of the multilevel graph partitioners (Karypis & Kumar, SIAM J. Sci. Comput. 20(1),
1998; METIS, KaHyPar), for the pipeline problem:

1. **Exact reductions.** The exactly reduced instance of :func:`heuristics.downset_dp.reductions`
   (its partitions lift back with equal cost).
2. **Coarsening.** Each pass contracts a matching of ordering edges ``u -> v`` (each node in at
   most one contracted pair) where ``u`` has one ordering successor or ``v`` one ordering
   predecessor in the current graph, heaviest communication first, while the pair's work
   stays within ``cluster_share * W / k`` (and the memory of the pair within
   ``2 * cluster_share`` times the cap). The quotient graph stays a DAG: with
   ``outdeg(u) = 1`` a pair can only be left from ``v`` (and entered at ``u`` or ``v``); with
   ``indeg(v) = 1`` it can only be entered at ``u``; either way the walk inside a pair from
   where a quotient cycle enters to where it leaves is a path of the current graph, so a
   quotient cycle would expand to a cycle of the current graph. When such a matching
   contracts less than 5% of the nodes (wide graphs), the pass pairs consecutive nodes of a
   depth-first topological order instead (:func:`coarsen_along_order`; intervals of a
   topological order, so the quotient is again a DAG). A coarse node's work is the
   sum of its members'; its communication is the sum of ``c(u)`` over its members with a
   data consumer outside it; a coarse data (precedence) edge joins two coarse nodes holding
   the ends of a data (precedence) edge. Passes repeat until at most ``coarse_nodes`` nodes
   remain or a pass contracts less than 1% of the nodes.
3. **Coarse solve.** The exact down-set DP (:mod:`heuristics.downset_dp`) when the coarse
   graph has at most ``max_ideals`` down-sets, else ``brkga-100``.
4. **Uncoarsening.** Every node takes its coarse node's stage. This partition is feasible:
   a fine ordering edge either lies inside one coarse node (one stage) or maps to a coarse
   edge, along which the coarse partition's stages do not decrease. Each level is refined by
   ``local_search`` (:class:`heuristics.local_search.LocalSearch`) with the lifted partition
   as its incumbent, and the finest (reduced) level also by the tube search. Improvers never
   return a worse partition.

The coarse cost is an *upper estimate* of the lifted partition's cost (a member's tensor is
charged on the coarse node's whole boundary), so the coarse optimum is a good, not an optimal,
start; the framework re-scores the returned partition with the reference cost anyway.
Memory is linear in the graph: every level is an :class:`Instance` of at most the size of the
previous one, and the levels' sizes fall geometrically while passes contract at least 1%.

Constraints (``handles`` = groups, memory). Co-location units are contracted first (the
quotient by units is the unit DAG, acyclic), so every coarse node holds whole units. Node
memory is summed, a contracted pair's memory is at most ``2 * cluster_share`` times the cap,
and the coarse instance keeps the cap: a stage's memory is the sum over its coarse nodes, so
a coarse partition within the cap lifts to one within the cap. The refinement steps handle
both constraints and return feasible partitions only. Data-only edges are not modelled (the
framework answers ``unsupported`` when one is present). If neither coarse solver finds a
partition within the cap, the run returns none (``no_solution``, with the reason).
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from heuristics.base import HEURISTICS, Heuristic
from pipecert.instance import Instance
from pipecert.partition import Partition, evaluate
from pipecert.results import Budget, HeuristicResult, SolveContext, Status

__all__ = ["Multilevel", "coarsen_along_order", "coarsen_once", "quotient"]

IntArray = NDArray[np.int64]


def coarsen_once(inst: Instance, cap: float, mem_cap: float = math.inf
                 ) -> tuple[IntArray, int]:
    """One matching pass: ``(cluster_of, n_clusters)`` (module docstring, step 2).

    Parameters
    ----------
    inst : Instance
        The current level (no data-only edges).
    cap : float
        Largest work of a contracted pair.
    mem_cap : float
        Largest memory of a contracted pair (ignored without node memory).

    Returns
    -------
    (numpy.ndarray, int)
        The coarse node of every node (``0..n_clusters-1``, in the order of first member)
        and the number of coarse nodes.
    """
    n = inst.n_nodes
    src = np.asarray(inst.all_src, dtype=np.int64)
    dst = np.asarray(inst.all_dst, dtype=np.int64)
    if src.size:  # parallel edges (a data and a precedence edge) count once
        key = np.unique(src * n + dst)
        src, dst = key // n, key % n
    outdeg = np.bincount(src, minlength=n)
    indeg = np.bincount(dst, minlength=n)
    work = np.asarray(inst.work, dtype=np.float64)
    comm = np.asarray(inst.comm, dtype=np.float64)
    ok = ((outdeg[src] == 1) | (indeg[dst] == 1)) & (work[src] + work[dst] <= cap)
    if inst.memory is not None:
        mem = np.asarray(inst.memory, dtype=np.float64)
        ok &= mem[src] + mem[dst] <= mem_cap
    cand = np.flatnonzero(ok)
    # heaviest communication first (hidden inside a coarse node), then lightest pair
    order = np.lexsort((work[src[cand]] + work[dst[cand]], -comm[src[cand]]))
    mate = np.full(n, -1, dtype=np.int64)
    for e in cand[order].tolist():
        u, v = int(src[e]), int(dst[e])
        if mate[u] < 0 and mate[v] < 0:
            mate[u], mate[v] = v, u
    cluster = np.full(n, -1, dtype=np.int64)
    nc = 0
    for v in range(n):
        if cluster[v] < 0:
            cluster[v] = nc
            if mate[v] >= 0:
                cluster[mate[v]] = nc
            nc += 1
    return cluster, nc


def coarsen_along_order(inst: Instance, cap: float, mem_cap: float = math.inf
                        ) -> tuple[IntArray, int]:
    """One pass along a depth-first topological order: ``(cluster_of, n_clusters)``.

    Pairs nodes at consecutive positions of the order, left to right, each node in at most
    one pair, pairs joined by an ordering edge first, then any consecutive pair, within the
    work cap ``cap`` and the memory cap ``mem_cap``. Every coarse node is an interval of a
    topological order, so every ordering edge goes to the same or a later interval and the
    quotient is a DAG (module docstring, step 2).
    """
    from heuristics.decoder import dfs_order

    n = inst.n_nodes
    order = np.asarray(dfs_order(inst), dtype=np.int64)
    a, b = order[:-1], order[1:]
    work = np.asarray(inst.work, dtype=np.float64)
    ok = work[a] + work[b] <= cap
    if inst.memory is not None:
        mem = np.asarray(inst.memory, dtype=np.float64)
        ok &= mem[a] + mem[b] <= mem_cap
    keys = np.unique(np.asarray(inst.all_src, dtype=np.int64) * n
                     + np.asarray(inst.all_dst, dtype=np.int64))
    linked = np.isin(a * n + b, keys)
    taken = np.zeros(n, dtype=bool)
    cluster = np.full(n, -1, dtype=np.int64)
    for want_link in (True, False):
        for i in np.flatnonzero(ok & linked if want_link else ok).tolist():
            if not taken[i] and not taken[i + 1]:
                taken[i] = taken[i + 1] = True
                cluster[a[i]] = cluster[b[i]] = -2 - i  # the pair's first position
    nc = 0
    pos_cluster = np.full(n, -1, dtype=np.int64)
    for v in order.tolist():
        c = int(cluster[v])
        if c <= -2 and pos_cluster[-2 - c] >= 0:
            cluster[v] = pos_cluster[-2 - c]
            continue
        if c <= -2:
            pos_cluster[-2 - c] = nc
        cluster[v] = nc
        nc += 1
    return cluster, nc


def quotient(inst: Instance, cluster: IntArray, nc: int) -> Instance:
    """The coarse instance of ``cluster`` (module docstring, step 2).

    Work and memory are summed (the memory cap is kept); a coarse node's communication is
    the sum of ``c(u)`` over its members with a data consumer in another coarse node; data
    and precedence edges between distinct coarse nodes are kept (deduplicated).
    """
    work = np.bincount(cluster, weights=inst.work, minlength=nc)
    src, dst = np.asarray(inst.src), np.asarray(inst.dst)
    cs, cd = cluster[src], cluster[dst]
    cross = cs != cd
    boundary = np.zeros(inst.n_nodes, dtype=bool)
    boundary[src[cross]] = True
    comm = np.bincount(cluster, weights=np.where(boundary, inst.comm, 0.0), minlength=nc)
    ps, pd = cluster[np.asarray(inst.prec_src)], cluster[np.asarray(inst.prec_dst)]
    pcross = ps != pd
    key = np.unique(cs[cross] * nc + cd[cross])
    pkey = np.unique(ps[pcross] * nc + pd[pcross])
    pkey = np.setdiff1d(pkey, key)  # a data edge already orders the pair
    memory = (None if inst.memory is None
              else np.bincount(cluster, weights=inst.memory, minlength=nc))
    return Instance.from_arrays(
        [str(i) for i in range(nc)], work, comm, key // nc, key % nc,
        pkey // nc, pkey % nc, memory=memory, memory_limit=inst.memory_limit,
        name=f"{inst.name}/coarse{nc}")


@HEURISTICS.register
class Multilevel(Heuristic):
    """Multilevel partitioning: coarsen, solve the coarse graph, uncoarsen with refinement.

    Parameters
    ----------
    coarse_nodes : int
        Stop coarsening at this many nodes.
    cluster_share : float
        A coarse node's work is at most ``cluster_share * W / k``.
    max_ideals : int
        The down-set DP solves the coarse graph when it has at most this many down-sets
        (else ``brkga-100`` does).
    coarse_share : float
        Share of the budget for the coarse solve (the rest refines the levels).
    refine : bool
        Refine every level with ``local_search`` and the finest with ``tube``.
    """

    name = "multilevel"
    citation = ("Karypis & Kumar, SIAM J. Sci. Comput. 20(1) 1998 (multilevel partitioning); "
                "docs/methods/index.md")
    deterministic: ClassVar[bool] = False
    handles: ClassVar[frozenset[str]] = frozenset({"groups", "memory"})

    def __init__(self, *, coarse_nodes: int = 300, cluster_share: float = 0.25,
                 max_ideals: int = 200_000, coarse_share: float = 0.4,
                 refine: bool = True) -> None:
        self.coarse_nodes = coarse_nodes
        self.cluster_share = cluster_share
        self.max_ideals = max_ideals
        self.coarse_share = coarse_share
        self.refine = refine

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Reduce, coarsen, solve the coarsest level, lift and refine level by level."""
        from heuristics.downset_dp import reductions

        t0 = time.perf_counter()
        red, lift, _normalize = reductions(instance, k, True)
        cap = self.cluster_share * red.total_work / k
        mem_cap = (math.inf if red.memory_limit is None
                   else self.cluster_share * 2.0 * red.memory_limit)
        levels: list[Instance] = [red]
        maps: list[IntArray] = []
        if red.n_units < red.n_nodes:  # co-location units first: whole units only
            unit = np.asarray(red.unit_of, dtype=np.int64)
            maps.append(unit)
            levels.append(quotient(red, unit, red.n_units))
        n_interval = 0
        while levels[-1].n_nodes > self.coarse_nodes and not budget.expired():
            cur = levels[-1]
            cluster, nc = coarsen_once(cur, cap, mem_cap)
            if cur.n_nodes - nc < max(1, cur.n_nodes // 20):  # matchings stall: intervals
                cluster, nc = coarsen_along_order(cur, cap, mem_cap)
                n_interval += 1
            if cur.n_nodes - nc < max(1, cur.n_nodes // 100):
                break
            maps.append(cluster)
            levels.append(quotient(cur, cluster, nc))
        stats: dict[str, Any] = {"levels": len(levels), "n_reduced": red.n_nodes,
                                 "n_coarse": levels[-1].n_nodes,
                                 "interval_passes": n_interval,
                                 "coarsen_s": time.perf_counter() - t0}
        coarse = levels[-1]
        stage, how = self._solve_coarse(coarse, k, budget, rng, stats)
        stats["coarse_solver"] = how
        if stage is None:  # the coarse graph admits no partition within the cap
            stats["reason"] = (f"no feasible partition of the coarse graph "
                               f"({coarse.n_nodes} nodes) found by {how}")
            return HeuristicResult(None, Status.NO_SOLUTION, stats)
        stats["coarse_value"] = evaluate(coarse, Partition(stage, k))
        for depth in range(len(levels) - 1, -1, -1):
            if depth < len(levels) - 1:
                stage = stage[maps[depth]]
            if self.refine and not budget.expired():
                level = levels[depth]
                # the remaining time spread over the levels left, the finest gets the most
                share = 1.0 if depth == 0 else 1.0 / (depth + 2)
                sub = budget.fraction(share)
                stage = self._refine(level, k, stage, sub, rng, finest=depth == 0)
        stats["time_s"] = time.perf_counter() - t0
        return HeuristicResult(lift(stage), Status.FEASIBLE, stats)

    def _solve_coarse(self, coarse: Instance, k: int, budget: Budget,
                      rng: np.random.Generator, stats: dict[str, Any]
                      ) -> tuple[IntArray | None, str]:
        """The coarse partition's stage array (None if none found) and its method."""
        sub = budget.fraction(self.coarse_share)
        dp = HEURISTICS.make(f"downset_dp[max_ideals={self.max_ideals}]")
        kc = min(k, coarse.n_nodes)
        res = dp.solve(coarse, kc, sub, rng)
        if res.partition is not None:
            stats["coarse_status"] = res.status.value
            return np.asarray(res.partition.stage_of, dtype=np.int64), "downset_dp"
        stats["coarse_dp"] = str(res.stats.get("reason", res.status.value))
        bk = HEURISTICS.make("brkga-100")
        res = bk.solve(coarse, kc, budget.fraction(self.coarse_share), rng)
        if res.partition is None:
            return None, "brkga-100"
        return np.asarray(res.partition.stage_of, dtype=np.int64), "brkga-100"

    @staticmethod
    def _refine(level: Instance, k: int, stage: IntArray, budget: Budget,
                rng: np.random.Generator, *, finest: bool) -> IntArray:
        """``local_search`` (and on the finest level ``tube``) from ``stage``; never worse."""
        part = Partition(np.ascontiguousarray(stage, dtype=np.int64), k)
        best = evaluate(level, part)
        steps = ("local_search", "tube") if finest else ("local_search",)
        for i, spec in enumerate(steps):
            if budget.expired():
                break
            sub = budget.fraction(1.0 / (len(steps) - i))
            res = HEURISTICS.make(spec).run(level, k, sub, rng,
                                            SolveContext(partition=part))
            if res.partition is not None and res.incumbent is not None \
                    and res.incumbent < best and not math.isnan(res.incumbent):
                best = res.incumbent
                part = Partition(np.asarray(res.partition.stage_of[:level.n_nodes],
                                            dtype=np.int64), k)
        return np.asarray(part.stage_of, dtype=np.int64)
