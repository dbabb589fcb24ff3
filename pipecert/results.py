"""Shared result types: statuses, budgets, bound and heuristic results, tolerances."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pipecert import cancel
from pipecert.partition import Partition
from pipecert.registry import Role

__all__ = [
    "Status",
    "Budget",
    "BoundResult",
    "HeuristicResult",
    "SolveContext",
    "BOUND_RTOL",
    "BOUND_ATOL",
    "DUAL_BOUND_MARGIN",
    "safe_dual_bound",
    "bound_exceeds",
    "closes",
    "CLOSE_RTOL",
    "RunOutcome",
    "STATUS_MEANINGS",
    "jsonable",
]

#: Relative tolerance when comparing a bound with a partition value.
BOUND_RTOL = 1e-6
#: Absolute tolerance when comparing a bound with a partition value.
BOUND_ATOL = 1e-9
#: Relative safety margin taken off every floating-point solver dual bound, on top of the
#: absolute margin derived from the solver's tolerances and the model's row magnitudes
#: (``abs_margin`` below; see formulations/mip/base.py for the argument). MIP solvers
#: (HiGHS, SCIP, CP-SAT) prove bounds up to feasibility/optimality tolerances of about 1e-9 to
#: 1e-6 relative on scaled data.
DUAL_BOUND_MARGIN = 1e-6


def safe_dual_bound(value: float | None, *, scale: float = 1.0,
                    abs_margin: float = 0.0) -> float | None:
    """A solver's dual bound minus the documented safety margins, or None if unusable.

    ``abs_margin`` (model units, >= 0) is taken off first, then ``scale`` multiplies the
    value (models are solved on scaled data), then the relative :data:`DUAL_BOUND_MARGIN`
    and :data:`BOUND_ATOL` are taken off. The result is never negative.
    """
    if value is None or not math.isfinite(value) or not math.isfinite(abs_margin):
        return None
    v = (float(value) - max(0.0, float(abs_margin))) * scale
    if not math.isfinite(v):
        return None
    return max(0.0, v - abs(v) * DUAL_BOUND_MARGIN - BOUND_ATOL)


#: Relative distance within which a lower bound meets a feasible value: the gap is closed
#: (the bound proves the value optimal up to the solvers' numerical resolution).
CLOSE_RTOL = 1e-5


def closes(bound: float, value: float) -> bool:
    """True if ``bound`` meets the feasible ``value`` within :data:`CLOSE_RTOL` (or above)."""
    return bound >= value - CLOSE_RTOL * abs(value) - BOUND_ATOL


def bound_exceeds(bound: float, value: float) -> bool:
    """True if ``bound`` is above ``value`` beyond the comparison tolerances."""
    return bound > value + BOUND_ATOL + BOUND_RTOL * abs(value)


class Status(StrEnum):
    """Outcome of one method run (lowercase strings in results files)."""

    OPTIMAL = "optimal"  #: proven optimal for the MTPP instance (bound == incumbent, or an
    #: exact method finished)
    SOLVED = "solved"  #: a relaxation was solved to optimality: the bound is final for this
    #: method, but it need not equal OPT (a gap to the best partition may remain)
    FEASIBLE = "feasible"  #: a partition was found, optimality not proven
    BOUND = "bound"  #: a valid lower bound was proven, the relaxation not closed
    TIME_LIMIT = "time_limit"  #: stopped by the budget (bound/partition may still exist)
    NO_SOLUTION = "no_solution"  #: finished without a bound or a partition
    INFEASIBLE = "infeasible"  #: the model has no solution (e.g. memory limit too tight)
    UNSUPPORTED = "unsupported"  #: the method does not apply to this instance or k
    ERROR = "error"  #: the method raised, crashed or returned an invalid result

    def is_success(self) -> bool:
        """True for statuses that may carry a usable result."""
        return self in (Status.OPTIMAL, Status.SOLVED, Status.FEASIBLE, Status.BOUND,
                        Status.TIME_LIMIT)

    @property
    def meaning(self) -> str:
        """One line that says what the status means (for reports and ``--help``)."""
        return STATUS_MEANINGS[self]


#: What each status means, as printed in reports.
STATUS_MEANINGS: dict[Status, str] = {
    Status.OPTIMAL: "proved optimal for the instance (the value equals OPT)",
    Status.SOLVED: "relaxation solved to optimality: the bound is final for this method, "
                   "a gap to OPT may remain",
    Status.FEASIBLE: "a feasible partition, optimality not proven",
    Status.BOUND: "a valid lower bound, the method's own model not closed",
    Status.TIME_LIMIT: "stopped by the time limit (the best result so far is kept)",
    Status.NO_SOLUTION: "finished without a bound or a partition",
    Status.INFEASIBLE: "no partition satisfies the constraints (e.g. the memory limit)",
    Status.UNSUPPORTED: "the method does not apply to this instance, k or variant (the "
                        "reason is given)",
    Status.ERROR: "the method raised, crashed, or returned an invalid result",
}


@dataclass(frozen=True, slots=True)
class Budget:
    """A time budget, started at construction.

    Every budget also honours the process-wide cancel flag (:mod:`pipecert.cancel`): once a
    stop was requested (SIGINT / SIGTERM under ``pipecert solve``), :meth:`expired` is True
    and :meth:`remaining` is 0, so every method stops at its next check and returns its
    best result so far.

    Parameters
    ----------
    time_limit_s : float
        Wall-clock seconds allowed (``math.inf`` for none).
    threads : int
        Threads a solver may use.
    node_limit : int or None
        Optional branch-and-bound node limit.
    """

    time_limit_s: float = math.inf
    threads: int = 1
    node_limit: int | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        """``time.monotonic()`` value at which the budget ends."""
        return self.started + self.time_limit_s

    def remaining(self) -> float:
        """Seconds left (never negative; inf without a limit; 0 once cancelled)."""
        if cancel.requested():
            return 0.0
        return max(0.0, self.deadline - time.monotonic())

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.monotonic() - self.started

    def expired(self) -> bool:
        """True once the time limit has passed or a stop was requested."""
        return cancel.requested() or time.monotonic() >= self.deadline

    def fraction(self, share: float, *, minimum: float = 0.0) -> Budget:
        """A new budget of ``share`` of the remaining time (at least ``minimum`` seconds)."""
        rem = self.remaining()
        t = rem if math.isinf(rem) else max(minimum, min(rem, rem * share))
        return Budget(time_limit_s=t, threads=self.threads, node_limit=self.node_limit)


@dataclass(frozen=True, slots=True)
class SolveContext:
    """What the caller already knows about ``(instance, k)``; methods may use it.

    Parameters
    ----------
    upper_bound : float or None
        Value of the best known feasible partition (re-scored by :func:`evaluate`).
    partition : Partition or None
        That partition (a warm start, an order hint for guess-the-bottleneck).
    lower_bound : float or None
        Best lower bound already proven (a method may stop once it cannot improve on it).
    cache : dict
        Per-instance scratch space shared between calls on the same instance (for example
        node bounds computed once and reused for every k). Keys are method-defined.
    """

    upper_bound: float | None = None
    partition: Partition | None = None
    lower_bound: float | None = None
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BoundResult:
    """What a formulation returns.

    ``bound`` is a *valid* lower bound on OPT(instance, k), or None when none was proven.
    ``partition`` is an incumbent found on the way (it is re-scored by the caller).
    ``stats`` holds model sizes and solver facts (``n_vars``, ``n_cons``, ``nodes``,
    ``solver``, ``solver_version``, ``build_time_s``, ``solve_time_s`` ...).
    ``log`` is an anytime log of ``(time_s, bound, incumbent)`` tuples.
    """

    bound: float | None
    status: Status
    partition: Partition | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)
    log: tuple[tuple[float, float | None, float | None], ...] = ()


@dataclass(frozen=True, slots=True)
class HeuristicResult:
    """What a heuristic returns: a partition (never its value) and stats.

    ``history`` is an anytime log of ``(time_s, evaluations, best_value)`` tuples, where
    ``best_value`` is the method's own internal value (the caller re-scores the partition).
    """

    partition: Partition | None
    status: Status
    stats: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[tuple[float, int, float], ...] = ()


def jsonable(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: numpy scalars and arrays become Python values, tuples
    lists, anything else JSON cannot hold its ``str``. Non-finite floats are kept (Python's
    JSON writes them as ``Infinity``/``NaN`` and reads them back)."""
    def default(o: Any) -> Any:
        try:
            import numpy as np

            if isinstance(o, np.generic):
                return o.item()
            if isinstance(o, np.ndarray):
                return o.tolist()
        except ImportError:  # pragma: no cover
            pass
        return str(o)

    try:
        return json.loads(json.dumps(obj, default=default))
    except (TypeError, ValueError):
        return str(obj)


