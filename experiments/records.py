"""The typed records a run travels in: harness -> worker -> store.

A grid cell (:class:`experiments.harness.Cell`) becomes a :class:`Task` (what to run, with
its :class:`TaskContext`), which travels to the worker process as versioned JSON
(:meth:`Task.to_json`); the worker runs it with :func:`pipecert.runner.run_method` and
answers a :class:`TaskResult` (the graded :class:`~pipecert.results.RunOutcome` plus the
worker's wall time), again as versioned JSON; the harness turns the cell and the result
into a :class:`RunRecord`, one row of the store's ``runs`` table, which
:meth:`experiments.store.ResultsStore.add_run` writes.

The store's ``runs`` columns are derived from the fields of :class:`RunRecord`
(:data:`RUN_COLUMNS`), so a field and its column cannot diverge, and building a record
from a mapping with an unknown (misspelt) key is an error, never a silent NULL.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipecert.partition import Partition
from pipecert.registry import Role
from pipecert.results import RunOutcome, SolveContext, Status, _check_keys, _json_object

__all__ = [
    "JSON_VERSION",
    "RUN_COLUMNS",
    "RunRecord",
    "Task",
    "TaskContext",
    "TaskResult",
]

#: Version of the JSON of :class:`Task` and :class:`TaskResult` (the worker protocol).
JSON_VERSION = 1


# ---------------------------------------------------------------------------- task
@dataclass(frozen=True, slots=True)
class TaskContext:
    """What a cell receives from the cells it depends on (see :func:`experiments.harness.
    cell_context`).

    Parameters
    ----------
    upper_bound : float or None
        Value of the best partition found by a heuristic run at k' <= k.
    partition : tuple of int or None
        That partition (``stage_of``; it has at most k' <= k stages, so it is read as a
        partition into k stages).
    lower_bound : float or None
        Best bound proven for a k' > k (or by an exact heuristic at k' >= k).
    """

    upper_bound: float | None = None
    partition: tuple[int, ...] | None = None
    lower_bound: float | None = None

    def __post_init__(self) -> None:
        if self.partition is not None and not isinstance(self.partition, tuple):
            object.__setattr__(self, "partition", tuple(int(x) for x in self.partition))

    def solve_context(self, k: int, cache: dict[str, Any] | None = None) -> SolveContext:
        """The :class:`~pipecert.results.SolveContext` a method receives for ``k`` stages."""
        part = None if self.partition is None else Partition(list(self.partition), k)
        return SolveContext(upper_bound=self.upper_bound, partition=part,
                            lower_bound=self.lower_bound,
                            cache=cache if cache is not None else {})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {"upper_bound": self.upper_bound,
                "partition": None if self.partition is None else list(self.partition),
                "lower_bound": self.lower_bound}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskContext:
        """The context written by :meth:`to_dict` (``ValueError`` on an unknown key)."""
        unknown = sorted(set(d) - {"upper_bound", "partition", "lower_bound"})
        if unknown:
            raise ValueError(f"TaskContext JSON: unknown key(s) {', '.join(unknown)}")
        p = d.get("partition")
        return cls(upper_bound=d.get("upper_bound"),
                   partition=None if p is None else tuple(int(x) for x in p),
                   lower_bound=d.get("lower_bound"))


@dataclass(frozen=True, slots=True)
class Task:
    """One method run to execute: what the harness sends to a worker.

    Parameters
    ----------
    role : Role
    spec : str
        The method spec ``name[key=value,...]``.
    k : int
    seed : int
        Random seed of a heuristic (derived per cell, :func:`pipecert.seeding.derive_seed`).
    time_limit_s : float or None
        The method's budget (None: no limit).
    threads : int
    context : TaskContext
    raise_errors : bool
        Let a method's exception propagate (the ``inline`` executor's ``--raise``).
    """

    role: Role
    spec: str
    k: int
    seed: int
    time_limit_s: float | None = None
    threads: int = 1
    context: TaskContext = field(default_factory=TaskContext)
    raise_errors: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role.parse(str(self.role)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with the format version."""
        return {"version": JSON_VERSION, "role": self.role.value, "spec": self.spec,
                "k": int(self.k), "seed": int(self.seed), "time_limit_s": self.time_limit_s,
                "threads": int(self.threads), "context": self.context.to_dict(),
                "raise_errors": bool(self.raise_errors)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Task:
        """The task written by :meth:`to_dict`.

        Raises
        ------
        ValueError
            On another version, or a missing or unknown key.
        """
        _check_keys(d, _TASK_KEYS, "Task", JSON_VERSION)
        tl = d["time_limit_s"]
        return cls(role=Role.parse(str(d["role"])), spec=str(d["spec"]), k=int(d["k"]),
                   seed=int(d["seed"]), time_limit_s=None if tl is None else float(tl),
                   threads=int(d["threads"]), context=TaskContext.from_dict(d["context"]),
                   raise_errors=bool(d["raise_errors"]))

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (what travels to the worker)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Task:
        """The task written by :meth:`to_json`."""
        return cls.from_dict(_json_object(text, "Task"))


_TASK_KEYS = frozenset({"version", "role", "spec", "k", "seed", "time_limit_s", "threads",
                        "context", "raise_errors"})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a worker answers for a :class:`Task`: the graded outcome and the run's times.

    Parameters
    ----------
    outcome : RunOutcome
        The graded outcome (``stats`` and ``log`` JSON-safe).
    wall_time_s : float
        Wall time of the whole task in the worker (or until it was killed).
    started_at : str
        ISO time (UTC, seconds) the task started.
    """

    outcome: RunOutcome
    wall_time_s: float
    started_at: str

    @classmethod
    def failure(cls, message: str, *, role: Role | str, method: str,
                elapsed: float = 0.0) -> TaskResult:
        """An ``error`` result (a bad spec, a crash, a kill), ``elapsed`` seconds long."""
        out = RunOutcome(method, role, Status.ERROR, float(elapsed), error=message)
        return cls(out, float(elapsed), _now())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict with the format version."""
        return {"version": JSON_VERSION, "outcome": self.outcome.to_dict(),
                "wall_time_s": float(self.wall_time_s), "started_at": self.started_at}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskResult:
        """The result written by :meth:`to_dict` (``ValueError`` on anything else)."""
        _check_keys(d, _RESULT_KEYS, "TaskResult", JSON_VERSION)
        return cls(RunOutcome.from_dict(d["outcome"]), float(d["wall_time_s"]),
                   str(d["started_at"]))

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (what travels back from the worker)."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskResult:
        """The result written by :meth:`to_json`."""
        return cls.from_dict(_json_object(text, "TaskResult"))


_RESULT_KEYS = frozenset({"version", "outcome", "wall_time_s", "started_at"})


# ---------------------------------------------------------------------------- record
def _key(sql: str) -> Any:
    return field(metadata={"sql": sql})


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of the store's ``runs`` table (docs/guide/results-store.md); its fields are
    the columns.

    Only ``run_key`` is required (older stores and hand-made rows lack many columns; they
    read as None). JSON columns (``params``, ``partition``, ``stats``, ``log``) hold Python
    values here and JSON text in SQLite. :data:`RUN_COLUMNS` is derived from these fields.
    """

    run_key: str = _key("TEXT PRIMARY KEY")
    schema_version: int | None = None
    experiment: str | None = None
    instance: str | None = None
    instance_source: str | None = None
    n_nodes: int | None = None
    n_edges: int | None = None
    k: int | None = None
    role: Role | None = None
    method: str | None = None
    method_id: str | None = None
    params: dict[str, Any] | None = None
    seed: int | None = None
    status: str | None = None
    bound: float | None = None
    incumbent: float | None = None
    feasible: bool | None = None
    gap: float | None = None
    context_upper_bound: float | None = None
    context_lower_bound: float | None = None
    build_time_s: float | None = None
    solve_time_s: float | None = None
    wall_time_s: float | None = None
    time_limit_s: float | None = None
    threads: int | None = None
    solver: str | None = None
    solver_version: str | None = None
    n_vars: int | None = None
    n_cons: int | None = None
    nodes: int | None = None
    iterations: int | None = None
    partition: list[int] | None = None
    stats: dict[str, Any] | None = None
    log: list[Any] | None = None
    error: str | None = None
    package_version: str | None = None
    git_rev: str | None = None
    python: str | None = None
    platform: str | None = None
    cpu: str | None = None
    host: str | None = None
    started_at: str | None = None
    #: Instance.fingerprint of the graph the run was computed on
    fingerprint: str | None = None
    #: the problem variant (experiments/variants.py; NULL: as_given)
    variant: str | None = None

    def __post_init__(self) -> None:
        if self.role is not None and not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role.parse(str(self.role)))

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        """A record from a mapping of column values (missing columns are None).

        Raises
        ------
        KeyError
            If the mapping has a key that is not a column (a misspelt name), or lacks
            ``run_key``.
        """
        unknown = sorted(set(row) - _NAMES_SET)
        if unknown:
            raise KeyError(f"unknown run column(s) {', '.join(map(repr, unknown))}; the "
                           f"columns are the fields of RunRecord")
        if row.get("run_key") is None:
            raise KeyError("a run needs its run_key")
        return cls(**row)

    def as_row(self) -> dict[str, Any]:
        """``{column: value}`` (Python values; the role as its string)."""
        d = {f: getattr(self, f) for f in RUN_NAMES}
        if d["role"] is not None:
            d["role"] = str(d["role"].value)
        return d

    def sql_values(self) -> list[Any]:
        """The values in :data:`RUN_NAMES` order as SQLite stores them: JSON columns as
        text, ``feasible`` as 0/1, a non-finite float as NULL."""
        out: list[Any] = []
        for c in RUN_NAMES:
            v = getattr(self, c)
            if c in JSON_COLUMNS and v is not None and not isinstance(v, str):
                v = json.dumps(v, default=_json_default, separators=(",", ":"))
            elif c == "feasible" and v is not None:
                v = int(bool(v))
            elif isinstance(v, float) and not math.isfinite(v):
                v = None
            elif isinstance(v, str) and type(v) is not str:  # Role, Status: plain text
                v = str(v.value) if hasattr(v, "value") else str(v)
            out.append(v)
        return out

    def replace(self, **changes: Any) -> RunRecord:
        """A copy with ``changes`` (unknown names raise :class:`TypeError`)."""
        return dataclasses.replace(self, **changes)


_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "bool": "INTEGER",
              "Role": "TEXT"}


def _sql_type(f: dataclasses.Field[Any]) -> str:
    """The SQL type of a field: from its metadata, else from its annotation
    (``X | None`` with X a scalar, or a list/dict stored as JSON text)."""
    if "sql" in f.metadata:
        return str(f.metadata["sql"])
    ann = str(f.type).replace(" ", "")
    base = ann.removesuffix("|None")
    if base in _SQL_TYPES:
        return _SQL_TYPES[base]
    if base.startswith(("dict[", "list[")):
        return "TEXT"
    raise TypeError(f"RunRecord.{f.name}: no SQL type for annotation {f.type!r}")


#: (column, SQL type) of the ``runs`` table, in export order: the fields of RunRecord.
RUN_COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (f.name, _sql_type(f)) for f in dataclasses.fields(RunRecord))
#: The column names, in order.
RUN_NAMES: tuple[str, ...] = tuple(c for c, _ in RUN_COLUMNS)
_NAMES_SET = frozenset(RUN_NAMES)
#: Columns holding JSON text (lists and dicts in a RunRecord).
JSON_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(RunRecord)
    if str(f.type).replace(" ", "").startswith(("dict[", "list[")))


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return str(o)
