"""The grid runner: instances x k x methods, each run isolated, every result stored.

Plan
----
:func:`build_cells` turns a resolved config (:mod:`experiments.config`) into cells, one per
(instance, k, method, base seed). Within an instance, heuristics run first and bounds after
them, so every bound run receives (through :class:`pipecert.SolveContext`) the best
partition found for its k or a smaller k (a partition into k' <= k stages is feasible for k)
as a warm start, cut-off and validity check. With ``run.share_bounds`` the bounds of an
instance run from the largest k down and each receives the best bound proven for a larger k
(OPT is non-increasing in k: such a bound is valid for k, docs/theory/min-cut-bounds.md#across-k).

A cell's context is computed only from the cells it depends on (all heuristic cells of its
instance, and with ``share_bounds`` the bound cells of larger k), never from whatever else
happened to finish first, so the stored rows do not depend on the executor or the number of
workers (apart from times). The context given is stored with the row
(``context_upper_bound``, ``context_lower_bound``); values carried across k for reporting
live in the store's ``derived`` table, never in ``runs``.

Executors
---------
* ``local`` (default): ``run.jobs`` worker processes (:class:`experiments.worker.
  WorkerProcess`); the parent multiplexes them with :func:`select.select`, kills a worker
  whose run overruns its time limit plus grace, records the error and starts a new worker.
* ``dask``: the same cells as Dask tasks on a ``distributed`` cluster (``run.scheduler``);
  each task drives a worker process on its Dask worker with the same external time limit.
  Results come back to the client, which alone writes the store.
* ``inline``: in this process, no isolation (for ``--raise`` debugging).
"""

from __future__ import annotations

import logging
import math
import select
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments.analysis import proven_bound
from experiments.progress import ProgressBar
from experiments.provenance import provenance
from experiments.records import RunRecord, Task, TaskContext, TaskResult
from experiments.store import SCHEMA_VERSION, ResultsStore, run_key
from experiments.worker import WorkerProcess, died_result, timeout_result
from pipecert.errors import InputError
from pipecert.instance import Instance
from pipecert.registry import Role, parse_method_spec
from pipecert.results import Status, bound_exceeds
from pipecert.runner import make_method
from pipecert.seeding import derive_seed

__all__ = [
    "Cell",
    "InstanceEntry",
    "GridResult",
    "build_cells",
    "load_entries",
    "run_grid",
    "cell_context",
    "make_record",
    "make_task",
]

log = logging.getLogger(__name__)

_STAT_COLUMNS = ("build_time_s", "solve_time_s", "solver", "solver_version", "n_vars",
                 "n_cons", "nodes", "iterations")


@dataclass(frozen=True, slots=True)
class Cell:
    """One run of the grid."""

    instance: str
    k: int
    role: Role
    spec: str
    method: str
    method_id: str
    params: dict[str, Any]
    base_seed: int
    seed: int
    time_limit_s: float
    kill_after_s: float
    threads: int

    def __post_init__(self) -> None:
        if not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role.parse(str(self.role)))

    @property
    def run_key(self) -> str:
        """The store key (instance, k, method_id, seed)."""
        return run_key(self.instance, self.k, self.method_id, self.seed)

    def label(self) -> str:
        """Short description for progress and messages."""
        return f"{self.instance} k={self.k} {self.method_id}"


@dataclass
class InstanceEntry:
    """An instance of the grid: its id (as stored), the graph and where it came from."""

    id: str
    instance: Instance
    source: str = ""
    spec: str = ""
    #: the problem variant (experiments/variants.py); ``id`` is ``REF@VARIANT`` unless
    #: it is ``as_given``
    variant: str = "as_given"
    _blob: bytes | None = field(default=None, repr=False)

    @property
    def blob(self) -> bytes:
        """The serialised instance sent to workers."""
        if self._blob is None:
            from experiments._serialize import instance_to_bytes

            self._blob = instance_to_bytes(self.instance)
        return self._blob


