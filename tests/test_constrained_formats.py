"""Formats and parsers of the constrained variants (docs/constraints.md): data-only edges, groups,
memory caps in native JSON, PipeDream training graphs, and memory sizes on the command line.

Every bad input is one line naming the file (or the text) and the problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cli import main
from instances import read_instance, write_instance
from instances.units import parse_memory_size
from pipecert import InputError, Instance
from pipecert.partition import Partition, check_feasible, stage_costs

PD = "pipedream"
LG = "dnn-partitioning/LayerGraphs"


# ------------------------------------------------------------------ memory sizes
@pytest.mark.parametrize("text, value", [
    ("80GB", 80e9), ("80 GB", 80e9), ("80gb", 80e9), ("80 GiB", 80 * 2.0**30),
    ("16GiB", 17179869184.0), ("1.5e9", 1.5e9), ("17179869184", 17179869184.0),
    ("34.36GB", 34.36e9), ("512MiB", 512 * 2.0**20), ("2TB", 2e12), ("1KiB", 1024.0),
    ("100B", 100.0), ("0", 0.0), (" 4 kb ", 4000.0), (".5GB", 0.5e9), ("1E3", 1000.0),
])
def test_parse_memory_size(text: str, value: float) -> None:
    assert parse_memory_size(text) == value


@pytest.mark.parametrize("text", ["none", "None", "off", "inf", "unlimited", " NONE "])
def test_parse_memory_size_no_cap(text: str) -> None:
    assert parse_memory_size(text) is None


@pytest.mark.parametrize("text, match", [
    ("", "cannot read memory size"), ("abc", "cannot read memory size"),
    ("80XB", "unknown unit 'XB'"), ("-1", "negative"), ("-5GB", "negative"),
    ("nan", "cannot read"), ("1e400", "too large"), ("80 G B", "cannot read"),
    ("GB", "cannot read"), ("1,5GB", "cannot read"),
])
def test_parse_memory_size_errors(text: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as exc:
        parse_memory_size(text)
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------ native JSON
def _native(**extra: object) -> dict[str, object]:
    d: dict[str, object] = {
        "format": "pipecert-instance", "version": 1, "name": "t",
        "nodes": [{"id": "a", "work": 1.0, "comm": 0.5, "group": 0, "memory": 3.0},
                  {"id": "b", "work": 2.0, "comm": 0.25, "group": 1, "memory": 4.0},
                  {"id": "ag", "work": 3.0, "comm": 0.5, "group": 0, "memory": 3.0}],
        "edges": [["a", "b"]],
        "memory_limit": 6.5,
    }
    d.update(extra)
    return d


def test_native_reads_data_only_edges_groups_and_cap(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_native(data_only_edges=[["b", "ag"], ["a", "ag"]])))
    inst = read_instance(p)
    assert inst.n_edges == 3 and inst.n_data_only_edges == 2
    assert inst.constraints == {"groups", "memory", "data_only_edges"}
    orders = {(inst.ids[u], inst.ids[v]): o for u, v, o in
              zip(inst.src.tolist(), inst.dst.tolist(), inst.edge_orders.tolist())}
    assert orders == {("a", "b"): True, ("a", "ag"): False, ("b", "ag"): False}
    assert inst.memory_limit == 6.5
    assert check_feasible(inst, Partition([0, 1, 0], k=2)) == []
    # ag must follow a into stage 0 (group), and 3 + 4 + 3 > 6.5 forbids one stage
    assert check_feasible(inst, Partition([0, 1, 1], k=2)) != []
    assert check_feasible(inst, Partition([0, 0, 0], k=1)) != []
    q = tmp_path / "u.json.gz"
    write_instance(inst, q)
    assert read_instance(q) == inst.replace(name=inst.name)


def test_native_without_data_only_key_reads_as_before(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_native()))
    inst = read_instance(p)
    assert inst.n_data_only_edges == 0 and bool(inst.edge_orders.all())


def test_native_pair_in_both_lists_orders(tmp_path: Path) -> None:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_native(data_only_edges=[["a", "b"]])))
    inst = read_instance(p)
    assert inst.n_edges == 1 and inst.n_data_only_edges == 0


@pytest.mark.parametrize("value, match", [
    ([["b", "zz"]], "unknown node 'zz'"),
    ([["zz", "a"]], "unknown node 'zz'"),
    ("yes", "'data_only_edges' must be a list"),
    (True, "'data_only_edges' must be a list"),
    ({"a": "b"}, "'data_only_edges' must be a list"),
    ([["a"]], r"data_only_edges\[0\] is not a \[producer, consumer\] pair"),
    ([["a", "b", "ag"]], r"data_only_edges\[0\] is not a \[producer, consumer\] pair"),
    ([["b", "ag"], "a->b"], r"data_only_edges\[1\] is not a \[producer, consumer\] pair"),
    ([["a", "a"]], "self-loop"),
])
def test_native_bad_data_only_edges(tmp_path: Path, value: object, match: str) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(_native(data_only_edges=value)))
    with pytest.raises(InputError, match=match) as exc:
        read_instance(p)
    msg = str(exc.value)
    assert msg.startswith(str(p)) and "\n" not in msg


@pytest.mark.parametrize("field, value, match", [
    ("group", "x", "'group' must be an integer"),
    ("group", 1.5, "'group' must be an integer"),
    ("group", True, "'group' must be an integer"),
    ("memory", "3", "'memory' must be a number"),
])
def test_native_bad_group_or_memory(tmp_path: Path, field: str, value: object,
                                    match: str) -> None:
    d = _native()
    d["nodes"][1][field] = value  # type: ignore[index]
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match=match) as exc:
        read_instance(p)
    assert str(exc.value).startswith(str(p)) and "\n" not in str(exc.value)


def test_native_bad_memory_limit(tmp_path: Path) -> None:
    for value, match in (("80GB", "'memory_limit' must be a number"),
                         (-1.0, "memory limit")):
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(_native(memory_limit=value)))
        with pytest.raises(InputError, match=match) as exc:
            read_instance(p)
        assert str(exc.value).startswith(str(p)) and "\n" not in str(exc.value)


def test_data_only_edges_may_point_backwards(tmp_path: Path) -> None:
    """A data-only edge against the order closes no cycle; as an ordering edge it would."""
    p = tmp_path / "t.json"
    p.write_text(json.dumps(_native(data_only_edges=[["b", "a"]])))
    inst = read_instance(p)
    assert inst.n_data_only_edges == 1
    p.write_text(json.dumps(_native(edges=[["a", "b"], ["b", "a"]])))
    with pytest.raises(InputError, match="cycle"):
        read_instance(p)


# ------------------------------------------------------------------ PipeDream training
def test_pipedream_inference_unchanged(shared_instances: Path) -> None:
    f = shared_instances / PD / "image_classification/resnet18.graph.txt"
    a = read_instance(f)
    assert read_instance(f, training=False) == a
    assert not a.constraints and a.groups is None and a.n_data_only_edges == 0


@pytest.mark.parametrize("model", ["image_classification/alexnet", "translation/gnmt",
                                   "image_classification/inception_v3"])
def test_pipedream_training_structure(shared_instances: Path, model: str) -> None:
    f = shared_instances / PD / f"{model}.graph.txt"
    fwd = read_instance(f)
    tr = read_instance(f, training=True)
    n = fwd.n_nodes
    assert tr.n_nodes == 2 * n
    assert tr.ids[:n] == fwd.ids and tr.ids[n:] == tuple(f"{v}grad" for v in fwd.ids)
    assert np.array_equal(tr.work[:n], fwd.work)
    assert np.array_equal(tr.comm[:n], fwd.comm) and np.array_equal(tr.comm[n:], fwd.comm)
    assert tr.memory is not None and fwd.memory is not None
    assert np.array_equal(tr.memory[:n], fwd.memory)
    assert np.array_equal(tr.memory[n:], fwd.memory)
    assert tr.groups is not None
    assert np.array_equal(tr.groups[:n], tr.groups[n:]) and np.unique(tr.groups).size == n
    assert tr.n_units == n  # every layer (forward + backward) is one unit
    assert tr.constraints == {"groups", "data_only_edges"}
    assert tr.n_edges == 2 * fwd.n_edges + n and tr.n_data_only_edges == fwd.n_edges + n
    # ordering edges are exactly the forward edges
    o = tr.edge_orders
    assert np.array_equal(tr.src[o], fwd.src) and np.array_equal(tr.dst[o], fwd.dst)
    assert tr.metadata["training"] is True and tr.units == fwd.units
    # the backward work is the profile's backward_compute_time
    text = f.read_text().splitlines()
    bwd = {ln.split(" -- ")[0]: float(ln.split("backward_compute_time=")[1].split(",")[0])
           for ln in text if "backward_compute_time=" in ln}
    assert [tr.work[tr.index[f"{v}grad"]] for v in fwd.ids] == [bwd[v] for v in fwd.ids]


@pytest.mark.parametrize("pd_model, dnn", [("image_classification/resnet50", "resnet50"),
                                           ("translation/gnmt_large", "gnmt")])
def test_pipedream_training_matches_dnn_partitioning(shared_instances: Path, pd_model: str,
                                                     dnn: str) -> None:
    """The dnn-partitioning training graphs were made from these profiles: the same work,
    memory, groups and edges (plus the stash edges, which no feasible partition pays for),
    and every group-feasible partition has the same stage costs in both."""
    a = read_instance(shared_instances / PD / f"{pd_model}.graph.txt", training=True)
    b = read_instance(shared_instances / LG / f"{dnn}_training.json")
    assert b.labels is not None and a.memory is not None and b.memory is not None
    where = {lab: i for i, lab in enumerate(b.labels)}
    perm = np.array([where[v] for v in a.ids])
    assert np.array_equal(a.work, b.work[perm])
    assert np.array_equal(a.memory, b.memory[perm])
    ea = {(a.ids[u], a.ids[v], o) for u, v, o in zip(a.src.tolist(), a.dst.tolist(),
                                                      a.edge_orders.tolist())}
    eb = {(b.labels[u], b.labels[v], o) for u, v, o in zip(b.src.tolist(), b.dst.tolist(),
                                                           b.edge_orders.tolist())}
    assert eb <= ea
    assert all(v == u + "grad" and not o for u, v, o in ea - eb)
    # comm agrees wherever it can be charged (b has 0 on nodes without out-edges)
    has_out = b.out_degree[perm] > 0
    assert np.array_equal(a.comm[has_out], b.comm[perm][has_out])
    # same groups, up to renaming
    assert a.groups is not None and b.groups is not None
    pairs = set(zip(a.groups.tolist(), b.groups[perm].tolist()))
    assert len(pairs) == np.unique(a.groups).size == np.unique(b.groups).size
    rng = np.random.default_rng(0)
    for k in (2, 5, 16):
        layer_stage = rng.integers(0, k, size=int(a.groups.max()) + 1)
        sa = layer_stage[a.groups]
        sb = np.empty_like(sa)
        sb[perm] = sa
        ca = stage_costs(a, Partition(sa, k=k))
        cb = stage_costs(b, Partition(sb, k=k))
        np.testing.assert_allclose(ca.total, cb.total, rtol=1e-12, atol=1e-12)


def test_pipedream_training_zero_input_work(shared_instances: Path) -> None:
    f = shared_instances / PD / "image_classification/resnet50.graph.txt"
    tr = read_instance(f, training=True, zero_input_work=True)
    assert tr.work[tr.index["node1"]] == 0.0
    assert tr.metadata["input_work_zeroed"] == {"node1": 18.962}
    assert tr.metadata["training"] is True


def _write_pd(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "m.graph.txt"
    p.write_text(body)
    return p


def test_pipedream_training_needs_backward_time(tmp_path: Path) -> None:
    p = _write_pd(tmp_path, "node1 -- Input -- forward_compute_time=1.0, "
                  "backward_compute_time=0.0, activation_size=4.0, parameter_size=0.0\n"
                  "node2 -- Linear(2, 2) -- forward_compute_time=1.0, "
                  "activation_size=4.0, parameter_size=8.0\n\tnode1 -- node2\n")
    assert read_instance(p).n_nodes == 2  # inference does not need it
    with pytest.raises(InputError, match="node 'node2': missing backward_compute_time") as e:
        read_instance(p, training=True)
    assert str(e.value).startswith(f"{p}:2: ") and "\n" not in str(e.value)


def test_pipedream_training_id_clash(tmp_path: Path) -> None:
    p = _write_pd(tmp_path, "a -- Input -- forward_compute_time=1.0, "
                  "backward_compute_time=0.0, activation_size=4.0\n"
                  "agrad -- ReLU -- forward_compute_time=1.0, backward_compute_time=1.0, "
                  "activation_size=4.0\n\ta -- agrad\n")
    with pytest.raises(InputError, match="'agrad' is also the name of a backward node") as e:
        read_instance(p, training=True)
    assert str(e.value).startswith(str(p)) and "\n" not in str(e.value)


def test_pipedream_training_option_must_be_boolean(tmp_path: Path) -> None:
    p = _write_pd(tmp_path, "a -- Input -- forward_compute_time=1.0, "
                  "backward_compute_time=0.0, activation_size=4.0\n")
    with pytest.raises(InputError, match="training must be True or False"):
        read_instance(p, training="yes")


def test_pipedream_training_small_graph_exact(tmp_path: Path) -> None:
    """Every field of a two-layer profile, by hand."""
    p = _write_pd(tmp_path, "n1 -- Input -- forward_compute_time=0.5, "
                  "backward_compute_time=0.0, activation_size=2147483648.0, "
                  "parameter_size=0.0\n"
                  "n2 -- Linear(4, 4) -- forward_compute_time=1.0, backward_compute_time=2.0, "
                  "activation_size=1073741824.0, parameter_size=64.0\n\tn1 -- n2\n")
    tr = read_instance(p, training=True)
    assert tr.ids == ("n1", "n2", "n1grad", "n2grad")
    assert tr.work.tolist() == [0.5, 1.0, 0.0, 2.0]
    assert tr.comm.tolist() == [1.0, 0.5, 1.0, 0.5]
    assert tr.memory is not None
    assert tr.memory.tolist() == [2147483648.0, 1073741888.0, 2147483648.0, 1073741888.0]
    assert tr.groups is not None and tr.groups.tolist() == [0, 1, 0, 1]
    assert tr.op_types == ("Input", "Linear", "InputBackward", "LinearBackward")
    edges = {(tr.ids[u], tr.ids[v], o) for u, v, o in
             zip(tr.src.tolist(), tr.dst.tolist(), tr.edge_orders.tolist())}
    assert edges == {("n1", "n2", True), ("n1grad", "n2grad", False),
                     ("n1", "n1grad", False), ("n2", "n2grad", False)}
    # both layers in one stage, or layer 1 then layer 2: a backward stage order is not
    # imposed by the gradient edge, but the forward edge forbids layer 2 before layer 1
    assert check_feasible(tr, Partition([0, 1, 0, 1], k=2)) == []
    assert check_feasible(tr, Partition([1, 0, 1, 0], k=2)) != []
    assert check_feasible(tr, Partition([0, 1, 1, 1], k=2)) != []  # n1grad left its group
    # cut between the layers: stage 0 sends n1 (1.0) and n1grad (1.0), stage 1 receives both
    c = stage_costs(tr, Partition([0, 1, 0, 1], k=2))
    assert c.total.tolist() == [0.5 + 0.0 + 2.0, 1.0 + 2.0 + 2.0]


def test_cli_convert_training(tmp_path: Path, shared_instances: Path, capsys) -> None:
    src = shared_instances / PD / "image_classification/alexnet.graph.txt"
    out = tmp_path / "a.json.gz"
    assert main(["convert", str(src), str(out), "--training"]) == 0
    printed = capsys.readouterr().out
    assert "data-only" in printed and "units" in printed
    back = read_instance(out)
    assert back == read_instance(src, training=True).replace(name=back.name)
    assert main(["convert", str(src), str(tmp_path / "b.json")]) == 0
    assert read_instance(tmp_path / "b.json").n_data_only_edges == 0


def test_instance_with_every_constraint_survives_dnn_partitioning(tmp_path: Path) -> None:
    """A training-like instance (backward nodes touching only data-only edges) writes to
    dnn-partitioning and back; one whose data-only edges break the isBackwardNode rule is
    refused naming the output file."""
    ok = Instance(["f", "g", "fb", "gb"], [1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5],
                  [("f", "g")], data_only_edges=[("fb", "gb"), ("f", "fb"), ("g", "gb")],
                  groups=[0, 1, 0, 1], memory=[1, 1, 1, 1], memory_limit=3.0)
    p = tmp_path / "ok.json"
    write_instance(ok, p, format="dnn-partitioning")
    assert read_instance(p) == ok.replace(name="ok")
    ok2 = Instance(["f", "g", "h"], [1, 2, 3], [0.5, 0.5, 0.5], [("f", "g")],
                   data_only_edges=[("g", "h"), ("h", "f")])  # h: every edge data-only
    write_instance(ok2, tmp_path / "ok2.json", format="dnn-partitioning")
    assert read_instance(tmp_path / "ok2.json") == ok2.replace(name="ok2")
    worse = Instance(["f", "g", "h"], [1, 2, 3], [0.5, 0.5, 0.5], [("f", "g"), ("g", "h")],
                     data_only_edges=[("f", "h")])
    q = tmp_path / "worse.json"
    with pytest.raises(InputError, match="data-only") as exc:
        write_instance(worse, q, format="dnn-partitioning")
    assert str(exc.value).startswith(str(q)) and "\n" not in str(exc.value)
    assert not q.exists()


# ------------------------------------------------------------------ dnn-partitioning flags
def _dnn(flag: object) -> dict[str, object]:
    return {"maxSizePerFPGA": 10.0, "maxFPGAs": 2, "maxCPUs": 1,
            "nodes": [{"id": 1, "fpgaLatency": 1.0, "isBackwardNode": 0, "colorClass": 1,
                       "size": 1.0},
                      {"id": 2, "fpgaLatency": 2.0, "isBackwardNode": flag, "colorClass": 1,
                       "size": 1.0}],
            "edges": [{"sourceId": 1, "destId": 2, "cost": 0.5}]}


@pytest.mark.parametrize("flag, backward", [(0, False), (1, True), (True, True),
                                            (False, False)])
def test_dnn_partitioning_backward_flag(tmp_path: Path, flag: object, backward: bool) -> None:
    p = tmp_path / "g.json"
    p.write_text(json.dumps(_dnn(flag)))
    inst = read_instance(p)
    assert inst.n_data_only_edges == int(backward)
    assert inst.constraints == ({"groups", "data_only_edges"} if backward else {"groups"})


@pytest.mark.parametrize("flag", ["yes", "0", 2, 0.5, 1.0, None, [1]])
def test_dnn_partitioning_malformed_backward_flag(tmp_path: Path, flag: object) -> None:
    p = tmp_path / "g.json"
    p.write_text(json.dumps(_dnn(flag)))
    with pytest.raises(InputError, match="node 2: 'isBackwardNode' must be true/false or "
                                         "0/1") as exc:
        read_instance(p)
    assert str(exc.value).startswith(str(p)) and "\n" not in str(exc.value)


@pytest.mark.parametrize("body", [
    _native(data_only_edges=[["b", "nowhere"]]),
    _native(data_only_edges="all"),
])
def test_cli_bad_data_only_edges_is_one_line_exit_2(tmp_path: Path, capsys,
                                                     body: dict[str, object]) -> None:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(body))
    assert main(["info", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(p) in err and "Traceback" not in err


# ------------------------------------------------------------------ the training rule
def test_every_pipedream_profile_gives_a_training_graph(shared_instances: Path) -> None:
    files = sorted((shared_instances / PD).rglob("*.graph.txt"))
    assert len(files) == 14
    for f in files:
        fwd = read_instance(f)
        tr = read_instance(f, training=True)
        n = fwd.n_nodes
        assert tr.n_nodes == 2 * n and tr.n_units == n, f
        assert tr.total_work >= fwd.total_work
        # the forward edges alone order the stages
        assert int(tr.edge_orders.sum()) == fwd.n_edges and tr.n_data_only_edges == \
            fwd.n_edges + n
        assert tr.memory is not None and fwd.memory is not None
        assert float(tr.memory.sum()) == pytest.approx(2 * float(fwd.memory.sum()), rel=1e-12)


def test_add_backward_nodes_rule_and_errors() -> None:
    from instances.training import add_backward_nodes

    fwd = Instance(["x", "a", "b"], [0.0, 1.0, 2.0], [0.1, 0.2, 0.3],
                   [("x", "a"), ("a", "b"), ("x", "b")], memory=[1.0, 2.0, 3.0],
                   memory_limit=10.0, name="f", metadata={"units": {"work": "ms"}})
    tr = add_backward_nodes(fwd, backward_work=[9.0, 4.0, 5.0],
                            backward_memory=[9.0, 7.0, 8.0], needs_grad=[False, True, True])
    assert tr.ids == ("x", "a", "b", "agrad", "bgrad")
    assert tr.work.tolist() == [0.0, 1.0, 2.0, 4.0, 5.0]
    assert tr.comm.tolist() == [0.1, 0.2, 0.3, 0.2, 0.3]
    assert tr.memory is not None and tr.memory.tolist() == [1.0, 2.0, 3.0, 7.0, 8.0]
    assert tr.groups is not None and tr.groups.tolist() == [-1, 1, 2, 1, 2]
    assert tr.memory_limit == 10.0 and tr.name == "f"
    assert tr.metadata["training"] is True and tr.metadata["units"] == {"work": "ms"}
    edges = {(tr.ids[u], tr.ids[v], o) for u, v, o in
             zip(tr.src.tolist(), tr.dst.tolist(), tr.edge_orders.tolist())}
    assert edges == {("x", "a", True), ("a", "b", True), ("x", "b", True),
                     ("agrad", "bgrad", False), ("a", "agrad", False), ("b", "bgrad", False)}
    with pytest.raises(InputError, match="looks like a training graph already"):
        add_backward_nodes(tr, backward_work=np.zeros(5))
    with pytest.raises(InputError, match="backward_work has 2 entries for 3 nodes"):
        add_backward_nodes(fwd, backward_work=[1.0, 2.0])
    clash = Instance(["a", "agrad"], [1.0, 1.0], [0.0, 0.0], [("a", "agrad")], source="f.txt")
    with pytest.raises(InputError, match="'agrad' is also the name of a backward node") as e:
        add_backward_nodes(clash, backward_work=[1.0, 1.0])
    assert str(e.value).startswith("f.txt: ")
    assert add_backward_nodes(fwd, backward_work=[0, 0, 0], memory_limit=None).memory_limit \
        is None
