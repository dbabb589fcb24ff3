"""What practitioners use today: equal-work splitting that ignores communication.

GPipe (Huang et al. 2019) and DeepSpeed's ``partition_method="parameters"/"uniform"``
balance a *sequence* of layers by compute alone. ``equal_work`` reproduces that on a DAG:
take one topological order (the input order by default) and cut it into at most ``k``
contiguous segments minimising the largest segment **work**, exactly (Algorithm 1 run with
every communication cost set to 0, which is the classic chains-on-chains min-max problem).
Communication is ignored while choosing the cuts, but the partition is scored by the true
cost model like every other method, which is the point of the baseline: it shows what
ignoring communication costs.

**Constraints** (``handles`` = groups, memory, data-only edges). The orders are unit orders
(:mod:`heuristics.decoder`) and the min-max-work DP is Algorithm 1 with zero comm, which cuts
only between units and excludes segments over the instance's memory cap
(:mod:`heuristics.slicing`): every split is feasible (a group lies in one unit, ordering
edges between units go forward, data-only edges order nothing, stages fit the cap) and is
the min-max-work split of the order among the feasible ones. This is what a practitioner's
layer splitter does when layers (forward + backward) must stay on one device and fit its
memory. No feasible split of the order: no partition, with ``stats["reason"]``.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np

from heuristics.base import HEURISTICS, ORDER_BASED, Heuristic
from heuristics.decoder import bfs_order, dfs_order, input_order
from heuristics.local_search import finish
from heuristics.slicing import dp_within, kernel_arrays
from pipecert.instance import Instance, validate_k
from pipecert.partition import Partition
from pipecert.results import Budget, HeuristicResult, SolveContext, Status

__all__ = ["EqualWork"]


@HEURISTICS.register
class EqualWork(Heuristic):
    """Equal-work (GPipe/DeepSpeed style) split of a topological order, ignoring comm.

    Parameters
    ----------
    order : {"input", "dfs", "bfs"}
        Which topological order to split.
    refine : bool
        Finish with the local search (which does see communication).
    """

    name = "equal_work"
    citation = "Huang et al. 2019 (GPipe); DeepSpeed pipeline partitioning"
    deterministic: ClassVar[bool] = True
    handles: ClassVar[frozenset[str]] = ORDER_BASED

    def __init__(self, *, order: str = "input", refine: bool = False) -> None:
        self.order = order
        self.refine = refine

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Min-max-work slicing of the chosen order."""
        t0 = time.perf_counter()
        if self.order == "input":
            order = input_order(instance)
        elif self.order == "dfs":
            order = dfs_order(instance)
        elif self.order == "bfs":
            order = bfs_order(instance)
        else:
            raise ValueError(f"equal_work: unknown order {self.order!r} (input, dfs, bfs)")
        a = kernel_arrays(instance)
        zero = a._replace(comm=np.zeros(instance.n_nodes))
        # budget-aware (quadratic in n on large graphs): the greedy slicing if stopped
        max_work, cuts, complete = dp_within(order, validate_k(k), budget, zero)
        stats: dict[str, Any] = {"max_stage_work": float(max_work), "slice_exact": complete,
                                 "time_s": time.perf_counter() - t0}
        if not math.isfinite(max_work):
            stats["reason"] = (f"no split of the {self.order} order into at most {k} stages "
                               f"meets the memory cap")
            return HeuristicResult(None, Status.NO_SOLUTION if complete else Status.TIME_LIMIT,
                                   stats)
        part: Partition | None = Partition.from_slices(order, cuts.tolist(), k)
        part = finish(instance, k, part, budget, self.refine, stats)
        return HeuristicResult(part, Status.FEASIBLE if complete else Status.TIME_LIMIT, stats)