@dataclass
class GridResult:
    """What :func:`run_grid` did."""

    n_cells: int
    n_skipped: int
    n_run: int = 0
    n_errors: int = 0
    n_invalid: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: instances whose data changed since their stored runs (their old runs were deleted
    #: and run again, ``on_change="rerun"``), with the number of runs deleted
    rerun_changed: dict[str, int] = field(default_factory=dict)


def instance_spec(item: Any) -> tuple[str, dict[str, Any]]:
    """``(spec, reader options)`` of a ``grid.instances`` entry: a spec string, or a table
    ``{spec = "...", options = {training = true}}`` whose options go to the reader
    (:func:`instances.resolve`); such an instance's id is ``ID?key=value&...``."""
    if isinstance(item, str):
        return item, {}
    return str(item["spec"]), dict(item.get("options") or {})


def _option_text(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _dataset_of(ref_id: str, spec: str) -> str:
    if spec.startswith("suite:"):
        return spec.split(":", 1)[1]
    if "/" in ref_id and not Path(ref_id).exists():
        return ref_id.split("/", 1)[0]
    return "files"


def _size_ok(n_nodes: int, grid: Mapping[str, Any]) -> bool:
    """Whether a graph of ``n_nodes`` passes ``grid.min_nodes``/``grid.max_nodes``."""
    if grid["max_nodes"] and n_nodes > grid["max_nodes"]:
        return False
    return n_nodes >= grid["min_nodes"]


def _manifest_nodes(instance_id: str) -> int | None:
    """Node count of a bundled instance from its suite's manifest (``None`` if not bundled)."""
    from instances.bundled import is_bundled_id, suite_manifest

    if not is_bundled_id(instance_id):
        return None
    suite = instance_id.partition("/")[0]
    return next(int(e["n_nodes"]) for e in suite_manifest(suite) if e["id"] == instance_id)


def load_entries(cfg: Mapping[str, Any]) -> list[InstanceEntry]:
    """Resolve ``grid.instances`` with :func:`instances.resolve` and load each graph once.

    Instances are filtered by ``grid.min_nodes``/``grid.max_nodes``; duplicates (the same id
    from two specs) are kept once. Every instance gives one entry per ``grid.variants``
    (:mod:`experiments.variants`): ``as_given`` keeps the instance's id, any other variant
    ``V`` is the instance ``ID@V`` (its constraints changed, its own fingerprint).
    """
    import instances as inst_pkg
    from experiments.variants import parse_variant

    grid = cfg["grid"]
    variants = [parse_variant(v) for v in grid.get("variants", ["as_given"])]
    out: list[InstanceEntry] = []
    seen: set[str] = set()
    for item in grid["instances"]:
        spec, options = instance_spec(item)
        refs = inst_pkg.resolve(spec, **options)
        if not refs:
            raise InputError(f"instance spec {spec!r} matches no instance")
        suffix = "".join(f"{'?' if i == 0 else '&'}{k}={_option_text(v)}"
                         for i, (k, v) in enumerate(sorted(options.items())))
        for ref in refs:
            rid = f"{ref.id}{suffix}"
            if rid in seen:
                continue
            seen.add(rid)
            # a bundled graph's manifest records its size (tests/test_bundled.py checks it):
            # filter before reading, so large graphs of a suite cost nothing when skipped
            recorded = _manifest_nodes(str(ref.id)) if ref.path is None else None
            if recorded is not None and not _size_ok(recorded, grid):
                continue
            inst = ref.load()
            if not _size_ok(inst.n_nodes, grid):
                continue
            ds = _dataset_of(str(ref.id), spec) + suffix
            for var in variants:
                eid = rid if var.is_as_given else f"{rid}@{var.name}"
                # a variant is its own dataset in per-dataset figures
                vds = ds if var.is_as_given else f"{ds}@{var.name}"
                out.append(InstanceEntry(eid, var.apply(inst), vds, spec + suffix, var.name))
    if not out:
        raise InputError("no instance left after the node-count filters")
    return out


def _time_limit(cfg: Mapping[str, Any], role: Role, name: str, method_id: str) -> float:
    b = cfg["budget"]
    per = b["per_method"]
    if method_id in per:
        return float(per[method_id])
    if name in per:
        return float(per[name])
    if role is Role.HEURISTIC and b["heuristic_time_limit_s"]:
        return float(b["heuristic_time_limit_s"])
    return float(b["time_limit_s"])


def _method_ids(specs: Sequence[str], role: Role) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(spec, name, method_id, params) per spec, validated against the registry."""
    out = []
    for spec in specs:
        _, m = make_method(spec, role)  # InputError on an unknown name or bad parameters
        name, _ = parse_method_spec(spec)
        out.append((spec, name, m.method_id(), m.params()))
    return out


def build_cells(cfg: Mapping[str, Any], entries: Sequence[InstanceEntry]) -> list[Cell]:
    """Every cell of the grid, in the order they should start (see the module docstring)."""
    grid, b = cfg["grid"], cfg["budget"]
    heur = _method_ids(grid["heuristics"], Role.HEURISTIC)
    bnds = _method_ids(grid["bounds"], Role.BOUND)
    ks = sorted(set(grid["k"]))
    bound_ks = sorted(ks, reverse=bool(cfg["run"]["share_bounds"]))
    cells: list[Cell] = []
    for e in entries:
        for role, methods, korder in ((Role.HEURISTIC, heur, ks), (Role.BOUND, bnds, bound_ks)):
            for k in korder:
                for spec, name, mid, params in methods:
                    for base in grid["seeds"]:
                        tl = _time_limit(cfg, role, name, mid)
                        kill = tl + float(b["grace_s"]) + 0.1 * tl
                        cells.append(Cell(
                            e.id, k, role, spec, name, mid, _plain(params), int(base),
                            derive_seed(int(base), e.id, k, mid), tl, kill, int(b["threads"])))
    keys = [c.run_key for c in cells]
    if len(set(keys)) != len(keys):
        raise InputError("the grid lists the same run twice (duplicate method, k or seed)")
    return cells


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, v in params.items():
        out[key] = v if isinstance(v, bool | int | float | str | type(None)) else str(v)
    return out


def _dependencies(cells: Sequence[Cell], share_bounds: bool) -> dict[str, list[str]]:
    """run_key -> run_keys it waits for."""
    heur_by_inst: dict[str, list[str]] = defaultdict(list)
    bound_by_ik: dict[tuple[str, int], list[str]] = defaultdict(list)
    ks_by_inst: dict[str, set[int]] = defaultdict(set)
    for c in cells:
        if c.role is Role.HEURISTIC:
            heur_by_inst[c.instance].append(c.run_key)
        else:
            bound_by_ik[(c.instance, c.k)].append(c.run_key)
            ks_by_inst[c.instance].add(c.k)
    deps: dict[str, list[str]] = {}
    for c in cells:
        if c.role is Role.HEURISTIC:
            deps[c.run_key] = []
            continue
        d = list(heur_by_inst[c.instance])
        if share_bounds:
            larger = sorted(k for k in ks_by_inst[c.instance] if k > c.k)
            if larger:
                d += bound_by_ik[(c.instance, larger[0])]
        deps[c.run_key] = d
    return deps


def _closure(key: str, deps: Mapping[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(deps.get(key, ()))
    while stack:
        x = stack.pop()
        if x not in seen:
            seen.add(x)
            stack.extend(deps.get(x, ()))
    return seen


def cell_context(cell: Cell, dep_records: Iterable[RunRecord]) -> TaskContext:
    """The context passed to ``cell``, from the records of its dependencies.

    ``upper_bound``/``partition``: the best partition of a heuristic run at k' <= k;
    ``lower_bound``: the best bound proven by a bound run at k' > k or by an exact heuristic
    that proved optimality at k' >= k (None otherwise). A heuristic cell gets an empty
    context.
    """
    if cell.role is Role.HEURISTIC:
        return TaskContext()
    ub: tuple[float, list[int]] | None = None
    lb: float | None = None
    for r in dep_records:
        if r.instance != cell.instance or r.k is None:
            continue
        inc, part = r.incumbent, r.partition
        if inc is not None and part is not None and int(r.k) <= cell.k:
            if ub is None or inc < ub[0]:
                ub = (float(inc), list(part))
        bnd = proven_bound(r.as_row())
        # bound runs of a larger k (they run before this one); exact heuristics that proved
        # optimality at k' >= k (OPT(k') <= OPT(k))
        usable = int(r.k) > cell.k if r.role is Role.BOUND else int(r.k) >= cell.k
        if bnd is not None and usable:
            lb = bnd if lb is None else max(lb, bnd)
    return TaskContext(upper_bound=None if ub is None else ub[0],
                       partition=None if ub is None else tuple(ub[1]), lower_bound=lb)


def make_task(cell: Cell, context: TaskContext, raise_errors: bool = False) -> Task:
    """The :class:`Task` of ``cell`` with its context."""
    return Task(role=cell.role, spec=cell.spec, k=cell.k, seed=cell.seed,
                time_limit_s=cell.time_limit_s, threads=cell.threads, context=context,
                raise_errors=raise_errors)


def make_record(cell: Cell, entry: InstanceEntry, result: TaskResult, context: TaskContext,
                experiment: str) -> RunRecord:
    """The ``runs`` record of a finished cell (docs/guide/results-store.md)."""
    out = result.outcome
    stats = dict(out.stats)
    bound, inc = out.bound, out.incumbent
    gap = None
    if bound is not None and inc is not None and inc > 0:
        gap = (inc - bound) / max(abs(inc), 1e-9)
    part = None if out.partition is None else [int(x) for x in out.partition.stage_of]
    facts: dict[str, Any] = {}
    for c in _STAT_COLUMNS:
        v = stats.get(c)
        if v is not None:
            facts[c] = v if c in ("solver", "solver_version") else (
                float(v) if c.endswith("_s") else _int_or_none(v))
    if facts.get("solve_time_s") is None:
        facts["solve_time_s"] = out.time_s
    prov = provenance()
    return RunRecord(
        run_key=cell.run_key, schema_version=SCHEMA_VERSION, experiment=experiment,
        instance=cell.instance, instance_source=entry.source,
        n_nodes=entry.instance.n_nodes, n_edges=entry.instance.n_edges, k=cell.k,
        role=cell.role, method=cell.method, method_id=cell.method_id,
        params=cell.params, seed=cell.seed, status=str(out.status),
        bound=bound, incumbent=inc, feasible=None if part is None else True, gap=gap,
        context_upper_bound=context.upper_bound, context_lower_bound=context.lower_bound,
        wall_time_s=result.wall_time_s, time_limit_s=cell.time_limit_s, threads=cell.threads,
        partition=part, stats=stats, log=[list(x) for x in out.log], error=out.error,
        started_at=result.started_at, fingerprint=entry.instance.fingerprint,
        variant=entry.variant, package_version=prov["package_version"], git_rev=prov["git_rev"],
        python=prov["python"], platform=prov["platform"], cpu=prov["cpu"], host=prov["host"],
        **facts,
    )


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _settle_changed_instances(store: ResultsStore, entries: Sequence[InstanceEntry],
                              on_change: str) -> dict[str, int]:
    """Apply the ``on_change`` policy of :func:`run_grid`; return {id: runs deleted}."""
    if on_change not in ("refuse", "rerun"):
        raise InputError(f"unknown on_change policy {on_change!r} (refuse or rerun)")
    changed = store.changed_instances({e.id: e.instance for e in entries})
    if not changed:
        return {}
    if on_change == "refuse":
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more"
                                          if len(changed) > 5 else "")
        raise InputError(
            f"{len(changed)} instance(s) changed since their runs were stored (different "
            f"fingerprint): {shown}; rerun them with --rerun-changed, or use another output "
            "directory", source=str(store.path))
    return {name: store.delete_runs(name) for name in changed}


class _Grid:
    """Bookkeeping shared by the executors: pending cells, dependencies, rows, the store."""

    def __init__(self, cfg: Mapping[str, Any], store: ResultsStore,
                 entries: Sequence[InstanceEntry], cells: Sequence[Cell], resume: bool
                 ) -> None:
        self.cfg = cfg
        self.store = store
        self.entries = {e.id: e for e in entries}
        self.experiment = cfg["experiment"]["name"]
        self.deps = _dependencies(cells, bool(cfg["run"]["share_bounds"]))
        self.closure = {c.run_key: _closure(c.run_key, self.deps) for c in cells
                        if c.role is Role.BOUND}
        done_keys: set[str] = set()
        self.records: dict[str, RunRecord] = {}
        if resume:
            # a row counts as done only if computed on the current graph (a row without a
            # fingerprint predates them: its instance was checked unchanged by run_grid)
            fps = {e.id: e.instance.fingerprint for e in entries}
            for r in store.records():
                fp = r.fingerprint
                if fp is None or fp == fps.get(str(r.instance)):
                    self.records[r.run_key] = r
                    done_keys.add(r.run_key)
        self.done: set[str] = {c.run_key for c in cells if c.run_key in done_keys}
        self.pending: list[Cell] = [c for c in cells if c.run_key not in self.done]
        self.result = GridResult(len(cells), len(cells) - len(self.pending))
        self.progress: ProgressBar | None = None
        # incumbents known per instance for the write-time validity check
        self._inc: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for r in self.records.values():
            if r.incumbent is not None and r.instance is not None and r.k is not None:
                self._inc[r.instance].append((int(r.k), float(r.incumbent)))

    def next_ready(self) -> Cell | None:
        """The first pending cell whose dependencies are all done (removed from pending)."""
        for i, c in enumerate(self.pending):
            if all(d in self.done for d in self.deps[c.run_key]):
                return self.pending.pop(i)
        return None

    def next_ready_peek(self) -> Cell | None:
        """The first ready pending cell, left in place."""
        for c in self.pending:
            if all(d in self.done for d in self.deps[c.run_key]):
                return c
        return None

    def context(self, cell: Cell) -> TaskContext:
        """The context of ``cell`` from the records of its dependency closure."""
        if cell.role is not Role.BOUND:
            return TaskContext()
        recs = [self.records[k] for k in self.closure[cell.run_key] if k in self.records]
        return cell_context(cell, recs)

    def finish(self, cell: Cell, result: TaskResult, context: TaskContext) -> None:
        """Grade, store (one transaction) and account for one finished cell."""
        rec = make_record(cell, self.entries[cell.instance], result, context, self.experiment)
        if rec.bound is not None:
            known = [v for kk, v in self._inc[cell.instance] if kk <= cell.k]
            if rec.incumbent is not None:
                known.append(rec.incumbent)
            if known and bound_exceeds(rec.bound, min(known)):
                msg = (f"invalid bound: {cell.method_id} reported {rec.bound!r} above the "
                       f"feasible value {min(known)!r} on {cell.instance} (k={cell.k})")
                log.error(msg)
                rec = rec.replace(stats={**(rec.stats or {}), "rejected_bound": rec.bound},
                                  status=str(Status.ERROR), bound=None, gap=None, error=msg)
                self.result.n_invalid += 1
        if rec.incumbent is not None:
            self._inc[cell.instance].append((cell.k, float(rec.incumbent)))
        self.store.add_run(rec)
        self.records[cell.run_key] = rec
        self.done.add(cell.run_key)
        self.result.n_run += 1
        is_err = rec.status == Status.ERROR
        if is_err:
            self.result.n_errors += 1
            first = (rec.error or "").strip().splitlines()
            self.result.errors.append(f"{cell.label()}: {first[0] if first else 'error'}")
        if self.progress is not None:
            self.progress.update(cell.method_id, float(rec.wall_time_s or 0.0), error=is_err)


# ---------------------------------------------------------------------------- executors
def _warmup_list(cells: Sequence[Cell]) -> list[str]:
    """Registry names (default parameters: they compile the same code) to warm up."""
    return sorted({f"{c.role}:{c.method}" for c in cells})


#: Seconds a worker may take to import and warm up before the grid gives up on it.
STARTUP_TIMEOUT_S = 900.0


def _run_local(g: _Grid, jobs: int, memory_mb: float | None, plugins: list[str],
               threads: int, log_dir: Path | None) -> None:
    n = max(1, min(jobs, len(g.pending)))
    warm = _warmup_list(g.pending)
    workers = [WorkerProcess(memory_limit_mb=memory_mb, plugins=plugins, threads=threads,
                             log_path=None if log_dir is None else log_dir / f"worker-{i}.log",
                             warmup=warm)
               for i in range(n)]
    running: dict[int, tuple[Cell, TaskContext, dict[str, Any]]] = {}
    startup_failures = [0] * n
    try:
        for w in workers:
            w.start()
        while g.pending or running:
            # dispatch
            for i, w in enumerate(workers):
                if i in running or not w.ready:
                    continue
                cell = g.next_ready()
                if cell is None:
                    break
                ctx = g.context(cell)
                task = make_task(cell, ctx)
                msg = {"task": task.to_json(), "instance_key": cell.instance}
                running[i] = (cell, ctx, msg)
                w.deadline = time.monotonic() + cell.kill_after_s
                if g.progress is not None:
                    g.progress.current = cell.label()
                try:
                    w.send(msg)
                except Exception as exc:  # WorkerDied
                    _restart(w)
                    g.finish(cell, died_result(task, str(exc), 0.0), ctx)
                    del running[i]
            if not g.pending and not running:
                break
            if g.pending and not running and all(w.ready for w in workers) and \
                    g.next_ready_peek() is None:
                raise RuntimeError("grid deadlock: pending cells with unmet dependencies")
            now = time.monotonic()
            timeout = 0.5
            for i in running:
                timeout = min(timeout, max(0.0, workers[i].deadline - now))
            fds = {w.fileno(): i for i, w in enumerate(workers) if w.alive()}
            readable, _, _ = select.select(list(fds), [], [], timeout)
            for fd in readable:
                i = fds[fd]
                w = workers[i]
                try:
                    ans = w.recv()
                except Exception as exc:  # WorkerDied
                    desc = str(exc)
                    if not w.ready and i not in running:
                        startup_failures[i] += 1
                        if startup_failures[i] >= 3:  # e.g. a plug-in that does not import
                            raise InputError(f"worker process cannot start: {desc}") from None
                    _restart(w)
                    if i in running:
                        cell, ctx, _ = running.pop(i)
                        t = time.monotonic() - (w.deadline - cell.kill_after_s)
                        g.finish(cell, died_result(make_task(cell, ctx), desc, t), ctx)
                    continue
                op = ans.get("op")
                if op == "ready":
                    w.ready = True
                    startup_failures[i] = 0
                elif op == "need_instance" and i in running:
                    cell, ctx, msg = running[i]
                    try:
                        w.send({**msg, "instance_blob": g.entries[cell.instance].blob})
                    except Exception as exc:  # WorkerDied
                        _restart(w)
                        running.pop(i)
                        g.finish(cell, died_result(make_task(cell, ctx), str(exc), 0.0), ctx)
                elif op == "result" and i in running:
                    cell, ctx, _ = running.pop(i)
                    g.finish(cell, TaskResult.from_json(ans["result"]), ctx)
            now = time.monotonic()
            for w in workers:
                if not w.ready and now - w.started_at > STARTUP_TIMEOUT_S:
                    raise InputError(f"a worker process did not start within "
                                     f"{STARTUP_TIMEOUT_S:.0f} s: {w.exit_description()}")
            for i in list(running):
                w = workers[i]
                if now >= w.deadline:
                    cell, ctx, _ = running.pop(i)
                    _restart(w)
                    g.finish(cell, timeout_result(make_task(cell, ctx), cell.kill_after_s,
                                                  cell.kill_after_s), ctx)
            if g.progress is not None:
                g.progress.draw()
    finally:
        for w in workers:
            w.close()


def _restart(w: WorkerProcess) -> None:
    w.kill()
    w.start()


def _run_inline(g: _Grid, raise_errors: bool) -> None:
    from experiments.worker import execute_task

    caches: dict[str, dict[str, Any]] = defaultdict(dict)
    while g.pending:
        cell = g.next_ready()
        if cell is None:  # pragma: no cover - deps always come first in build order
            raise RuntimeError("grid deadlock")
        ctx = g.context(cell)
        if g.progress is not None:
            g.progress.current = cell.label()
        res = execute_task(make_task(cell, ctx, raise_errors), g.entries[cell.instance].instance,
                           caches[cell.instance])
        g.finish(cell, res, ctx)


# Dask -------------------------------------------------------------------------------------
_DASK_LOCAL: Any = None


def dask_run_cell(task_json: str, instance_key: str, blob: bytes, kill_after_s: float,
                  worker_opts: dict[str, Any]) -> str:
    """Dask task: run one cell (its :class:`Task` as JSON) in a worker process of this Dask
    worker (one per thread); returns the :class:`TaskResult` as JSON."""
    import threading

    global _DASK_LOCAL
    if _DASK_LOCAL is None:
        _DASK_LOCAL = threading.local()
    procs = getattr(_DASK_LOCAL, "procs", None)
    if procs is None:
        procs = _DASK_LOCAL.procs = {}
    key = repr(sorted(worker_opts.items()))
    w = procs.get(key)
    if w is None:
        w = procs[key] = WorkerProcess(**worker_opts)
    return w.call(Task.from_json(task_json), instance_key, blob, kill_after_s).to_json()


def _run_dask(g: _Grid, address: str | Any, memory_mb: float | None, plugins: list[str],
              threads: int) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:  # pragma: no cover - dask is a dev/dask extra
        raise InputError("the Dask executor needs dask[distributed] "
                         "(pip install 'pipecert[dask]')") from None
    own = isinstance(address, str)
    client: Any = Client(address) if own else address
    try:
        blobs: dict[str, Any] = {}
        opts = {"memory_limit_mb": memory_mb, "plugins": plugins, "threads": threads,
                "warmup": _warmup_list(g.pending)}
        meta: dict[Any, tuple[Cell, TaskContext]] = {}
        ac = as_completed()

        def submit_ready() -> None:
            while True:
                cell = g.next_ready()
                if cell is None:
                    return
                if cell.instance not in blobs:
                    blobs[cell.instance] = client.scatter(g.entries[cell.instance].blob,
                                                          hash=False)
                ctx = g.context(cell)
                fut = client.submit(dask_run_cell, make_task(cell, ctx).to_json(), cell.instance,
                                    blobs[cell.instance], cell.kill_after_s, opts, pure=False)
                meta[fut] = (cell, ctx)
                ac.add(fut)

        submit_ready()
        for fut in ac:
            cell, ctx = meta.pop(fut)
            try:
                res = TaskResult.from_json(fut.result())
            except Exception as exc:  # the Dask worker itself failed
                res = died_result(make_task(cell, ctx),
                                  f"dask task failed: {type(exc).__name__}: {exc}", 0.0)
            g.finish(cell, res, ctx)
            submit_ready()
        if g.pending:  # pragma: no cover
            raise RuntimeError("grid deadlock: pending cells with unmet dependencies")
    finally:
        if own:
            client.close()


def run_grid(
    cfg: Mapping[str, Any],
    store: ResultsStore,
    entries: Sequence[InstanceEntry],
    *,
    resume: bool = False,
    executor: str = "local",
    progress: bool | ProgressBar = False,
    raise_errors: bool = False,
    dask_client: Any = None,
    log_dir: Path | None = None,
    on_plan: Callable[[int, int], None] | None = None,
    on_change: str = "refuse",
) -> GridResult:
    """Run every cell of the grid not yet in ``store`` (with ``resume``) and store each row.

    Parameters
    ----------
    cfg : dict
        A resolved config (:func:`experiments.config.load_config`).
    store : ResultsStore
    entries : list of InstanceEntry
    resume : bool
        Skip cells whose run key is already stored; otherwise every cell runs again and
        replaces its row.
    executor : {"local", "dask", "inline"}
    progress : bool or ProgressBar
        Show a progress bar on stderr.
    dask_client : distributed.Client, optional
        Use this client instead of connecting to ``run.scheduler``.
    on_plan : callable, optional
        Called with (cells to run, cells skipped) before anything runs.
    on_change : {"refuse", "rerun"}
        What to do when the store holds runs of an instance id whose data changed since
        (another :attr:`~pipecert.Instance.fingerprint`): ``"refuse"`` raises an
        :class:`InputError` naming them before anything runs; ``"rerun"`` deletes their old
        runs, stores the new graph and runs their cells again. Rows computed on old costs
        are never kept next to new ones.

    Raises
    ------
    InputError
        If ``on_change="refuse"`` and an instance changed (see above).
    """
    import importlib

    t0 = time.monotonic()
    for mod in cfg["run"]["plugins"]:
        try:
            importlib.import_module(mod)  # out-of-tree methods register in this process too
        except ImportError as exc:
            raise InputError(f"cannot import plug-in module {mod!r}: {exc}") from None
    cells = build_cells(cfg, entries)
    rerun = _settle_changed_instances(store, entries, on_change)
    for e in entries:
        if e.id in rerun or not store.has_instance(e.id):
            store.add_instance(e.id, e.instance, source=e.source, spec=e.spec)
    g = _Grid(cfg, store, entries, cells, resume)
    g.result.rerun_changed = rerun
    pb: ProgressBar | None = None
    if isinstance(progress, ProgressBar):
        pb = progress
    elif progress:
        workers = cfg["run"]["jobs"] if executor == "local" else 1
        pb = ProgressBar(len(g.pending), workers=workers)
    if pb is not None:
        for c in g.pending:
            pb.plan(c.method_id, c.time_limit_s)
        g.progress = pb
    if on_plan is not None:
        on_plan(len(g.pending), g.result.n_skipped)
    b = cfg["budget"]
    mem = float(b["memory_limit_mb"]) or None
    plugins = list(cfg["run"]["plugins"])
    try:
        if not g.pending:
            pass
        elif executor == "inline":
            _run_inline(g, raise_errors)
        elif executor == "dask":
            _run_dask(g, dask_client if dask_client is not None else cfg["run"]["scheduler"],
                      mem, plugins, int(b["threads"]))
        elif executor == "local":
            if log_dir is None:  # worker logs explain crashes: keep them somewhere
                import tempfile

                log_dir = Path(tempfile.mkdtemp(prefix="pipecert-logs-"))
            _run_local(g, int(cfg["run"]["jobs"]), mem, plugins, int(b["threads"]), log_dir)
        else:
            raise InputError(f"unknown executor {executor!r}")
    finally:
        if pb is not None:
            pb.close()
    store.update_derived()
    g.result.elapsed_s = time.monotonic() - t0
    if not math.isfinite(g.result.elapsed_s):  # pragma: no cover
        g.result.elapsed_s = 0.0
    return g.result
