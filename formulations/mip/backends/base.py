"""The :class:`SolverBackend` base class, the ``BACKENDS`` registry and the shared records.

A backend is one class in one file, registered with ``@BACKENDS.register``::

    @BACKENDS.register
    class MyBackend(SolverBackend):
        name = "mine"                       # the solver name: ``solver="mine"``
        requires = ("mysolver",)            # modules it needs (checked without importing)
        status_map = {"optimal": Status.OPTIMAL, "time_limit": Status.TIME_LIMIT,
                      "infeasible": Status.INFEASIBLE}
        tolerance = 1.2e-6                  # sum of its absolute tolerances (the margin)

        def solve(self, model, opts):
            ...                             # run the solver on the arrays of ``model``
            return self.record(raw_status, dual, primal, x, version, elapsed)

:meth:`SolverBackend.record` maps the solver's raw status through ``status_map`` (an unknown
status is ``ERROR``) and applies the rules every backend shares, so a backend never writes
them out again: a non-finite dual bound is no bound; ``INFEASIBLE`` carries no bound and no
solution; ``ERROR`` carries no bound; ``NO_SOLUTION`` with a bound or a solution is a stop at
a limit (``TIME_LIMIT``).

The dual bound in a :class:`SolveRecord` is *raw* (model units, no safety margin): the
formulation applies the margin of :mod:`formulations.mip.base`, computed from the backend's
:attr:`SolverBackend.tolerance` (:data:`DEFAULT_TOLERANCE` if it declares none).
"""

from __future__ import annotations

import abc
import importlib.util
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from formulations.mip.model import MipModel
from pipecert import cancel as _cancel
from pipecert.registry import Registry
from pipecert.results import Status

__all__ = ["BACKENDS", "DEFAULT_TOLERANCE", "SolveOptions", "SolveRecord", "SolverBackend"]

#: Tolerance assumed for a backend that declares none (no MILP solver defaults looser).
DEFAULT_TOLERANCE = 1e-5


@dataclass
class SolveOptions:
    """Solver-independent options.

    ``stop_below``: stop as soon as an incumbent with objective ``<= stop_below`` exists
    (the caller cannot use a better dual bound any more). ``stop_dual_above``: stop once
    the dual bound reaches it. Both are best-effort (HiGHS, CP-SAT).
    """

    time_limit_s: float = math.inf
    gap: float = 1e-6
    threads: int = 1
    seed: int = 0
    node_limit: int | None = None
    warm_start: NDArray[np.float64] | None = None
    cancel: threading.Event | None = None
    stop_below: float | None = None
    stop_dual_above: float | None = None

    def cancelled(self) -> bool:
        """True once the caller's event or the process-wide cancel flag is set."""
        return _cancel.requested() or (self.cancel is not None and self.cancel.is_set())


@dataclass
class SolveRecord:
    """What every backend returns.

    ``status`` is one of OPTIMAL (model solved to optimality), TIME_LIMIT (stopped by a
    limit or interrupted; ``dual_bound`` and ``x`` may exist), INFEASIBLE, NO_SOLUTION,
    ERROR. ``dual_bound`` is raw (no margin), None if the solver proved none.
    ``x`` is a primal solution (None if none was found), ``primal`` its objective.
    ``log`` holds ``(time_s, dual_bound, primal)`` at each improving solution.
    ``stopped_by`` names an early stop requested through :class:`SolveOptions`
    (``stop_below``, ``stop_dual_above``, ``deadline``, ``cancelled``), empty otherwise.
    """

    status: Status
    dual_bound: float | None
    primal: float | None
    x: NDArray[np.float64] | None
    solver: str
    solver_version: str
    solve_time_s: float
    nodes: int | None = None
    log: list[tuple[float, float | None, float | None]] = field(default_factory=list)
    message: str = ""
    stopped_by: str = ""


