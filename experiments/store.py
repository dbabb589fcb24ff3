"""The results store: one SQLite database per experiment (style.md §2.4).

Tables
------
``runs``
    One row per finished run (instance x k x method_id x seed), keyed by ``run_key``. Raw
    values only: the certified ``bound``, the re-scored ``incumbent``, the partition
    (``stage_of`` as JSON), status, times, solver facts, seed and provenance.
``instances``
    One row per instance: sizes, cost totals and the instance itself (compressed, see
    :mod:`experiments._serialize`), so stored partitions can be re-scored offline.
``derived``
    Per (instance, k): the best partition value and the best bound *including* values
    carried over from other k (a partition for k' <= k is feasible for k; a bound proven
    for k' >= k is valid for k, spine-bound.md §4). Recomputed by :meth:`ResultsStore.
    update_derived`; never mixed into ``runs``.
``meta``
    Key/value facts: schema version, experiment name, the resolved config.

Durability: WAL journal, ``synchronous=FULL`` and one transaction per finished run, so a
process killed with SIGKILL at any moment loses no committed row and leaves a readable
database (SQLite's atomic commit).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipecert.errors import InputError
from pipecert.instance import Instance

__all__ = ["ResultsStore", "RUN_COLUMNS", "SCHEMA_VERSION", "run_key", "CheckReport"]

SCHEMA_VERSION = 1

#: (column, SQL type) of the ``runs`` table, in export order.
RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_key", "TEXT PRIMARY KEY"),
    ("schema_version", "INTEGER"),
    ("experiment", "TEXT"),
    ("instance", "TEXT"),
    ("instance_source", "TEXT"),
    ("n_nodes", "INTEGER"),
    ("n_edges", "INTEGER"),
    ("k", "INTEGER"),
    ("role", "TEXT"),
    ("method", "TEXT"),
    ("method_id", "TEXT"),
    ("params", "TEXT"),
    ("seed", "INTEGER"),
    ("status", "TEXT"),
    ("bound", "REAL"),
    ("incumbent", "REAL"),
    ("feasible", "INTEGER"),
    ("gap", "REAL"),
    ("context_upper_bound", "REAL"),
    ("context_lower_bound", "REAL"),
    ("build_time_s", "REAL"),
    ("solve_time_s", "REAL"),
    ("wall_time_s", "REAL"),
    ("time_limit_s", "REAL"),
    ("threads", "INTEGER"),
    ("solver", "TEXT"),
    ("solver_version", "TEXT"),
    ("n_vars", "INTEGER"),
    ("n_cons", "INTEGER"),
    ("nodes", "INTEGER"),
    ("iterations", "INTEGER"),
    ("partition", "TEXT"),
    ("stats", "TEXT"),
    ("log", "TEXT"),
    ("error", "TEXT"),
    ("package_version", "TEXT"),
    ("git_rev", "TEXT"),
    ("python", "TEXT"),
    ("platform", "TEXT"),
    ("cpu", "TEXT"),
    ("host", "TEXT"),
    ("started_at", "TEXT"),
)
_RUN_NAMES = tuple(c for c, _ in RUN_COLUMNS)
_JSON_COLUMNS = ("params", "partition", "stats", "log")

_INSTANCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("instance", "TEXT PRIMARY KEY"),
    ("source", "TEXT"),
    ("spec", "TEXT"),
    ("n_nodes", "INTEGER"),
    ("n_edges", "INTEGER"),
    ("total_work", "REAL"),
    ("total_comm", "REAL"),
    ("max_work", "REAL"),
    ("comm_share", "REAL"),
    ("fingerprint", "TEXT"),
    ("blob", "BLOB"),
)

_DERIVED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("instance", "TEXT"),
    ("k", "INTEGER"),
    ("best_incumbent", "REAL"),
    ("incumbent_method", "TEXT"),
    ("incumbent_k", "INTEGER"),
    ("best_bound", "REAL"),
    ("bound_method", "TEXT"),
    ("bound_k", "INTEGER"),
    ("combinatorial", "REAL"),
    ("gap", "REAL"),
)


def run_key(instance: str, k: int, method_id: str, seed: int) -> str:
    """The unique key of a run: sha256 of ``instance|k|method_id|seed`` (hex, 32 chars)."""
    return hashlib.sha256(f"{instance}|{int(k)}|{method_id}|{int(seed)}".encode()).hexdigest()[:32]


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    else:
        con = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
    con.row_factory = sqlite3.Row
    return con


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Outcome of :meth:`ResultsStore.check`: counts and one line per problem found."""

    n_runs: int
    n_partitions: int
    n_bounds: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


