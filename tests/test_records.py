"""The typed run path: Role, Task/TaskResult/RunOutcome JSON, RunRecord <-> store columns,
and the one run service (:func:`pipecert.runner.run_method`)."""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.records import (
    JSON_COLUMNS,
    RUN_COLUMNS,
    RunRecord,
    Task,
    TaskContext,
    TaskResult,
)
from experiments.store import ResultsStore, run_key
from experiments.worker import execute_task
from pipecert import InputError, Partition
from pipecert.registry import Role
from pipecert.results import Budget, RunOutcome, SolveContext, Status
from pipecert.runner import make_method, role_of, run_method
from pipecert.testing import random_dag, worked_example

#: The ``runs`` schema of every store written before the columns were derived from
#: RunRecord: existing stores must keep opening, so the derived schema must equal it.
HISTORICAL_RUN_COLUMNS = (
    ("run_key", "TEXT PRIMARY KEY"), ("schema_version", "INTEGER"), ("experiment", "TEXT"),
    ("instance", "TEXT"), ("instance_source", "TEXT"), ("n_nodes", "INTEGER"),
    ("n_edges", "INTEGER"), ("k", "INTEGER"), ("role", "TEXT"), ("method", "TEXT"),
    ("method_id", "TEXT"), ("params", "TEXT"), ("seed", "INTEGER"), ("status", "TEXT"),
    ("bound", "REAL"), ("incumbent", "REAL"), ("feasible", "INTEGER"), ("gap", "REAL"),
    ("context_upper_bound", "REAL"), ("context_lower_bound", "REAL"),
    ("build_time_s", "REAL"), ("solve_time_s", "REAL"), ("wall_time_s", "REAL"),
    ("time_limit_s", "REAL"), ("threads", "INTEGER"), ("solver", "TEXT"),
    ("solver_version", "TEXT"), ("n_vars", "INTEGER"), ("n_cons", "INTEGER"),
    ("nodes", "INTEGER"), ("iterations", "INTEGER"), ("partition", "TEXT"), ("stats", "TEXT"),
    ("log", "TEXT"), ("error", "TEXT"), ("package_version", "TEXT"), ("git_rev", "TEXT"),
    ("python", "TEXT"), ("platform", "TEXT"), ("cpu", "TEXT"), ("host", "TEXT"),
    ("started_at", "TEXT"), ("fingerprint", "TEXT"), ("variant", "TEXT"),
)


# ---------------------------------------------------------------------------- Role
def test_role_is_its_string_and_knows_its_registry():
    from formulations import FORMULATIONS
    from heuristics import HEURISTICS

    assert Role.HEURISTIC == "heuristic" and Role.BOUND == "bound"
    assert Role.parse("bound") is Role.BOUND
    assert Role.HEURISTIC.registry() is HEURISTICS
    assert Role.BOUND.registry() is FORMULATIONS
    with pytest.raises(InputError, match="unknown method role 'bund'"):
        Role.parse("bund")


# ---------------------------------------------------------------------------- JSON
def test_run_outcome_round_trips_through_json():
    out = RunOutcome("brkga[population=5]", "heuristic", Status.FEASIBLE, 0.25, bound=None,
                     incumbent=12.5, partition=Partition([0, 1, 1, 2], 4),
                     stats={"n": np.int64(3), "x": np.float64(0.5), "a": np.arange(2)},
                     log=((0.1, 2, 13.0), (0.2, 5, 12.5)), error=None)
    back = RunOutcome.from_json(out.to_json())
    assert back.role is Role.HEURISTIC and back.status is Status.FEASIBLE
    assert back.partition is not None and back.partition.k == 4
    assert back.partition.stage_of.tolist() == [0, 1, 1, 2]
    assert dict(back.stats) == {"n": 3, "x": 0.5, "a": [0, 1]}
    assert back.log == ((0.1, 2, 13.0), (0.2, 5, 12.5))
    assert (back.method, back.time_s, back.incumbent, back.bound) == (
        out.method, out.time_s, out.incumbent, out.bound)
    # written twice: the same text (nothing lost on the way)
    assert back.to_json() == RunOutcome.from_json(back.to_json()).to_json()
    inf = RunOutcome("b", Role.BOUND, Status.BOUND, 1.0, bound=math.inf)
    assert RunOutcome.from_json(inf.to_json()).bound == math.inf


def test_task_and_result_round_trip_through_json():
    t = Task(Role.BOUND, "guess[solver=highs]", 4, 123, 2.5, 1,
             TaskContext(upper_bound=9.0, partition=(0, 1, 1), lower_bound=3.0), False)
    assert Task.from_json(t.to_json()) == t
    assert Task.from_json(Task("heuristic", "bfs_order", 2, 0).to_json()).role is Role.HEURISTIC
    no_limit = Task(Role.HEURISTIC, "bfs_order", 2, 0, None)
    assert Task.from_json(no_limit.to_json()) == no_limit
    r = TaskResult.failure("boom", role=Role.BOUND, method="guess", elapsed=1.5)
    back = TaskResult.from_json(r.to_json())
    assert back.outcome.status is Status.ERROR and back.outcome.error == "boom"
    assert back.wall_time_s == 1.5 and back.started_at == r.started_at
    assert back.to_json() == r.to_json()


