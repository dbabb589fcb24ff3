"""Runs record the fingerprint of the graph they were computed on; a run (``--resume`` or
not) after the input file changed refuses with one line naming the instance, or, with
``--rerun-changed``, deletes the old rows and runs them again: rows computed on old costs
are never kept silently."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from cli import main
from experiments.store import ResultsStore
from instances import read_instance, write_instance
from pipecert import Instance
from pipecert.testing import random_dag


def _changed(inst: Instance) -> Instance:
    """The same graph with one work value changed."""
    work = np.array(inst.work, dtype=float)
    work[0] += 1.0
    return Instance.from_arrays(inst.ids, work, inst.comm, inst.src, inst.dst,
                                inst.prec_src, inst.prec_dst, name=inst.name)


def _cmd(graph: Path, out: Path, *extra: str, k: str = "2,3") -> list[str]:
    return ["run", "-i", str(graph), "-k", k, "--heuristic", "dfs_order", "--bound",
            "combinatorial", "--inline", "-o", str(out), "--no-figures", "--no-report",
            "--no-progress", *extra]


def _rows(db: Path) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT run_key, instance, k, fingerprint, incumbent, started_at "
                           "FROM runs ORDER BY run_key").fetchall()
    finally:
        con.close()


@pytest.fixture()
def grid(tmp_path, capsys):
    graph = tmp_path / "g.json"
    write_instance(random_dag(5, 8, name="g"), graph)
    out = tmp_path / "out"
    assert main(_cmd(graph, out)) == 0
    capsys.readouterr()
    return graph, out, out / "results.sqlite"


@pytest.mark.parametrize("resume", [True, False])
def test_a_changed_input_is_refused_in_one_line_naming_it(grid, capsys, resume):
    graph, out, db = grid
    before = _rows(db)
    old_fp = read_instance(graph).fingerprint
    write_instance(_changed(read_instance(graph)), graph)
    assert read_instance(graph).fingerprint != old_fp
    code = main(_cmd(graph, out, *(["--resume"] if resume else [])))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    # the instance is named as the grid names it (a path relative to the cwd, or absolute)
    assert str(db) in err and "1 instance(s) changed" in err and graph.name in err
    assert "--rerun-changed" in err
    assert _rows(db) == before  # nothing ran, nothing was replaced


def test_rerun_changed_deletes_old_rows_and_runs_them_on_the_new_costs(grid, capsys):
    graph, out, db = grid
    # a run at k=4 too, which the next grid does not list: it must not survive either
    assert main(_cmd(graph, out, "--resume", k="4")) == 0
    capsys.readouterr()
    new = _changed(read_instance(graph))
    write_instance(new, graph)
    code = main(_cmd(graph, out, "--resume", "--rerun-changed"))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "changed since its runs were stored: 6 old run(s) deleted" in err
    rows = _rows(db)
    assert len(rows) == 4 and {r[2] for r in rows} == {2, 3}
    assert {r[3] for r in rows} == {new.fingerprint}
    with ResultsStore(db, readonly=True) as st:
        assert st.load_instance(rows[0][1]).fingerprint == new.fingerprint
        assert st.instance_rows()[0]["fingerprint"] == new.fingerprint
        assert st.check().ok
    # and an unchanged file resumes with nothing to do
    assert main(_cmd(graph, out, "--resume")) == 0
    assert "0 runs to do, 4 already done" in capsys.readouterr().err
    assert _rows(db) == rows


def test_resume_reruns_a_row_recorded_on_other_costs_even_if_the_graph_row_matches(
        grid, capsys):
    """A run row whose fingerprint is not the current graph's is never counted as done."""
    graph, out, db = grid
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET fingerprint='00000000000000000000000000000000' "
                "WHERE rowid = 1")
    con.commit()
    con.close()
    assert main(_cmd(graph, out, "--resume")) == 2
    assert "changed since their runs were stored" in capsys.readouterr().err
    assert main(_cmd(graph, out, "--resume", "--rerun-changed")) == 0
    capsys.readouterr()
    fp = read_instance(graph).fingerprint
    assert {r[3] for r in _rows(db)} == {fp} and len(_rows(db)) == 4
