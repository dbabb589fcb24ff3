"""``pipecert info / evaluate / convert / instances``, and one test per bad-input class:
one line on stderr naming the file and the problem, exit code 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import instances
from cli import main
from instances import read_instance, write_instance
from instances.generators import layered_dag
from pipecert import Instance
from pipecert.testing import worked_example

PD = "pipedream/image_classification"
LG = "dnn-partitioning/LayerGraphs"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def shared_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and p.suffix in (".json", ".txt", ".pbtxt") and "LICENSE" not in p.name)


# ------------------------------------------------------------------ info
def test_info_reads_every_shared_file(capsys, shared_instances):
    files = shared_files(shared_instances)
    assert len(files) == 8 + 14 + 1
    for f in files:
        code, out, err = run(capsys, "info", f, "--json")
        assert code == 0, err
        info = json.loads(out)
        inst = read_instance(f)
        assert info["nodes"] == inst.n_nodes and info["data_edges"] == inst.n_edges
        assert info["precedence_edges"] == inst.n_precedence_edges
        assert info["total_work"] == inst.total_work
        assert info["total_comm"] == inst.total_comm
        assert info["longest_path_work"] == pytest.approx(inst.longest_path())
        assert info["format"] in ("pipedream", "dnn-partitioning", "regal")
        assert info["longest_path_work"] <= info["total_work"] + 1e-9
        assert 1 <= info["width_estimate"] <= info["nodes"]


def test_info_text_output_resnet50(capsys, shared_instances):
    code, out, _ = run(capsys, "info", shared_instances / LG / "resnet50_inference.json",
                       "--zero-input-work")
    assert code == 0
    for needle in ("nodes:               177", "data edges:          193",
                   "format detected:     dnn-partitioning", "suggested k:         6",
                   "zeroed on 1 (18.962)", "load time:"):
        assert needle in out, out
    code, out, _ = run(capsys, "info", shared_instances / LG / "resnet50_inference.json",
                       "--keep-input-work", "--json")
    assert json.loads(out)["total_work"] == pytest.approx(182.488 + 18.962)


def test_info_pipedream_options(capsys, shared_instances):
    f = shared_instances / PD / "resnet50.graph.txt"
    _, out, _ = run(capsys, "info", f, "--json")
    _, out2, _ = run(capsys, "info", f, "--json", "--bandwidth", str(2**30))
    assert json.loads(out2)["total_comm"] == pytest.approx(2 * json.loads(out)["total_comm"])


def test_info_on_bundled_id_and_generated_operator_graph(capsys, tmp_path):
    code, out, _ = run(capsys, "info", "default/operator-2000", "--json")
    assert code == 0 and json.loads(out)["nodes"] == 2000
    # a 2,000-node operator-like graph in dnn-partitioning format (timed in tests/bench)
    inst = layered_dag(2000, rng=1, comm_work_ratio=10.0, weight_fraction=0.45)
    f = tmp_path / "op2000.json"
    write_instance(inst, f, format="dnn-partitioning")
    code, out, _ = run(capsys, "info", f, "--json", "--keep-input-work")
    info = json.loads(out)
    assert code == 0 and info["format"] == "dnn-partitioning" and info["nodes"] == 2000
    assert info["comm_work_ratio"] == pytest.approx(10.0, rel=1e-3)


# ------------------------------------------------------------------ evaluate
def hand_costs(inst, stages: list[list[str]]) -> list[tuple[float, float, float]]:
    """The block cost by hand (docs/theory/problem.md): (work, comm in, comm out) per stage."""
    succ: dict[str, set[str]] = {v: set() for v in inst.ids}
    for u, v in zip(inst.src.tolist(), inst.dst.tolist()):
        succ[inst.ids[u]].add(inst.ids[v])
    w = dict(zip(inst.ids, inst.work.tolist()))
    c = dict(zip(inst.ids, inst.comm.tolist()))
    out = []
    for S in map(set, stages):
        work = sum(w[v] for v in S)
        cin = sum(c[u] for u in inst.ids if u not in S and succ[u] & S)
        cout = sum(c[u] for u in S if succ[u] - S)
        out.append((work, cin, cout))
    return out


def slices(inst, k: int, rng: np.random.Generator) -> list[list[str]]:
    order = inst.topo_order.tolist()
    cuts = sorted(rng.choice(np.arange(1, inst.n_nodes), size=k - 1, replace=False).tolist())
    bounds = [0, *cuts, inst.n_nodes]
    return [[inst.ids[i] for i in order[bounds[b]:bounds[b + 1]]] for b in range(k)]


@pytest.mark.parametrize("source", ["worked", f"{PD}/resnet50.graph.txt",
                                    f"{LG}/inceptionv3_training.json", "default/comm-1000",
                                    "default/operator-0300", "regal/sample_small.pbtxt"])
def test_evaluate_agrees_with_hand_computation(capsys, tmp_path, shared_instances, source):
    if source == "worked":
        f = tmp_path / "w.json"
        write_instance(worked_example(), f)
    elif source.startswith("default/"):
        f = source
    else:
        f = shared_instances / source
    inst = read_instance(f) if not str(f).startswith("default/") else \
        instances.load_bundled(source)
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 5):
        stages = slices(inst, k, rng) if inst.n_nodes > k else [[v] for v in inst.ids]
        part = tmp_path / f"p{k}.json"
        part.write_text(json.dumps({"k": k, "stages": stages}))
        # the costs are defined for any split: check them on the relaxed problem (a cut
        # through a co-location group, or k below what the memory cap allows, is infeasible
        # for the constrained one and is reported so, exit 1)
        relax = ["--relax", "groups,memory"] if inst.constraints & {"groups", "memory"} else []
        code, out, err = run(capsys, "evaluate", f, part, "-k", k, "--json", *relax)
        assert code == 0, err
        res = json.loads(out)
        hand = hand_costs(inst, stages)
        for row, (w, ci, co) in zip(res["stages"], hand):
            assert row["work"] == pytest.approx(w, rel=1e-9, abs=1e-12)
            assert row["comm_in"] == pytest.approx(ci, rel=1e-9, abs=1e-12)
            assert row["comm_out"] == pytest.approx(co, rel=1e-9, abs=1e-12)
            assert row["total"] == pytest.approx(w + ci + co, rel=1e-9, abs=1e-12)
        assert res["bottleneck"] == pytest.approx(max(sum(h) for h in hand), rel=1e-9)
        assert res["feasible"] and res["violations"] == []


def test_evaluate_worked_example_table(capsys, tmp_path):
    f = tmp_path / "w.json"
    write_instance(worked_example(), f)
    part = tmp_path / "p.json"
    part.write_text(json.dumps({"k": 2, "stages": [["a", "b", "c"], ["d", "e"]]}))
    code, out, _ = run(capsys, "evaluate", f, part, "-k", "2")
    # stage 0: w 9, out c(a)+c(b)+c(c) = 6 -> 15; stage 1: w 3, in 6 -> 9
    assert code == 0
    assert "bottleneck: 15.0 (stage 0), k = 2, feasible" in out
    lines = out.splitlines()
    assert lines[2].split() == ["0", "3", "9", "0", "6", "15"]
    assert lines[3].split() == ["1", "2", "3", "6", "0", "9"]


def test_evaluate_memory_column_and_check(capsys, tmp_path, shared_instances):
    f = shared_instances / LG / "resnet50_inference.json"
    inst = read_instance(f)
    part = tmp_path / "p.json"
    part.write_text(json.dumps({"k": 1, "stages": [list(inst.ids)]}))
    code, out, err = run(capsys, "evaluate", f, part, "-k", "1", "--json", "--check-memory")
    res = json.loads(out)
    assert res["stages"][0]["memory"] == pytest.approx(float(inst.memory.sum()))
    assert code == 1 and "memory" in err  # 19.4 GB > 17.2 GB limit on one stage


def test_evaluate_infeasible_partition_exit_1_lists_violations(capsys, tmp_path):
    f = tmp_path / "w.json"
    write_instance(worked_example(), f)
    part = tmp_path / "p.json"
    part.write_text(json.dumps({"stages": [["d", "e"], ["a", "b", "c"]]}))
    code, out, err = run(capsys, "evaluate", f, part, "-k", "2")
    assert code == 1
    assert "INFEASIBLE" in out and "goes backward" in err and str(part) in err
    part.write_text(json.dumps({"stages": [["a"], ["b", "c"], ["d", "e"]]}))
    code, _, err = run(capsys, "evaluate", f, part, "-k", "2")
    assert code == 1 and "3 non-empty stages for k = 2" in err


# ------------------------------------------------------------------ convert, instances
def test_convert_round_trip_and_formats(capsys, tmp_path, shared_instances):
    src = shared_instances / "regal/sample_small.pbtxt"
    out = tmp_path / "s.json.gz"
    code, msg, _ = run(capsys, "convert", src, out)
    assert code == 0 and "5 nodes" in msg
    assert read_instance(out) == read_instance(src).replace(source=str(out))
    dp = tmp_path / "r.json"
    code, _, _ = run(capsys, "convert", shared_instances / PD / "resnet18.graph.txt", dp,
                     "--format", "dnn-partitioning", "--keep-input-work")
    assert code == 0 and instances.detect_format(dp).name == "dnn-partitioning"
    code, _, err = run(capsys, "convert", src, tmp_path / "x.json", "--format",
                       "dnn-partitioning")
    assert code == 2 and "precedence" in err


def test_instances_listing(capsys):
    code, out, _ = run(capsys, "instances")
    assert code == 0 and "default" in out
    code, out, _ = run(capsys, "instances", "default", "--json")
    man = json.loads(out)
    assert [e["id"] for e in man] == instances.suite_ids("default")
    code, out, _ = run(capsys, "instances", "default")
    assert "default/operator-2000" in out and "comm-heavy" in out
    code, out, _ = run(capsys, "instances", "models")  # the unit of work and comm
    assert out.splitlines()[0].split()[5] == "unit"
    assert all(row.split()[5] == "us" for row in out.splitlines()[2:] if row.strip())


# ------------------------------------------------------------------ bad input
def native(path: Path, nodes, edges) -> Path:
    path.write_text(json.dumps({"format": "pipecert-instance", "version": 1, "nodes": nodes,
                                "edges": edges}, allow_nan=True))
    return path


NODES = [{"id": "a", "work": 1, "comm": 1}, {"id": "b", "work": 1, "comm": 1}]


def assert_bad(capsys, argv: list, *needles: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pipecert: error: ") and "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_input_cycle(capsys, tmp_path):
    f = native(tmp_path / "c.json", NODES, [["a", "b"], ["b", "a"]])
    assert_bad(capsys, ["info", f], str(f), "cycle", "'a' -> 'b' -> 'a'")


def test_bad_input_nan_cost(capsys, tmp_path):
    f = native(tmp_path / "n.json", [{"id": "a", "work": float("nan"), "comm": 1}], [])
    assert_bad(capsys, ["info", f], str(f), "'a'", "NaN work")


def test_bad_input_negative_cost(capsys, tmp_path):
    f = native(tmp_path / "n.json", [{"id": "a", "work": 1, "comm": -1}], [])
    assert_bad(capsys, ["info", f], str(f), "negative comm")


def test_bad_input_unknown_node_in_graph(capsys, tmp_path):
    f = native(tmp_path / "u.json", NODES, [["a", "q"]])
    assert_bad(capsys, ["info", f], str(f), "unknown node 'q'")


def test_bad_input_duplicate_id(capsys, tmp_path):
    f = native(tmp_path / "d.json", NODES + NODES[:1], [])
    assert_bad(capsys, ["info", f], str(f), "duplicate node id 'a'")


def test_bad_input_malformed_file(capsys, tmp_path):
    f = tmp_path / "m.graph.txt"
    f.write_text("node1 -- Input -- forward_compute_time=1.0, activation_size=2.0\n"
                 "node2 -- ReLU -- forward_compute_time=oops, activation_size=2.0\n")
    assert_bad(capsys, ["info", f], f"{f}:2:", "not a number")


def test_bad_input_unknown_format(capsys, tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"\x00\x01garbage")
    assert_bad(capsys, ["info", f], str(f), "unknown graph format")


def test_bad_input_k_below_one(capsys, tmp_path):
    f = native(tmp_path / "g.json", NODES, [["a", "b"]])
    p = tmp_path / "p.json"
    p.write_text('{"stages": [["a", "b"]]}')
    assert_bad(capsys, ["evaluate", f, p, "-k", "0"], "k must be >= 1")


def test_bad_input_missing_file(capsys, tmp_path):
    assert_bad(capsys, ["info", tmp_path / "nope.json"], "nope.json",
               "No such file or directory")
    f = native(tmp_path / "g.json", NODES, [])
    assert_bad(capsys, ["evaluate", f, tmp_path / "nope-part.json", "-k", "1"],
               "nope-part.json")


def test_bad_input_partition_unknown_node(capsys, tmp_path):
    f = native(tmp_path / "g.json", NODES, [["a", "b"]])
    p = tmp_path / "p.json"
    p.write_text('{"k": 2, "stages": [["a"], ["zz"]]}')
    assert_bad(capsys, ["evaluate", f, p, "-k", "2"], str(p), "zz")


def test_bad_input_partition_does_not_parse(capsys, tmp_path):
    f = native(tmp_path / "g.json", NODES, [["a", "b"]])
    p = tmp_path / "p.json"
    p.write_text('{"k": 2, "stages": [["a"], ["b"]')
    assert_bad(capsys, ["evaluate", f, p, "-k", "2"], str(p), "invalid JSON")
    p.write_text('{"k": 2, "stages": [["a"]]}')  # node b in no stage
    assert_bad(capsys, ["evaluate", f, p, "-k", "2"], str(p))


def test_bad_input_unknown_bundled_id(capsys):
    assert_bad(capsys, ["info", "default/nope"], "default/nope")


def test_console_script_subprocess(tmp_path, shared_instances):
    exe = Path(sys.executable).with_name("pipecert")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "cli"]
    ok = subprocess.run([*cmd, "info", str(shared_instances / "regal/sample_small.pbtxt")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "precedence edges:    2" in ok.stdout
    f = native(tmp_path / "c.json", NODES, [["a", "b"], ["b", "a"]])
    bad = subprocess.run([*cmd, "info", str(f)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "cycle" in bad.stderr
    assert "Traceback" not in bad.stderr


# ------------------------------------------------------------------ evaluate: k and provenance
def _solved_file(tmp_path: Path, inst, stages, k: int) -> Path:
    from pipecert import Partition

    p = tmp_path / "solved.partition.json"
    Partition.from_stages(inst, stages, k=k).write(p, inst, graph_path="g.json",
                                                   lower_bound=9.0, proved_by="node_bound")
    return p


def test_evaluate_reads_k_from_the_file_and_refuses_another(capsys, tmp_path):
    inst = worked_example()
    f = tmp_path / "g.json"
    write_instance(inst, f)
    p = _solved_file(tmp_path, inst, [["a", "b", "c"], ["d", "e"]], 4)
    code, out, err = run(capsys, "evaluate", f, p)
    assert code == 0, err
    assert "k = 4, feasible" in out and "lower bound in the file: 9 (node_bound)" in out
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [r[:2] for r in rows] == [["0", "3"], ["1", "2"], ["2", "0"], ["3", "0"]]
    code, out, _ = run(capsys, "evaluate", f, p, "-k", "4", "--json")
    assert code == 0 and json.loads(out)["k"] == 4
    assert json.loads(out)["file"]["same_structure"] is True
    # a 4-stage partition is never padded to 8 stages silently
    assert_bad(capsys, ["evaluate", f, p, "-k", "8"], str(p), "k = 4", "-k 8")
    assert_bad(capsys, ["evaluate", f, p, "-k", "2"], str(p), "k = 4", "-k 2")


def test_evaluate_old_file_without_k_says_when_it_adds_stages(capsys, tmp_path):
    f = tmp_path / "g.json"
    write_instance(worked_example(), f)
    p = tmp_path / "old.json"
    p.write_text(json.dumps({"stages": [["a", "b", "c"], ["d", "e"]]}))
    code, out, err = run(capsys, "evaluate", f, p)
    assert code == 0 and "k = 2" in out and err == ""
    code, out, err = run(capsys, "evaluate", f, p, "-k", "8")
    assert code == 0 and "k = 8" in out
    assert err.count("\n") == 1 and "states no k" in err and "6 empty stages" in err


def test_evaluate_warns_when_the_file_is_for_another_graph(capsys, tmp_path):
    inst = worked_example()
    p = _solved_file(tmp_path, inst, [["a", "b", "c"], ["d", "e"]], 2)
    # same node ids, one edge fewer: a warning, then the evaluation
    fewer = Instance(list(inst.ids), inst.work, inst.comm,
                     [(inst.ids[u], inst.ids[v]) for u, v in
                      zip(inst.src.tolist()[1:], inst.dst.tolist()[1:])])
    g2 = tmp_path / "g2.json"
    write_instance(fewer, g2)
    code, out, err = run(capsys, "evaluate", g2, p)
    lines = err.strip().splitlines()
    assert code == 0 and len(lines) == 1
    assert lines[0].startswith("pipecert: warning: ") and str(p) in lines[0]
    assert "structure differs" in lines[0] and "g.json" in lines[0]
    # another graph entirely: the warning, then the unknown node, one line each
    g3 = native(tmp_path / "g3.json", NODES, [["a", "b"]])
    code, out, err = run(capsys, "evaluate", g3, p)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2 and "Traceback" not in err
    assert lines[0].startswith("pipecert: warning: ") and "structure differs" in lines[0]
    assert lines[1].startswith("pipecert: error: ") and str(p) in lines[1]
    assert "unknown node" in lines[1] or "no stage" in lines[1]


def test_evaluate_states_units_and_the_cost_model(capsys, tmp_path):
    inst = worked_example().replace(memory=[1.0, 2.0, 3.0, 4.0, 5.0], metadata={
        "units": {"work": "us", "comm": "us", "memory": "bytes"},
        "cost_model": {"kind": "roofline", "hardware": {"name": "a100"},
                       "hardware_default": True, "compute_dtype": "bfloat16"}})
    f = tmp_path / "g.json"
    write_instance(inst, f)
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"k": 2, "stages": [["a", "b", "c"], ["d", "e"]]}))
    code, out, _ = run(capsys, "evaluate", f, p)
    assert code == 0
    assert "bottleneck: 15.0 us (stage 0)" in out
    assert ("units: costs in us, memory in bytes; costs priced by the roofline cost model for "
            "a100 (default hardware), bfloat16") in out
    code, out, _ = run(capsys, "evaluate", f, p, "--json")
    res = json.loads(out)
    assert res["units"] == {"work": "us", "comm": "us", "memory": "bytes", "time": "us"}
    assert res["cost_model"]["hardware"]["name"] == "a100"
    assert "a100 (default hardware)" in res["costs"]


@pytest.mark.parametrize("content, needle", [
    (b"\xff\xfe garbage", "UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "partition"),
    (b'{"format": "pipecert-partition", "version": 99, "stages": []}', "newer"),
    (b'{"k": 1, "stages": [["a"], ["b"]]}', "2 stage lists for k = 1"),
])
def test_evaluate_bad_partition_files_one_line(tmp_path, content, needle):
    """Subprocess: one line, exit 2, no traceback, the file named."""
    g = native(tmp_path / "g.json", NODES, [["a", "b"]])
    p = tmp_path / "p.json"
    p.write_bytes(content)
    r = cli_subprocess("evaluate", g, p)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and str(p) in lines[0]
    assert needle in lines[0]


# ------------------------------------------------------------------ leaks
REPO = Path(__file__).resolve().parents[1]


def cli_env() -> dict[str, str]:
    """This checkout first on the path of a CLI subprocess."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def cli_subprocess(*args, timeout=120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=cli_env())


