"""``pipecert solve``: the portfolio, its JSON contract, the partition file and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipecert import Partition, check_feasible, evaluate
from pipecert.testing import brute_force, random_dag
from portfolio import DEFAULT_PLAN, GAP_TOL, build_plan, solve

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout first on the path (also when the
    subprocess runs in a temporary directory)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _pipecert(*args, cwd=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_env())


def _cli(*args, cwd=None, timeout=120):
    return _pipecert("solve", *args, cwd=cwd, timeout=timeout)


def _one_line_error(r, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout[-500:], r.stderr[-1500:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-1500:]
    assert lines[0].startswith("pipecert"), lines
    for n in needles:
        assert n in lines[0], lines[0]


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
        assert set(run) >= {"method", "role", "value", "status", "time_s", "reason"}
        assert run["status"] in d["status_meanings"]
    assert set(d["units"]) == {"work", "comm", "memory", "time"} and "cost_model" in d
    # the partition (inline and in the file) carries its provenance
    prov = json.loads(out.read_text())
    assert prov == d["partition"]
    assert prov["value"] == pytest.approx(d["upper_bound"])
    assert prov["lower_bound"] == pytest.approx(d["lower_bound"])
    assert prov["found_by"] == d["upper_method"] and prov["proved_by"] == d["lower_method"]
    assert prov["graph"]["path"] == "default/comm-0100" and prov["seed"] == 0
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
        [sys.executable, "-m", "cli", "solve", "models/llama-3-8b", "-k", "16",
         "--time-limit", "300", "-o", str(out_file), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
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


def test_solve_states_units_cost_model_reasons_and_statuses(tmp_path):
    """Units and the cost model in text and JSON; an unsupported step says why; a legend."""
    from instances import load_bundled
    from pipecert.results import STATUS_MEANINGS

    inst = load_bundled("models/bert-base")
    hw = inst.cost_model["hardware"]["name"]
    args = ["models/bert-base", "-k", "4", "--heuristic", "input_order", "--bound", "guess",
            "--solver", "cvxpy:CLARABEL", "--time-limit", "120", "-o", tmp_path / "b.json"]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "units: costs in us, memory in bytes; costs priced by the roofline cost model " \
           f"for {hw}" in r.stdout
    assert "best partition: " in r.stdout and " us  (input_order)" in r.stdout
    # (the unsupported step returns at once: the long limit only guards a loaded machine)
    run = next((ln for ln in r.stdout.splitlines() if ln.startswith("guess")), r.stdout)
    assert "unsupported" in run and ("MILP" in run or "missing" in run or "not installed" in run)
    assert f"unsupported: {STATUS_MEANINGS['unsupported']}" in r.stdout  # the legend
    r = _cli(*args, "--json")
    d = json.loads(r.stdout)
    assert d["units"] == {"work": "us", "comm": "us", "memory": "bytes", "time": "us"}
    assert d["cost_model"]["kind"] == "roofline" and hw in d["costs"]
    guess = next(x for x in d["runs"] if x["method"].startswith("guess"))
    assert guess["status"] == "unsupported" and guess["reason"]
    assert d["partition"]["units"]["time"] == "us"
    assert d["partition"]["cost_model"]["hardware"]["name"] == hw
    h = _cli("--help")
    assert h.returncode == 0
    for status in STATUS_MEANINGS:  # every status is explained in the help
        assert f"  {status}: " in h.stdout
    assert "solved: relaxation solved" in h.stdout


@pytest.mark.parametrize("args, needle", [
    (["--time-limit", "nan"], "--time-limit"),
    (["--time-limit", "inf"], "--time-limit"),
    (["--time-limit", "-1"], "--time-limit"),
    (["--time-limit", "0"], "--time-limit"),
    (["--target-gap", "nan"], "--target-gap"),
    (["--target-gap", "inf"], "--target-gap"),
    (["--target-gap", "-0.5"], "--target-gap"),
    (["--threads", "0"], "--threads"),
    (["-k", "1.5"], "k must be an integer"),
    (["-k", "many"], "k must be an integer"),
    (["--time-limit", "soon"], "--time-limit"),
])
def test_bad_limits_are_one_line_errors(args, needle, tmp_path):
    base = ["default/tiny-chain-8", "-k", "2"]
    _one_line_error(_cli(*base, *args, cwd=tmp_path), needle)
    assert not list(tmp_path.iterdir())  # nothing written


def test_huge_k_solves_like_k_equal_n_and_prints_no_empty_rows(tmp_path):
    out = tmp_path / "p.json"
    r = _cli("default/tiny-chain-8", "-k", "1000000000", "--heuristic", "input_order",
             "--time-limit", "10", "-o", out)
    assert r.returncode == 0, r.stderr[-2000:]
    table = r.stdout.split("\n\n")[1].splitlines()
    assert len(table) <= 2 + 8 + 1 and table[-1].endswith("..999999999: empty")
    data = json.loads(out.read_text())
    assert data["k"] == 10**9 and len(data["stages"]) <= 8
    ev = _pipecert("evaluate", "default/tiny-chain-8", out, "--json")
    assert ev.returncode == 0, ev.stderr
    res = json.loads(ev.stdout)
    assert res["k"] == 10**9 and res["bottleneck"] == pytest.approx(data["value"])
    assert res["empty_stages_not_listed"] == 10**9 - len(res["stages"])


def test_unwritable_output_is_reported_before_the_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = _cli("default/comm-0100", "-k", "4", "--time-limit", "60", "-o", blocker / "p.json")
    _one_line_error(r, "cannot create directory")
    assert "[" not in r.stderr  # no method ran
    _one_line_error(_cli("default/comm-0100", "-k", "4", "-o", tmp_path), "is a directory")
    # a missing directory that can be created is created
    r = _cli("default/tiny-chain-8", "-k", "2", "--heuristic", "input_order",
             "--time-limit", "5", "-o", tmp_path / "new" / "dir" / "p.json")
    assert r.returncode == 0 and (tmp_path / "new" / "dir" / "p.json").is_file()


def test_default_output_never_replaces_another_graphs_partition(tmp_path):
    from instances import write_instance
    from pipecert.testing import worked_example

    quick = ["-k", "2", "--heuristic", "input_order", "--time-limit", "5", "-q"]
    r = _cli("default/tiny-chain-8", *quick, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = tmp_path / "tiny-chain-8-k2.partition.json"
    before = first.read_text()
    # another graph whose default output name is the same
    other = worked_example()
    write_instance(other, tmp_path / "tiny-chain-8.json")
    r = _cli("tiny-chain-8.json", *quick, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    alt = tmp_path / f"tiny-chain-8-k2-{other.structure_fingerprint[:8]}.partition.json"
    assert first.read_text() == before and alt.is_file()
    assert "holds a partition of another graph" in r.stderr and str(alt.name) in r.stderr
    assert json.loads(alt.read_text())["graph"]["structure_fingerprint"] == \
        other.structure_fingerprint
    # the same graph again: its own file is replaced, no note
    r = _cli("default/tiny-chain-8", *quick, cwd=tmp_path)
    assert r.returncode == 0 and "another graph" not in r.stderr
    assert json.loads(first.read_text())["created"] >= json.loads(before)["created"]


def test_deeply_nested_input_is_a_one_line_error(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    _one_line_error(_cli(deep, "-k", "2", cwd=tmp_path), "deep.json")


def test_a_failed_write_still_prints_the_result(tmp_path, monkeypatch, capfd):
    """The output is checked before the work; should the write still fail, the computed
    result is printed (with its partition inline) and the error is one line, exit 2."""
    import pipecert.partition_file as pfile
    from cli import main

    def refuse(path, obj):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(pfile, "write_partition_json", refuse)
    code = main(["solve", "default/tiny-chain-8", "-k", "2", "--heuristic", "input_order",
                 "--time-limit", "5", "-q", "--json", "-o", str(tmp_path / "p.json")])
    out, err = capfd.readouterr()
    assert code == 2
    d = json.loads(out)
    assert d["partition_file"] is None and d["partition"]["stages"] and d["upper_bound"] > 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot write the partition file" in lines[0]
    assert not (tmp_path / "p.json").exists()
