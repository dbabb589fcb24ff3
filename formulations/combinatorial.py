"""The simple combinatorial lower bound (spec §4.1).

Model
-----
``LB_comb = max(W / k, max_v w(v))`` with ``W = sum_v w(v)``.

What it relaxes
---------------
All communication and all precedence: only node work is counted.

Validity
--------
In any feasible partition every node's work is paid by exactly one stage and communication
costs are non-negative, so the k stage costs sum to at least W and the largest is at least
W / k. The stage holding v costs at least w(v).

Size
----
O(n) time, no model.

References
----------
Archer, Fahrbach, Liu, Prabhu. Practical Performance Guarantees for Pipelined DNN Inference.
ICML 2024 (the "standard combinatorial bound", 0.4598 of the best partition at k = 16).
"""

from __future__ import annotations

from formulations.base import FORMULATIONS, Formulation, combinatorial_bound
from pipecert.instance import Instance
from pipecert.results import BoundResult, Budget, SolveContext, Status

__all__ = ["CombinatorialBound"]


@FORMULATIONS.register
class CombinatorialBound(Formulation):
    """max(W/k, max w): total work spread over k stages, or the heaviest node."""

    name = "combinatorial"
    citation = "Archer et al., ICML 2024, Section 4 (spec §4.1)"

    def __init__(self) -> None:
        pass

    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """Return ``max(W/k, max w)``; optimal when it meets a known feasible value."""
        value = combinatorial_bound(instance, k)
        return BoundResult(value, Status.BOUND, stats={"n_vars": 0, "n_cons": 0})
