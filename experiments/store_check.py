"""``pipecert results check``: re-derive every status and value a results store allows.

A store holds, per run, the status, the certified ``bound``, the ``incumbent`` and the
partition (``stage_of``) it claims, and the graph itself (compressed, with its
:attr:`~pipecert.Instance.fingerprint`). :func:`check_store` trusts none of it and re-derives
what it can; every disagreement is a *finding*, one line naming the run, never an exception:

* **unreadable values**: text or a non-finite number in a numeric column, JSON that does not
  parse, an unknown status or role, a partition that is not a list of stage indices, a
  stored graph that does not decode, a stored fingerprint that is not the stored graph's;
* **instance versions**: a run whose recorded fingerprint is not its stored graph's (it was
  computed on other costs, so its values say nothing about the stored graph);
* **partitions**: each stored partition must be feasible for its k (check_feasible) and its
  value under the reference cost function (:func:`pipecert.evaluate` on the stored graph)
  must equal the stored ``incumbent`` (relative 1e-9); an incumbent without a partition
  cannot be verified and is a finding;
* **bounds**: a bound (and the value of an exact heuristic that claims ``optimal``, which
  is OPT, hence a bound) must not exceed any verified partition value of the same graph
  (same fingerprint, so two ids of one graph are compared) at k' <= k (a partition into
  k' <= k stages is feasible for k), nor any unverified stored incumbent (one of the two is
  then wrong);
* **statuses**: ``optimal`` on a bound run needs a verified partition of the same graph at
  k' <= k whose value the bound meets (within :data:`OPTIMAL_RTOL`); ``optimal`` on a
  heuristic run and ``feasible`` need a partition; ``bound`` and ``solved`` need a bound;
  ``solved`` (a relaxation solved) applies to bound runs; a stored ``gap`` must be the one
  the bound and incumbent give; ``feasible = 1`` needs a partition.

Only what the store holds is checked: no method is run again, and OPT itself is not known.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipecert.errors import InputError
from pipecert.instance import Instance
from pipecert.registry import Role
from pipecert.results import BOUND_ATOL, Status, bound_exceeds

if TYPE_CHECKING:
    from experiments.store import CheckReport, ResultsStore

__all__ = ["check_store", "OPTIMAL_RTOL", "INCUMBENT_RTOL"]

#: A bound run labelled ``optimal`` must come this close (relative) to a stored partition
#: value: the largest default relative MIP gap at which a solver calls a model optimal
#: (1e-4, see ``formulations.mip.backends.CVXPY_UNKNOWN_GAP``), which also covers the
#: safety margin taken off every solver bound (:data:`pipecert.DUAL_BOUND_MARGIN`).
OPTIMAL_RTOL = 1e-4
#: A stored incumbent must equal its partition's re-scored value to this relative precision.
INCUMBENT_RTOL = 1e-9

_ROLES = tuple(r.value for r in Role)
_STATUSES = {s.value for s in Status}
_NUMERIC = ("bound", "incumbent", "gap", "context_upper_bound", "context_lower_bound",
            "build_time_s", "solve_time_s", "wall_time_s", "time_limit_s")
_JSON = ("params", "partition", "stats", "log")


@dataclass
class _Run:
    """A run row whose key fields parsed, with the facts derived for the cross checks."""

    where: str
    instance: str
    k: int
    role: str
    status: str
    bound: float | None
    incumbent: float | None
    group: str  # the fingerprint of the graph the run's values refer to
    verified: float | None = None  # the re-scored value of its partition, if feasible
    has_partition: bool = False  # a stored partition (feasible or not)


def _num(v: Any) -> tuple[float | None, str | None]:
    """(value, None) for NULL or a finite number, (None, why) otherwise."""
    if v is None:
        return None, None
    if isinstance(v, bool) or not isinstance(v, int | float):
        kind = "text" if isinstance(v, str) else type(v).__name__
        return None, f"holds {_short(v)} ({kind}), not a number"
    if not math.isfinite(v):
        return None, f"holds {v!r}, not a finite number"
    return float(v), None


def _short(v: Any, n: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 3] + "..."


def _line(text: str) -> str:
    return " ".join(str(text).split())


def _stage_list(v: Any) -> str | None:
    """Why ``v`` is not a list of non-negative integer stage indices (None if it is)."""
    if not isinstance(v, list):
        return f"is {type(v).__name__}, not a list of stages"
    for x in v:
        if isinstance(x, bool) or not isinstance(x, int) or x < 0:
            return f"holds {_short(x)}, not a stage index"
    return None


def check_store(store: ResultsStore) -> CheckReport:
    """Every finding of the module docstring's checks on ``store`` (see :class:`CheckReport`).

    Raises only :class:`experiments.store.StoreError`, when SQLite cannot read the file at
    all (a finding needs a row to attach to).
    """
    from experiments.store import CheckReport, StoreError
    from pipecert.partition import Partition, check_feasible, evaluate

    problems: list[str] = []
    verdict = store.integrity()
    if verdict != "ok":
        problems.append(f"database integrity: {_line(verdict)}")

    # ------------------------------------------------------------- instances
    graphs: dict[str, Instance] = {}
    group_of: dict[str, str] = {}
    inst_rows = store.instance_rows_raw()
    for row in inst_rows:
        iname = str(row["instance"])
        try:
            inst = store.load_instance(iname)
        except StoreError as exc:
            problems.append(_line(exc.problem))
            continue
        graphs[iname] = inst
        fp = inst.fingerprint
        group_of[iname] = fp
        stored = row.get("fingerprint")
        if stored is None:
            problems.append(f"instance {iname}: no fingerprint stored")
        elif not isinstance(stored, str):
            problems.append(f"instance {iname}: column fingerprint holds {_short(stored)}")
        elif len(stored) == len(fp) and stored != fp:  # (older 16-digit scheme: not compared)
            problems.append(f"instance {iname}: stored fingerprint {stored} is not that of its "
                            f"stored graph ({fp}): the graph or the fingerprint was altered")

    # ------------------------------------------------------------- rows
    raw = store.raw_runs()
    runs: list[_Run] = []
    n_part = n_bound = 0
    for r in raw:
        key = r.get("run_key")
        tag = str(key)[:8] if isinstance(key, str) and key else f"rowid {r.get('rowid_')}"
        mid = r.get("method_id")
        name: Any = r.get("instance")
        k: Any = r.get("k")
        where = f"{name} k={k} {mid} (run {tag})"
        bad: list[str] = []
        if not isinstance(name, str) or not name:
            bad.append(f"column instance holds {_short(name)}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            bad.append(f"column k holds {_short(k)}, not a positive integer")
        if r.get("role") not in _ROLES:
            bad.append(f"column role holds {_short(r.get('role'))}, not one of "
                       f"{', '.join(_ROLES)}")
        if r.get("status") not in _STATUSES:
            bad.append(f"column status holds {_short(r.get('status'))}, not a status")
        nums: dict[str, float | None] = {}
        for c in _NUMERIC:
            nums[c], why = _num(r.get(c))
            if why:
                bad.append(f"column {c} {why}")
        parsed: dict[str, Any] = {}
        for c in _JSON:
            v = r.get(c)
            if v is None:
                continue
            try:
                parsed[c] = json.loads(v) if isinstance(v, str) else json.loads(bytes(v))
            except (TypeError, ValueError):
                bad.append(f"column {c} holds {_short(v)}, not JSON")
        if "partition" in parsed and parsed["partition"] is not None:
            why = _stage_list(parsed["partition"])
            if why:
                bad.append(f"column partition {why}")
                parsed.pop("partition")
        for msg in bad:
            problems.append(f"{where}: unreadable: {msg}")
        if any(m.startswith(("column instance", "column k ", "column role", "column status"))
               for m in bad):
            continue  # nothing else can be attributed reliably
        assert isinstance(name, str) and isinstance(k, int)
        role, status = str(r["role"]), str(r["status"])
        row_fp = r.get("fingerprint")
        stored_fp = group_of.get(name)
        if isinstance(row_fp, str) and stored_fp is not None and row_fp != stored_fp:
            problems.append(f"{where}: computed on another version of {name} (run fingerprint "
                            f"{row_fp}, stored graph {stored_fp}): its values do not apply to "
                            "the stored graph")
            group = row_fp
        else:
            group = stored_fp or (row_fp if isinstance(row_fp, str) else f"id:{name}")
        run = _Run(where, name, k, role, status, nums["bound"], nums["incumbent"], group)
        runs.append(run)
        part = parsed.get("partition")
        if part is not None:
            n_part += 1
            run.has_partition = True
            graph = graphs.get(name)
            if group != stored_fp or graph is None:
                if graph is None and name not in {str(x["instance"]) for x in inst_rows}:
                    problems.append(f"{where}: instance not stored, the partition cannot be "
                                    "re-scored")
            else:
                try:
                    p = Partition(part, k)
                    infeasible = check_feasible(graph, p, k=k)
                except (ValueError, InputError) as exc:
                    infeasible = [str(exc)]
                if infeasible:
                    problems.append(f"{where}: stored partition infeasible for k={k}: "
                                    f"{_line(infeasible[0])}")
                else:
                    value = float(evaluate(graph, p))
                    run.verified = value
                    inc = run.incumbent
                    if inc is None:
                        problems.append(f"{where}: a partition (value {value!r}) but no "
                                        "incumbent stored")
                    elif abs(value - inc) > INCUMBENT_RTOL * max(1.0, abs(value)):
                        problems.append(f"{where}: stored incumbent {inc!r} but the partition "
                                        f"re-scores to {value!r}")
        elif run.incumbent is not None:
            problems.append(f"{where}: incumbent {run.incumbent!r} without a stored "
                            "partition: the value cannot be verified")
        if r.get("feasible") and part is None and status != Status.FEASIBLE:
            problems.append(f"{where}: marked feasible without a stored partition")
        # statuses and the values they require
        if status == Status.SOLVED and role != Role.BOUND:
            problems.append(f"{where}: status solved (a relaxation solved) on a {role} run")
        if status in (Status.BOUND, Status.SOLVED) and role == Role.BOUND and run.bound is None:
            problems.append(f"{where}: status {status} without a bound")
        if status == Status.OPTIMAL and role == Role.BOUND and run.bound is None:
            problems.append(f"{where}: status optimal without a bound")
        if status in (Status.OPTIMAL, Status.FEASIBLE) and role == Role.HEURISTIC and part is None:
            problems.append(f"{where}: status {status} without a stored partition")
        if status == Status.INFEASIBLE and (part is not None or run.bound is not None
                                           or run.incumbent is not None):
            problems.append(f"{where}: status infeasible (no partition exists) with a "
                            "partition, incumbent or bound stored")
        inc = run.incumbent
        if run.bound is not None and inc is not None and inc > 0 and r.get("gap") is not None:
            want = (inc - run.bound) / max(abs(inc), 1e-9)
            got = nums["gap"]
            if got is not None and abs(got - want) > 1e-9 * max(1.0, abs(want)):
                problems.append(f"{where}: stored gap {got!r} but the bound and incumbent give "
                                f"{want!r}")

    # ------------------------------------------------------------- across runs
    verified: dict[str, list[tuple[int, float, str]]] = defaultdict(list)
    unverified: dict[str, list[tuple[int, float, str]]] = defaultdict(list)
    for run in runs:
        if run.verified is not None:
            verified[run.group].append((run.k, run.verified, run.where))
        elif run.incumbent is not None and not run.has_partition:
            unverified[run.group].append((run.k, run.incumbent, run.where))

    def best(table: dict[str, list[tuple[int, float, str]]], run: _Run
             ) -> tuple[int, float, str] | None:
        cands = [c for c in table.get(run.group, []) if c[0] <= run.k]
        return min(cands, key=lambda c: c[1]) if cands else None

    for run in runs:
        if run.status == Status.INFEASIBLE:
            # a proof that no partition into k stages exists; one into k' <= k stages
            # would be one into k stages
            v = best(verified, run)
            if v is not None:
                problems.append(f"{run.where}: status infeasible, but {_ref(v, run)} stores a "
                                f"feasible partition of value {v[1]!r}: the proof is wrong")
        claims: list[tuple[str, float]] = []
        if run.bound is not None:
            claims.append(("bound", run.bound))
        if run.role == Role.HEURISTIC and run.status == Status.OPTIMAL \
                and run.verified is not None:
            claims.append(("optimal value", run.verified))
        if claims:
            n_bound += 1
        for what, b in claims:
            v = best(verified, run)
            if v is not None and bound_exceeds(b, v[1]):
                problems.append(f"{run.where}: {what} {b!r} exceeds the best partition value "
                                f"{v[1]!r} (of {_ref(v, run)}): the {what} is invalid")
                continue
            u = best(unverified, run)
            if u is not None and bound_exceeds(b, u[1]):
                problems.append(f"{run.where}: {what} {b!r} exceeds the stored incumbent "
                                f"{u[1]!r} (of {_ref(u, run)}, no partition to verify it): "
                                "one of the two is wrong")
        if run.role == Role.BOUND and run.status == Status.OPTIMAL and run.bound is not None:
            v = best(verified, run)
            if v is None:
                problems.append(f"{run.where}: status optimal but no stored partition of "
                                f"{run.instance} for k <= {run.k} to prove it")
            elif v[1] - run.bound > OPTIMAL_RTOL * abs(v[1]) + BOUND_ATOL:
                gap = 100 * (v[1] - run.bound) / v[1] if v[1] else math.inf
                problems.append(f"{run.where}: status optimal but the bound {run.bound!r} is "
                                f"{gap:.3g}% below the best stored partition {v[1]!r}: not a "
                                "proof of optimality (status solved or bound?)")
    return CheckReport(len(raw), n_part, n_bound, tuple(_line(p) for p in problems),
                       len(inst_rows))


def _ref(c: tuple[int, float, str], run: _Run) -> str:
    """How a finding names the other run (its k when it differs)."""
    k, _, where = c
    return where if k == run.k else f"{where}, carried to k={run.k}"
