"""``pipecert results check`` on a real store (a grid run with real methods), tampered with
by hand: each kind of damage the issue names must be a finding, printed on one line, with a
non-zero exit and no traceback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cli import main
from experiments.config import load_config
from experiments.harness import InstanceEntry, run_grid
from experiments.store import ResultsStore, run_key
from pipecert import Instance
from pipecert.testing import random_dag

HEURISTICS = ["input_order", "dfs_order", "downset_dp"]
BOUNDS = ["combinatorial", "node_bound"]


def _grid(tmp_path: Path, entries: list[InstanceEntry], ks: list[int]) -> Path:
    cfg = load_config(None, {
        "experiment": {"name": "chk", "out": str(tmp_path / "out")},
        "grid": {"instances": ["unused"], "k": ks, "heuristics": HEURISTICS,
                 "bounds": BOUNDS},
        "budget": {"time_limit_s": 20.0}})
    db = tmp_path / "r.sqlite"
    with ResultsStore(db) as st:
        run_grid(cfg, st, entries, executor="inline")
    return db


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> Path:
    """A store of a real grid: 2 random DAGs x k in {2, 3} x 3 heuristics + 2 bounds."""
    tmp = tmp_path_factory.mktemp("real")
    entries = [InstanceEntry(f"g{i}", random_dag(10 + i, 9, name=f"g{i}"), "test")
               for i in range(2)]
    return _grid(tmp, entries, [2, 3])


@pytest.fixture()
def db(real_store, tmp_path) -> Path:
    """A private copy of the real store, to tamper with."""
    dst = tmp_path / "copy.sqlite"
    src = sqlite3.connect(real_store)
    out = sqlite3.connect(dst)
    src.backup(out)
    src.close()
    out.close()
    return dst


def _sql(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        rows = con.execute(sql, args).fetchall()
        con.commit()
    finally:
        con.close()
    return rows


def _key(db: Path, instance: str, k: int, method: str) -> str:
    return _sql(db, "SELECT run_key FROM runs WHERE instance=? AND k=? AND method_id=?",
                (instance, k, method))[0][0]


def _check(db: Path, capsys) -> tuple[int, list[str], str]:
    code = main(["results", "check", str(db)])
    out, err = capsys.readouterr()
    return code, out.strip().splitlines(), err


def test_the_untouched_real_store_passes(real_store, capsys):
    code, lines, err = _check(real_store, capsys)
    assert code == 0, lines
    assert lines[-1].endswith("OK") and "20 runs" in lines[-1] and err == ""
    with ResultsStore(real_store, readonly=True) as st:
        fps = {r["instance"]: r["fingerprint"] for r in st.instance_rows()}
        runs = st.runs()
    # every run records the fingerprint of the graph it was computed on (the core one)
    assert all(r["fingerprint"] == fps[r["instance"]] for r in runs)
    assert fps["g0"] == random_dag(10, 9, name="g0").fingerprint


def test_lowered_incumbent_with_its_partition_nulled_is_found(db, capsys):
    key = _key(db, "g0", 2, "dfs_order")
    (inc,) = _sql(db, "SELECT incumbent FROM runs WHERE run_key=?", (key,))[0]
    _sql(db, "UPDATE runs SET incumbent=?, partition=NULL WHERE run_key=?",
         (inc * 0.5, key))
    code, lines, _ = _check(db, capsys)
    assert code == 1
    text = "\n".join(lines)
    assert f"g0 k=2 dfs_order (run {key[:8]}): incumbent {inc * 0.5!r} without a stored " \
           "partition" in text
    # the bounds at k=2 and k=3 (the partition carries to larger k) now exceed it
    assert "exceeds the stored incumbent" in text and "one of the two is wrong" in text
    assert lines[-1].startswith(f"{db}: 20 runs") and "FAILED" in lines[-1]
    # the report no longer shows UB* below LB silently
    assert main(["report", str(db)]) == 0
    md = capsys.readouterr().out
    assert "WARNING: the best bound exceeds the best partition (UB*)" in md
    assert "results check" in md
    row = next(ln for ln in md.splitlines() if ln.startswith("| g0 ") and "| 2 |" in ln)
    assert "LB>UB*!" in row


def test_optimal_with_a_wrong_incumbent_is_found(db, capsys):
    key = _key(db, "g1", 3, "input_order")
    (inc,) = _sql(db, "SELECT incumbent FROM runs WHERE run_key=?", (key,))[0]
    _sql(db, "UPDATE runs SET status='optimal', incumbent=? WHERE run_key=?",
         (inc * 0.9, key))
    code, lines, _ = _check(db, capsys)
    assert code == 1
    mine = [ln for ln in lines if key[:8] in ln]
    assert any(f"stored incumbent {inc * 0.9!r} but the partition re-scores to {inc!r}" in ln
               for ln in mine), lines


def test_optimal_bound_that_no_partition_meets_is_found(db, capsys):
    key = _key(db, "g0", 3, "combinatorial")
    _sql(db, "UPDATE runs SET status='optimal' WHERE run_key=?", (key,))
    code, lines, _ = _check(db, capsys)
    assert code == 1
    assert any(key[:8] in ln and "status optimal but the bound" in ln
               and "not a proof of optimality" in ln for ln in lines), lines


def test_garbage_in_columns_is_a_finding_not_a_traceback(db, capsys):
    k1 = _key(db, "g0", 2, "node_bound")
    k2 = _key(db, "g1", 2, "dfs_order")
    k3 = _key(db, "g1", 3, "downset_dp")
    _sql(db, "UPDATE runs SET bound='0.5x' WHERE run_key=?", (k1,))
    _sql(db, "UPDATE runs SET partition='[0, 1,' WHERE run_key=?", (k2,))
    _sql(db, "UPDATE runs SET k='three', status='great' WHERE run_key=?", (k3,))
    code, lines, err = _check(db, capsys)
    assert code == 1 and "Traceback" not in err
    text = "\n".join(lines)
    assert f"(run {k1[:8]}): unreadable: column bound holds '0.5x' (text), not a number" in text
    assert f"(run {k2[:8]}): unreadable: column partition holds '[0, 1,', not JSON" in text
    assert f"(run {k3[:8]}): unreadable: column k holds 'three'" in text
    assert f"(run {k3[:8]}): unreadable: column status holds 'great'" in text
    # and the reports refuse such a store with one line pointing at `results check`
    code = main(["report", str(db)])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and str(db) in err
    assert "results check" in err and "Traceback" not in err


def test_infeasible_partition_and_tampered_gap_and_graph(db, capsys):
    key = _key(db, "g0", 2, "input_order")
    (part,) = _sql(db, "SELECT partition FROM runs WHERE run_key=?", (key,))[0]
    stages = json.loads(part)
    _sql(db, "UPDATE runs SET partition=? WHERE run_key=?",
         (json.dumps([1 - s if s < 2 else s for s in stages][::-1]), key))
    kb = _key(db, "g1", 2, "node_bound")
    _sql(db, "UPDATE runs SET incumbent=NULL, gap=0.25 WHERE run_key=? ", (kb,))
    _sql(db, "UPDATE runs SET gap=0.123 WHERE run_key=(SELECT run_key FROM runs WHERE "
             "bound IS NOT NULL AND incumbent IS NOT NULL LIMIT 1)")
    _sql(db, "UPDATE instances SET fingerprint='0123456789abcdef0123456789abcdef' "
             "WHERE instance='g1'")
    code, lines, _ = _check(db, capsys)
    text = "\n".join(lines)
    assert code == 1
    assert f"(run {key[:8]}): stored partition infeasible for k=2" in text
    assert "instance g1: stored fingerprint 0123456789abcdef0123456789abcdef is not that of " \
           "its stored graph" in text


def test_run_computed_on_another_version_of_the_graph_is_found(db, capsys):
    key = _key(db, "g0", 2, "dfs_order")
    _sql(db, "UPDATE runs SET fingerprint='ffffffffffffffffffffffffffffffff' WHERE run_key=?",
         (key,))
    code, lines, _ = _check(db, capsys)
    assert code == 1
    assert any(key[:8] in ln and "computed on another version of g0" in ln for ln in lines)


def test_issue_example_bound_above_a_tiny_optimum_labelled_optimal(tmp_path, capsys):
    """The issue's case386 pattern: costs mixing 1e-9 with 1, OPT about 2e-9, a stored
    `exact_mip[symmetry=True]` bound of 0.999999 with status optimal: check must fail."""
    n = 6
    ids = [f"n{i}" for i in range(n)]
    inst = Instance(ids, work=[1e-9] * n, comm=[1.0, 1e-9, 1.0, 1e-9, 1.0, 1e-9],
                    edges=[(ids[i], ids[i + 1]) for i in range(n - 1)], name="case386")
    db = _grid(tmp_path, [InstanceEntry("case386", inst, "fuzz")], [4])
    with ResultsStore(db) as st:
        opt = min(r["incumbent"] for r in st.runs() if r["incumbent"] is not None)
        assert opt < 1e-8
        st.add_run({"run_key": run_key("case386", 4, "exact_mip[symmetry=True]", 0),
                    "instance": "case386", "k": 4, "role": "bound", "method": "exact_mip",
                    "method_id": "exact_mip[symmetry=True]", "seed": 0, "status": "optimal",
                    "bound": 0.999999, "fingerprint": inst.fingerprint})
    code, lines, _ = _check(db, capsys)
    assert code == 1
    assert any("exact_mip[symmetry=True]" in ln and "bound 0.999999 exceeds the best "
               f"partition value {opt!r}" in ln for ln in lines), lines


def test_every_finding_is_one_line(db, capsys):
    _sql(db, "UPDATE runs SET error=?, bound='x\ny' WHERE method_id='node_bound'",
         ("multi\nline",))
    _, lines, _ = _check(db, capsys)
    findings = lines[:-1]
    assert findings and all("\n" not in ln and ln.startswith(("g0 ", "g1 ")) for ln in findings)
    assert len([ln for ln in findings if "column bound holds 'x\\ny'" in ln]) == 4


def test_an_unreadable_stored_graph_is_a_finding(db, capsys):
    _sql(db, "UPDATE instances SET blob=? WHERE instance='g1'", (b"\x00garbage",))
    code, lines, err = _check(db, capsys)
    assert code == 1 and "Traceback" not in err
    assert any(ln.startswith("instance 'g1': stored graph unreadable") for ln in lines), lines


def test_values_parse_as_stored_numbers(db):
    with ResultsStore(db, readonly=True) as st:
        rows = st.runs()
    assert all(isinstance(r["k"], int) for r in rows)
    assert all(r["bound"] is None or np.isfinite(r["bound"]) for r in rows)


def test_an_optimal_bound_with_no_partition_anywhere_is_found(tmp_path, capsys):
    """A grid of bounds only (the issue's `exact_mip[symmetry=True]` + `guess` grid): no
    partition is stored, so a bound labelled optimal proves nothing and must be reported,
    where the old check had nothing to compare with and printed OK."""
    inst = random_dag(4, 6, name="bounds-only")
    db = tmp_path / "b.sqlite"
    with ResultsStore(db) as st:
        st.add_instance("b", inst, source="fuzz")
        for k in (4, 6, 8):
            st.add_run({"run_key": run_key("b", k, "exact_mip[symmetry=True]", 0),
                        "instance": "b", "k": k, "role": "bound", "method": "exact_mip",
                        "method_id": "exact_mip[symmetry=True]", "seed": 0,
                        "status": "optimal", "bound": 0.999999,
                        "fingerprint": inst.fingerprint})
    code, lines, _ = _check(db, capsys)
    assert code == 1 and len(lines) == 4
    for k in (4, 6, 8):
        assert any(f"b k={k} exact_mip[symmetry=True]" in ln and "status optimal but no "
                   f"stored partition of b for k <= {k} to prove it" in ln for ln in lines)
