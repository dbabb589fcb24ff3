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


# ---------------------------------------------------------------------------- no hidden method
def _look(line) -> tuple:
    return (line.get_marker(), str(line.get_linestyle()), line.get_color())


def test_every_method_of_a_figure_has_its_own_marker_and_line_style():
    from paper_figures._common import styles

    names = ["combinatorial", "node_bound", "path_bound", "best-of", "bfs_order", "dfs_order",
             "input_order", "downset_dp", *(f"m{i}[x={i}]" for i in range(40))]
    st = styles(names)
    pairs = [(s["marker"], str(s["linestyle"])) for s in st.values()]
    assert len(set(pairs)) == len(names)  # hash collisions resolved too
    assert styles(["node_bound"])["node_bound"] == style("node_bound")  # stable when free


def test_coinciding_groups_exact_and_visual_overlaps():
    from paper_figures._common import coinciding

    nan = float("nan")
    s = {"a": [1.0, 2.0, nan], "b": [1.0, 2.0, nan], "c": [1.0, 2.001, nan],
         "d": [1.0, 2.0, 3.0], "e": [nan, nan, nan], "f": [nan, nan, nan]}
    assert coinciding(s) == [["a", "b"]]  # e and f draw nothing: nothing is hidden
    assert coinciding(s, atol=0.01) == [["a", "b", "c"]]


def _coinciding_rec() -> Records:
    """bfs_order, dfs_order and input_order give the same partition everywhere; path_bound
    equals best-of everywhere."""
    out = []
    for name, ub in (("A", 10.0), ("B", 8.0)):
        for k in (2, 4):
            for m in ("bfs_order", "dfs_order", "input_order"):
                out.append({"instance": name, "k": k, "role": "heuristic", "method_id": m,
                            "status": "feasible", "bound": None, "incumbent": 1.2 * ub,
                            "wall_time_s": 0.1})
            out.append({"instance": name, "k": k, "role": "heuristic",
                        "method_id": "downset_dp", "status": "feasible", "bound": None,
                        "incumbent": ub, "wall_time_s": 0.1})
            for m, b in (("combinatorial", INST[name]["total_work"] / k),
                         ("path_bound", 0.95 * ub), ("node_bound", 0.7 * ub)):
                out.append({"instance": name, "k": k, "role": "bound", "method_id": m,
                            "status": "bound", "bound": b, "incumbent": None,
                            "wall_time_s": 0.1})
    inst = {n: {**v, "time_unit": "ms"} for n, v in INST.items()}
    return Records(out, inst, summarize(out, inst), "overlap")


def _texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.texts)


def test_fig_a_and_c_draw_every_method_distinctly_and_name_overlaps():
    import matplotlib.pyplot as plt

    rec = _coinciding_rec()
    fig = fig_a_bounds.draw(fig_a_bounds.data(rec), ["a unit note"])
    try:
        for ax in fig.axes:
            looks = [_look(ln) for ln in ax.get_lines()]
            assert len(set(looks)) == len(looks)
            labels = [ln.get_label() for ln in ax.get_lines()]
            assert {"path_bound", "best-of"} <= set(labels)
        text = _texts(fig)
        assert "path_bound = best-of" in text and "a unit note" in text
        assert "Overlapping lines" in text
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert set(legend) == {"combinatorial", "node_bound", "path_bound", "best-of"}
    finally:
        plt.close(fig)
    fig = fig_c_heuristics.draw(fig_c_heuristics.data(rec))
    try:
        ax = fig.axes[0]
        looks = [_look(ln) for ln in ax.get_lines() if ln.get_label() in
                 ("bfs_order", "dfs_order", "input_order", "downset_dp")]
        assert len(looks) == 4 and len(set(looks)) == 4
        assert "bfs_order = dfs_order = input_order" in _texts(fig)
        # the overlapping ones are drawn under, wider, with larger hollow markers
        by = {ln.get_label(): ln for ln in ax.get_lines()}
        assert by["dfs_order"].get_linewidth() > by["bfs_order"].get_linewidth()
        assert by["dfs_order"].get_zorder() < by["bfs_order"].get_zorder()
        assert by["input_order"].get_markersize() > by["dfs_order"].get_markersize()
        assert by["input_order"].get_markerfacecolor() == "none"
    finally:
        plt.close(fig)


def test_fig_b_names_overlapping_curves():
    import matplotlib.pyplot as plt

    rec = _coinciding_rec()
    fig = fig_b_distribution.draw(fig_b_distribution.data(rec))
    try:
        assert "path_bound = best-of" in _texts(fig)
    finally:
        plt.close(fig)


def test_units_are_stated_under_ratio_figures():
    from paper_figures._common import unit_note

    rec = _coinciding_rec()
    assert unit_note(rec) == ("Ratios are per instance and unit-free (instances' time unit: "
                              "ms).")
    mixed = rec._replace(instances={"A": {**INST["A"], "time_unit": "ms"},
                                    "B": {**INST["B"], "time_unit": "us"}})
    assert "different time units (ms: 1, us: 1)" in unit_note(mixed)
    assert "unit-free" in unit_note(mixed)


def test_fig_d_says_which_data_set_it_shows(rec):
    import matplotlib.pyplot as plt

    info = fig_d_dataset.data(rec)
    assert info.title == "Data set of experiment 'unit': gen (1 graph: A); real (1 graph: B)"
    fig = fig_d_dataset.draw(info)
    try:
        assert fig._suptitle.get_text() == info.title
        assert "unit-free when work and comm share a unit" in _texts(fig)
    finally:
        plt.close(fig)
    runs = [{**r, "instance": f"/data/{r['instance']}.json"} for r in rec.runs]
    files = rec._replace(runs=runs, instances={
        f"/data/{n}.json": {**v, "source": "files", "spec": "/data"} for n, v in INST.items()})
    assert fig_d_dataset.data(files).title == (
        "Data set of experiment 'unit': files (2 graphs: A.json, B.json)")
    many = files._replace(runs=[{**r, "instance": f"/data/{i}{r['instance']}"}
                                for i in range(3) for r in runs],
                          instances={f"/data/{i}{n}": v for i in range(3)
                                     for n, v in files.instances.items()})
    assert fig_d_dataset.data(many).title == (
        "Data set of experiment 'unit': files (6 graphs from /data)")
