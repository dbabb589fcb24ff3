"""Solver backends: one registered :class:`SolverBackend` class per file.

``solve_model(model, solver, options)`` looks the solver name up in :data:`BACKENDS`, makes
the backend and runs it; every backend returns one :class:`SolveRecord` with a raw dual
bound (the caller applies the safety margin). Built in:

* ``highs`` (default, :mod:`~formulations.mip.backends.highs`): highspy from the arrays,
  deadline and cancel through its callbacks, incumbent log;
* ``scipy`` (:mod:`~formulations.mip.backends.scipy_milp`): :func:`scipy.optimize.milp`;
* ``cpsat`` (:mod:`~formulations.mip.backends.cpsat`): OR-Tools CP-SAT on integer data;
* ``cvxpy:<SOLVER>`` (:mod:`~formulations.mip.backends.cvxpy_mip`): every MILP solver cvxpy
  drives (``cvxpy:SCIP``, ``cvxpy:HIGHS``...).

Adding a backend is one file with one class decorated by ``@BACKENDS.register`` (a module
of this package is imported automatically; an out-of-tree one is registered when its module
is imported). Its class attributes state its status map and capabilities
(:class:`SolverBackend`).
"""

from __future__ import annotations

from formulations.mip.backends.base import (
    BACKENDS,
    DEFAULT_TOLERANCE,
    SolveOptions,
    SolverBackend,
    SolveRecord,
)
from formulations.mip.backends.cvxpy_mip import CVXPY_UNKNOWN_GAP, build_cvxpy_problem
from formulations.mip.backends.highs import HARD_GRACE_S, build_highs, stop_abandoned
from formulations.mip.model import MipModel
from pipecert.registry import discover

discover(__name__)

__all__ = [
    "BACKENDS",
    "CVXPY_UNKNOWN_GAP",
    "DEFAULT_TOLERANCE",
    "HARD_GRACE_S",
    "SolveOptions",
    "SolveRecord",
    "SolverBackend",
    "available_solvers",
    "build_cvxpy_problem",
    "build_highs",
    "make_backend",
    "parse_solver",
    "solve_model",
    "solver_available",
    "stop_abandoned",
]

#: Built-in backends listed first, in this order (the default first).
_FIRST = ("highs", "scipy", "cpsat")


def _order(name: str) -> tuple[int, str]:
    return (_FIRST.index(name) if name in _FIRST else len(_FIRST), name)


def _unknown(solver: str) -> ValueError:
    usages = [BACKENDS.get(n).usage() for n in sorted(BACKENDS.names(), key=_order)]
    expected = usages[0] if len(usages) == 1 else \
        f"{', '.join(usages[:-1])} or {usages[-1]}"
    return ValueError(f"unknown solver {solver!r} (expected {expected})")


def parse_solver(solver: str) -> tuple[str, str | None]:
    """``"cvxpy:SCIP"`` -> ``("cvxpy", "SCIP")``; ``"highs"`` -> ``("highs", None)``.

    Raises
    ------
    ValueError
        If no backend has that name, or the option does not fit it (missing or extra).
    """
    head, sep, sub = solver.strip().partition(":")
    head = head.lower()
    if head not in BACKENDS:
        raise _unknown(solver)
    cls = BACKENDS.get(head)
    if (sep and (cls.option == "none" or not sub)) or (not sep and cls.option == "required"):
        raise _unknown(solver)
    return head, cls.normalize_option(sub) if sep else None


def make_backend(solver: str) -> SolverBackend:
    """The backend object for a solver name (:func:`parse_solver` errors)."""
    head, sub = parse_solver(solver)
    return BACKENDS.get(head)(sub)


def solver_available(solver: str) -> tuple[bool, str | None]:
    """Whether ``solver`` can run here, with a reason if not."""
    try:
        backend = make_backend(solver)
    except ValueError as exc:
        return False, str(exc)
    return backend.available()


def available_solvers() -> list[str]:
    """Every solver name usable here (``highs``, ``scipy``, ``cpsat``, ``cvxpy:...``)."""
    out: list[str] = []
    for name in sorted(BACKENDS.names(), key=_order):
        out += BACKENDS.get(name).installed()
    return out


def solve_model(model: MipModel, solver: str = "highs",
                options: SolveOptions | None = None) -> SolveRecord:
    """Solve ``model`` with the named backend (see the module docstring)."""
    return make_backend(solver).solve(model, options or SolveOptions())
