"""Template for a new lower bound: copy to ``formulations/<name>.py`` and fill in.

Files named ``template_*`` are not imported by the registry, so this one is never registered.
A MIP bound subclasses :class:`formulations.mip.MipFormulation` instead, which holds the
parameters every MIP formulation shares and the safety margin of its dual bounds
(``docs/extending-mip.md``).

Model
-----
State the model: variables, constraints and objective, with the symbols mapped to code names.

What it relaxes
---------------
Which parts of the exact problem (docs/theory/problem.md#feasibility) are dropped or aggregated.

Validity
--------
One paragraph: why the optimal value (and any dual bound of it) is <= OPT(G, k).

Size
----
Variables and constraints in n, m, k.

References
----------
Where the method comes from.
"""

from __future__ import annotations

from formulations.base import FORMULATIONS, Formulation, combinatorial_bound
from pipecert.instance import Instance
from pipecert.results import BoundResult, Budget, SolveContext, Status


@FORMULATIONS.register
class MyBound(Formulation):
    """One line shown by ``pipecert list`` and ``pipecert solve --bound all``."""

    name = "my_bound"
    citation = "Author, Venue Year"
    # constrained variants: add to ``handles`` what the bound models (with the proof in the
    # module docstring); groups and memory are relaxed by default (a bound ignoring them
    # stays valid); data-only edges must be handled explicitly (never as ordering edges)
    handles = frozenset({"data_only_edges"})  # this template uses no order at all

    def __init__(self, *, strength: int = 1) -> None:
        self.strength = strength  # every parameter: keyword-only, stored under its own name

    def lower_bound(
        self, instance: Instance, k: int, budget: Budget, context: SolveContext | None = None
    ) -> BoundResult:
        """Return a valid lower bound; poll ``budget.expired()`` in long loops."""
        return BoundResult(combinatorial_bound(instance, k), Status.BOUND)
