"""Constrained variants in the CLI and the harness (docs/constraints.md).

``--memory-limit``/``--relax`` and their parser, the variant in ``solve``/``info``/``evaluate``
output, proven infeasibility (exit 3, JSON status), the portfolio on variants (steps left
out, INFEASIBLE, optimality only for the constrained problem), capabilities in ``list``,
and the harness: variants as instances, the variant column, infeasible rows in the report
and in ``results check``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cli import main
from experiments._serialize import instance_from_bytes, instance_to_bytes
from experiments.config import load_config
from experiments.harness import load_entries, run_grid
from experiments.report import build_report, gap_table, to_markdown
from experiments.store import ResultsStore
from experiments.variants import (
    memory_limit_value,
    min_stages,
    parse_memory_size,
    parse_variant,
    variant_json,
)
from formulations.base import Formulation
from heuristics import HEURISTICS
from heuristics.base import Heuristic
from instances import write_instance
from pipecert import Instance, Partition
from pipecert.errors import InputError
from pipecert.instance import CONSTRAINTS
from pipecert.results import BoundResult, HeuristicResult, Status
from pipecert.testing import brute_force, random_training_dag
from portfolio import DEFAULT_PLAN, Step, rescale_shares, solve


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def capped(memory_limit: float | None = 15.0, unit: str | None = "bytes") -> Instance:
    """A chain a -> b -> c -> d, memory 10 each: a cap of 15 needs >= 3 stages."""
    meta = {"units": {"work": "ms", "comm": "ms", "memory": unit}} if unit else {}
    return Instance(list("abcd"), work=[4, 3, 2, 5], comm=[1, 1, 1, 0],
                    edges=[("a", "b"), ("b", "c"), ("c", "d")], memory=[10, 10, 10, 10],
                    memory_limit=memory_limit, name="capped", metadata=meta)


def grouped() -> Instance:
    """A training-like graph: forward a -> b, backward b' -> a' (data-only), groups."""
    return Instance(["a", "b", "b'", "a'"], work=[2, 3, 3, 2], comm=[1, 1, 1, 0],
                    edges=[("a", "b"), ("b", "b'")], data_only_edges=[("b'", "a'")],
                    groups=[0, 1, 1, 0], name="grouped",
                    metadata={"units": {"work": "ms", "comm": "ms", "memory": "bytes"}})


# ------------------------------------------------------------------ sizes and variants
@pytest.mark.parametrize("text, value", [
    ("80GB", 80e9), ("16GiB", 16 * 2**30), ("16 gib", 16 * 2**30), ("1.5e9", 1.5e9),
    ("512MB", 512e6), ("none", None), ("unlimited", None), ("0", 0.0)])
def test_parse_memory_size(text, value):
    assert parse_memory_size(text) == value


@pytest.mark.parametrize("text", ["-1GB", "12 parsecs", "", "GB", "1e999"])
def test_parse_memory_size_errors_are_one_line(text):
    with pytest.raises(InputError) as e:
        parse_memory_size(text)
    assert "\n" not in str(e.value)


def test_memory_limit_value_units():
    inst = capped()
    assert memory_limit_value(inst, "25") == 25.0  # the instance's unit
    assert memory_limit_value(inst, "1KB") == 1000.0
    assert memory_limit_value(inst, "none") is None
    gb = capped(unit="GB")
    assert memory_limit_value(gb, "80GB") == pytest.approx(80.0)
    assert memory_limit_value(gb, "3") == 3.0
    with pytest.raises(InputError, match="plain number"):
        memory_limit_value(capped(unit=None), "80GB")


def test_parse_variant_names_and_errors():
    assert parse_variant("as_given").name == "as_given"
    assert parse_variant("").is_as_given
    assert parse_variant("memory_limit=None").name == "memory_limit=none"
    v = parse_variant("relax=memory+groups;memory_limit=2GB")
    assert v.name == "memory_limit=2GB;relax=groups+memory"
    assert parse_variant(memory_limit="off", relax="groups,memory").name == \
        "memory_limit=none;relax=groups+memory"
    with pytest.raises(InputError, match="data-only edges cannot be relaxed"):
        parse_variant("relax=data_only_edges")
    with pytest.raises(InputError, match="unknown key"):
        parse_variant("cap=3")
    with pytest.raises(InputError, match="memory size"):
        parse_variant("memory_limit=lots")


def test_variant_apply_and_description():
    inst = capped()
    assert inst.constraints == {"memory"}
    assert min_stages(inst) == 3
    free = parse_variant("memory_limit=none").apply(inst)
    assert free.memory_limit is None and not free.constraints
    assert free.metadata["variant"] == "memory_limit=none"
    assert free.fingerprint != inst.fingerprint
    v = variant_json(inst, 2)
    assert v["constraints"] == ["memory"] and v["min_stages"] == 3
    assert "3 stages" in v["infeasible_reason"]
    g = grouped()
    assert g.constraints == {"groups", "data_only_edges"}
    rg = parse_variant("relax=groups").apply(g)
    assert rg.constraints == {"data_only_edges"}  # data-only edges stay
    vj = variant_json(g)
    assert vj["groups"] == {"n_groups": 2, "n_grouped_nodes": 4, "n_units": 2}
    assert (vj["ordering_edges"], vj["data_only_edges"]) == (2, 1)
    # a unit heavier than the cap: no k is feasible
    assert min_stages(capped(memory_limit=5.0)) == 0


def test_serialized_instance_keeps_data_only_edges_and_constraints():
    for seed in range(5):
        inst = random_training_dag(seed, 4, memory="binding")
        back = instance_from_bytes(instance_to_bytes(inst))
        assert back == inst
        assert back.constraints == inst.constraints
        assert np.array_equal(back.edge_orders, inst.edge_orders)
        assert back.fingerprint == inst.fingerprint


# ------------------------------------------------------------------ solve
def test_solve_proven_infeasible_exit_3_text_and_json(capsys, tmp_path):
    f = tmp_path / "capped.json"
    write_instance(capped(), f)
    out_file = tmp_path / "p.json"
    code, out, err = run(capsys, "solve", f, "-k", "2", "--time-limit", "5", "-o", out_file)
    assert code == 3, (out, err)
    assert out.startswith("infeasible: total memory 40")
    assert "memory cap: 15 bytes per stage" in out and "needs >= 3 stages" in out
    assert not out_file.exists()
    code, out, err = run(capsys, "solve", f, "-k", "2", "--json", "-o", out_file, "-q")
    assert code == 3
    res = json.loads(out)
    assert res["status"] == "infeasible" and "k x cap" in res["infeasible_reason"]
    assert res["upper_bound"] is None and res["lower_bound"] is None and res["gap"] is None
    assert res["variant"]["constraints"] == ["memory"] and res["variant"]["min_stages"] == 3
    assert "pipecert: infeasible:" in err


def test_solve_memory_limit_override(capsys, tmp_path):
    f = tmp_path / "capped.json"
    write_instance(capped(), f)
    out_file = tmp_path / "p.json"
    code, out, err = run(capsys, "solve", f, "-k", "2", "--memory-limit", "none", "--json",
                         "-q", "--heuristic", "dfs_order", "--bound", "combinatorial",
                         "--time-limit", "5", "-o", out_file)
    assert code == 0, err
    res = json.loads(out)
    assert res["status"] in ("optimal", "gap_open")
    assert res["variant"]["name"] == "memory_limit=none" and res["variant"]["constraints"] == []
    pf = json.loads(out_file.read_text())
    assert pf["variant"]["name"] == "memory_limit=none" and pf["variant"]["memory_limit"] is None
    # evaluated as the file gives the graph (cap 15): a note, then the cap's violations
    code, _, err = run(capsys, "evaluate", f, out_file)
    assert code == 1 and "written for the variant 'memory_limit=none'" in err
    code, _, err = run(capsys, "evaluate", f, out_file, "--memory-limit", "none")
    assert code == 0 and "note" not in err
    # a cap of 25 bytes: 2 stages remain infeasible (40 > 2 x 25 is false: feasible by
    # the total; the order then decides)
    code, out, _ = run(capsys, "solve", f, "-k", "1", "--memory-limit", "25", "-q",
                       "-o", out_file)
    assert code == 3 and "infeasible:" in out
    code, _, err = run(capsys, "solve", f, "-k", "2", "--memory-limit", "12 parsecs")
    assert code == 2 and "memory size" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ portfolio
class _Brute(Heuristic):
    """Test method: the brute-force optimum of every variant."""

    name = "t12_brute"
    handles = frozenset(CONSTRAINTS)
    deterministic = True

    def solve(self, instance, k, budget, rng, context=None):
        value, part = brute_force(instance, k)
        if part is None:
            return HeuristicResult(None, Status.INFEASIBLE, {"reason": "brute force: none"})
        return HeuristicResult(part, Status.FEASIBLE)


@pytest.fixture
def brute():
    HEURISTICS.register(_Brute)
    yield "t12_brute"
    HEURISTICS.unregister("t12_brute")


class _Plain(Heuristic):
    """Test method that handles no constraint: everything in stage 0."""

    name = "t12_plain"
    deterministic = True

    def solve(self, instance, k, budget, rng, context=None):
        return HeuristicResult(Partition([0] * instance.n_nodes, k), Status.FEASIBLE)


@pytest.fixture
def plain():
    HEURISTICS.register(_Plain)
    yield "t12_plain"
    HEURISTICS.unregister("t12_plain")


def test_portfolio_leaves_out_unsupported_steps_quietly(brute, plain):
    inst = grouped()
    plan = [Step("heuristic", plain, 0.2), Step("heuristic", brute, 0.5),
            Step("bound", "combinatorial", 0.1), Step("refine", "local_search", 1.0)]
    res = solve(inst, 2, time_limit_s=10, plan=plan)
    # the refine step (an improver: local search on the incumbent) handles every constraint:
    # it runs last
    assert [r.method for r in res.runs][:2] == [brute, "combinatorial"]
    assert all(r.method.startswith("local_search") for r in res.runs[2:])
    assert plain in {m for m, _ in res.not_applicable}
    opt, _ = brute_force(inst, 2)
    assert res.upper_bound == pytest.approx(opt)
    assert res.infeasible is None
    assert res.lower_bound <= res.upper_bound
    # named explicitly, an unsupported method runs and says why
    res = solve(inst, 2, time_limit_s=10, plan=plan[:2], skip_unsupported=False)
    assert res.runs[0].status == "unsupported" and "does not handle" in res.runs[0].error


def test_portfolio_infeasible_proof_stops_the_search(brute):
    res = solve(capped(), 2, time_limit_s=10,
                plan=[Step("heuristic", brute, 0.5), Step("bound", "combinatorial", 0.5)])
    assert res.infeasible is not None and "k x cap" in res.infeasible
    assert res.runs == [] and res.lower_bound is None and res.partition is None


def test_portfolio_non_exact_infeasible_is_no_proof(brute):
    # a cap that no unit exceeds and the total allows, but the order forbids: a, c, d in
    # different stages is impossible at k = 2 with memory 10 each and a cap of 20: a|b c|d
    inst = capped(memory_limit=20.0)
    assert inst.infeasible_reason(2) is None
    res = solve(inst, 2, time_limit_s=10, plan=[Step("heuristic", brute, 1.0)])
    opt, _ = brute_force(inst, 2)
    assert math.isfinite(opt) and res.upper_bound == pytest.approx(opt)


class _InfeasibleBound(Formulation):
    """Test bound: a relaxation that has no feasible point (a proof of infeasibility)."""

    name = "t12_nofeas"
    handles = frozenset(CONSTRAINTS)

    def lower_bound(self, instance, k, budget, context=None):
        return BoundResult(None, Status.INFEASIBLE, stats={"reason": "t12: no point"})


class _GivesUp(Heuristic):
    """Test heuristic: says infeasible without any proof."""

    name = "t12_givesup"
    handles = frozenset(CONSTRAINTS)

    def solve(self, instance, k, budget, rng, context=None):
        return HeuristicResult(None, Status.INFEASIBLE, {"reason": "gave up"})


def test_portfolio_infeasible_from_a_bound_is_a_proof_from_a_heuristic_not(brute):
    from formulations import FORMULATIONS

    FORMULATIONS.register(_InfeasibleBound)
    HEURISTICS.register(_GivesUp)
    try:
        inst = grouped()
        res = solve(inst, 2, time_limit_s=10,
                    plan=[Step("heuristic", "t12_givesup", 0.3),
                          Step("bound", "t12_nofeas", 0.3), Step("heuristic", brute, 1.0)])
        assert res.infeasible is not None and "t12: no point" in res.infeasible
        assert [r.method for r in res.runs] == ["t12_givesup", "t12_nofeas"]  # stopped
        res = solve(inst, 2, time_limit_s=10,
                    plan=[Step("heuristic", "t12_givesup", 0.3), Step("heuristic", brute, 1.0)])
        assert res.infeasible is None and res.partition is not None
    finally:
        FORMULATIONS.unregister("t12_nofeas")
        HEURISTICS.unregister("t12_givesup")


def test_rescale_shares_keeps_relative_allotments():
    plan = list(DEFAULT_PLAN)
    kept = [s for s in plan if s.spec in ("combinatorial", "downset_dp", "guess")]
    out = rescale_shares(plan, kept)
    assert [s.spec for s in out] == ["combinatorial", "downset_dp", "guess"]
    alloc, rem = [], 1.0
    for s in out:
        alloc.append(s.share * rem)
        rem -= s.share * rem
    assert sum(alloc) == pytest.approx(1.0) and out[-1].share == 1.0
    full, rem = {}, 1.0
    for s in plan:
        full[s.spec] = s.share * rem
        rem -= s.share * rem
    ratio = alloc[1] / alloc[0]
    assert ratio == pytest.approx(full["downset_dp"] / full["combinatorial"])


# ------------------------------------------------------------------ evaluate, info, list
def _unit_split(inst: Instance) -> list[list[str]]:
    """Two stages: the first half of the units (topologically numbered) and the rest."""
    half = inst.n_units // 2
    return [[inst.ids[i] for i in range(inst.n_nodes) if (inst.unit_of[i] >= half) == b]
            for b in (False, True)]


def test_evaluate_checks_the_full_variant_by_default(capsys, tmp_path, shared_instances):
    from instances import read_instance

    f = shared_instances / "dnn-partitioning/LayerGraphs/bert24_training.json"
    inst = read_instance(f)
    part = tmp_path / "p.json"
    stages = _unit_split(inst)  # whole groups; gradient (data-only) edges go backward
    part.write_text(json.dumps({"k": 2, "stages": stages}))
    code, out, err = run(capsys, "evaluate", f, part)
    assert code == 0, err
    assert "data-only" in out and "co-location groups" in out
    # move one node of a two-node group to the other stage
    i = next(i for i in range(inst.n_nodes)
             if inst.groups[i] >= 0 and (inst.groups == inst.groups[i]).sum() == 2
             and inst.ids[i] in stages[1])
    moved = [stages[0] + [inst.ids[i]], [v for v in stages[1] if v != inst.ids[i]]]
    part.write_text(json.dumps({"k": 2, "stages": moved}))
    code, out, err = run(capsys, "evaluate", f, part, "--json")
    assert code == 1 and "group" in err
    res = json.loads(out)
    assert res["checked"] == ["order", "groups", "memory"] and not res["feasible"]
    code, out, err = run(capsys, "evaluate", f, part, "--relax", "groups", "--json")
    assert json.loads(out)["checked"] == ["order", "memory"]
    assert "group" not in err
    code, _, _ = run(capsys, "evaluate", f, part, "--colocation")  # old flag: accepted
    assert code == 1


def test_evaluate_memory_cap_and_override(capsys, tmp_path):
    f = tmp_path / "c.json"
    write_instance(capped(), f)
    part = tmp_path / "p.json"
    part.write_text(json.dumps({"k": 2, "stages": [["a", "b"], ["c", "d"]]}))
    code, _, err = run(capsys, "evaluate", f, part)
    assert code == 1 and "memory" in err
    code, out, err = run(capsys, "evaluate", f, part, "--memory-limit", "20")
    assert code == 0, err
    code, _, _ = run(capsys, "evaluate", f, part, "--memory-limit", "none", "--check-memory")
    assert code == 1  # --check-memory without a cap stays an error, as before


def test_info_shows_constraints_and_infeasible_k(capsys, tmp_path):
    f = tmp_path / "c.json"
    write_instance(capped(), f)
    code, out, _ = run(capsys, "info", f)
    assert code == 0
    assert "problem: a memory cap" in out and "infeasible for k < 3" in out
    code, out, _ = run(capsys, "info", f, "--json")
    info = json.loads(out)
    assert info["variant"]["constraints"] == ["memory"]
    assert info["infeasible_k"]["below"] == 3 and info["infeasible_k"]["all"] is False
    code, out, _ = run(capsys, "info", f, "--memory-limit", "5", "--json")
    assert json.loads(out)["infeasible_k"]["all"] is True


def test_info_on_a_training_graph(capsys, shared_instances):
    f = shared_instances / "dnn-partitioning/LayerGraphs/bert24_training.json"
    code, out, _ = run(capsys, "info", f)
    assert code == 0
    assert "32 co-location groups over 64 nodes; 32 units" in out
    assert "55 ordering, 55 data-only" in out and "not binding" in out
    code, out, _ = run(capsys, "info", f, "--memory-limit", "2GB")
    assert "infeasible for k < 2" in out and "[variant memory_limit=2GB]" in out


def test_list_shows_capabilities(capsys):
    code, out, _ = run(capsys, "list", "--json")
    rows = [r for r in json.loads(out) if r["kind"] in ("bound", "heuristic")]
    assert rows and all(set(r["capabilities"]) == set(CONSTRAINTS) for r in rows)
    comb = next(r for r in rows if r["name"] == "combinatorial")
    assert comb["capabilities"] == {c: "yes" for c in CONSTRAINTS}
    for r in rows:  # a heuristic never "relaxes": it handles a constraint or refuses it
        if r["kind"] == "heuristic":
            assert "relaxed" not in r["capabilities"].values()
        assert r["capabilities"]["data_only_edges"] != "relaxed"
    code, out, _ = run(capsys, "list", "heuristics")
    assert "data-only" in out and "groups" in out


# ------------------------------------------------------------------ harness
def test_grid_variants_store_report_and_check(tmp_path, brute, plain):
    f = tmp_path / "capped.json"
    write_instance(capped(), f)
    cfg = load_config(None, {
        "experiment": {"name": "t12", "out": str(tmp_path / "out")},
        "grid": {"instances": [str(f)], "k": [2, 3], "heuristics": [brute, plain],
                 "bounds": ["combinatorial"], "variants": ["as_given", "memory_limit=none"]},
        "budget": {"time_limit_s": 5.0, "grace_s": 2.0}, "run": {"jobs": 1}})
    entries = load_entries(cfg)
    ids = [e.id for e in entries]
    assert len(ids) == 2 and ids[1] == ids[0] + "@memory_limit=none"
    assert entries[1].instance.memory_limit is None
    store = ResultsStore(tmp_path / "r.sqlite")
    res = run_grid(cfg, store, entries, executor="inline")
    assert res.n_errors == 0
    rows = store.runs()
    assert {r["variant"] for r in rows} == {"as_given", "memory_limit=none"}
    inf = [r for r in rows if r["status"] == "infeasible"]
    assert all(r["bound"] is None and r["incumbent"] is None for r in inf)
    # the framework's proof at k = 2 (40 > 2 x 15) for every method that supports the cap;
    # at k = 3 the test heuristic finds nothing (one node per stage is needed), no proof
    proofs = {(r["instance"], r["k"]) for r in inf if r["error"].startswith("no feasible")}
    assert proofs == {(ids[0], 2)}
    assert {(r["k"], r["method"]) for r in inf if r["instance"] == ids[0]} == {
        (2, brute), (2, "combinatorial"), (3, brute)}
    # t12_plain handles no memory cap: unsupported on the capped variant, runs without it
    dfs = {(r["instance"], r["k"]): r["status"] for r in rows if r["method"] == plain}
    assert dfs[(ids[0], 3)] == "unsupported" and dfs[(ids[1], 3)] in ("feasible", "optimal")
    inst_rows = {r["instance"]: r for r in store.instance_rows()}
    assert inst_rows[ids[0]]["constraints"] == "memory"
    assert inst_rows[ids[1]]["variant"] == "memory_limit=none"
    assert store.check().ok
    rep = build_report(store)
    table = gap_table(rep)
    line = next(ln for ln in table.splitlines() if "| as_given" in ln)
    cells = [c.strip() for c in line.split("|")]
    assert cells[4:6] == ["infeasible", "no partition"]  # k = 2 proven, k = 3 not
    assert "Proven infeasible" in table and "k x cap" in table
    md = to_markdown(rep)
    assert "Problems and certified gaps per k" in md and "proven infeasible" in md
    assert "Lower bounds per variant" in md and set(rep.by_variant) == {
        "as_given", "memory_limit=none"}
    assert {e.source for e in entries} == {"files", "files@memory_limit=none"}
    store.close()


def test_config_variants_validated(tmp_path):
    base = {"experiment": {"name": "t"}, "grid": {"instances": ["x"]}}
    with pytest.raises(InputError, match="grid.variants"):
        load_config(None, {**base, "grid": {"instances": ["x"], "variants": ["cap=1"]}})
    with pytest.raises(InputError, match="twice"):
        load_config(None, {**base, "grid": {"instances": ["x"],
                                            "variants": ["memory_limit=none",
                                                         "memory_limit=off"]}})
    cfg = load_config(None, base)
    assert cfg["grid"]["variants"] == ["as_given"]