@pytest.mark.parametrize("cls,obj", [
    (Task, Task(Role.BOUND, "combinatorial", 2, 0)),
    (TaskResult, TaskResult.failure("x", role="bound", method="m")),
    (RunOutcome, RunOutcome("m", "bound", Status.BOUND, 0.0, bound=1.0)),
])
def test_json_with_a_misspelt_key_or_another_version_is_refused(cls, obj):
    d = json.loads(obj.to_json())
    bad = dict(d)
    key = next(k for k in d if k != "version")
    bad[key + "x"] = bad.pop(key)
    with pytest.raises(ValueError, match="unknown key"):
        cls.from_json(json.dumps(bad))
    with pytest.raises(ValueError, match="version"):
        cls.from_json(json.dumps({**d, "version": 99}))
    with pytest.raises(ValueError, match="object"):
        cls.from_json("[1, 2]")


def test_task_context_becomes_the_solve_context():
    ctx = TaskContext(upper_bound=5.0, partition=[0, 0, 1], lower_bound=2.0)
    assert ctx.partition == (0, 0, 1)  # lists are frozen to tuples
    cache: dict = {}
    sc = ctx.solve_context(3, cache)
    assert sc.partition is not None and sc.partition.k == 3
    assert sc.partition.stage_of.tolist() == [0, 0, 1]
    assert (sc.upper_bound, sc.lower_bound) == (5.0, 2.0) and sc.cache is cache
    with pytest.raises(ValueError, match="unknown key"):
        TaskContext.from_dict({"upper_bond": 1.0})


# ---------------------------------------------------------------------------- columns
def test_store_columns_are_the_record_fields_and_the_historical_schema():
    names = tuple(f.name for f in dataclasses.fields(RunRecord))
    assert tuple(c for c, _ in RUN_COLUMNS) == names
    assert RUN_COLUMNS == HISTORICAL_RUN_COLUMNS  # existing stores open unchanged
    assert set(JSON_COLUMNS) == {"params", "partition", "stats", "log"}


def test_a_new_store_has_exactly_the_record_columns(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite"):
        pass
    con = sqlite3.connect(tmp_path / "r.sqlite")
    cols = [(r[1], r[2]) for r in con.execute("PRAGMA table_info(runs)")]
    con.close()
    assert [c for c, _ in cols] == [f.name for f in dataclasses.fields(RunRecord)]
    assert [t for _, t in cols] == [t.split()[0] for _, t in RUN_COLUMNS]


def test_a_misspelt_key_is_an_error_not_a_null(tmp_path):
    with pytest.raises(KeyError, match="'incumbnt'"):
        RunRecord.from_row({"run_key": "a", "incumbnt": 3.0})
    with pytest.raises(KeyError, match="run_key"):
        RunRecord.from_row({"instance": "a"})
    with pytest.raises(TypeError):
        RunRecord(run_key="a").replace(incumbnt=3.0)
    with ResultsStore(tmp_path / "r.sqlite") as st:
        with pytest.raises(KeyError, match="'statsu'"):
            st.add_run({"run_key": "a", "instance": "g", "k": 2, "statsu": "feasible"})
        assert len(st) == 0  # nothing written


def test_records_round_trip_through_the_store(tmp_path):
    rec = RunRecord(
        run_key=run_key("g", 3, "bfs_order", 0), instance="g", k=3, role=Role.HEURISTIC,
        method="bfs_order", method_id="bfs_order", params={"refine": False}, seed=0,
        status=str(Status.FEASIBLE), incumbent=7.5, feasible=True, partition=[0, 1, 2],
        stats={"evaluations": 4}, log=[[0.1, 1, 8.0]], wall_time_s=0.01, threads=1,
        context_upper_bound=math.inf)
    with ResultsStore(tmp_path / "r.sqlite") as st:
        st.add_run(rec)
        (back,) = st.records()
        (row,) = st.runs()
    assert back == rec.replace(context_upper_bound=None)  # a non-finite float is NULL
    assert back.role is Role.HEURISTIC
    assert row["role"] == "heuristic" and type(row["role"]) is str
    assert RunRecord.from_row(rec.as_row()) == rec


def test_an_older_store_without_the_newest_columns_opens_and_gains_them(tmp_path):
    path = tmp_path / "old.sqlite"
    old = [c for c in HISTORICAL_RUN_COLUMNS if c[0] not in ("fingerprint", "variant")]
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE runs ({', '.join(f'{c} {t}' for c, t in old)})")
    con.execute("CREATE TABLE instances (instance TEXT PRIMARY KEY, blob BLOB)")
    con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO runs (run_key, instance, k, role, status, bound) "
                "VALUES ('a', 'g', 2, 'bound', 'bound', 1.5)")
    con.commit()
    con.close()
    with ResultsStore(path, readonly=True) as st:
        (r,) = st.records()
        assert (r.role, r.bound, r.fingerprint, r.variant) == (Role.BOUND, 1.5, None, None)
    with ResultsStore(path) as st:  # opened for writing: the missing columns are added
        st.add_run(r.replace(run_key="b", fingerprint="f"))
        assert {x.run_key: x.fingerprint for x in st.records()} == {"a": None, "b": "f"}


