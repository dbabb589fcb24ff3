"""The portfolio: registered methods run in sequence on one ``(instance, k)``, sharing what
they prove, until the gap between the best partition and the best bound is closed.

This layer sits between the methods (:mod:`formulations`, :mod:`heuristics`) and the
harness and command line: it imports the methods, never the layers above.

* :mod:`portfolio.plan` - :class:`Step` (a method spec, its share of the remaining time,
  when it runs), :data:`DEFAULT_PLAN`, :func:`build_plan`, :func:`make_method`;
* :mod:`portfolio.solve` - :func:`solve` (the search behind ``pipecert solve``),
  :func:`warm_up` (compile every kernel of a plan before the clock starts);
* :mod:`portfolio.measure` - ``python -m portfolio.measure``: what each step of the
  default plan contributes (the README's table).
"""

from portfolio.plan import (
    DEFAULT_PLAN,
    REFINE_TUBE,
    Step,
    StepKind,
    build_plan,
    make_method,
    plan_for,
    rescale_shares,
    unsupported_reason,
)
from portfolio.solve import GAP_TOL, PortfolioResult, RunInfo, run_step, solve, warm_up

__all__ = ["GAP_TOL", "Step", "StepKind", "DEFAULT_PLAN", "REFINE_TUBE", "PortfolioResult",
           "RunInfo", "solve", "build_plan", "make_method", "warm_up", "plan_for",
           "rescale_shares", "run_step", "unsupported_reason"]
