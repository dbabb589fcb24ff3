"""A store that cannot be used (garbage bytes, truncated, not SQLite, another schema, empty,
read-only for a command that writes) is one line on stderr naming the file and exit code 2,
for every command that opens a store; never an sqlite3 or ValueError traceback."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from cli import main
from experiments.config import load_config
from experiments.harness import InstanceEntry, run_grid
from experiments.store import ResultsStore, StoreError
from instances import write_instance
from pipecert.testing import random_dag


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, Path]:
    """(a graph file, the store of a small grid on it, closed)."""
    tmp = tmp_path_factory.mktemp("good")
    graph = tmp / "g.json"
    write_instance(random_dag(3, 8, name="g"), graph)
    out = tmp / "out"
    code = main(["run", "-i", str(graph), "-k", "2,3", "--heuristic", "dfs_order",
                 "--bound", "combinatorial", "--inline", "-o", str(out), "--no-figures",
                 "--no-report", "--no-progress"])
    assert code == 0
    return graph, out / "results.sqlite"


def _garbage(path: Path, good: Path) -> None:
    path.write_bytes(bytes(range(256)) * 64)


def _truncated(path: Path, good: Path) -> None:
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _text(path: Path, good: Path) -> None:
    path.write_text("instance,k,bound\ng,2,1.0\n")


def _foreign_schema(path: Path, good: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (id INTEGER, value REAL)")
    con.execute("CREATE TABLE instances (id INTEGER)")
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.commit()
    con.close()


def _other_app(path: Path, good: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE photos (id INTEGER)")
    con.commit()
    con.close()


def _newer_schema(path: Path, good: Path) -> None:
    path.write_bytes(good.read_bytes())
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()


DAMAGE = {"garbage": (_garbage, "not an SQLite database"),
          "truncated": (_truncated, "corrupt SQLite database"),
          "text": (_text, "not an SQLite database"),
          "foreign-schema": (_foreign_schema, "table runs lacks"),
          "other-app": (_other_app, "not a pipecert results database"),
          "newer-schema": (_newer_schema, "schema version '99'")}


def _commands(db: Path, graph: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "check": ["results", "check", str(db)],
        "export": ["results", "export", str(db), "-o", str(tmp / "x.csv")],
        "report": ["report", str(db)],
        "figures": ["figures", str(db), "-o", str(tmp / "figs")],
        "run --resume": ["run", "-i", str(graph), "-k", "2,3", "--heuristic", "dfs_order",
                         "--bound", "combinatorial", "--inline", "-o", str(db.parent),
                         "--resume", "--no-figures", "--no-report", "--no-progress"],
    }


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["check", "export", "report", "figures", "run --resume"])
def test_a_damaged_store_is_one_line_and_exit_2(good, tmp_path, capsys, damage, command):
    graph, src = good
    db = tmp_path / "out" / "results.sqlite"
    db.parent.mkdir()
    make, why = DAMAGE[damage]
    make(db, src)
    before = db.read_bytes()
    code = main(_commands(db, graph, tmp_path)[command])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith(f"pipecert: error: {db}: "), err
    assert why in err and "Traceback" not in err
    assert db.read_bytes() == before  # a store we refuse is never written to


def test_an_empty_file_is_not_a_store_for_readers(tmp_path, capsys):
    db = tmp_path / "empty.sqlite"
    db.write_bytes(b"")
    assert main(["report", str(db)]) == 2
    assert "not a pipecert results database (empty)" in capsys.readouterr().err


def _read_only(monkeypatch) -> None:
    """Every SQLite connection refuses writes, exactly as SQLite does for a read-only file
    (the tests run as root, for whom file permissions do not stop writes)."""
    real = sqlite3.connect

    def connect(*args, **kwargs):
        con = real(*args, **kwargs)
        con.execute("PRAGMA query_only = 1")
        return con

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_a_read_only_store_reads_but_refuses_writes_in_one_line(good, tmp_path, capsys,
                                                                  monkeypatch):
    graph, src = good
    db = tmp_path / "out" / "results.sqlite"
    db.parent.mkdir()
    db.write_bytes(src.read_bytes())
    os.chmod(db, 0o444)
    _read_only(monkeypatch)
    cmds = _commands(db, graph, tmp_path)
    for name in ("check", "export", "report", "figures"):
        assert main(cmds[name]) == 0, name
        capsys.readouterr()
    code = main(cmds["run --resume"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(db) in err
    assert "read-only" in err and "Traceback" not in err


def test_opening_errors_are_store_errors_naming_the_file(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"\x01" * 1000)
    for ro in (True, False):
        with pytest.raises(StoreError, match=r"bad\.sqlite: not an SQLite database"):
            ResultsStore(bad, readonly=ro)
    with pytest.raises(StoreError, match="is not a file"):
        ResultsStore(tmp_path)


def test_an_older_store_without_the_new_columns_still_reads_and_upgrades(good, tmp_path):
    """A store written before runs recorded fingerprints and instances their units."""
    graph, src = good
    db = tmp_path / "old.sqlite"
    db.write_bytes(src.read_bytes())
    con = sqlite3.connect(db)
    for table, col in (("runs", "fingerprint"), ("instances", "time_unit"),
                       ("instances", "memory_unit"), ("instances", "cost_model")):
        con.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    con.commit()
    con.close()
    from instances import read_instance

    with ResultsStore(db, readonly=True) as st:
        assert all(r["fingerprint"] is None for r in st.runs())
        # read from the stored graph
        assert st.instance_rows()[0]["time_unit"] == read_instance(graph).time_unit
        assert st.check().ok
    with ResultsStore(db) as st:  # opened for writing: the columns are added
        assert "fingerprint" in st.runs()[0]
    cfg = load_config(None, {"experiment": {"name": "old", "out": str(tmp_path / "o")},
                             "grid": {"instances": ["unused"], "k": [2, 3],
                                      "heuristics": ["dfs_order"],
                                      "bounds": ["combinatorial"]}})
    with ResultsStore(db) as st:
        name = st.instance_rows()[0]["instance"]
        res = run_grid(cfg, st, [InstanceEntry(name, read_instance(graph), "files")],
                       executor="inline", resume=True)
        assert res.n_run == 0  # old rows without fingerprints of an unchanged graph count