# ---------------------------------------------------------------------------- service
def test_run_method_runs_a_spec_or_an_object_like_the_graded_run():
    from formulations import FORMULATIONS
    from heuristics import HEURISTICS

    inst = random_dag(3, 12)
    h = run_method("bfs_order", inst, 3, role=Role.HEURISTIC, seed=1)
    direct = HEURISTICS.make("bfs_order").run(inst, 3, Budget(), 1)
    assert (h.status, h.incumbent, h.role) == (direct.status, direct.incumbent, Role.HEURISTIC)
    assert h.partition is not None and direct.partition is not None
    assert h.partition.stage_of.tolist() == direct.partition.stage_of.tolist()
    ctx = SolveContext(upper_bound=h.incumbent, partition=h.partition)
    b = run_method("node_bound", inst, 3, context=ctx)  # role found from the name
    b_direct = FORMULATIONS.make("node_bound").run(inst, 3, Budget(), ctx)
    assert (b.role, b.status, b.bound) == (Role.BOUND, b_direct.status, b_direct.bound)
    obj = run_method(FORMULATIONS.make("combinatorial"), inst, 3)
    assert obj.role is Role.BOUND and obj.bound is not None and obj.bound <= h.incumbent
    assert role_of(HEURISTICS.make("bfs_order")) is Role.HEURISTIC
    assert make_method("combinatorial")[0] is Role.BOUND


def test_run_method_errors_are_one_line_input_errors():
    from heuristics import HEURISTICS

    inst = worked_example()
    with pytest.raises(InputError, match="unknown method 'no_such'"):
        run_method("no_such", inst, 2)
    with pytest.raises(InputError, match="unknown heuristic 'combinatorial'"):
        run_method("combinatorial", inst, 2, role="heuristic")
    with pytest.raises(InputError, match="is a heuristic method, not a bound"):
        run_method(HEURISTICS.make("bfs_order"), inst, 2, role=Role.BOUND)
    with pytest.raises(TypeError, match="neither"):
        role_of(object())  # type: ignore[arg-type]


def test_the_worker_executes_a_task_from_json_like_run_method():
    inst = random_dag(5, 10)
    # deterministic and without a time limit: the same answer whatever the machine's load
    task = Task(Role.HEURISTIC, "dfs_order[refine=True]", 3, 42, None)
    res = execute_task(Task.from_json(task.to_json()), inst, {})
    again = TaskResult.from_json(res.to_json())
    ref = run_method("dfs_order[refine=True]", inst, 3, role="heuristic", seed=42)
    assert again.outcome.incumbent == ref.incumbent and again.outcome.status == ref.status
    assert again.outcome.partition is not None and ref.partition is not None
    assert again.outcome.partition.stage_of.tolist() == ref.partition.stage_of.tolist()
    assert again.wall_time_s >= again.outcome.time_s >= 0
    bad = execute_task(Task(Role.BOUND, "no_such_bound", 2, 0), inst, {})
    assert bad.outcome.status is Status.ERROR and "no_such_bound" in (bad.outcome.error or "")
    bound = execute_task(Task(Role.BOUND, "combinatorial", 3, 0,
                              context=TaskContext(upper_bound=ref.incumbent)), inst, {})
    assert bound.outcome.role is Role.BOUND and bound.outcome.bound is not None


# ---------------------------------------------------------------------------- properties
_floats = st.one_of(st.none(), st.floats(allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(role=st.sampled_from(list(Role)), k=st.integers(1, 64), seed=st.integers(0, 2**63 - 1),
       tl=st.one_of(st.none(), st.floats(0, 1e6)), ub=_floats, lb=_floats,
       part=st.one_of(st.none(), st.lists(st.integers(0, 63), max_size=20)))
def test_any_task_round_trips(role, k, seed, tl, ub, lb, part):
    t = Task(role, "x[a=1]", k, seed, tl, 2, TaskContext(ub, part, lb))
    assert Task.from_json(t.to_json()) == t


@settings(max_examples=60, deadline=None)
@given(status=st.sampled_from(list(Status)), bound=_floats, inc=_floats,
       t=st.floats(0, 1e6), stage_of=st.one_of(st.none(), st.lists(st.integers(0, 7),
                                                                    min_size=1, max_size=20)))
def test_any_outcome_round_trips(status, bound, inc, t, stage_of):
    part = None if stage_of is None else Partition(stage_of, 8)
    out = RunOutcome("m", Role.BOUND, status, t, bound=bound, incumbent=inc, partition=part,
                     stats={"s": "x", "v": [1, 2.5]}, log=((0.5, None, 1.0),), error=None)
    back = RunOutcome.from_json(out.to_json())
    assert back.to_json() == out.to_json()
    assert (back.status, back.bound, back.incumbent, back.time_s) == (status, bound, inc, t)
