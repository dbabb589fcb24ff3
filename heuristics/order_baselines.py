"""Single-order baselines (docs/theory/algorithms.md#baselines): one order sliced by Algorithm 1.

* ``input_order``: the instance's own order (``Instance.topo_order``, the lexicographically
  smallest topological order by node index: the file's order whenever that is topological;
  with co-location groups, the units in their topological numbering);
* ``dfs_order``: depth-first Kahn order (LIFO stack), which keeps chains together;
* ``bfs_order``: breadth-first Kahn order (FIFO queue), level by level;
* ``random_orders``: the best of ``n_orders`` uniformly random-key orders (decoded exactly
  like BRKGA chromosomes), the random-search control at brkga-100's budget of 100
  evaluations.

The first three are deterministic and budget-aware: the exact slicing DP is quadratic in n
on large graphs, so it checks the budget between chunks and, stopped early, returns the
greedy slicing of the same order it starts from (status ``time_limit``,
``stats["slice_exact"] = False``). Every method accepts ``refine=True`` to finish with the
local search of :mod:`heuristics.local_search`. The first three accept ``reduce=True`` to
build and slice their order on the exactly reduced instance (:func:`heuristics.downset_dp.
reduce_instance`; every reduced slicing lifts back at equal cost), which keeps weights and
zero-work views beside their consumers; the default ``False`` is the paper's baseline.

**Constraints** (``handles`` = groups, memory, data-only edges). Every order here is a unit
order (:mod:`heuristics.decoder`: the Kahn orders run over the unit DAG of the ordering
edges and are expanded unit by unit; ``input_order`` lists the units in their topological
numbering), and the slicing cuts only between units and excludes segments over the memory
cap, with the exact cost over all data edges (:mod:`heuristics.slicing`). Hence every
partition returned is feasible: groups lie in one unit, hence one stage; ordering edges go
forward or stay in a stage; data-only edges impose nothing; every stage is within the cap.
When an order has no slicing within the cap into ``k`` stages the method returns no
partition (status ``no_solution``) with ``stats["reason"]``; the instance may still be
feasible (another order may fit), which only the exact methods decide. The reductions are
not used on a constrained instance (:func:`heuristics.base.search_instance`).
"""

from __future__ import annotations

import abc
import math
import time
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from heuristics.base import HEURISTICS, ORDER_BASED, Heuristic, search_instance
from heuristics.decoder import (
    LARGE_N,
    bfs_order,
    decode,
    decode_batch,
    decode_within,
    dfs_order,
    input_order,
    n_genes,
)
from heuristics.downset_dp import lift_partition
from heuristics.local_search import finish
from heuristics.slicing import slice_order_within
from pipecert.instance import Instance
from pipecert.partition import Partition
from pipecert.results import Budget, HeuristicResult, SolveContext, Status

__all__ = ["InputOrder", "DfsOrder", "BfsOrder", "RandomOrders"]


