"""Local-search refinement: move single nodes between adjacent stages (pipecert).

:func:`refine_partition` improves any feasible partition. A move takes one node ``v`` from
stage ``s`` to an adjacent stage ``t = s - 1`` or ``s + 1`` (an empty stage index is fine:
stage indices stay in ``0..k-1``, so at most ``k`` stages are used). It is feasible iff every
ordering predecessor of ``v`` is in a stage ``<= t`` and every ordering successor in a stage
``>= t``.

**Only stages s and t change cost** (so the delta is exact and O(deg)). Let ``u`` be a data
predecessor of ``v`` in a stage ``a`` not in {s, t}: ``u`` keeps a consumer outside ``a``, so
its out-charge at ``a`` is unchanged. Let ``x`` be a data successor of ``v`` in a stage ``c``
not in {s, t}: ``v`` is outside ``c`` before and after, so ``c``'s in-charge for ``v`` is
unchanged. Every other producer's charges do not involve ``v``. With
``cnt[u, b]`` = number of data successors of ``u`` in stage ``b`` (maintained under moves):

* stage ``b`` pays the in-charge ``c(u)`` iff ``u`` is not in ``b`` and ``cnt[u, b] > 0``;
* stage ``b`` pays the out-charge ``c(u)`` iff ``u`` is in ``b`` and
  ``outdeg(u) - cnt[u, b] > 0``.

Moving ``v`` updates ``cnt[u, s] -= 1, cnt[u, t] += 1`` for each data predecessor ``u``, and
the two stage costs are recomputed from these rules for ``v`` and its predecessors.

The search is first-improvement on the bottleneck: while some bottleneck stage ``b`` (cost
equal to the maximum) has a feasible move that touches ``b`` (a node of ``b`` moving out, or
a node of ``b - 1``/``b + 1`` moving in; since ``f`` is not monotone, adding a node can lower
a stage's cost) after which both changed stages cost strictly less than the bottleneck,
apply it. Each accepted move lowers the bottleneck or the number of stages attaining it, so
the search terminates; it also stops at ``max_moves`` or when the budget expires. Each round
of moves is followed by a re-slicing (Algorithm 1 on the stage-major order of the result,
which can move every cut at once and is never worse), and rounds repeat while either helps.

**Constraints** (``handles`` = groups, memory, data-only edges). On a constrained instance a
move takes a whole *unit* (:attr:`Instance.unit_of`, the nodes that must share a stage) from
``s`` to ``t``; it is allowed iff every ordering neighbour outside the unit permits it
(predecessors at stages ``<= t``, successors at ``>= t``; ordering edges only, so data-only
edges never block a move) and stage ``t``'s memory plus the unit's stays within the cap.
From a feasible partition every accepted move keeps it feasible (groups stay whole, ordering
edges keep their direction, ``t`` fits the cap and ``s`` only loses memory). The unit's
members are moved one after the other with the exact single-node delta above (each step
changes only stages ``s`` and ``t``, so the composite does too); a rejected move is undone.
The re-slicing uses the stage-major *unit* order and the constrained slicing of
:mod:`heuristics.slicing` (cuts between units, within the cap), and every candidate is
re-checked with :func:`check_feasible` before it is accepted, so the result is always
feasible. Unconstrained instances run the original single-node kernel.

:class:`LocalSearch` (registered as ``local_search``) runs any registered heuristic given by
its ``base`` spec and refines the result; every heuristic of this package also takes
``refine=True``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numba as nb
import numpy as np

from heuristics.base import HEURISTICS, ORDER_BASED, Heuristic, run_base
from heuristics.decoder import gene_arrays, stage_major_order, unitised
from heuristics.slicing import kernel_arrays
from pipecert.instance import Instance
from pipecert.partition import Partition, check_feasible, evaluate, stage_costs
from pipecert.results import Budget, HeuristicResult, SolveContext

__all__ = ["refine_partition", "LocalSearch", "finish"]


@nb.njit(cache=True, nogil=True)
def _stage_cost_after(b, v, s, t, stage, cnt, cost, work, comm, outdeg, pred_ptr, pred_idx):  # type: ignore[no-untyped-def]
    """Cost of stage ``b`` (``b`` is ``s`` or ``t``) after moving ``v`` from ``s`` to ``t``."""
    c = cost[b]
    if b == s:
        c -= work[v]
    else:
        c += work[v]
    # v's own charges at b
    old_in = stage[v] != b and cnt[v, b] > 0
    old_out = stage[v] == b and outdeg[v] - cnt[v, b] > 0
    new_in = t != b and cnt[v, b] > 0
    new_out = t == b and outdeg[v] - cnt[v, b] > 0
    c += comm[v] * ((new_in + new_out) - (old_in + old_out))
    for e in range(pred_ptr[v], pred_ptr[v + 1]):
        u = pred_idx[e]
        before = cnt[u, b]
        after = before - 1 if b == s else before + 1
        if stage[u] == b:
            c += comm[u] * ((outdeg[u] - after > 0) - (outdeg[u] - before > 0))
        else:
            c += comm[u] * ((after > 0) - (before > 0))
    return c


@nb.njit(cache=True, nogil=True)
def _feasible_move(v, t, stage, optr, osucc, pptr, ppred):  # type: ignore[no-untyped-def]
    for e in range(optr[v], optr[v + 1]):
        if stage[osucc[e]] < t:
            return False
    for e in range(pptr[v], pptr[v + 1]):
        if stage[ppred[e]] > t:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _apply(v, t, stage, cnt, pred_ptr, pred_idx):  # type: ignore[no-untyped-def]
    s = stage[v]
    for e in range(pred_ptr[v], pred_ptr[v + 1]):
        u = pred_idx[e]
        cnt[u, s] -= 1
        cnt[u, t] += 1
    stage[v] = t


@nb.njit(cache=True, nogil=True)
def _ls_round(stage, cnt, cost, k, work, comm, outdeg, pred_ptr, pred_idx, optr, osucc,  # type: ignore[no-untyped-def]
              pptr, ppred, max_moves, tol):
    """Apply up to ``max_moves`` improving moves; returns the number applied."""
    n = stage.size
    moves = 0
    while moves < max_moves:
        B = cost.max()
        improved = False
        for b in range(k):
            if cost[b] < B - tol:
                continue
            for v in range(n):
                s = stage[v]
                if s == b:
                    targets = (b - 1, b + 1)
                elif s == b - 1 or s == b + 1:
                    targets = (b, -1)
                else:
                    continue
                for t in targets:
                    if t < 0 or t >= k:
                        continue
                    if not _feasible_move(v, t, stage, optr, osucc, pptr, ppred):
                        continue
                    cs = _stage_cost_after(s, v, s, t, stage, cnt, cost, work, comm, outdeg,
                                           pred_ptr, pred_idx)
                    if cs >= B - tol:
                        continue
                    ct = _stage_cost_after(t, v, s, t, stage, cnt, cost, work, comm, outdeg,
                                           pred_ptr, pred_idx)
                    if ct >= B - tol:
                        continue
                    _apply(v, t, stage, cnt, pred_ptr, pred_idx)
                    cost[s] = cs
                    cost[t] = ct
                    moves += 1
                    improved = True
                    break
                if improved:
                    break
            if improved:
                break
        if not improved:
            break
    return moves


@nb.njit(cache=True, nogil=True)
def _unit_move_ok(g, t, stage, smem, umem, mem_limit, mptr, members, unit, optr, osucc,  # type: ignore[no-untyped-def]
                  pptr, ppred):
    """Whether unit ``g`` may move to stage ``t``: its ordering neighbours in other units
    allow it and stage ``t`` keeps within the memory cap."""
    if smem[t] + umem[g] > mem_limit:
        return False
    for q in range(mptr[g], mptr[g + 1]):
        v = members[q]
        for e in range(optr[v], optr[v + 1]):
            x = osucc[e]
            if unit[x] != g and stage[x] < t:
                return False
        for e in range(pptr[v], pptr[v + 1]):
            x = ppred[e]
            if unit[x] != g and stage[x] > t:
                return False
    return True


@nb.njit(cache=True, nogil=True)
def _ls_round_u(stage, cnt, cost, smem, k, work, comm, outdeg, pred_ptr, pred_idx, optr,  # type: ignore[no-untyped-def]
                osucc, pptr, ppred, mptr, members, unit, umem, mem_limit, max_moves, tol):
    """:func:`_ls_round` moving whole units within the memory cap (module docstring).

    A unit's members move one at a time with the exact single-node deltas (each touches
    only stages ``s`` and ``t``); the move is kept if both stages end strictly below the
    bottleneck, else undone (counts restored by the reverse moves, costs from a copy).
    """
    ng = mptr.size - 1
    moves = 0
    while moves < max_moves:
        B = cost.max()
        improved = False
        for b in range(k):
            if cost[b] < B - tol:
                continue
            for g in range(ng):
                s = stage[members[mptr[g]]]
                if s == b:
                    targets = (b - 1, b + 1)
                elif s == b - 1 or s == b + 1:
                    targets = (b, -1)
                else:
                    continue
                for t in targets:
                    if t < 0 or t >= k:
                        continue
                    if not _unit_move_ok(g, t, stage, smem, umem, mem_limit, mptr, members,
                                         unit, optr, osucc, pptr, ppred):
                        continue
                    old_s = cost[s]
                    old_t = cost[t]
                    for q in range(mptr[g], mptr[g + 1]):
                        v = members[q]
                        cs = _stage_cost_after(s, v, s, t, stage, cnt, cost, work, comm,
                                               outdeg, pred_ptr, pred_idx)
                        ct = _stage_cost_after(t, v, s, t, stage, cnt, cost, work, comm,
                                               outdeg, pred_ptr, pred_idx)
                        _apply(v, t, stage, cnt, pred_ptr, pred_idx)
                        cost[s] = cs
                        cost[t] = ct
                    if cost[s] < B - tol and cost[t] < B - tol:
                        smem[s] -= umem[g]
                        smem[t] += umem[g]
                        moves += 1
                        improved = True
                        break
                    for q in range(mptr[g + 1] - 1, mptr[g] - 1, -1):
                        _apply(members[q], s, stage, cnt, pred_ptr, pred_idx)
                    cost[s] = old_s
                    cost[t] = old_t
                if improved:
                    break
            if improved:
                break
        if not improved:
            break
    return moves


def _moves(
    instance: Instance, partition: Partition, k: int, budget: Budget, max_moves: int,
    chunk: int,
) -> tuple[Partition, int]:
    """Apply improving single-node moves until none is left (or a cap); returns the moves."""
    part = partition if partition.k == k else partition.with_k(max(k, partition.k))
    kk = part.k
    stage = np.ascontiguousarray(part.stage_of, dtype=np.int64).copy()
    a = kernel_arrays(instance)
    n = instance.n_nodes
    cnt = np.zeros((n, kk), dtype=np.int64)
    np.add.at(cnt, (instance.src, stage[instance.dst]), 1)
    outdeg = np.ascontiguousarray(instance.out_degree, dtype=np.int64)
    optr, osucc = (np.ascontiguousarray(x) for x in instance.order_succ_csr)
    pptr, ppred = (np.ascontiguousarray(x) for x in instance.order_pred_csr)
    cost = np.ascontiguousarray(stage_costs(instance, Partition(stage, kk)).total, np.float64)
    tol = 1e-9 * max(1.0, float(cost.max()))
    moves = 0
    if instance.constraints:  # whole units, memory cap
        _, _, _, mptr, members = gene_arrays(instance)
        unit = np.ascontiguousarray(instance.unit_of, dtype=np.int64)
        if not unitised(instance):  # genes are nodes: unit ids must be the gene ids
            unit = np.arange(n, dtype=np.int64)
        umem = np.bincount(unit, weights=a.mem, minlength=mptr.size - 1)
        smem = np.bincount(stage, weights=a.mem, minlength=kk).astype(np.float64)
    while moves < max_moves and not budget.expired():
        if instance.constraints:
            got = _ls_round_u(stage, cnt, cost, smem, k, a.work, a.comm, outdeg, a.pred_ptr,
                              a.pred_idx, optr, osucc, pptr, ppred, mptr, members, unit, umem,
                              a.mem_limit, min(chunk, max_moves - moves), tol)
        else:
            got = _ls_round(stage, cnt, cost, k, a.work, a.comm, outdeg,
                            a.pred_ptr, a.pred_idx, optr, osucc, pptr, ppred,
                            min(chunk, max_moves - moves), tol)
        moves += got
        if got < chunk:
            break
    return Partition(stage, part.k), moves


def refine_partition(
    instance: Instance,
    partition: Partition,
    k: int,
    budget: Budget | None = None,
    *,
    max_moves: int = 100_000,
    chunk: int = 200,
    reslice: bool = True,
    max_rounds: int = 50,
) -> tuple[Partition, dict[str, Any]]:
    """Improve a feasible partition by adjacent-stage single-node moves (module docstring).

    With ``reslice`` (default) every round of moves is followed by Algorithm 1 on the
    stage-major topological order of the result (the stages concatenated, each in
    topological order): the partition is one slicing of that order, so the optimal slicing
    is never worse, and it can move every cut at once. Rounds repeat while either step
    improves (at most ``max_rounds``).

    Returns the refined partition (never worse, re-scored by the reference cost function;
    if rounding ever made it worse the input is returned) and stats ``ls_moves``,
    ``ls_reslices`` (improving re-slicings), ``ls_before``, ``ls_after``, ``ls_time_s``.
    """
    from heuristics.slicing import slice_order_within

    t0 = time.perf_counter()
    budget = budget if budget is not None else Budget()
    before = evaluate(instance, partition)
    cur, cur_val = partition, before
    moves = 0
    reslices = 0
    for _ in range(max_rounds):
        cand, got = _moves(instance, cur, k, budget, max_moves - moves, chunk)
        moves += got
        val = evaluate(instance, cand)
        improved = False
        if val < cur_val and not check_feasible(instance, cand, k=k):
            cur, cur_val, improved = cand, val, True
        if reslice and not budget.expired():
            order = stage_major_order(instance, cur.stage_of)
            # the DP checks the budget between chunks (quadratic in n on large graphs);
            # stopped early it gives the greedy slicing of the order, used if better
            v, cuts, _done = slice_order_within(instance, order, k, budget, upper=cur_val,
                                                check=False)
            if v < cur_val:
                sliced = Partition.from_slices(order, cuts.tolist(), k)
                sv = evaluate(instance, sliced)
                if sv < cur_val and not check_feasible(instance, sliced, k=k):
                    cur, cur_val, improved = sliced, sv, True
                    reslices += 1
        if not improved or moves >= max_moves or budget.expired():
            break
    return cur, {"ls_moves": int(moves), "ls_reslices": reslices, "ls_before": before,
                 "ls_after": cur_val, "ls_time_s": time.perf_counter() - t0}


def finish(
    instance: Instance, k: int, partition: Partition | None, budget: Budget, refine: bool,
    stats: dict[str, Any],
) -> Partition | None:
    """Refine ``partition`` in place of the caller when ``refine`` is set (adds stats)."""
    if not refine or partition is None:
        return partition
    out, st = refine_partition(instance, partition, k, budget)
    stats.update(st)
    return out


@HEURISTICS.register
class LocalSearch(Heuristic):
    """Run the heuristic ``base`` (any registered spec), then refine by local search.

    Parameters
    ----------
    base : str
        Method spec of the starting heuristic, e.g. ``"brkga-100"`` or ``"input_order"``.
    max_moves : int
        Cap on accepted moves.
    """

    name = "local_search"
    handles: ClassVar[frozenset[str]] = ORDER_BASED
    citation = "pipecert (adjacent-stage node moves with exact delta costs)"

    def __init__(self, *, base: str = "input_order", max_moves: int = 100_000) -> None:
        self.base = base
        self.max_moves = max_moves

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Run ``base`` on a share of the budget, then refine its partition."""
        res, stats = run_base(self, self.base, instance, k, budget, rng, context, 0.8)
        if res.partition is None:
            return HeuristicResult(None, res.status, stats, res.history)
        part, st = refine_partition(instance, res.partition, k, budget,
                                    max_moves=self.max_moves)
        stats.update(st)
        # refinement never makes a partition worse, so an optimal one stays optimal
        return HeuristicResult(part, res.status, stats, res.history)
