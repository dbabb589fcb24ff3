"""An out-of-tree improvement step in one file: move nodes across stage boundaries.

The step subclasses :class:`heuristics.Improver`: it refines the incumbent partition of the
run context (``SolveContext.partition``, the best partition known when the step runs; the
base class checks it is feasible), and without one it first runs its starting heuristic
(``start``, here the input order sliced exactly, or the ``base`` parameter). Every candidate
is checked with :func:`pipecert.check_feasible` and scored with :func:`pipecert.evaluate`,
the framework's reference functions, so the step handles every constraint (co-location
groups, memory caps, data-only edges) without modelling any. The worked example of
docs/extending.md; tests/test_plugins.py runs it through the contract suite
(``ImproverContract``) and ``pipecert run``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from heuristics import HEURISTICS, Improver
from pipecert import (
    CONSTRAINTS,
    Budget,
    Instance,
    Partition,
    SolveContext,
    Status,
    check_feasible,
    evaluate,
)


@HEURISTICS.register
class BoundaryMoves(Improver):
    """Refine the incumbent by moving one node at a time to an adjacent stage.

    A move is kept when the partition stays feasible and its bottleneck drops (first
    improvement, in node order); passes repeat until none improves, ``max_passes`` or the
    budget. The result is never worse than the partition it starts from.

    Parameters
    ----------
    max_passes : int
        Cap on passes over the nodes.
    base : str, optional
        Heuristic whose partition is improved instead of the context's incumbent.
    """

    name = "boundary_moves"
    citation = "docs/extending.md (worked example)"
    deterministic: ClassVar[bool] = True
    handles: ClassVar[frozenset[str]] = frozenset(CONSTRAINTS)

    def __init__(self, *, max_passes: int = 20, base: str | None = None) -> None:
        self.max_passes = max_passes
        self.base = base

    def improve(
        self,
        instance: Instance,
        k: int,
        partition: Partition,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> tuple[Partition, Status, dict[str, Any]]:
        """Apply improving single-node moves to the feasible ``partition``."""
        stage = partition.stage_of.copy()
        best = evaluate(instance, partition)
        moves = passes = 0
        improved = True
        while improved and passes < self.max_passes and not budget.expired():
            improved = False
            passes += 1
            for v in range(instance.n_nodes):
                s = int(stage[v])
                for t in (s - 1, s + 1):
                    if not 0 <= t < k:
                        continue
                    stage[v] = t
                    cand = Partition(stage, k)
                    if not check_feasible(instance, cand, k=k) \
                            and (value := evaluate(instance, cand)) < best:
                        best, moves, improved = value, moves + 1, True
                        break  # keep the move
                    stage[v] = s  # undo
        return Partition(stage, k), Status.FEASIBLE, {"moves": moves, "passes": passes}
