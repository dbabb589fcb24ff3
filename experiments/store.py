"""The results store: one SQLite database per experiment (docs/guide/results-store.md).

Tables
------
``runs``
    One row per finished run (instance x k x method_id x seed), keyed by ``run_key``. Raw
    values only: the certified ``bound``, the re-scored ``incumbent``, the partition
    (``stage_of`` as JSON), status, times, solver facts, seed and provenance. A row is a
    :class:`~experiments.records.RunRecord`; the columns are derived from its fields
    (:data:`RUN_COLUMNS`), and :meth:`ResultsStore.add_run` refuses a key that is not one.
``instances``
    One row per instance: sizes, cost totals and the instance itself (compressed, see
    :mod:`experiments._serialize`), so stored partitions can be re-scored offline.
``derived``
    Per (instance, k): the best partition value and the best bound *including* values
    carried over from other k (a partition for k' <= k is feasible for k; a bound proven
    for k' >= k is valid for k, docs/theory/min-cut-bounds.md#across-k). Recomputed by
    :meth:`ResultsStore.update_derived`; never mixed into ``runs``.
``meta``
    Key/value facts: schema version, experiment name, the resolved config.

Durability: WAL journal, ``synchronous=FULL`` and one transaction per finished run, so a
process killed with SIGKILL at any moment loses no committed row and leaves a readable
database (SQLite's atomic commit).

Errors: a store that cannot be opened, read or written (missing, read-only, not an SQLite
file, truncated or otherwise corrupt, another schema, a value that is not what its column
holds) raises :class:`StoreError`, an :class:`~pipecert.InputError` whose one-line message
names the file, so every command that opens a store ends with that line and exit code 2.
:meth:`ResultsStore.check` (``pipecert results check``) instead reports every readable
problem as a finding (:mod:`experiments.store_check`).
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

from experiments.records import JSON_COLUMNS, RUN_COLUMNS, RUN_NAMES, RunRecord, _json_default
from pipecert.errors import InputError
from pipecert.instance import CONSTRAINTS, Instance

__all__ = ["ResultsStore", "RUN_COLUMNS", "SCHEMA_VERSION", "run_key", "CheckReport",
           "StoreError", "RunRecord"]

SCHEMA_VERSION = 1

#: (column, SQL type) of the ``runs`` table, in export order: derived from the fields of
#: :class:`~experiments.records.RunRecord`, so a record and its row cannot diverge.
_RUN_NAMES = RUN_NAMES
_JSON_COLUMNS = JSON_COLUMNS

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
    ("time_unit", "TEXT"),
    ("memory_unit", "TEXT"),
    ("cost_model", "TEXT"),
    ("variant", "TEXT"),  # experiments/variants.py name (NULL in older stores: as_given)
    ("constraints", "TEXT"),  # active constraints, comma-separated ('' = unconstrained)
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


#: Columns a ``runs`` table must have to be read as a pipecert store (older stores may lack
#: the others; they read as NULL and are added when the store is opened for writing).
_REQUIRED_RUN_COLUMNS = ("run_key", "instance", "k", "role", "method_id", "status", "bound",
                         "incumbent", "partition")
_REQUIRED_INSTANCE_COLUMNS = ("instance", "blob")
# the columns this module names must be fields of RunRecord (a misspelt name fails on import)
_named = set(_REQUIRED_RUN_COLUMNS) | {"feasible", "fingerprint"}
if not _named <= set(_RUN_NAMES):  # pragma: no cover - a programming error
    raise ImportError(f"store columns {sorted(_named - set(_RUN_NAMES))} are not RunRecord "
                      "fields")
_REAL_RUN_COLUMNS = tuple(c for c, t in RUN_COLUMNS if t == "REAL")
_INT_RUN_COLUMNS = tuple(c for c, t in RUN_COLUMNS if t == "INTEGER")


class StoreError(InputError):
    """The results database cannot be opened, read or written (one line, names the file)."""


def _explain(exc: BaseException) -> str:
    """A one-line reason for an SQLite error, in the user's terms."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    low = text.lower()
    if "file is not a database" in low:
        return "not an SQLite database (garbage or foreign bytes)"
    if "malformed" in low or "corrupt" in low:
        return f"corrupt SQLite database, truncated or damaged ({text})"
    if "readonly" in low or "read-only" in low:
        return f"the store is read-only ({text}); use a writable copy or another output"
    if "unable to open" in low:
        return f"cannot open the database file ({text})"
    if "locked" in low:
        return f"the database is locked by another process ({text})"
    return f"cannot use the results database ({type(exc).__name__}: {text})"


