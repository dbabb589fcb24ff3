"""An out-of-tree MIP relaxation in one file: the LP relaxation of the k-block chain model.

The worked example of ``docs/extending-mip.md``; ``tests/test_mip_plugins.py`` loads this
file by path (it belongs to no package of the repository) and checks its bound against brute
force.

Model
-----
The k ordered blocks of :class:`~formulations.mip.chain.Chain` (prefix variables ``P``,
In/Out charges), ``f_j <= T`` for every block cost, minimize ``T``; with ``relax=True``
(default) every variable is continuous.

Validity
--------
With integral ``P`` the model is the exact MIP of ``exact_mip`` (Archer et al., ICML 2024,
Figure 3), whose optimum is OPT; dropping integrality only enlarges the feasible set, so the
LP optimum is ``<= OPT``. The solver's value is reported through
:meth:`~formulations.mip.base.MipFormulation.bound_of`, which takes the safety margin off.

Size
----
``n (k - 1)`` prefix variables, at most ``2 n k`` charges, ``O(m k)`` rows.
"""

from __future__ import annotations

from typing import Any

from formulations.base import FORMULATIONS
from formulations.mip import Chain, MipFormulation, ModelBuilder, doubtful_infeasible, t_range
from pipecert.instance import Instance
from pipecert.results import BoundResult, Budget, SolveContext, Status


@FORMULATIONS.register
class LpChain(MipFormulation):
    """LP relaxation of the k-block chain model (an out-of-tree example)."""

    name = "lp_chain"
    citation = "LP relaxation of Archer et al., ICML 2024, Figure 3"
    handles = frozenset({"groups", "memory", "data_only_edges"})
    relaxes = frozenset()

    def __init__(self, *, relax: bool = True, **shared: Any) -> None:
        super().__init__(**shared)  # solver, form, comb_cut, ..., gap, seed
        self.relax = relax

    def lower_bound(self, instance: Instance, k: int, budget: Budget,
                    context: SolveContext | None = None) -> BoundResult:
        """Solve the (relaxed) chain model; the bound is its safe dual bound."""
        k = min(k, instance.n_units)  # OPT(k) = OPT(#units) beyond (see exact_mip)
        costs = self.scaled_costs(instance)
        lo, hi = t_range(costs, k, context, comb_cut=self.comb_cut,
                         context_lb_cut=self.context_lb_cut, cutoff=self.cutoff)
        mb = ModelBuilder()
        chain = Chain(mb, instance, costs, k, form=self.form)
        T = mb.add_block("T", (), lb=lo, ub=hi, cost=1.0, integer=costs.integer)
        blocks = list(range(1, k + 1))
        mb.add_le(chain.block_costs(blocks) - T.at(), 0.0, name="block_cost")
        chain.memory_rows(blocks)
        model = mb.build(objective_integral=costs.integer)
        if self.relax:
            model.integrality[:] = 0
        rec, _ = self.solve_t_model(model, int(T.cols), costs, budget)
        stats = self.base_stats(model, rec, costs)
        if rec.status is Status.INFEASIBLE:  # T = OPT is feasible: numerics, no bound
            stats.update(doubtful_infeasible("lp_chain model", lo, hi))
            return BoundResult(None, Status.NO_SOLUTION, None, stats)
        return BoundResult(self.bound_of(rec, costs, model), rec.status, None, stats)
