"""An out-of-tree heuristic in one file: slice a topological order at equal work.

Loaded as a plug-in (``pipecert run --plugin work_slices``, with this folder on
``PYTHONPATH``): importing the module registers the class. The worked example of
docs/extending.md; tests/test_plugins.py runs it through the contract suite and
``pipecert run``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from heuristics import HEURISTICS, Heuristic
from pipecert import Budget, HeuristicResult, Instance, Partition, SolveContext, Status


@HEURISTICS.register
class WorkSlices(Heuristic):
    """Cut a topological order into k slices of about equal work (W / k each).

    Parameters
    ----------
    slack : float
        A slice is closed once its work reaches ``slack * W / k``.
    """

    name = "work_slices"
    citation = "docs/extending.md (worked example)"
    deterministic: ClassVar[bool] = True
    # co-location groups, memory caps and data-only edges are not modelled: on an
    # instance with one of them active the framework answers `unsupported` for us
    handles: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, slack: float = 1.0) -> None:
        self.slack = slack

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Close a slice once its work reaches the target; the last slice takes the rest."""
        order = instance.topo_order
        target = self.slack * instance.total_work / k
        cuts: list[int] = []
        acc = 0.0
        for pos, v in enumerate(order[:-1]):
            acc += float(instance.work[v])
            if acc >= target and len(cuts) < k - 1:
                cuts.append(pos + 1)
                acc = 0.0
        # the framework re-scores the partition: return it, never its value
        return HeuristicResult(Partition.from_slices(order, cuts, k), Status.FEASIBLE,
                               {"n_cuts": len(cuts)})