def _store_error(path: Path, exc: BaseException) -> StoreError:
    return StoreError(_explain(exc), source=str(path))


class _Con:
    """An SQLite connection whose every error becomes a :class:`StoreError` naming the file.

    ``execute`` returns the rows as a list (read eagerly, so that a corrupt page fails here
    and not while a caller iterates).
    """

    def __init__(self, raw: sqlite3.Connection, path: Path) -> None:
        self.raw = raw
        self.path = path

    def execute(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self.raw.execute(sql, tuple(args)).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    def executemany(self, sql: str, seq: Iterable[Iterable[Any]]) -> None:
        try:
            self.raw.executemany(sql, [tuple(r) for r in seq])
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    def close(self) -> None:
        try:
            self.raw.close()
        except sqlite3.Error:  # pragma: no cover - closing a broken file
            pass


def _connect(path: Path, *, readonly: bool = False) -> _Con:
    try:
        if readonly:
            raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            # WAL and synchronous are set by ResultsStore._open once the schema is known to
            # be ours: a foreign file is refused without a byte written
            raw = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise _store_error(path, exc) from None
    raw.row_factory = sqlite3.Row
    return _Con(raw, path)


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Outcome of :meth:`ResultsStore.check`: counts and one line per finding."""

    n_runs: int
    n_partitions: int
    n_bounds: int
    problems: tuple[str, ...]
    n_instances: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.problems


class ResultsStore:
    """An SQLite results store (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The database file; created (with its parent directory) unless ``readonly``.
    readonly : bool
        Open an existing database for reading only.

    Raises
    ------
    StoreError
        If the file is missing (``readonly``), not an SQLite database, corrupt, read-only
        (when opened for writing), or an SQLite database of another schema.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.is_file():
                raise StoreError("no such results database", source=str(self.path))
        else:
            if self.path.exists() and not self.path.is_file():
                raise StoreError("is not a file", source=str(self.path))
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the directory ({exc.strerror})",
                                 source=str(self.path)) from None
        self._con = _connect(self.path, readonly=readonly)
        try:
            self._open()
        except BaseException:
            self._con.close()
            raise

    # ------------------------------------------------------------------ setup
    def _table_columns(self, table: str) -> list[str]:
        return [str(r[1]) for r in self._con.execute(f"PRAGMA table_info({table})")]

    def _open(self) -> None:
        """Validate the schema (create it in a new file, add missing optional columns)."""
        tables = {str(r[0]) for r in self._con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        ours = {"runs", "instances", "meta"}
        if tables and not ours <= tables:
            missing = ", ".join(sorted(ours - tables))
            raise StoreError(f"not a pipecert results database (no table {missing})",
                             source=str(self.path))
        if not tables:
            if self.readonly:
                raise StoreError("not a pipecert results database (empty)",
                                 source=str(self.path))
            self._wal()
            self._create()
        run_cols = self._table_columns("runs")
        inst_cols = self._table_columns("instances")
        for table, have, need in (("runs", run_cols, _REQUIRED_RUN_COLUMNS),
                                  ("instances", inst_cols, _REQUIRED_INSTANCE_COLUMNS)):
            lack = [c for c in need if c not in have]
            if lack:
                raise StoreError(f"not a pipecert results database (table {table} lacks "
                                 f"{', '.join(lack)})", source=str(self.path))
        version = self.get_meta("schema_version")
        if version is not None and (not version.isdigit() or int(version) > SCHEMA_VERSION):
            raise StoreError(f"results database of schema version {version!r}; this pipecert "
                             f"reads versions up to {SCHEMA_VERSION}", source=str(self.path))
        if not self.readonly:
            self._wal()
            self._create()  # the derived table and indexes of an older store
            with self._tx():
                for c, t in RUN_COLUMNS:
                    if c not in run_cols:
                        self._con.execute(f"ALTER TABLE runs ADD COLUMN {c} {t}")
                for c, t in _INSTANCE_COLUMNS:
                    if c not in inst_cols:
                        self._con.execute(f"ALTER TABLE instances ADD COLUMN {c} {t}")
            run_cols = self._table_columns("runs")
            inst_cols = self._table_columns("instances")
        self._run_cols = set(run_cols)
        self._inst_cols = set(inst_cols)

    def _wal(self) -> None:
        """WAL journal and synchronous commits (durability, see the module docstring)."""
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")

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

    def _select(self, cols: Iterable[str], have: set[str]) -> str:
        """A column list in which columns an older store lacks read as NULL."""
        return ",".join(c if c in have else f"NULL AS {c}" for c in cols)

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
        rows = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    # ------------------------------------------------------------------ instances
    def add_instance(self, instance_id: str, instance: Instance, *, source: str = "",
                     spec: str = "") -> None:
        """Record an instance (sizes, totals, units, fingerprint and the compressed graph)."""
        from experiments._serialize import instance_fingerprint, instance_to_bytes

        tw, tc = float(instance.total_work), float(instance.total_comm)
        cm = instance.cost_model
        values = {
            "instance": instance_id, "source": source, "spec": spec,
            "n_nodes": instance.n_nodes, "n_edges": instance.n_edges,
            "total_work": tw, "total_comm": tc, "max_work": float(instance.work.max()),
            "comm_share": tc / (tw + tc) if tw + tc > 0 else 0.0,
            "fingerprint": instance_fingerprint(instance),
            "blob": instance_to_bytes(instance),
            "time_unit": instance.time_unit, "memory_unit": instance.memory_unit,
            "cost_model": None if cm is None else json.dumps(
                dict(cm), default=_json_default, sort_keys=True, separators=(",", ":")),
            "variant": str(instance.metadata.get("variant", "as_given")),
            "constraints": ",".join(c for c in CONSTRAINTS if c in instance.constraints),
        }
        names = list(values)
        with self._tx():
            self._con.execute(
                f"INSERT OR REPLACE INTO instances ({','.join(names)}) "
                f"VALUES ({','.join('?' * len(names))})", [values[c] for c in names])

    def instance_rows(self) -> list[dict[str, Any]]:
        """Instance facts (without the graph blob), sorted by id.

        ``time_unit``, ``memory_unit`` and ``cost_model`` (a dict or None) are read from the
        stored graph when an older store lacks them.
        """
        cols = [c for c, _ in _INSTANCE_COLUMNS if c != "blob"]
        out = []
        for r in self._con.execute(
                f"SELECT {self._select(cols, self._inst_cols)} FROM instances "
                "ORDER BY instance"):
            d = dict(r)
            if d.get("time_unit") is None:
                try:
                    inst = self.load_instance(str(d["instance"]))
                except (KeyError, StoreError):
                    inst = None
                if inst is not None:
                    d["time_unit"], d["memory_unit"] = inst.time_unit, inst.memory_unit
                    d["cost_model"] = None if inst.cost_model is None else dict(inst.cost_model)
            elif isinstance(d.get("cost_model"), str):
                try:
                    d["cost_model"] = json.loads(d["cost_model"])
                except ValueError:
                    raise StoreError(f"instance {d['instance']!r}: column cost_model is not "
                                     "JSON; run `pipecert results check`",
                                     source=str(self.path)) from None
            out.append(d)
        return out

    def instance_rows_raw(self) -> list[dict[str, Any]]:
        """Instance facts exactly as stored (no blob, nothing decoded), sorted by id."""
        cols = [c for c, _ in _INSTANCE_COLUMNS if c != "blob"]
        return [dict(r) for r in self._con.execute(
            f"SELECT {self._select(cols, self._inst_cols)} FROM instances ORDER BY instance")]

    def load_instance(self, instance_id: str) -> Instance:
        """The stored graph of ``instance_id``.

        Raises
        ------
        KeyError
            If the instance is not stored.
        StoreError
            If its stored bytes do not decode to a valid instance.
        """
        from experiments._serialize import instance_from_bytes

        rows = self._con.execute(
            "SELECT blob FROM instances WHERE instance = ?", (instance_id,))
        if not rows:
            raise KeyError(f"instance {instance_id!r} is not in {self.path}")
        try:
            return instance_from_bytes(bytes(rows[0][0]))
        except Exception as exc:  # zlib, JSON, types, InstanceError: the bytes are damaged
            raise StoreError(f"instance {instance_id!r}: stored graph unreadable "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})",
                             source=str(self.path)) from None

    def has_instance(self, instance_id: str) -> bool:
        """True if the instance is recorded."""
        return bool(self._con.execute(
            "SELECT 1 FROM instances WHERE instance = ?", (instance_id,)))

    def instance_fingerprint(self, instance_id: str) -> str | None:
        """The stored fingerprint of ``instance_id`` (None if not stored)."""
        rows = self._con.execute(
            "SELECT fingerprint FROM instances WHERE instance = ?", (instance_id,))
        return None if not rows or rows[0][0] is None else str(rows[0][0])

    def changed_instances(self, current: Mapping[str, Instance]) -> list[str]:
        """Ids of ``current`` whose stored runs were computed on other data.

        An instance has changed when its stored graph differs from ``current[id]`` (by
        :attr:`pipecert.Instance.fingerprint`; a stored fingerprint of an older scheme is
        settled by decoding the stored graph) or when any of its runs records a fingerprint
        other than the current one. Ids not yet stored are not listed.
        """
        out = []
        for name, inst in current.items():
            fp = inst.fingerprint
            stored = self.instance_fingerprint(name)
            if not self.has_instance(name):
                changed = False
            elif stored == fp:
                changed = False
            else:
                try:
                    changed = self.load_instance(name).fingerprint != fp
                except StoreError:
                    changed = True
            if not changed and "fingerprint" in self._run_cols:
                changed = bool(self._con.execute(
                    "SELECT 1 FROM runs WHERE instance = ? AND fingerprint IS NOT NULL "
                    "AND fingerprint != ? LIMIT 1", (name, fp)))
            if changed:
                out.append(name)
        return out

    def delete_runs(self, instance_id: str) -> int:
        """Delete every run of ``instance_id`` (one transaction); return how many."""
        n = int(self._con.execute("SELECT COUNT(*) FROM runs WHERE instance = ?",
                                  (instance_id,))[0][0])
        with self._tx():
            self._con.execute("DELETE FROM runs WHERE instance = ?", (instance_id,))
        return n

    # ------------------------------------------------------------------ runs
    def add_run(self, record: RunRecord | Mapping[str, Any]) -> None:
        """Insert (or replace, same ``run_key``) one finished run in its own transaction.

        Parameters
        ----------
        record : RunRecord or mapping
            The run; a mapping is read with :meth:`RunRecord.from_row`, so a key that is
            not a column raises :class:`KeyError` (nothing is written).
        """
        if not isinstance(record, RunRecord):
            record = RunRecord.from_row(record)
        values = record.sql_values()
        with self._tx():
            self._con.execute(
                f"INSERT OR REPLACE INTO runs ({','.join(_RUN_NAMES)}) "
                f"VALUES ({','.join('?' * len(values))})", values)

    def run_keys(self) -> set[str]:
        """Keys of every stored run (``--resume`` skips these)."""
        return {str(r[0]) for r in self._con.execute("SELECT run_key FROM runs")}

    def raw_runs(self) -> list[dict[str, Any]]:
        """Every stored run exactly as stored (no parsing, no type checks), with ``rowid``.

        For :mod:`experiments.store_check`, which turns malformed values into findings.
        """
        sel = self._select(_RUN_NAMES, self._run_cols)
        return [dict(r) for r in self._con.execute(
            f"SELECT rowid AS rowid_, {sel} FROM runs ORDER BY rowid")]

    def runs(self, *, instance: str | None = None, parse_json: bool = True,
             columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Stored runs as dicts (JSON columns parsed), in insertion order.

        Raises
        ------
        StoreError
            If a value is not what its column holds (text in a numeric column, a
            non-finite number, JSON that does not parse): the store was damaged or edited;
            ``pipecert results check`` lists every such value.
        """
        cols = list(columns) if columns is not None else list(_RUN_NAMES)
        unknown = [c for c in cols if c not in _RUN_NAMES]
        if unknown:
            raise ValueError(f"unknown run columns {unknown}")
        sql = f"SELECT {self._select(cols, self._run_cols)} FROM runs"
        args: tuple[Any, ...] = ()
        if instance is not None:
            sql += " WHERE instance = ?"
            args = (instance,)
        out = []
        for r in self._con.execute(sql + " ORDER BY rowid", args):
            d = dict(r)
            bad = _malformed(d)
            if bad is None and parse_json:
                for c in _JSON_COLUMNS:
                    if d.get(c) is not None:
                        try:
                            d[c] = json.loads(d[c])
                        except (TypeError, ValueError):
                            bad = f"column {c} is not JSON"
                            break
            if bad is not None:
                label = " ".join(str(d[c]) if c != "k" else f"k={d[c]}"
                                 for c in ("instance", "k", "method_id") if d.get(c) is not None)
                if d.get("run_key"):
                    label += f" (run {str(d['run_key'])[:8]})"
                raise StoreError(f"run {label or '?'}: {bad}; run `pipecert results check` "
                                 "for every damaged value", source=str(self.path))
            if d.get("feasible") is not None:
                d["feasible"] = bool(d["feasible"])
            out.append(d)
        return out

    def records(self, *, instance: str | None = None) -> list[RunRecord]:
        """Stored runs as :class:`RunRecord` (JSON columns parsed), in insertion order.

        Raises
        ------
        StoreError
            As :meth:`runs`, and for a role that is not a :class:`~pipecert.registry.Role`.
        """
        out = []
        for d in self.runs(instance=instance):
            try:
                out.append(RunRecord(**d))
            except InputError as exc:  # Role.parse
                raise StoreError(f"run {str(d.get('run_key'))[:8]}: {exc}; run `pipecert "
                                 "results check`", source=str(self.path)) from None
        return out

    def __len__(self) -> int:
        return int(self._con.execute("SELECT COUNT(*) FROM runs")[0][0])

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
            "instance", "k", "role", "method_id", "status", "bound", "incumbent", "error")),
            inst)
        with self._tx():
            self._con.execute("DELETE FROM derived")
            names = [c for c, _ in _DERIVED_COLUMNS]
            self._con.executemany(
                f"INSERT INTO derived ({','.join(names)}) VALUES ({','.join('?' * len(names))})",
                [tuple(r.get(c) for c in names) for r in rows])
        return [{c: r.get(c) for c in names} for r in rows]

    def derived(self) -> list[dict[str, Any]]:
        """Rows of the ``derived`` table."""
        return [dict(r) for r in self._con.execute(
            "SELECT * FROM derived ORDER BY instance, k")]

    # ------------------------------------------------------------------ export
    def export(self, path: str | Path) -> Path:
        """Write every run to ``.csv`` or ``.parquet`` (by suffix); params flattened as p_*."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise InputError(f"unknown export format {suffix!r} (use .csv or .parquet)",
                             source=str(path))
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
        if suffix == ".csv":
            with path.open("w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
                w.writeheader()
                w.writerows(flat)
        else:
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
        return path

    # ------------------------------------------------------------------ check
    def check(self) -> CheckReport:
        """Re-derive every status and value the store allows (:func:`experiments.
        store_check.check_store`): findings, never exceptions, for damaged rows."""
        from experiments.store_check import check_store

        return check_store(self)

    def integrity(self) -> str:
        """SQLite's ``PRAGMA quick_check`` verdict: ``"ok"`` or the first problem."""
        rows = self._con.execute("PRAGMA quick_check")
        return "ok" if not rows else str(rows[0][0])


def _malformed(d: Mapping[str, Any]) -> str | None:
    """Why a run row's values are not what their columns hold (None if they are)."""
    for c in _REAL_RUN_COLUMNS:
        v = d.get(c)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            return f"column {c} holds {v!r}, not a number"
        if not math.isfinite(v):
            return f"column {c} holds {v!r}, not a finite number"
    for c in _INT_RUN_COLUMNS:
        v = d.get(c)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            return f"column {c} holds {v!r}, not an integer"
    return None


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error)."""

    def __init__(self, con: _Con) -> None:
        self.con = con

    def __enter__(self) -> _Con:
        raw = self.con.raw
        for attempt in range(50):
            try:
                raw.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:  # database is locked
                if "locked" not in str(exc) or attempt == 49:
                    raise _store_error(self.con.path, exc) from None
                time.sleep(0.1)
            except sqlite3.Error as exc:
                raise _store_error(self.con.path, exc) from None
        return self.con

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.con.raw.execute("COMMIT" if exc_type is None else "ROLLBACK")
        except sqlite3.Error as exc:
            if exc_type is None:
                raise _store_error(self.con.path, exc) from None

