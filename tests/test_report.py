"""Report metrics (spec §5.4) on hand-computed rows, and the report renderings."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from experiments.analysis import BEST, derive_best, geomean, summarize
from experiments.report import build_report, to_latex, to_markdown, write_all
from experiments.store import ResultsStore, run_key

# Two instances at k = 2.            instance A            instance B
#   facts: total_work, max_work      10, 3 (comb 5)        8, 6 (comb 6)
#   heuristic h                      10                    8
#   heuristic h2                     12                    error (no partition)
#   bound combinatorial              5                     6
#   bound mip                        8                     error -> fallback comb 6
# UB* = 10 and 8; r_comb = 0.5, 0.75; r_mip = 0.8, 0.75
INSTANCES = {"A": {"total_work": 10.0, "max_work": 3.0, "source": "s1"},
             "B": {"total_work": 8.0, "max_work": 6.0, "source": "s2"}}


def _r(inst, role, m, *, bound=None, inc=None, status="feasible", t=1.0):
    return {"instance": inst, "k": 2, "role": role, "method_id": m, "status": status,
            "bound": bound, "incumbent": inc, "wall_time_s": t}


RUNS = [
    _r("A", "heuristic", "h", inc=10.0, t=1.0), _r("B", "heuristic", "h", inc=8.0, t=3.0),
    _r("A", "heuristic", "h2", inc=12.0), _r("B", "heuristic", "h2", status="error"),
    _r("A", "bound", "combinatorial", bound=5.0, status="bound"),
    _r("B", "bound", "combinatorial", bound=6.0, status="bound"),
    _r("A", "bound", "mip", bound=8.0, status="bound", t=2.0),
    _r("B", "bound", "mip", status="error", t=4.0),
]


def test_geomean():
    assert geomean([0.5, 0.75]) == pytest.approx(math.sqrt(0.375))
    assert math.isnan(geomean([]))
    assert geomean([0.0, 1.0]) == 0.0


def test_summary_matches_hand_computation():
    s = summarize(RUNS, INSTANCES)
    b = {x.method: x for x in s.bounds}
    gm_comb, gm_mip = math.sqrt(0.5 * 0.75), math.sqrt(0.8 * 0.75)
    assert b["combinatorial"].gm_ratio == pytest.approx(gm_comb)
    assert b["mip"].gm_ratio == pytest.approx(gm_mip)
    assert b["mip"].approx_ratio == pytest.approx(1 / gm_mip)
    assert b["mip"].gap_closing == pytest.approx((1 - gm_comb) / (1 - gm_mip))
    assert b["combinatorial"].gap_closing == pytest.approx(1.0)
    assert b["mip"].n_fallback == 1 and b["combinatorial"].n_fallback == 0
    assert b["mip"].median_time_s == pytest.approx(3.0)
    assert b[BEST].gm_ratio == pytest.approx(gm_mip)
    h = {x.method: x for x in s.heuristics}
    assert h["h"].gm_ratio == pytest.approx(1.0) and h["h"].n_best == 2
    assert h["h2"].gm_ratio == pytest.approx(1.2) and h["h2"].n_failed == 1
    assert h["h"].median_time_s == pytest.approx(2.0)
    per = {r["instance"]: r for r in s.per_instance}
    assert per["A"]["ub_star"] == 10.0 and per["A"]["best_bound"] == 8.0
    assert per["A"]["gap"] == pytest.approx(0.2)
    assert per["B"]["bound_method"] == "combinatorial"
    assert s.n_errors == 2


def test_an_error_bound_never_counts_and_bounds_never_exceed_ub_star():
    runs = [*RUNS, _r("A", "bound", "liar", bound=50.0, status="error")]
    d = {x["instance"]: x for x in derive_best(runs, INSTANCES)}
    assert d["A"]["best_bound"] == 8.0


def _store(tmp_path) -> ResultsStore:
    from pipecert import Instance

    st = ResultsStore(tmp_path / "r.sqlite")
    st.set_meta("experiment", "unit_test")
    for name, work in (("A", [3, 3, 3, 1]), ("B", [6, 2])):  # the facts of INSTANCES
        ids = [f"v{i}" for i in range(len(work))]
        st.add_instance(name, Instance(ids, work, [1.0] * len(work), list(zip(ids, ids[1:])),
                                       name=name), source="toy")
    for r in RUNS:
        st.add_run({**r, "run_key": run_key(r["instance"], 2, r["method_id"], 0), "seed": 0})
    return st


def test_markdown_latex_and_csv(tmp_path):
    st = _store(tmp_path)
    rep = build_report(st)
    md = to_markdown(rep)
    assert "# Report: unit_test" in md and "| 2 | mip" in md
    assert f"{math.sqrt(0.6):.4f}" in md  # GM of mip
    tex = to_latex(rep)
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and "best-of" in tex
    paths = write_all(rep, tmp_path / "rep")
    assert {p.name for p in paths} == {"report.md", "report.tex", "bounds.csv",
                                       "heuristics.csv", "instances.csv"}
    assert "gm_ratio" in (tmp_path / "rep" / "bounds.csv").read_text().splitlines()[0]


def test_report_command(tmp_path):
    _store(tmp_path).close()
    out = subprocess.run([sys.executable, "-m", "experiments", "report",
                          str(tmp_path / "r.sqlite"), "--format", "tex"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and r"\begin{table}" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "experiments", "report",
                          str(tmp_path / "none.sqlite")], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "none.sqlite" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_an_exact_heuristic_that_proved_optimality_counts_as_a_bound():
    runs = [*RUNS, _r("B", "heuristic", "exact_dp", inc=8.0, status="optimal")]
    s = summarize(runs, INSTANCES)
    b = {x.method: x for x in s.bounds}
    # best-of at B: the exact method proved 8 = UB*; at A: mip 8 / 10
    assert b[BEST].gm_ratio == pytest.approx(math.sqrt(0.8 * 1.0))
    d = {x["instance"]: x for x in derive_best(runs, INSTANCES)}
    assert d["B"]["best_bound"] == 8.0 and d["B"]["gap"] == 0.0
