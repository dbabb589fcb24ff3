"""The SQLite results store: rows, keys, derived values across k, export and check."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from experiments.store import RUN_COLUMNS, ResultsStore, run_key
from pipecert import InputError, Partition, evaluate
from pipecert.testing import brute_force, worked_example


def _row(inst, k, method, role, *, bound=None, partition=None, incumbent=None,
         status="feasible", seed=0):
    return {"run_key": run_key(inst, k, method, seed), "instance": inst, "k": k,
            "role": role, "method": method, "method_id": method, "seed": seed,
            "status": status, "bound": bound, "incumbent": incumbent,
            "partition": partition, "params": {"x": 1}, "wall_time_s": 0.5}


@pytest.fixture()
def store(tmp_path):
    st = ResultsStore(tmp_path / "r.sqlite")
    inst = worked_example()
    st.add_instance("ex", inst, source="toy")
    yield st, inst
    st.close()


def test_run_key_is_stable_and_distinguishes_fields():
    a = run_key("g", 2, "m", 0)
    assert a == run_key("g", 2, "m", 0)
    assert len({a, run_key("g", 3, "m", 0), run_key("g", 2, "m2", 0),
                run_key("g", 2, "m", 1), run_key("h", 2, "m", 0)}) == 5


def test_rows_round_trip_and_replace_by_key(store):
    st, inst = store
    opt, part = brute_force(inst, 2)
    st.add_run(_row("ex", 2, "h", "heuristic", partition=part.stage_of.tolist(),
                    incumbent=opt))
    st.add_run(_row("ex", 2, "h", "heuristic", partition=part.stage_of.tolist(),
                    incumbent=opt, status="optimal"))  # same key: replaced
    rows = st.runs()
    assert len(rows) == 1 and rows[0]["status"] == "optimal"
    assert rows[0]["partition"] == part.stage_of.tolist() and rows[0]["params"] == {"x": 1}
    assert st.run_keys() == {run_key("ex", 2, "h", 0)}
    assert st.load_instance("ex") == inst  # the graph is stored, for offline re-scoring


def test_wal_mode_and_schema(store):
    st, _ = store
    with sqlite3.connect(st.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    assert cols == [c for c, _ in RUN_COLUMNS]


def test_check_accepts_valid_rows_and_flags_tampering(store):
    st, inst = store
    opt2, p2 = brute_force(inst, 2)
    st.add_run(_row("ex", 2, "h", "heuristic", partition=p2.stage_of.tolist(),
                    incumbent=opt2))
    st.add_run(_row("ex", 2, "b", "bound", bound=opt2, status="bound"))
    # a bound for k=3 checked against the k=2 partition (feasible for k=3 too)
    st.add_run(_row("ex", 3, "b", "bound", bound=opt2, status="bound"))
    assert st.check().ok
    st.add_run(_row("ex", 3, "bad", "bound", bound=opt2 * 1.5, status="bound"))
    st.add_run(_row("ex", 2, "liar", "heuristic", partition=p2.stage_of.tolist(),
                    incumbent=opt2 - 1))
    bad_part = [1, 0, 0, 0, 0]  # puts a before its predecessors' stage: infeasible
    st.add_run(_row("ex", 2, "infeasible", "heuristic", partition=bad_part, incumbent=1.0))
    rep = st.check()
    text = "\n".join(rep.problems)
    assert not rep.ok and len(rep.problems) == 3, text
    assert "bad" in text and "exceeds the best partition" in text
    assert "liar" in text and "re-scores to" in text
    assert "infeasible" in text


def test_derived_carries_partitions_up_and_bounds_down(store):
    st, inst = store
    opt1, p1 = brute_force(inst, 1)
    st.add_run(_row("ex", 1, "h", "heuristic", partition=p1.stage_of.tolist(), incumbent=opt1))
    st.add_run(_row("ex", 3, "b", "bound", bound=9.5, status="bound"))
    st.add_run(_row("ex", 2, "h", "heuristic", partition=None, incumbent=None,
                    status="error"))
    d = {r["k"]: r for r in st.update_derived()}
    assert d[2]["best_incumbent"] == opt1 and d[2]["incumbent_k"] == 1
    assert d[2]["best_bound"] == 9.5 and d[2]["bound_k"] == 3
    # k=1: the bound for k=3 is valid, but the combinatorial bound (W = 12) is stronger
    assert d[1]["best_bound"] == d[1]["combinatorial"] == 12.0
    assert d[3]["best_incumbent"] == opt1
    assert d[2]["gap"] == pytest.approx((opt1 - 9.5) / opt1)
    assert st.derived() == st.update_derived()


def test_export_csv_and_parquet(store, tmp_path):
    st, inst = store
    opt, p = brute_force(inst, 2)
    st.add_run(_row("ex", 2, "h", "heuristic", partition=p.stage_of.tolist(), incumbent=opt))
    st.add_run(_row("ex", 2, "b", "bound", bound=opt, status="bound"))
    c = st.export(tmp_path / "runs.csv")
    rows = list(csv.DictReader(c.open()))
    assert len(rows) == 2 and rows[0]["p_x"] == "1"
    assert json.loads(rows[0]["partition"]) == p.stage_of.tolist()
    pq = pytest.importorskip("pyarrow.parquet")
    t = pq.read_table(st.export(tmp_path / "runs.parquet"))
    assert t.num_rows == 2
    assert sorted(x for x in t.column("bound").to_pylist() if x is not None) == [opt]
    with pytest.raises(InputError, match="unknown export format"):
        st.export(tmp_path / "runs.xlsx")


def test_opening_a_missing_or_foreign_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no such results database"):
        ResultsStore(tmp_path / "missing.sqlite", readonly=True)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    with pytest.raises(InputError, match="junk.sqlite"):
        ResultsStore(junk, readonly=True)


def test_stored_partition_rescored_equals_reference(store):
    st, inst = store
    p = Partition([0, 0, 1, 1, 1], 2)
    st.add_run(_row("ex", 2, "h", "heuristic", partition=p.stage_of.tolist(),
                    incumbent=evaluate(inst, p)))
    assert st.check().ok and st.check().n_partitions == 1


def test_check_flags_a_wrong_optimality_claim(store):
    st, inst = store
    opt, p = brute_force(inst, 2)
    worse = Partition([0, 0, 0, 0, 1], 2)
    assert evaluate(inst, worse) > opt
    st.add_run(_row("ex", 2, "h", "heuristic", partition=p.stage_of.tolist(), incumbent=opt))
    st.add_run(_row("ex", 2, "claims_opt", "heuristic", partition=worse.stage_of.tolist(),
                    incumbent=evaluate(inst, worse), status="optimal"))
    rep = st.check()
    assert len(rep.problems) == 1 and "claims_opt" in rep.problems[0]
