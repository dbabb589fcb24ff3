"""The MIP layer: models in scipy's standard MILP form, and the backends that solve them.

* :mod:`~formulations._mip.model`: :class:`ModelBuilder`, named variable blocks and
  vectorized linear expressions (:class:`Expr`), assembled into one :class:`MipModel`
  (``c``, sparse ``A``, row and column bounds, integrality).
* :mod:`~formulations._mip.backends`: ``solve_model(model, solver, options)`` for
  ``highs`` (default), ``cvxpy:<SOLVER>``, ``scipy`` and ``cpsat``, all returning one
  :class:`SolveRecord`.
* :mod:`~formulations._mip.chain`: the K-ordered-blocks structure of MTPP (cumulative
  prefix variables, communication charges, block costs) shared by every formulation.
* :mod:`~formulations._mip.template`: :class:`MipFormulation`, scaling and safe bounds.

Private to ``formulations`` (the package's auto-discovery skips ``_*`` modules).
"""

from formulations._mip.backends import (
    SolveOptions,
    SolveRecord,
    available_solvers,
    parse_solver,
    solve_model,
    solver_available,
)
from formulations._mip.chain import Chain, ScaledCosts, complete_free_column
from formulations._mip.model import Block, Expr, MipModel, ModelBuilder
from formulations._mip.template import MipFormulation, t_range

__all__ = [
    "Block",
    "Chain",
    "Expr",
    "MipFormulation",
    "MipModel",
    "ModelBuilder",
    "ScaledCosts",
    "SolveOptions",
    "SolveRecord",
    "available_solvers",
    "complete_free_column",
    "parse_solver",
    "solve_model",
    "solver_available",
    "t_range",
]
