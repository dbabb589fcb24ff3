"""Report metrics (docs/theory/paper.md#metrics) on hand-computed rows, and the renderings."""

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
    # GM of mip, sqrt(0.6) = 0.774597: a bound ratio is rounded down (never shows more than
    # proved), so 0.7745 and not 0.7746
    assert "0.7745" in md and "0.7746" not in md
    tex = to_latex(rep)
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and "best-of" in tex
    paths = write_all(rep, tmp_path / "rep")
    assert {p.name for p in paths} == {"report.md", "report.tex", "bounds.csv",
                                       "heuristics.csv", "instances.csv"}
    assert "gm_ratio" in (tmp_path / "rep" / "bounds.csv").read_text().splitlines()[0]


def test_report_command(tmp_path):
    _store(tmp_path).close()
    out = subprocess.run([sys.executable, "-m", "cli", "report",
                          str(tmp_path / "r.sqlite"), "--format", "tex"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and r"\begin{table}" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "cli", "report",
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


def _units_store(tmp_path, units: dict[str, str]) -> ResultsStore:
    """The RUNS of this module on instances whose metadata give a time unit each."""
    from pipecert import Instance

    st = ResultsStore(tmp_path / "u.sqlite")
    for name, work in (("A", [3, 3, 3, 1]), ("B", [6, 2])):
        ids = [f"v{i}" for i in range(len(work))]
        md = {"units": {"work": units[name], "comm": units[name], "memory": "bytes"}}
        st.add_instance(name, Instance(ids, work, [1.0] * len(work), list(zip(ids, ids[1:])),
                                       name=name, metadata=md), source="toy")
    for r in RUNS:
        st.add_run({**r, "run_key": run_key(r["instance"], 2, r["method_id"], 0), "seed": 0})
    return st


def _legend_after(md: str, head: list[str]) -> str:
    """The legend lines that follow the table whose header row is ``head``."""
    lines = md.splitlines()
    i = next(i for i, ln in enumerate(lines)
             if [c.strip() for c in ln.strip("|").split("|")] == list(head))
    rest = "\n".join(lines[i:]).split("\n\n", 1)[1]
    return rest.split("\n\n", 1)[0]


def test_every_column_of_every_table_is_defined_under_it(tmp_path):
    from experiments.report import BOUND_HEAD, HEUR_HEAD, INST_HEAD

    md = to_markdown(build_report(_store(tmp_path)))
    for head in (BOUND_HEAD, HEUR_HEAD, INST_HEAD):
        legend = _legend_after(md, head)
        assert legend.startswith("- "), legend
        for col in head[2:]:  # k and the method/instance name are self-explanatory
            assert any(ln.startswith((f"- {col}:", f"- {col} /")) or f"/ {col}:" in ln
                       for ln in legend.splitlines()), (col, legend)
    assert "- closing: gap-closing factor" in md and "- exact: instances where LB" in md
    tex = to_latex(build_report(_store(tmp_path)))
    assert r"closing: gap-closing factor" in tex and r"\footnotesize" in tex


def test_solved_is_reported_apart_from_optimal_and_unsupported_shows_its_reason(tmp_path):
    st = _store(tmp_path)
    st.add_run({**_r("A", "bound", "lp", bound=7.0, status="solved"),
                "run_key": run_key("A", 2, "lp", 0), "seed": 0})
    st.add_run({**_r("B", "bound", "lp", bound=8.0, status="optimal"),
                "run_key": run_key("B", 2, "lp", 0), "seed": 0})
    st.add_run({**_r("A", "bound", "mem_mip", status="unsupported"),
                "error": "needs memory data on every node", "seed": 0,
                "run_key": run_key("A", 2, "mem_mip", 0)})
    st.add_run({**_r("B", "bound", "mem_mip", status="unsupported"), "seed": 0,
                "run_key": run_key("B", 2, "mem_mip", 0)})
    rep = build_report(st)
    md = to_markdown(rep)
    status_head = next(ln for ln in md.splitlines() if ln.startswith("| role"))
    assert "| solved" in status_head and "| optimal" in status_head
    lp = next(ln for ln in md.splitlines() if "| lp " in ln and ln.startswith("| bound"))
    cols = [c.strip() for c in status_head.strip("|").split("|")]
    vals = [c.strip() for c in lp.strip("|").split("|")]
    assert dict(zip(cols, vals))["solved"] == "1" and dict(zip(cols, vals))["optimal"] == "1"
    assert "- solved: relaxation solved to optimality" in md
    assert "solved is not" in md and "optimal is a proof" in md
    assert "| mem_mip | unsupported | 1    | needs memory data on every node | A k=2" in md
    assert "(no reason recorded)" in md
    # a solved bound below UB* is no proof: the per-instance gap of A stays open
    per = {r["instance"]: r for r in rep.summary.per_instance}
    assert per["A"]["gap"] == pytest.approx(0.2)


def test_units_are_shown_and_a_mix_of_units_is_stated(tmp_path):
    same = to_markdown(build_report(_units_store(tmp_path, {"A": "ms", "B": "ms"})))
    assert "Time unit of every instance: ms" in same and "unit-free" in same
    assert "| A        | 2 | 10  | 8       | ms" in same
    (tmp_path / "u.sqlite").unlink()
    mixed = to_markdown(build_report(_units_store(tmp_path, {"A": "ms", "B": "us"})))
    assert "different time units (ms: 1, us: 1)" in mixed
    assert "not comparable across instances" in mixed and "unit-free" in mixed
    assert "| B        | 2 | 8   | 6       | us" in mixed
