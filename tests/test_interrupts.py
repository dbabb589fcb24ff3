"""Interrupts: SIGINT / SIGTERM stop ``pipecert solve`` cleanly (docs/guide/solve.md).

The unit tests drive the process-wide cancel flag (:mod:`pipecert.cancel`) in-process; the
CLI tests send real signals to ``python -m cli solve`` at several moments (early,
during the heuristics, during a MIP, during max flow) and check the exit code (130), the
partition file and the bound printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from formulations import FORMULATIONS
from formulations.base import combinatorial_bound
from instances.bundled import load_bundled
from pipecert import Partition, cancel, check_feasible, evaluate
from pipecert.results import Budget
from pipecert.testing import random_dag
from portfolio import solve

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clear_flag():
    cancel.reset()
    yield
    cancel.reset()


# ---------------------------------------------------------------------------- in-process
def test_budget_honours_the_cancel_flag():
    b = Budget(1000.0)
    assert not b.expired() and b.remaining() > 999
    cancel.request("test")
    assert b.expired() and b.remaining() == 0.0
    assert b.fraction(0.5).expired()  # a budget made after the stop is expired too
    assert cancel.reason() == "test"
    cancel.reset()
    assert not b.expired() and cancel.reason() is None


def test_handlers_set_the_flag_then_escalate_and_restore():
    before = signal.getsignal(signal.SIGTERM)
    with cancel.handle_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs at the next bytecode boundary
        assert cancel.requested() and cancel.reason() == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):  # a second signal: stop at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        with cancel.handle_signals(escalate=False):  # while writing: ignored
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) == before


def test_portfolio_stopped_before_it_starts_still_returns_a_partition():
    inst = random_dag(3, 12, name="r3")
    cancel.request("test")
    res = solve(inst, 3, time_limit_s=60)
    assert res.interrupted
    assert res.partition is not None and not check_feasible(inst, res.partition, k=3)
    assert [r.role for r in res.runs] == ["heuristic"]  # one quick heuristic, nothing else
    assert res.lower_bound == pytest.approx(combinatorial_bound(inst, 3))


def test_portfolio_stops_mid_run_and_keeps_the_results_so_far():
    inst = load_bundled("default/comm-0300")
    timer = threading.Timer(3.0, cancel.request, args=("test",))
    timer.start()
    t0 = time.monotonic()
    try:
        res = solve(inst, 8, time_limit_s=300)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 3.0 + 5.0  # stops within seconds, not at the limit
    assert res.interrupted and res.partition is not None
    assert res.upper_bound == pytest.approx(evaluate(inst, res.partition))
    assert res.lower_bound >= combinatorial_bound(inst, 8) - 1e-9


@pytest.mark.solver
def test_cancelled_highs_mip_keeps_its_dual_bound():
    """exact_mip on compute-0100 (k = 8) passes the combinatorial bound within seconds and
    runs for minutes; a cancel at 10 s stops it and keeps the dual bound proven so far."""
    inst = load_bundled("default/compute-0100")
    comb = combinatorial_bound(inst, 8)
    m = FORMULATIONS.make("exact_mip")
    timer = threading.Timer(10.0, cancel.request, args=("test",))
    timer.start()
    t0 = time.monotonic()
    try:
        out = m.run(inst, 8, Budget(300), floor=False)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10.0 + 5.0
    assert str(out.status) == "time_limit"
    assert out.bound is not None and out.bound > comb  # the MIP's own dual bound, kept


@pytest.mark.solver
def test_cancelled_cpsat_stops_its_search():
    inst = load_bundled("default/compute-0100")
    m = FORMULATIONS.make("exact_mip[solver=cpsat]")
    timer = threading.Timer(4.0, cancel.request, args=("test",))
    timer.start()
    t0 = time.monotonic()
    try:
        out = m.run(inst, 8, Budget(300))
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 4.0 + 5.0  # StopSearch, not the 300 s limit
    assert str(out.status) == "time_limit" and out.error is None
    assert out.bound is not None and out.bound >= combinatorial_bound(inst, 8) - 1e-9


# ---------------------------------------------------------------------------- the CLI
def _solve_and_signal(tmp_path: Path, sig: int, args: list[str], *, at: float | None = None,
                      after_line: str | None = None, wait: float = 0.0
                      ) -> tuple[int, dict, str, float, Path]:
    """Run ``solve --json``, send ``sig`` at ``at`` s (or ``wait`` s after a stderr line)."""
    out_file = tmp_path / "part.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "solve", *args, "-o", str(out_file), "--json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err_lines: list[str] = []
    if after_line is not None:
        for line in proc.stderr:
            err_lines.append(line)
            if after_line in line:
                break
        time.sleep(wait)
    else:
        time.sleep(at or 0.0)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    latency = time.monotonic() - sent
    err = "".join(err_lines) + err
    assert "terminate called" not in err and "Traceback" not in err, err
    result = json.loads(out) if out.strip() else {}
    return proc.returncode, result, err, latency, out_file


def _check_result(model: str, k: int, result: dict, out_file: Path) -> None:
    inst = load_bundled(model)
    assert result["interrupted"] is True
    part = Partition.read(out_file, inst)
    assert not check_feasible(inst, part, k=k)
    assert result["upper_bound"] == pytest.approx(evaluate(inst, part))
    assert result["lower_bound"] >= combinatorial_bound(inst, k) - 1e-9
    assert result["lower_bound"] <= result["upper_bound"]
    proven = [r["value"] for r in result["runs"] if r["role"] == "bound"
              and r["value"] is not None and r["status"] != "error"]
    assert result["lower_bound"] >= max(proven, default=0.0) - 1e-9  # the best one is kept


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
@pytest.mark.parametrize("at", [1.0, 3.0])
def test_signal_early_ends_with_130_and_a_partition(tmp_path, sig, at):
    code, result, err, latency, out_file = _solve_and_signal(
        tmp_path, sig, ["default/comm-0300", "-k", "8", "--time-limit", "120"], at=at)
    assert code == 130, err
    if result:  # a signal before the command started (imports) ends with "interrupted" only
        _check_result("default/comm-0300", 8, result, out_file)
    else:
        assert "interrupted" in err
    assert latency < 20, latency


@pytest.mark.solver
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_signal_during_a_mip_keeps_its_dual_bound(tmp_path, sig):
    code, result, err, latency, out_file = _solve_and_signal(
        tmp_path, sig, ["default/compute-0100", "-k", "8", "--time-limit", "300",
                        "--bound", "exact_mip"],
        after_line="input_order", wait=15.0)
    assert code == 130, err
    _check_result("default/compute-0100", 8, result, out_file)
    mip = [r for r in result["runs"] if r["method"] == "exact_mip"]
    assert mip and mip[0]["status"] == "time_limit"
    comb = combinatorial_bound(load_bundled("default/compute-0100"), 8)
    assert result["lower_bound"] > comb and result["lower_method"] == "exact_mip"
    assert latency < 10, latency


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_signal_during_max_flow_keeps_the_bound_so_far(tmp_path, sig):
    code, result, err, latency, out_file = _solve_and_signal(
        tmp_path, sig, ["default/operator-3000", "-k", "16", "--time-limit", "300",
                        "--bound", "path_bound"],
        after_line="input_order", wait=2.0)
    assert code == 130, err
    _check_result("default/operator-3000", 16, result, out_file)
    assert [r["method"] for r in result["runs"]][-1] == "path_bound"
    assert latency < 10, latency


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_harness_interrupted_keeps_finished_rows_and_resumes(tmp_path, sig):
    import sqlite3

    out = tmp_path / "grid"
    cmd = [sys.executable, "-m", "cli", "run", "-i", "suite:default", "-k", "2",
           "--heuristic", "bfs_order", "--bound", "combinatorial", "-j", "1",
           "--time-limit", "5", "-o", str(out), "--no-figures", "--no-report",
           "--no-progress"]
    db = out / "results.sqlite"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    n = 0
    deadline = time.monotonic() + 120
    while n < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as con:
                    n = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            except sqlite3.OperationalError:
                pass
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "terminate called" not in err
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert 5 <= kept < 62
    done = subprocess.run([*cmd, "--resume"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"{kept} already done" in done.stderr
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 62