#: Version of the JSON written by :meth:`RunOutcome.to_json`; :meth:`RunOutcome.from_json`
#: refuses any other.
OUTCOME_JSON_VERSION = 1


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """A graded method run: what the framework (not the method) says about it.

    ``incumbent`` is the reference-cost value of the returned partition (None without one);
    ``bound`` the validated lower bound (None without one); ``role`` is a :class:`Role`
    (a plain ``"bound"`` or ``"heuristic"`` is converted).
    """

    method: str
    role: Role | str
    status: Status
    time_s: float
    bound: float | None = None
    incumbent: float | None = None
    partition: Partition | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)
    log: tuple[tuple[Any, ...], ...] = ()
    error: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role.parse(str(self.role)))
        if not isinstance(self.status, Status):
            object.__setattr__(self, "status", Status(str(self.status)))

    @property
    def value(self) -> float | None:
        """The bound for a bound run, the incumbent for a heuristic run."""
        return self.bound if self.role == Role.BOUND else self.incumbent

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``partition`` as ``{"stage_of": [...], "k": k}``), versioned."""
        part = None if self.partition is None else {
            "stage_of": self.partition.stage_of.tolist(), "k": int(self.partition.k)}
        return {
            "version": OUTCOME_JSON_VERSION, "method": self.method, "role": str(self.role),
            "status": str(self.status), "time_s": float(self.time_s),
            "bound": None if self.bound is None else float(self.bound),
            "incumbent": None if self.incumbent is None else float(self.incumbent),
            "partition": part, "stats": jsonable(dict(self.stats)),
            "log": jsonable([list(x) for x in self.log]), "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunOutcome:
        """The outcome written by :meth:`to_dict`.

        Raises
        ------
        ValueError
            On another version, a missing or an unknown key.
        """
        _check_keys(d, _OUTCOME_KEYS, "RunOutcome", OUTCOME_JSON_VERSION)
        p = d["partition"]
        return cls(
            method=str(d["method"]), role=Role.parse(str(d["role"])), status=Status(d["status"]),
            time_s=float(d["time_s"]), bound=d["bound"], incumbent=d["incumbent"],
            partition=None if p is None else Partition(p["stage_of"], int(p["k"])),
            stats=dict(d["stats"] or {}), log=tuple(tuple(x) for x in d["log"] or ()),
            error=d["error"],
        )

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> RunOutcome:
        """The outcome written by :meth:`to_json` (``ValueError`` on anything else)."""
        return cls.from_dict(_json_object(text, "RunOutcome"))


_OUTCOME_KEYS = frozenset({"version", "method", "role", "status", "time_s", "bound",
                           "incumbent", "partition", "stats", "log", "error"})


def _json_object(text: str | bytes, what: str) -> dict[str, Any]:
    d = json.loads(text)
    if not isinstance(d, dict):
        raise ValueError(f"{what} JSON must be an object, got {type(d).__name__}")
    return d


def _check_keys(d: Mapping[str, Any], keys: frozenset[str], what: str, version: int) -> None:
    """Refuse another version, missing keys and unknown (misspelt) keys, in one line."""
    if d.get("version") != version:
        raise ValueError(f"{what} JSON of version {d.get('version')!r}; this pipecert reads "
                         f"version {version}")
    unknown = sorted(set(d) - keys)
    missing = sorted(keys - set(d))
    if unknown or missing:
        parts = ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) + \
                ([f"missing key(s) {', '.join(missing)}"] if missing else [])
        raise ValueError(f"{what} JSON: {'; '.join(parts)}")
