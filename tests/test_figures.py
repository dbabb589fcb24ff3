"""Figures A-D and tables 1-2: the pure data steps, and the files ``make_all`` writes."""

from __future__ import annotations

import math

import pytest

from experiments.analysis import summarize
from paper_figures import (
    fig_a_bounds,
    fig_b_distribution,
    fig_c_heuristics,
    fig_d_dataset,
    make_all,
    table1_bounds,
    table2_heuristics,
)
from paper_figures._common import Records, pick_k, style

INST = {"A": {"total_work": 10.0, "max_work": 3.0, "source": "gen", "n_nodes": 40,
              "comm_share": 0.2},
        "B": {"total_work": 8.0, "max_work": 2.0, "source": "real", "n_nodes": 900,
              "comm_share": 0.8}}


def _runs():
    out = []
    for name, ub in (("A", 10.0), ("B", 8.0)):
        for k in (2, 16):
            u = ub if k == 2 else ub / 2
            out += [
                {"instance": name, "k": k, "role": "heuristic", "method_id": "h",
                 "status": "feasible", "bound": None, "incumbent": u, "wall_time_s": 0.1},
                {"instance": name, "k": k, "role": "heuristic", "method_id": "h2",
                 "status": "feasible", "bound": None, "incumbent": 1.25 * u,
                 "wall_time_s": 0.1},
                {"instance": name, "k": k, "role": "bound", "method_id": "combinatorial",
                 "status": "bound", "bound": INST[name]["total_work"] / k,
                 "incumbent": None, "wall_time_s": 0.0},
                {"instance": name, "k": k, "role": "bound", "method_id": "node_bound",
                 "status": "bound", "bound": 0.9 * u, "incumbent": None, "wall_time_s": 0.2},
            ]
    return out


@pytest.fixture()
def rec() -> Records:
    runs = _runs()
    return Records(runs, INST, summarize(runs, INST), "unit")


def test_fig_a_data_one_line_per_bound_one_panel_per_dataset(rec):
    info = fig_a_bounds.data(rec)
    assert info.datasets == ["gen", "real"] and info.ks == [2, 16]
    assert info.methods[0] == "combinatorial" and "node_bound" in info.methods
    assert info.gm["gen"]["node_bound"] == pytest.approx([0.9, 0.9])
    # combinatorial at k=16 for A: (10/16) / 5
    assert info.gm["gen"]["combinatorial"][1] == pytest.approx(10 / 16 / 5)


def test_fig_b_data_sorted_ratios_at_k16(rec):
    info = fig_b_distribution.data(rec)
    assert info.k == 16
    assert info.ratios["node_bound"] == pytest.approx([0.9, 0.9])
    assert info.ratios["combinatorial"] == sorted(info.ratios["combinatorial"])
    assert pick_k([2, 4, 8], 16) == 8 and pick_k([], 16) is None


def test_fig_c_and_table2_heuristic_ratios(rec):
    info = fig_c_heuristics.data(rec)
    assert info.gm["h"] == pytest.approx([1.0, 1.0])
    assert info.gm["h2"] == pytest.approx([1.25, 1.25])
    head, cells = table2_heuristics.render(table2_heuristics.data(rec))
    assert head == ["heuristic", "k=2", "k=16"] and cells[1][1].startswith("1.2500")


def test_fig_d_and_table1(rec):
    info = fig_d_dataset.data(rec)
    assert info.n_nodes == {"gen": [40], "real": [900]}
    assert info.comm_share["real"] == [0.8]
    head, cells = table1_bounds.render(table1_bounds.data(rec))
    assert head[:3] == ["dataset", "k", "combinatorial"]
    assert len(cells) == 4  # 2 datasets x 2 k
    assert all(not math.isnan(float(c)) for c in cells[0][2:])


def test_styles_are_stable_per_method():
    assert style("node_bound") == style("node_bound")
    assert style("x[a=1]") == style("x[a=1]")
    assert style("combinatorial") != style("node_bound")


def test_make_all_writes_every_figure_and_table(tmp_path):
    from experiments.store import ResultsStore, run_key
    from pipecert import Instance

    st = ResultsStore(tmp_path / "r.sqlite")
    for name, work in (("A", [3, 3, 3, 1]), ("B", [2, 2, 2, 2])):
        ids = [f"v{i}" for i in range(4)]
        st.add_instance(name, Instance(ids, work, [1.0] * 4, list(zip(ids, ids[1:])),
                                       name=name), source=INST[name]["source"])
    for r in _runs():
        st.add_run({**r, "run_key": run_key(r["instance"], r["k"], r["method_id"], 0)})
    paths = make_all(st, tmp_path / "figs")
    names = {p.name for p in paths}
    for fig in ("fig_a_bounds", "fig_b_distribution", "fig_c_heuristics", "fig_d_dataset"):
        assert {f"{fig}.png", f"{fig}.pdf"} <= names
    for tab in ("table1_bounds", "table2_heuristics"):
        assert {f"{tab}.md", f"{tab}.tex", f"{tab}.csv"} <= names
    for p in paths:
        assert p.stat().st_size > 50, p
    assert (tmp_path / "figs" / "fig_a_bounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