@pytest.mark.parametrize("argv", [["instances"], ["instances", "default"], ["list", "--json"],
                                  ["info", "default/comm-0100"], ["--help"]])
def test_closed_stdout_is_quiet(argv):
    """``pipecert ... | head``: the reader goes away before the output is written."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter has even imported the CLI
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert code in (0, 141) and err == "", (code, err)


def test_traceback_flag_before_or_after_the_command(tmp_path):
    missing = tmp_path / "nope.json"
    plain = cli_subprocess("info", missing)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    for argv in (["--traceback", "info", missing], ["info", missing, "--traceback"]):
        r = cli_subprocess(*argv)
        assert r.returncode == 1 and "Traceback" in r.stderr, r.stderr
    usage = cli_subprocess("solve", "default/tiny-chain-8")  # -k missing
    assert usage.returncode == 2 and usage.stderr.count("\n") == 1 and "-k" in usage.stderr


def test_evaluate_warns_when_the_files_value_is_not_the_reference_cost(capsys, tmp_path):
    inst = worked_example()
    f = tmp_path / "g.json"
    write_instance(inst, f)
    p = _solved_file(tmp_path, inst, [["a", "b", "c"], ["d", "e"]], 2)
    data = json.loads(p.read_text())
    assert data["value"] == 15.0
    data["value"] = 12.0  # tampered: the stages cost 15
    p.write_text(json.dumps(data))
    code, out, err = run(capsys, "evaluate", f, p)
    assert code == 0 and "bottleneck: 15.0 (stage 0)" in out
    assert err.count("\n") == 1 and "value 12.0 differs from the reference cost 15.0" in err


def test_evaluate_notes_when_the_costs_changed(capsys, tmp_path):
    inst = worked_example()
    p = _solved_file(tmp_path, inst, [["a", "b", "c"], ["d", "e"]], 2)
    f = tmp_path / "g.json"
    write_instance(inst.replace(work=inst.work * 2), f)  # same structure, other costs
    code, out, err = run(capsys, "evaluate", f, p, "--json")
    assert code == 0 and json.loads(out)["file"] == {
        "value": 15.0, "lower_bound": 9.0, "found_by": None, "proved_by": "node_bound",
        "same_structure": True, "same_costs": False}
    assert err.count("\n") == 1 and "same graph with other costs" in err