class _SingleOrder(Heuristic):
    """One deterministic topological order, sliced by Algorithm 1.

    Parameters
    ----------
    refine : bool
        Finish with the local search.
    reduce : bool
        Build and slice the order on the exactly reduced instance and lift the result
        back at equal cost (module docstring).
    """

    deterministic: ClassVar[bool] = True
    handles: ClassVar[frozenset[str]] = ORDER_BASED
    citation = "Archer et al., ICML 2024 (Algorithm 1 on a fixed order)"

    def __init__(self, *, refine: bool = False, reduce: bool = False) -> None:
        self.refine = refine
        self.reduce = reduce

    @abc.abstractmethod
    def order(self, instance: Instance) -> NDArray[np.int64]:
        """The unit order to slice (each subclass defines its own)."""

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Slice :meth:`order` optimally into at most ``k`` stages."""
        t0 = time.perf_counter()
        full = instance
        red, kept, host = search_instance(full, self.reduce)
        order = self.order(red)
        val, cuts, complete = slice_order_within(red, order, k, budget, check=False)
        t = time.perf_counter() - t0
        stats: dict[str, Any] = {"slice_value": val, "slice_time_s": t,
                                 "n_nodes_searched": red.n_nodes, "slice_exact": complete}
        if not math.isfinite(val):
            stats["reason"] = (f"no slicing of the {self.name.removesuffix('_order')} order "
                               f"into at most {k} stages meets the memory cap"
                               + ("" if complete else " (greedy slicing, budget ended)"))
            return HeuristicResult(None, Status.NO_SOLUTION if complete else Status.TIME_LIMIT,
                                   stats)
        part: Partition | None = Partition.from_slices(order, cuts.tolist(), k)
        if kept is not None and host is not None and red is not full:
            assert part is not None
            part = lift_partition(full, kept, host, part.stage_of, k)
        part = finish(full, k, part, budget, self.refine, stats)
        status = Status.FEASIBLE if complete else Status.TIME_LIMIT
        return HeuristicResult(part, status, stats, ((t, 1, val),))


@HEURISTICS.register
class InputOrder(_SingleOrder):
    """The input (file) order sliced optimally by Algorithm 1."""

    name = "input_order"

    def order(self, instance: Instance) -> NDArray[np.int64]:
        return input_order(instance)


@HEURISTICS.register
class DfsOrder(_SingleOrder):
    """A depth-first topological order sliced optimally by Algorithm 1."""

    name = "dfs_order"

    def order(self, instance: Instance) -> NDArray[np.int64]:
        return dfs_order(instance)


@HEURISTICS.register
class BfsOrder(_SingleOrder):
    """A breadth-first topological order sliced optimally by Algorithm 1."""

    name = "bfs_order"

    def order(self, instance: Instance) -> NDArray[np.int64]:
        return bfs_order(instance)


@HEURISTICS.register
class RandomOrders(Heuristic):
    """Best of ``n_orders`` random-key orders, each decoded (sorted + sliced) exactly.

    Parameters
    ----------
    n_orders : int
        Number of random key vectors (default 100, brkga-100's evaluation budget).
    batch : int
        Orders decoded between budget checks.
    reduce : bool
        Search the exactly reduced instance, as :class:`heuristics.brkga.Brkga` does.
    refine : bool
        Finish with the local search.

    Notes
    -----
    Each order is sliced with the best value so far as the pruning bound, which is exact for
    "best of": an order whose slicing is not better returns ``inf`` early.
    """

    name = "random_orders"
    handles: ClassVar[frozenset[str]] = ORDER_BASED
    citation = "random search control (same budget as brkga-100)"

    def __init__(self, *, n_orders: int = 100, batch: int = 10, reduce: bool = True,
                 refine: bool = False) -> None:
        self.n_orders = n_orders
        self.batch = batch
        self.reduce = reduce
        self.refine = refine

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Decode random key vectors until ``n_orders`` are done or the budget ends."""
        t0 = time.perf_counter()
        full = instance
        red, kept, host = search_instance(full, self.reduce)
        instance = red
        n = n_genes(instance)
        best_val, best_keys = math.inf, None
        best_order: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
        large = instance.n_nodes > LARGE_N
        history: list[tuple[float, int, float]] = []
        done = 0
        stopped = False
        while done < self.n_orders:
            if done and budget.expired():
                stopped = True
                break
            m = min(self.batch, self.n_orders - done)
            keys = rng.random((m, n))
            for r in range(m):
                if large:  # one decode may take minutes: budget checks inside the DP
                    if done and budget.expired():
                        break
                    v, o_, c_, _done = decode_within(instance, keys[r], k, budget, best_val)
                    if v < best_val:
                        best_order = (o_, c_)
                else:
                    v = decode_batch(instance, keys[r : r + 1], k, best_val)[0]
                done += 1
                if v < best_val:
                    best_val, best_keys = float(v), keys[r].copy()
                    history.append((time.perf_counter() - t0, done, best_val))
        stats: dict[str, Any] = {"evaluations": done, "best_value": best_val}
        if best_keys is None:  # every order missed the memory cap
            stats["reason"] = (f"none of the {done} random orders has a slicing into at most "
                               f"{k} stages that meets the memory cap")
            return HeuristicResult(None, Status.TIME_LIMIT if stopped else Status.NO_SOLUTION,
                                   stats, tuple(history))
        if best_order is not None:
            order, cuts = best_order
        else:
            _, order, cuts = decode(instance, best_keys, k)
        part: Partition | None = Partition.from_slices(order, cuts.tolist(), k)
        if kept is not None and host is not None and red is not full:
            assert part is not None
            part = lift_partition(full, kept, host, part.stage_of, k)
        part = finish(full, k, part, budget, self.refine, stats)
        status = Status.TIME_LIMIT if stopped else Status.FEASIBLE
        return HeuristicResult(part, status, stats, tuple(history))
