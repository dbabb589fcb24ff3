r"""An out-of-tree lower bound in one file: the pigeonhole bound of the k+1 heaviest units.

Model
-----
Let :math:`U_1, \dots, U_m` be the units of the instance (nodes that must share a stage;
single nodes without co-location groups), sorted by work :math:`w(U_1) \ge \dots \ge
w(U_m)`. For :math:`m > k`:

.. math:: LB = w(U_k) + w(U_{k+1}),

and :math:`LB = w(U_1)` for :math:`m \le k`.

Validity
--------
With :math:`m > k`, two of the :math:`k + 1` heaviest units share one of the k stages
(pigeonhole). That stage pays the work of both, at least the two smallest of them,
:math:`w(U_k) + w(U_{k+1})`, and communication costs are non-negative, so its cost, and
the bottleneck, is at least LB. Every unit lies in some stage, hence the bottleneck is at
least :math:`w(U_1)` too. The argument uses no stage order, so it holds with data-only
edges; ignoring co-location groups (single nodes instead of units) or the memory cap only
enlarges the feasible set, so the bound stays valid when they are relaxed. O(n log n).

This is the classic bound for makespan scheduling on identical machines. The worked example
of docs/extending.md; tests/test_plugins.py runs it through the contract suite and
``pipecert run``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from formulations import FORMULATIONS, Formulation
from pipecert import BoundResult, Budget, Instance, SolveContext, Status


@FORMULATIONS.register
class PigeonholeBound(Formulation):
    """Two of the k+1 heaviest units share a stage: LB = w(U_k) + w(U_{k+1}).

    Parameters
    ----------
    units : bool
        Use the co-location units (True) or single nodes (False: the bound of the
        instance with its groups relaxed, valid as well, never stronger).
    """

    name = "pigeonhole"
    citation = "docs/extending.md (worked example); Graham, SIAM J. Appl. Math. 17 (1969)"
    # the bound uses no order, so it holds with data-only edges: claim them
    handles: ClassVar[frozenset[str]] = frozenset({"data_only_edges"})
    relaxes: ClassVar[frozenset[str]] = frozenset({"groups", "memory"})

    def __init__(self, *, units: bool = True) -> None:
        self.units = units

    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """The bound of the module docstring; solved exactly (status ``solved``)."""
        work = instance.unit_sums(instance.work) if self.units else instance.work
        w = np.sort(np.asarray(work, dtype=np.float64))[::-1]
        bound = float(w[0]) if w.size <= k else float(w[k - 1] + w[k])
        return BoundResult(bound, Status.SOLVED, stats={"n_units": int(w.size)})
