"""``pipecert solve``: the portfolio, its JSON contract, the partition file and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from experiments.portfolio import DEFAULT_PLAN, GAP_TOL, build_plan, solve
from pipecert import Partition, check_feasible, evaluate
from pipecert.testing import brute_force, random_dag


def _cli(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "experiments", "solve", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_portfolio_on_small_graphs_is_valid_and_closes_the_gap():
    for seed in range(3):
        inst = random_dag(seed, 8, name=f"r{seed}")
        opt, _ = brute_force(inst, 3)
        res = solve(inst, 3, time_limit_s=10)
        assert res.partition is not None and not check_feasible(inst, res.partition, k=3)
        assert res.upper_bound == pytest.approx(evaluate(inst, res.partition))
        assert res.lower_bound <= opt + 1e-9 <= res.upper_bound + 2e-9
        # the exact down-set DP finishes on 8 nodes and its optimum is a proven bound: the
        # gap is closed (up to the margin solver bounds carry)
        exact = solve(inst, 3, time_limit_s=60,
                      plan=build_plan(heuristics=["downset_dp"], bounds=["combinatorial"]))
        assert exact.gap <= GAP_TOL and exact.upper_bound == pytest.approx(opt)
        assert exact.lower_method == "downset_dp"


def test_default_plan_runs_fast_heuristics_before_bounds():
    steps = build_plan()
    assert [s.spec for s in steps[:3]] == [s.spec for s in DEFAULT_PLAN[:3]]
    assert steps[0].role == "heuristic"
    only_bounds = build_plan(bounds=["combinatorial"])
    assert only_bounds[0].role == "heuristic" and only_bounds[-1].spec == "combinatorial"
    allh = build_plan(heuristics=["all"])
    from heuristics import HEURISTICS

    assert [s.spec for s in allh] == HEURISTICS.names()


def test_solve_json_contract_and_partition_file(tmp_path):
    out = tmp_path / "p.json"
    r = _cli("default/comm-0100", "-k", "4", "--time-limit", "8", "--json", "-o", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)  # stdout is only the JSON (solver banners go to stderr)
    for key in ("upper_bound", "lower_bound", "gap", "partition", "runs"):
        assert key in d
    assert d["partition"]["k"] == 4 and len(d["partition"]["stages"]) == 4
    assert 0 <= d["lower_bound"] <= d["upper_bound"]
    assert d["gap"] == pytest.approx((d["upper_bound"] - d["lower_bound"]) / d["upper_bound"])
    roles = {x["role"] for x in d["runs"]}
    assert roles == {"heuristic", "bound"}
    for run in d["runs"]:
        assert set(run) >= {"method", "role", "value", "status", "time_s"}
    # the partition file re-scores to the reported upper bound
    from instances import load_bundled

    inst = load_bundled("default/comm-0100")
    part = Partition.read(out, inst)
    assert evaluate(inst, part) == pytest.approx(d["upper_bound"])
    assert "[" in r.stderr and "gap" in r.stderr  # live progress on stderr


def test_solve_named_methods_all_bounds_and_text_output(tmp_path):
    r = _cli("default/tiny-chain-8", "-k", "3", "--heuristic", "input_order",
             "--heuristic", "dfs_order", "--time-limit", "5", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    assert [x["method"] for x in d["runs"]] == ["input_order", "dfs_order"]
    assert (tmp_path / "tiny-chain-8-k3.partition.json").is_file()  # default file name
    r = _cli("default/tiny-chain-8", "-k", "3", "--bound", "all", "--time-limit", "20",
             "--json", "-o", str(tmp_path / "b.json"))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(r.stdout)
    from formulations import FORMULATIONS

    bound_runs = [x for x in d["runs"] if x["role"] == "bound"]
    assert {x["method"].split("[")[0] for x in bound_runs} == set(FORMULATIONS.names())
    for x in bound_runs:
        assert x["value"] is None or x["value"] <= d["upper_bound"] + 1e-9
    r = _cli("default/tiny-chain-8", "-k", "2", "--time-limit", "5", "-o",
             str(tmp_path / "c.json"))
    assert r.returncode == 0
    assert "certified gap" in r.stdout and "comm in" in r.stdout  # per-stage table


def test_target_gap_stops_early():
    inst = random_dag(7, 30, regime="compute", name="c30")
    res = solve(inst, 2, time_limit_s=30, target_gap=0.5)
    assert res.gap is not None and res.gap <= 0.5
    assert res.elapsed_s < 10
    ran = [r.method for r in res.runs]
    assert "guess" not in ran  # stopped before the MIP


@pytest.mark.parametrize("args, msg", [
    (["no/such/file.json", "-k", "2"], "no/such/file.json"),
    (["default/tiny-chain-8", "-k", "0"], "k"),
    (["default/tiny-chain-8", "-k", "2", "--heuristic", "nope"], "nope"),
])
def test_bad_input_is_one_line_and_exit_2(args, msg, tmp_path):
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert msg in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_ctrl_c_keeps_the_finished_runs_and_writes_the_partition(tmp_path):
    """SIGINT stops the search; the best partition and bound so far are printed and saved."""
    import signal
    import subprocess
    import sys

    out_file = tmp_path / "part.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "experiments", "solve", "models/llama-3-8b", "-k", "16",
         "--time-limit", "300", "-o", str(out_file), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until a heuristic has produced a partition
        if " heuri " in line and "feasible" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    result = json.loads(out)
    assert result["interrupted"] is True
    assert result["upper_bound"] is not None and out_file.exists()
    assert "interrupted after" in err
