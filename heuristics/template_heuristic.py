"""Template for a new upper-bound method: copy to ``heuristics/<name>.py`` and fill in.

Files named ``template_*`` are not imported by the registry, so this one is never registered.
The harness re-scores the returned partition with :func:`pipecert.evaluate` and checks its
feasibility: return the partition, never its value.
"""

from __future__ import annotations

import numpy as np

from heuristics.base import HEURISTICS, Heuristic
from pipecert.instance import Instance
from pipecert.partition import Partition
from pipecert.results import Budget, HeuristicResult, SolveContext, Status


@HEURISTICS.register
class MyHeuristic(Heuristic):
    """One line shown by ``pipecert list`` and ``pipecert solve --heuristic all``."""

    name = "my_heuristic"
    citation = None
    deterministic = True

    def __init__(self, *, passes: int = 1) -> None:
        self.passes = passes

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Put every node in one stage (always feasible); replace with a real search."""
        return HeuristicResult(Partition(np.zeros(instance.n_nodes, dtype=np.int64), k),
                               Status.FEASIBLE)
