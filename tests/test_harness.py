"""The grid runner: config precedence, cell planning, isolation of failing methods, context
passing between cells, invalid-bound rejection, and SIGKILL + --resume."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.config import DEFAULTS, load_config, to_toml
from experiments.harness import InstanceEntry, build_cells, cell_context, run_grid
from experiments.records import RunRecord, TaskContext
from experiments.store import ResultsStore
from pipecert import InputError
from pipecert.testing import random_dag

#: test-only methods, imported by the test process and by every worker (run.plugins)
PLUGIN = '''
import time
import numpy as np
from formulations.base import FORMULATIONS, Formulation
from heuristics.base import HEURISTICS, Heuristic
from pipecert import BoundResult, HeuristicResult, Partition, Status


@HEURISTICS.register
class T5Slice(Heuristic):
    """Slice the topological order into equal node counts (test-only)."""

    name = "t5_slice"
    deterministic = True

    def __init__(self, *, sleep: float = 0.0, fail: bool = False, hog: bool = False,
                 die: bool = False, trace: str = ""):
        self.sleep = sleep
        self.fail = fail
        self.hog = hog
        self.die = die
        self.trace = trace

    def solve(self, instance, k, budget, rng, context=None):
        if self.trace:
            with open(self.trace, "a") as fh:
                fh.write(f"{instance.name} {k}\\n")
        if self.fail:
            raise RuntimeError("boom")
        if self.hog:
            block = np.empty(400_000_000)  # 3.2 GB of address space: only fails under the limit
            del block
        if self.die:
            import os
            os._exit(7)
        time.sleep(self.sleep)
        order = instance.topo_order
        n = len(order)
        cuts = [round(n * (b + 1) / k) for b in range(k - 1)]
        return HeuristicResult(Partition.from_slices(order, cuts, k), Status.FEASIBLE)


@FORMULATIONS.register
class T5Echo(Formulation):
    """Report the context it was given as stats; bound = 0 (test-only)."""

    name = "t5_echo"

    def __init__(self, *, too_high: bool = False):
        self.too_high = too_high

    def lower_bound(self, instance, k, budget, context=None):
        stats = {"ctx_ub": None if context is None else context.upper_bound,
                 "ctx_lb": None if context is None else context.lower_bound,
                 "ctx_has_partition": context is not None and context.partition is not None}
        if self.too_high:
            return BoundResult(1e12, Status.BOUND, stats=stats)
        return BoundResult(None, Status.NO_SOLUTION, stats=stats)
'''


@pytest.fixture()
def plugin(tmp_path, monkeypatch):
    """Write the test plugin module, make it importable here and in workers; unregister."""
    from formulations import FORMULATIONS
    from heuristics import HEURISTICS

    d = tmp_path / "plug"
    d.mkdir()
    (d / "t5plug.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(d), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    import t5plug  # noqa: F401

    yield "t5plug"
    HEURISTICS.unregister("t5_slice")
    FORMULATIONS.unregister("t5_echo")
    sys.modules.pop("t5plug", None)


def _entries(n: int = 2) -> list[InstanceEntry]:
    return [InstanceEntry(f"g{i}", random_dag(i, 7, name=f"g{i}"), "test") for i in range(n)]


def _cfg(tmp_path: Path, **grid) -> dict:
    g = {"instances": ["unused"], "k": [2, 3], "heuristics": ["t5_slice"],
         "bounds": ["combinatorial", "t5_echo"]}
    g.update(grid)
    return load_config(None, {
        "experiment": {"name": "t", "out": str(tmp_path / "out")}, "grid": g,
        "budget": {"time_limit_s": 2.0, "grace_s": 1.0}, "run": {"jobs": 2,
                                                                 "plugins": ["t5plug"]}})


# ---------------------------------------------------------------------------- config
def test_config_precedence_defaults_file_flags(tmp_path):
    p = tmp_path / "exp.toml"
    p.write_text('[grid]\nk = [2, 4]\nheuristics = ["input_order"]\n'
                 '[budget]\ntime_limit_s = 7.5\n')
    cfg = load_config(p, {"budget": {"time_limit_s": 3.0}})
    assert cfg["grid"]["k"] == [2, 4]  # file over defaults
    assert cfg["budget"]["time_limit_s"] == 3.0  # flags over file
    assert cfg["budget"]["grace_s"] == DEFAULTS["budget"]["grace_s"]  # defaults remain
    assert cfg["experiment"]["name"] == "exp"  # from the file name
    assert cfg["experiment"]["out"] == "results/exp"
    back = tmp_path / "resolved.toml"
    back.write_text(to_toml(cfg))
    assert load_config(back) == cfg  # the resolved config reads back identically


@pytest.mark.parametrize("text, msg", [
    ("[grid]\nkk = [2]\n", "unknown key grid.kk"),
    ("[gird]\n", "unknown table"),
    ("[grid]\nk = [0]\n", "grid.k values must be >= 1"),
    ("[grid\n", "invalid TOML"),
])
def test_config_errors_name_the_file(tmp_path, text, msg):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(InputError, match=msg) as ei:
        load_config(p)
    assert str(p) in str(ei.value)


# ---------------------------------------------------------------------------- planning
def test_cells_heuristics_first_bounds_from_largest_k(tmp_path, plugin):
    cfg = _cfg(tmp_path, k=[2, 4, 3])
    cells = build_cells(cfg, _entries(1))
    roles = [c.role for c in cells]
    assert roles == sorted(roles, key=lambda r: r != "heuristic")
    assert [c.k for c in cells if c.role == "bound"][::2] == [4, 3, 2]
    assert len({c.run_key for c in cells}) == len(cells)
    # seeds are derived per (instance, k, method) and stable across calls
    assert [c.seed for c in cells] == [c.seed for c in build_cells(cfg, _entries(1))]


def test_unknown_method_is_an_input_error(tmp_path, plugin):
    with pytest.raises(InputError, match="no_such_bound"):
        build_cells(_cfg(tmp_path, bounds=["no_such_bound"]), _entries(1))


def test_cell_context_carries_partitions_up_and_bounds_down(tmp_path, plugin):
    cells = build_cells(_cfg(tmp_path, k=[2, 3, 4]), _entries(1))
    b3 = next(c for c in cells if c.role == "bound" and c.k == 3)
    rows = [
        {"instance": "g0", "k": 2, "role": "heuristic", "incumbent": 10.0,
         "partition": [0, 1], "bound": None, "status": "feasible"},
        {"instance": "g0", "k": 4, "role": "heuristic", "incumbent": 5.0,
         "partition": [0, 3], "bound": None, "status": "feasible"},  # k=4 > 3: not usable
        {"instance": "g0", "k": 4, "role": "bound", "incumbent": None, "partition": None,
         "bound": 4.0, "status": "bound"},  # valid for k=3 (OPT non-increasing in k)
        {"instance": "g0", "k": 2, "role": "bound", "incumbent": None, "partition": None,
         "bound": 9.0, "status": "bound"},  # k=2 < 3: not valid for k=3
    ]
    recs = [RunRecord.from_row({"run_key": f"r{i}", **r}) for i, r in enumerate(rows)]
    ctx = cell_context(b3, recs)
    assert ctx == TaskContext(upper_bound=10.0, partition=(0, 1), lower_bound=4.0)
    # an exact heuristic that proved optimality at k=3 gives a lower bound for k=3 itself
    recs.append(RunRecord.from_row({"run_key": "r9", "instance": "g0", "k": 3,
                                    "role": "heuristic", "incumbent": 6.0, "partition": [0, 2],
                                    "bound": None, "status": "optimal"}))
    assert cell_context(b3, recs) == TaskContext(upper_bound=6.0, partition=(0, 2),
                                                 lower_bound=6.0)
    # a heuristic cell gets no context
    h3 = next(c for c in cells if c.role == "heuristic" and c.k == 3)
    assert cell_context(h3, recs) == TaskContext()


# ---------------------------------------------------------------------------- running
def test_failing_hanging_and_oom_methods_become_errors_and_the_grid_goes_on(tmp_path, plugin):
    cfg = _cfg(tmp_path, k=[2], heuristics=[
        "t5_slice", "t5_slice[fail=true]", "t5_slice[sleep=60]", "t5_slice[hog=true]",
        "t5_slice[die=true]"], bounds=["combinatorial"])
    cfg["budget"]["memory_limit_mb"] = 2048
    store = ResultsStore(tmp_path / "r.sqlite")
    t0 = time.monotonic()
    res = run_grid(cfg, store, _entries(1), log_dir=tmp_path / "logs")
    assert time.monotonic() - t0 < 40, "the hanging run was not killed after limit + grace"
    rows = {r["method_id"]: r for r in store.runs()}
    assert res.n_run == len(rows) == 6
    assert rows["t5_slice"]["status"] == "feasible"
    assert rows["t5_slice[fail=True]"]["status"] == "error"
    assert "boom" in rows["t5_slice[fail=True]"]["error"]
    assert rows["t5_slice[sleep=60]"]["status"] == "error"
    assert "killed" in rows["t5_slice[sleep=60]"]["error"]
    assert rows["t5_slice[hog=True]"]["status"] == "error"
    assert "MemoryError" in rows["t5_slice[hog=True]"]["error"]
    assert rows["t5_slice[die=True]"]["status"] == "error"
    assert "worker died" in rows["t5_slice[die=True]"]["error"]
    # the bound after the failures still ran, with the surviving partition as context
    comb = rows["combinatorial"]
    assert comb["status"] == "bound"
    assert comb["context_upper_bound"] == rows["t5_slice"]["incumbent"]
    assert store.check().ok


def test_bounds_receive_context_and_invalid_bounds_are_rejected(tmp_path, plugin):
    cfg = _cfg(tmp_path, k=[2, 3], bounds=["combinatorial", "t5_echo", "t5_echo[too_high=true]"])
    store = ResultsStore(tmp_path / "r.sqlite")
    res = run_grid(cfg, store, _entries(1), executor="inline")
    rows = store.runs()
    by = {(r["method_id"], r["k"]): r for r in rows}
    h2 = by[("t5_slice", 2)]["incumbent"]
    h3 = by[("t5_slice", 3)]["incumbent"]
    echo3, echo2 = by[("t5_echo", 3)], by[("t5_echo", 2)]
    assert echo3["stats"]["ctx_ub"] == min(h2, h3)  # partition for k=2 is feasible for 3
    assert echo3["stats"]["ctx_has_partition"] is True
    assert echo3["stats"]["ctx_lb"] is None  # nothing proven for a larger k
    # k=2 runs after k=3 and gets the best bound proven for k=3
    assert echo2["stats"]["ctx_lb"] == max(by[(m, 3)]["bound"] for m in
                                          ("combinatorial", "t5_echo"))
    assert echo2["context_lower_bound"] == echo2["stats"]["ctx_lb"]
    bad = by[("t5_echo[too_high=True]", 2)]
    assert bad["status"] == "error" and bad["bound"] is None
    assert "invalid bound" in bad["error"]
    assert res.n_errors == 2
    assert store.check().ok


def test_inline_and_local_executors_store_the_same_rows(tmp_path, plugin):
    cfg = _cfg(tmp_path)
    a = ResultsStore(tmp_path / "a.sqlite")
    b = ResultsStore(tmp_path / "b.sqlite")
    run_grid(cfg, a, _entries(), executor="inline")
    run_grid(cfg, b, _entries(), executor="local")
    assert _comparable(a) == _comparable(b)


TIME_FIELDS = {"build_time_s", "solve_time_s", "wall_time_s", "started_at", "log", "stats",
               "host"}


def _comparable(store: ResultsStore) -> list[tuple]:
    rows = []
    for r in store.runs():
        rows.append(tuple((k, repr(v)) for k, v in sorted(r.items()) if k not in TIME_FIELDS))
    return sorted(rows)


def test_resume_skips_finished_cells(tmp_path, plugin):
    trace = tmp_path / "trace.txt"
    cfg = _cfg(tmp_path, heuristics=[f"t5_slice[trace={str(trace)!r}]"])
    store = ResultsStore(tmp_path / "r.sqlite")
    run_grid(cfg, store, _entries(), executor="inline")
    n = len(store)
    assert len(trace.read_text().splitlines()) == 4
    res = run_grid(cfg, store, _entries(), executor="inline", resume=True)
    assert res.n_run == 0 and res.n_skipped == n == len(store)
    assert len(trace.read_text().splitlines()) == 4  # nothing ran again


# ---------------------------------------------------------------------------- SIGKILL
def test_sigkill_mid_grid_then_resume_completes_every_cell_exactly_once(tmp_path, plugin):
    """Kill ``pipecert run`` with SIGKILL while cells are running; the database stays
    readable, keeps every finished row, and ``--resume`` runs only the missing cells."""
    from cli._common import load_instance  # noqa: F401  (CLI importable)
    from instances import write_instance

    gdir = tmp_path / "graphs"
    gdir.mkdir()
    for i in range(3):
        write_instance(random_dag(i, 6, name=f"g{i}"), gdir / f"g{i}.json")
    trace = tmp_path / "trace.txt"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cli", "run", "-i", str(gdir), "-k", "2,3",
           "--heuristic", f"t5_slice[sleep=0.4,trace={str(trace)!r}]",
           "--bound", "combinatorial", "--plugin", "t5plug", "-j", "1",
           "--time-limit", "5", "-o", str(out), "--no-figures", "--no-report",
           "--no-progress"]
    n_cells = 3 * 2 * 2
    db = out / "results.sqlite"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    n_before = 0
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    n_before = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                n_before = 0
            if n_before >= 3:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 3 <= n_before < n_cells, proc.stderr.read().decode()[-2000:]
    # readable after the kill, every committed row intact
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        before = dict(con.execute("SELECT run_key, started_at FROM runs").fetchall())
    assert len(before) >= n_before
    ran_before = len(trace.read_text().splitlines())
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT run_key, started_at, instance, k, method_id FROM runs"
                           ).fetchall()
    keys = [r[0] for r in rows]
    assert len(rows) == n_cells and len(set(keys)) == n_cells
    cells = {(r[2], r[3], r[4].split("[")[0]) for r in rows}
    assert len(cells) == n_cells  # every (instance, k, method) exactly once
    for key, started in before.items():  # finished rows were kept, not re-run
        assert dict((r[0], r[1]) for r in rows)[key] == started
    heur_keys = {r[0] for r in rows if r[4].startswith("t5_slice")}
    ran_after = len(trace.read_text().splitlines()) - ran_before
    assert ran_after == len(heur_keys - set(before))  # only the unfinished heuristics ran
    check = subprocess.run([sys.executable, "-m", "cli", "results", "check", str(db)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "OK" in check.stdout


def test_progress_bar_estimates_from_finished_runs_of_the_same_method():
    import io

    from experiments.progress import ProgressBar, format_duration

    out = io.StringIO()
    pb = ProgressBar(4, workers=2, stream=out)
    for m, limit in (("slow", 100.0), ("slow", 100.0), ("fast", 100.0), ("fast", 100.0)):
        pb.plan(m, limit)
    pb.update("slow", 10.0)
    pb.update("fast", 1.0)
    # one slow (10 s) and one fast (1 s) cell left, two workers
    assert pb.eta() == pytest.approx((10.0 + 1.0) / 2)
    pb.update("slow", 10.0)
    pb.update("fast", 1.0)
    pb.close()
    lines = out.getvalue().strip().splitlines()
    assert lines[-1].startswith("[####################] 4/4 cells")
    assert len(lines) == len(set(lines))  # no duplicate final line
    assert format_duration(3725) == "1:02:05" and format_duration(float("nan")) == "?"


def test_run_command_end_to_end_report_figures_resolved_config(tmp_path):
    """The README's main-job path on a tiny grid: store, resolved config, report on stdout,
    figures, and the results commands on the store."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cli", "run", "-i", "default/tiny-chain-8",
           "-i", "default/tiny-comm-10", "-k", "2,3", "--heuristic", "input_order",
           "--heuristic", "dfs_order", "--bound", "combinatorial", "--bound", "node_bound",
           "-j", "2", "--time-limit", "20", "-o", str(out), "--name", "tiny"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("# Report: tiny") and "GM LB/UB*" in r.stdout
    assert "16 runs to do" in r.stderr and "done: 16 runs" in r.stderr
    resolved = load_config(out / "config.resolved.toml")
    assert resolved["grid"]["k"] == [2, 3] and resolved["experiment"]["name"] == "tiny"
    for f in ("results.sqlite", "report.md", "report.tex", "bounds.csv",
              "figures/fig_a_bounds.png", "figures/table1_bounds.tex"):
        assert (out / f).is_file(), f
    db = str(out / "results.sqlite")
    exp = subprocess.run([sys.executable, "-m", "cli", "results", "export", db,
                          "-o", str(tmp_path / "runs.csv")], capture_output=True, text=True,
                         timeout=60)
    assert exp.returncode == 0 and len((tmp_path / "runs.csv").read_text().splitlines()) == 17
    again = subprocess.run(cmd + ["--resume", "--no-figures"], capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0 and "0 runs to do, 16 already done" in again.stderr


def test_size_filters_skip_bundled_graphs_from_the_manifest_without_reading_them(monkeypatch):
    from experiments.harness import load_entries
    from instances.bundled import load_bundled, suite_manifest

    man = suite_manifest("models")
    want = [e["id"] for e in man if 300 <= e["n_nodes"] <= 700]
    read: list[str] = []
    monkeypatch.setattr(sys.modules["instances.resolve"], "load_bundled",
                        lambda i: read.append(i) or load_bundled(i))
    cfg = load_config(None, {"grid": {"instances": ["suite:models"], "min_nodes": 300,
                                      "max_nodes": 700, "k": [2]}})
    got = load_entries(cfg)
    assert [e.id for e in got] == want and len(want) >= 5
    assert all(300 <= e.instance.n_nodes <= 700 for e in got)
    assert read == want  # the graphs outside the range were never read


def test_grid_instance_tables_pass_reader_options(tmp_path):
    from experiments.harness import load_entries
    from instances.io import write_instance
    from pipecert.testing import random_dag as rd

    f = tmp_path / "g.json"
    write_instance(rd(3, 6), f)
    raw = {"experiment": {"name": "opts", "out": str(tmp_path / "out")},
           "grid": {"instances": [str(f), {"spec": str(f),
                                           "options": {"zero_input_work": True}}],
                    "k": [2], "heuristics": ["input_order"], "bounds": []}}
    cfg = load_config(None, raw)
    entries = load_entries(cfg)
    ids = [e.id for e in entries]  # ids are the refs' (cwd-relative paths)
    assert len(ids) == 2 and ids[1] == ids[0] + "?zero_input_work=true"
    assert entries[1].spec.endswith("?zero_input_work=true")
    assert entries[1].instance.metadata.get("input_work_option") is not None
    # the config (with its table entry) survives the TOML the store keeps
    import tomllib

    assert tomllib.loads(to_toml(cfg))["grid"]["instances"] == cfg["grid"]["instances"]
    bad = {**raw, "grid": {**raw["grid"], "instances": [{"path": str(f)}]}}
    with pytest.raises(InputError, match="grid.instances entries"):
        load_config(None, bad)