class ResultsStore:
    """An SQLite results store (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The database file; created (with its parent directory) unless ``readonly``.
    readonly : bool
        Open an existing database for reading only.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise InputError("no such results database", source=str(self.path))
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = _connect(self.path, readonly=readonly)
        if readonly:
            try:
                self._con.execute("SELECT 1 FROM runs LIMIT 1")
            except sqlite3.DatabaseError as exc:
                raise InputError(f"not a pipecert results database ({exc})",
                                 source=str(self.path)) from None
        else:
            self._create()

    # ------------------------------------------------------------------ setup
    def _create(self) -> None:
        cols = ", ".join(f"{c} {t}" for c, t in RUN_COLUMNS)
        icols = ", ".join(f"{c} {t}" for c, t in _INSTANCE_COLUMNS)
        dcols = ", ".join(f"{c} {t}" for c, t in _DERIVED_COLUMNS)
        with self._tx():
            self._con.execute(f"CREATE TABLE IF NOT EXISTS runs ({cols})")
            self._con.execute(f"CREATE TABLE IF NOT EXISTS instances ({icols})")
            self._con.execute(
                f"CREATE TABLE IF NOT EXISTS derived ({dcols}, PRIMARY KEY (instance, k))")
            self._con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._con.execute("CREATE INDEX IF NOT EXISTS runs_ik ON runs (instance, k)")
            self._con.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _tx(self) -> _Transaction:
        return _Transaction(self._con)

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: str) -> None:
        """Store a key/value fact (the experiment name, the resolved config, ...)."""
        with self._tx():
            self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def get_meta(self, key: str) -> str | None:
        """A stored key/value fact, or None."""
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # ------------------------------------------------------------------ instances
    def add_instance(self, instance_id: str, instance: Instance, *, source: str = "",
                     spec: str = "") -> None:
        """Record an instance (sizes, totals and the compressed graph)."""
        from experiments._serialize import instance_fingerprint, instance_to_bytes

        tw, tc = float(instance.total_work), float(instance.total_comm)
        row = (
            instance_id, source, spec, instance.n_nodes, instance.n_edges, tw, tc,
            float(instance.work.max()), tc / (tw + tc) if tw + tc > 0 else 0.0,
            instance_fingerprint(instance), instance_to_bytes(instance),
        )
        with self._tx():
            self._con.execute(
                f"INSERT OR REPLACE INTO instances VALUES ({','.join('?' * len(row))})", row)

    def instance_rows(self) -> list[dict[str, Any]]:
        """Instance facts (without the graph blob), sorted by id."""
        cols = [c for c, _ in _INSTANCE_COLUMNS if c != "blob"]
        cur = self._con.execute(f"SELECT {','.join(cols)} FROM instances ORDER BY instance")
        return [dict(r) for r in cur]

    def load_instance(self, instance_id: str) -> Instance:
        """The stored graph of ``instance_id``."""
        from experiments._serialize import instance_from_bytes

        row = self._con.execute(
            "SELECT blob FROM instances WHERE instance = ?", (instance_id,)).fetchone()
        if row is None:
            raise KeyError(f"instance {instance_id!r} is not in {self.path}")
        return instance_from_bytes(bytes(row[0]))

    def has_instance(self, instance_id: str) -> bool:
        """True if the instance is recorded."""
        return self._con.execute(
            "SELECT 1 FROM instances WHERE instance = ?", (instance_id,)).fetchone() is not None

    # ------------------------------------------------------------------ runs
    def add_run(self, row: Mapping[str, Any]) -> None:
        """Insert (or replace, same ``run_key``) one finished run in its own transaction."""
        values = []
        for c in _RUN_NAMES:
            v = row.get(c)
            if c in _JSON_COLUMNS and v is not None and not isinstance(v, str):
                v = json.dumps(v, default=_json_default, separators=(",", ":"))
            elif c == "feasible" and v is not None:
                v = int(bool(v))
            elif isinstance(v, float) and not math.isfinite(v):
                v = None
            values.append(v)
        with self._tx():
            self._con.execute(
                f"INSERT OR REPLACE INTO runs ({','.join(_RUN_NAMES)}) "
                f"VALUES ({','.join('?' * len(values))})", values)

    def run_keys(self) -> set[str]:
        """Keys of every stored run (``--resume`` skips these)."""
        return {r[0] for r in self._con.execute("SELECT run_key FROM runs")}

    def runs(self, *, instance: str | None = None, parse_json: bool = True,
             columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Stored runs as dicts (JSON columns parsed), in insertion order."""
        cols = list(columns) if columns is not None else list(_RUN_NAMES)
        sql = f"SELECT {','.join(cols)} FROM runs"
        args: tuple[Any, ...] = ()
        if instance is not None:
            sql += " WHERE instance = ?"
            args = (instance,)
        out = []
        for r in self._con.execute(sql + " ORDER BY rowid", args):
            d = dict(r)
            if parse_json:
                for c in _JSON_COLUMNS:
                    if d.get(c) is not None:
                        d[c] = json.loads(d[c])
            if d.get("feasible") is not None:
                d["feasible"] = bool(d["feasible"])
            out.append(d)
        return out

    def __len__(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    # ------------------------------------------------------------------ derived
    def update_derived(self) -> list[dict[str, Any]]:
        """Recompute the ``derived`` table from ``runs`` and return its rows.

        For each (instance, k) recorded: the best incumbent over every run at k' <= k (a
        partition into at most k' stages is a partition into at most k stages), the best
        bound over every run at k' >= k (OPT is non-increasing in k, so a lower bound for
        k' bounds OPT(k) too), the combinatorial bound and the certified gap.
        """
        from experiments.analysis import derive_best

        inst = {r["instance"]: r for r in self.instance_rows()}
        rows = derive_best(self.runs(parse_json=False, columns=(
            "instance", "k", "role", "method_id", "status", "bound", "incumbent")), inst)
        with self._tx():
            self._con.execute("DELETE FROM derived")
            names = [c for c, _ in _DERIVED_COLUMNS]
            self._con.executemany(
                f"INSERT INTO derived ({','.join(names)}) VALUES ({','.join('?' * len(names))})",
                [tuple(r.get(c) for c in names) for r in rows])
        return rows

    def derived(self) -> list[dict[str, Any]]:
        """Rows of the ``derived`` table."""
        return [dict(r) for r in self._con.execute(
            "SELECT * FROM derived ORDER BY instance, k")]

    # ------------------------------------------------------------------ export
    def export(self, path: str | Path) -> Path:
        """Write every run to ``.csv`` or ``.parquet`` (by suffix); params flattened as p_*."""
        path = Path(path)
        rows = self.runs(parse_json=True)
        pkeys = sorted({k for r in rows for k in (r.get("params") or {})})
        names = list(_RUN_NAMES) + [f"p_{k}" for k in pkeys]
        flat = []
        for r in rows:
            d = dict(r)
            for c in _JSON_COLUMNS:
                if d.get(c) is not None:
                    d[c] = json.dumps(d[c], separators=(",", ":"))
            for k in pkeys:
                v = (r.get("params") or {}).get(k)
                d[f"p_{k}"] = None if v is None else str(v)
            flat.append(d)
        suffix = path.suffix.lower()
        if suffix == ".csv":
            with path.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
                w.writeheader()
                w.writerows(flat)
        elif suffix in (".parquet", ".pq"):
            try:
                import pyarrow as pa
                import pyarrow.parquet as pq
            except ImportError:  # pragma: no cover - pyarrow is a dev/parquet extra
                raise InputError("Parquet export needs pyarrow (pip install "
                                 "'pipecert[parquet]')") from None
            types = dict(RUN_COLUMNS)
            arrays = {}
            for c in names:
                t = types.get(c, "TEXT").split()[0]
                pa_t = {"INTEGER": pa.int64(), "REAL": pa.float64()}.get(t, pa.string())
                if c == "feasible":
                    pa_t = pa.bool_()
                    arrays[c] = pa.array([None if d.get(c) is None else bool(d[c])
                                          for d in flat], pa_t)
                else:
                    arrays[c] = pa.array([d.get(c) for d in flat], pa_t)
            pq.write_table(pa.table(arrays), path)
        else:
            raise InputError(f"unknown export format {suffix!r} (use .csv or .parquet)",
                             source=str(path))
        return path

    # ------------------------------------------------------------------ check
    def check(self) -> CheckReport:
        """Re-score every stored partition and check every bound against the incumbents.

        * a stored partition must be feasible for its k and its value must equal the stored
          ``incumbent`` (relative 1e-9) under the reference cost function;
        * every stored bound, and the value of every heuristic run that claims optimality,
          must be <= the best incumbent of its (instance, k), including partitions for
          smaller k (within :data:`pipecert.BOUND_RTOL`).
        """
        from pipecert.partition import Partition, check_feasible, evaluate
        from pipecert.results import bound_exceeds

        problems: list[str] = []
        runs = self.runs(parse_json=True)
        cache: dict[str, Instance] = {}
        best: dict[tuple[str, int], float] = {}
        n_part = n_bound = 0
        for r in runs:
            part = r.get("partition")
            if part is None:
                continue
            n_part += 1
            name, k = r["instance"], int(r["k"])
            where = f"{name} k={k} {r['method_id']} (run {r['run_key'][:8]})"
            if name not in cache:
                try:
                    cache[name] = self.load_instance(name)
                except KeyError:
                    problems.append(f"{where}: instance not stored, cannot re-score")
                    continue
            inst = cache[name]
            try:
                p = Partition(part, k)
                bad = check_feasible(inst, p, k=k)
            except (ValueError, InputError) as exc:
                bad = [str(exc)]
            if bad:
                problems.append(f"{where}: stored partition infeasible: {bad[0]}")
                continue
            value = evaluate(inst, p)
            stored = r.get("incumbent")
            if stored is None or abs(value - stored) > 1e-9 * max(1.0, abs(value)):
                problems.append(f"{where}: stored incumbent {stored!r} but the partition "
                                f"re-scores to {value!r}")
            key = (name, k)
            best[key] = min(best.get(key, math.inf), value)
        # carry partitions to larger k
        by_inst: dict[str, list[tuple[int, float]]] = {}
        for (name, k), v in best.items():
            by_inst.setdefault(name, []).append((k, v))
        from experiments.analysis import proven_bound

        for r in runs:
            # stored bounds (even of error rows: an invalid bound is never kept as one), and
            # the values of exact heuristics that claim optimality
            b = r.get("bound") if r.get("bound") is not None else proven_bound(r)
            if b is None:
                continue
            n_bound += 1
            name, k = r["instance"], int(r["k"])
            cands = [v for kk, v in by_inst.get(name, []) if kk <= k]
            if not cands:
                continue
            ub = min(cands)
            if bound_exceeds(float(b), ub):
                problems.append(
                    f"{name} k={k} {r['method_id']} (run {r['run_key'][:8]}): bound {b!r} "
                    f"exceeds the best partition value {ub!r}: the bound is invalid")
        return CheckReport(len(runs), n_part, n_bound, tuple(problems))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        for attempt in range(50):
            try:
                self.con.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # database is locked
                if "locked" not in str(exc) or attempt == 49:
                    raise
                time.sleep(0.1)
        return self.con

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.con.execute("COMMIT")
        else:
            self.con.execute("ROLLBACK")


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


