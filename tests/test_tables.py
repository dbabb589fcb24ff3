"""The research table scripts run through the harness into a store, and their tables come
back from the store (``pipecert report STORE --table NAME``)."""

from __future__ import annotations

import pytest

from cli import main as cli_main
from experiments.records import RunRecord
from experiments.scripts import bounds_table, heuristics_table
from experiments.store import ResultsStore, run_key
from experiments.tables import TABLES
from instances.io import write_instance
from pipecert.registry import Role
from pipecert.testing import random_dag


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    d = tmp_path_factory.mktemp("graphs")
    for seed in (1, 2):
        write_instance(random_dag(seed, 9), d / f"g{seed}.json")
    return d


def test_bounds_script_runs_the_grid_into_the_store_and_reports_from_it(tmp_path, graphs,
                                                                         capsys):
    store = tmp_path / "b" / "results.sqlite"
    args = ["--store", str(store), "--instances", str(graphs), "--k", "2", "3",
            "--methods", "combinatorial", "node_bound", "--heuristics", "bfs_order",
            "--heuristic-time-limit", "2", "--time-limit", "2", "--no-progress"]
    bounds_table.main(args)
    with ResultsStore(store, readonly=True) as st:
        recs = st.records()
    # 2 graphs x 2 k x (1 heuristic + 2 bounds), each a typed record with its context
    assert len(recs) == 12
    assert {r.role for r in recs} == {Role.HEURISTIC, Role.BOUND}
    assert all(r.context_upper_bound is not None for r in recs if r.role is Role.BOUND)
    bounds_table.main(args)  # resumable: nothing runs again
    with ResultsStore(store, readonly=True) as st:
        assert len(st) == 12
    capsys.readouterr()
    bounds_table.main(["--store", str(store), "--report"])
    table = capsys.readouterr().out
    assert "| combinatorial |" in table and "| node_bound |" in table
    assert "| bound | k=2 | k=3 |" in table and "0 errored runs." in table
    assert cli_main(["report", str(store), "--table", "bounds"]) == 0
    assert capsys.readouterr().out == table


def test_heuristics_script_and_table(tmp_path, graphs, capsys):
    store = tmp_path / "h" / "results.sqlite"
    heuristics_table.main(["--store", str(store), "--instances", str(graphs), "-k", "2",
                           "-m", "downset_dp", "bfs_order", "bfs_order[refine=True]",
                           "--time-limit", "5", "--no-progress"])
    capsys.readouterr()
    assert cli_main(["report", str(store), "--table", "heuristics"]) == 0
    table = capsys.readouterr().out
    assert "| bfs_order | " in table and "brkga-10000 within 1% of OPT on 0 of 0" in table
    assert "| bfs_order | " in table.split("What local search adds")[1]


def test_tables_read_hand_made_records(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as st:
        for g, dp, br in (("a", 10.0, 10.05), ("b", 8.0, 8.0)):
            for m, v in (("downset_dp", dp), ("brkga-10000", br)):
                st.add_run(RunRecord(run_key=run_key(g, 2, m, 0), instance=g, k=2,
                                     role=Role.HEURISTIC, method_id=m, incumbent=v,
                                     status="optimal" if m == "downset_dp" else "feasible",
                                     n_nodes=5, wall_time_s=0.1))
        st.update_derived()
        text = TABLES["heuristics"](st)
    assert "| a | 5 | 1.0050 |" in text and "| b | 5 | 1.0000 |" in text
    assert "within 1% of OPT on 2 of 2" in text


def test_spine_script_runs_grid_and_extras_into_the_store(tmp_path, graphs, capsys):
    from experiments.scripts import spine_table

    store = tmp_path / "s" / "results.sqlite"
    args = ["--store", str(store), "--instances", str(graphs), "--bundled", "",
            "--ks", "2,3", "--heuristics", "bfs_order", "--heur-time", "2",
            "--mip-time", "2", "--spine-time", "2", "--no-progress"]
    spine_table.main(args)
    with ResultsStore(store, readonly=True) as st:
        recs = st.records()
    # 2 graphs x 2 k x (1 heuristic + 5 bounds + path_split + guess+lb)
    assert len(recs) == 32
    lb = [r for r in recs if r.method_id == "guess+lb"]
    assert len(lb) == 4 and all(r.role is Role.BOUND and r.method == "guess" for r in lb)
    assert all(r.context_lower_bound is not None for r in lb)
    spine_table.main(args)  # resumable: nothing runs again
    with ResultsStore(store, readonly=True) as st:
        assert len(st) == 32
    capsys.readouterr()
    spine_table.main(["--store", str(store), "--report"])
    table = capsys.readouterr().out
    assert "| graph | n | c/w | k=2 | k=3 |" in table
    assert "| all graphs: min-cut |" in table and "guess with T >= LB_min-cut" in table
    assert cli_main(["report", str(store), "--table", "spine"]) == 0
    assert capsys.readouterr().out == table
