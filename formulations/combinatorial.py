"""The simple combinatorial lower bound (docs/theory/bounds.md#combinatorial-bound).

Model
-----
``LB_comb = max(W / k, max_U w(U))`` with ``W = sum_v w(v)`` and ``U`` ranging over the
*units* (nodes that must share a stage, :attr:`pipecert.instance.Instance.unit_of`: a single
node unless co-location groups or ordering cycles through groups join nodes).

Variants
--------
It handles every constraint. Groups: the stage holding a unit holds all of it. Data-only
edges: the bound uses no order. Memory cap ``M``: the framework's gate
(:meth:`Formulation.run`) first proves infeasibility when a unit needs more than ``M`` or
the total memory exceeds ``k M`` (``Instance.infeasible_reason``: no fewer stages than
``ceil(sum(memory) / M)`` can hold the graph); otherwise the bound above stands (a cap only
removes partitions, so a bound without it stays valid).

What it relaxes
---------------
All communication and all precedence: only node work is counted.

Validity
--------
In any feasible partition every node's work is paid by exactly one stage and communication
costs are non-negative, so the k stage costs sum to at least W and the largest is at least
W / k. The stage holding unit U costs at least w(U), since every node of U is in that stage.

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
    """max(W/k, max w(U)): total work over k stages, or the heaviest unit (node or group)."""

    name = "combinatorial"
    handles = frozenset({"groups", "memory", "data_only_edges"})
    citation = "Archer et al., ICML 2024, Section 4 (docs/theory/bounds.md#combinatorial-bound)"

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
