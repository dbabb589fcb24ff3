"""The public MIP layer: subclass :class:`MipFormulation` to add a MIP relaxation.

* :mod:`~formulations.mip.base`: :class:`MipFormulation` (the eight parameters every MIP
  formulation shares, backend choice, scaling, the safety margin that keeps dual bounds
  valid) and :func:`t_range`;
* :mod:`~formulations.mip.model`: :class:`ModelBuilder`, named variable blocks and
  vectorized linear expressions (:class:`Expr`), assembled into one :class:`MipModel`
  (``c``, sparse ``A``, row and column bounds, integrality);
* :mod:`~formulations.mip.chain`: the K-ordered-blocks structure of MTPP (cumulative
  prefix variables, communication charges, block costs) shared by every formulation;
* :mod:`~formulations.mip.backends`: the solver backends, one registered
  :class:`SolverBackend` class per file (``highs``, ``scipy``, ``cpsat``,
  ``cvxpy:<SOLVER>``), and ``solve_model(model, solver, options)``, which returns one
  :class:`SolveRecord` for all of them.

``docs/extending-mip.md`` shows how to add a relaxation and a backend.
"""

from formulations.mip.backends import (
    BACKENDS,
    SolveOptions,
    SolverBackend,
    SolveRecord,
    available_solvers,
    make_backend,
    parse_solver,
    solve_model,
    solver_available,
)
from formulations.mip.base import (
    MipFormulation,
    doubtful_infeasible,
    numerical_margin,
    solver_tolerance,
    t_range,
)
from formulations.mip.chain import Chain, ScaledCosts, complete_free_column
from formulations.mip.model import Block, Expr, MipModel, ModelBuilder

__all__ = [
    "BACKENDS",
    "Block",
    "Chain",
    "Expr",
    "MipFormulation",
    "MipModel",
    "ModelBuilder",
    "ScaledCosts",
    "SolveOptions",
    "SolveRecord",
    "SolverBackend",
    "available_solvers",
    "complete_free_column",
    "doubtful_infeasible",
    "make_backend",
    "numerical_margin",
    "parse_solver",
    "solve_model",
    "solver_available",
    "solver_tolerance",
    "t_range",
]