class SolverBackend(abc.ABC):
    """One MILP solver: how to run it on a :class:`MipModel`, and what it can do.

    A backend instance is made per solve by :func:`formulations.mip.backends.make_backend`
    from a solver name ``"<name>"`` or ``"<name>:<option>"`` (``cvxpy:SCIP``: the option is
    the solver cvxpy drives).

    Attributes
    ----------
    name : str
        Registry name, the ``solver`` parameter of every MIP formulation.
    requires : tuple of str
        Modules the backend needs; :meth:`available` checks them without importing.
    option : {"none", "optional", "required"}
        Whether the name takes a ``:<option>`` suffix.
    status_map : mapping
        The solver's raw status (as the backend passes it to :meth:`record`) -> status.
    tolerance : float
        Sum of the absolute tolerances the solver works with at its defaults (primal
        feasibility + dual feasibility + integrality), used by the safety margin; 0 for an
        exact backend. :meth:`tolerance_for` may refine it per option.
    integer_variables : bool
        Solves models with integer columns (a pure LP solver would say False).
    integer_data : bool
        Needs integral coefficients and bounds (CP-SAT): the formulation then floors its
        scaled costs to integers, which keeps the bound valid.
    dual_bound : bool
        Reports a global dual bound when stopped at a limit.
    time_limit, threads, node_limit, warm_start : bool
        Which :class:`SolveOptions` the solver honours.
    incumbent_log : bool
        Fills :attr:`SolveRecord.log` at each improving solution.
    cancellable : bool
        Stops a running solve when :meth:`SolveOptions.cancelled` turns true.
    """

    name: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    option: ClassVar[str] = "none"
    status_map: ClassVar[Mapping[Any, Status]] = {}
    tolerance: ClassVar[float] = DEFAULT_TOLERANCE
    integer_variables: ClassVar[bool] = True
    integer_data: ClassVar[bool] = False
    dual_bound: ClassVar[bool] = True
    time_limit: ClassVar[bool] = True
    threads: ClassVar[bool] = False
    node_limit: ClassVar[bool] = False
    warm_start: ClassVar[bool] = False
    incumbent_log: ClassVar[bool] = False
    cancellable: ClassVar[bool] = False

    def __init__(self, sub: str | None = None) -> None:
        if self.option == "none" and sub is not None:
            raise ValueError(f"solver {self.name!r} takes no ':<option>' (got {sub!r})")
        if self.option == "required" and not sub:
            raise ValueError(f"solver {self.name!r} needs an option: {self.name}:<OPTION>")
        self.sub = sub

    @classmethod
    def normalize_option(cls, sub: str) -> str:
        """The canonical spelling of an option (default: as given)."""
        return sub

    @property
    def solver(self) -> str:
        """The full solver name, ``name`` or ``name:option``."""
        return self.name if self.sub is None else f"{self.name}:{self.sub}"

    @classmethod
    def usage(cls) -> str:
        """How the name is written: ``highs``, ``cvxpy:<SOLVER>``..."""
        return cls.name if cls.option == "none" else f"{cls.name}:<OPTION>"

    def available(self) -> tuple[bool, str | None]:
        """Whether this solver can run here, with a reason if not."""
        for mod in self.requires:
            if importlib.util.find_spec(mod) is None:
                return False, f"solver {self.solver!r} needs the missing module {mod}"
        return True, None

    @classmethod
    def installed(cls) -> list[str]:
        """Every solver name of this backend usable here (``[name]`` if available)."""
        try:
            b = cls()
        except ValueError:
            return []
        return [b.solver] if b.available()[0] else []

    def tolerance_for(self) -> float:
        """The summed absolute tolerance of this solver (option included)."""
        return float(self.tolerance)

    @abc.abstractmethod
    def solve(self, model: MipModel, opts: SolveOptions) -> SolveRecord:
        """Solve ``model`` within ``opts``; the dual bound in the record is raw."""

    def map_status(self, raw: Any) -> Status:
        """The status of a raw solver status (``ERROR`` if the map does not know it)."""
        return self.status_map.get(raw, Status.ERROR)

    def record(self, raw: Any, dual: float | None, primal: float | None,
               x: NDArray[np.float64] | None, version: str, solve_time_s: float, *,
               nodes: int | None = None,
               log: list[tuple[float, float | None, float | None]] | None = None,
               message: str | None = None, stopped_by: str = "",
               status: Status | None = None) -> SolveRecord:
        """A :class:`SolveRecord` from the solver's raw answer, with the shared rules.

        ``status`` overrides the map (a status the raw value alone does not decide).
        """
        st = self.map_status(raw) if status is None else status
        if dual is not None and not math.isfinite(float(dual)):
            dual = None
        if st is Status.INFEASIBLE:
            dual, x, primal = None, None, None
        elif st is Status.ERROR:
            dual = None
        elif st is Status.NO_SOLUTION and (dual is not None or x is not None):
            st = Status.TIME_LIMIT
        return SolveRecord(st, None if dual is None else float(dual), primal, x, self.solver,
                           version, solve_time_s, nodes, log if log is not None else [],
                           message=str(raw) if message is None else message,
                           stopped_by=stopped_by)


BACKENDS: Registry[SolverBackend] = Registry("solver backend", SolverBackend)  # type: ignore[type-abstract]
"""MILP solver backends by name; ``@BACKENDS.register`` adds one."""


def finite_limit(t: float) -> float:
    """A time limit a solver accepts (``1e30`` for none)."""
    return float(t) if math.isfinite(t) else 1e30


def clean_x(model: MipModel, x: Any) -> NDArray[np.float64] | None:
    """``x`` as a finite vector of the model's size, or None."""
    if x is None:
        return None
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != (model.n_vars,) or not np.all(np.isfinite(arr)):
        return None
    return arr
