"""Graph file formats: every reader against ../shared/instances, round trips, detection,
malformed files (one error naming the file and the line or node), networkx, resolve."""

from __future__ import annotations

import gzip
import json
import math
import shutil
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import instances
from instances import (
    detect_format,
    from_networkx,
    read_instance,
    resolve,
    to_networkx,
    write_instance,
)
from instances.formats.native import dumps
from instances.formats.regal import parse_text_proto
from pipecert import FormatError, InputError, Instance, InstanceError
from pipecert.testing import random_dag, worked_example

PD = "pipedream/image_classification"
LG = "dnn-partitioning/LayerGraphs"


def rich_instance() -> Instance:
    """Every optional field set, awkward floats included."""
    return Instance(
        ["in", "a", "b", "c", "out"],
        work=[0.0, 0.1 + 0.2, 1 / 3, 1e-300, 12345678.901234567],
        comm=[2.5, math.pi, 0.0, 7.0, 1e300],
        edges=[("in", "a"), ("a", "b"), ("a", "c"), ("b", "out"), ("c", "out")],
        precedence_edges=[("b", "c")],
        memory=[1.0, 2.0, 3.5, 0.0, 1e12],
        name="rich",
        labels=["input", "conv \"1\"", "relu", "add", "ünïcode"],
        op_types=["Input", "Conv", "ReLU", "Add", "Out"],
        groups=[-1, 0, 0, 1, -1],
        suggested_k=3,
        memory_limit=1e9,
        metadata={"units": "ms", "nested": {"x": [1, 2.5, None]}},
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def one_line_error(exc: pytest.ExceptionInfo, path: Path, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)), msg
    for n in needles:
        assert n in msg, msg


# ------------------------------------------------------------------ native JSON
@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_native_round_trip_is_exact_with_every_field(tmp_path, suffix):
    inst = rich_instance()
    p = tmp_path / f"rich{suffix}"
    write_instance(inst, p)
    back = read_instance(p)
    assert back == inst
    assert back.work.tobytes() == inst.work.tobytes()
    assert back.comm.tobytes() == inst.comm.tobytes()
    assert back.n_precedence_edges == 1
    assert detect_format(p).name == "native"


def test_native_gzip_output_is_byte_deterministic(tmp_path):
    inst = rich_instance()
    write_instance(inst, tmp_path / "a.json.gz")
    write_instance(inst, tmp_path / "b.json.gz")
    assert (tmp_path / "a.json.gz").read_bytes() == (tmp_path / "b.json.gz").read_bytes()
    assert gzip.decompress((tmp_path / "a.json.gz").read_bytes()).decode() == dumps(inst)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12))
def test_native_round_trip_random_dags(tmp_path_factory, seed, n):
    inst = random_dag(seed, n, integer=False, precedence_prob=0.2, memory=True)
    p = tmp_path_factory.mktemp("rt") / "x.json"
    write_instance(inst, p)
    assert read_instance(p) == inst


def test_native_without_optional_fields_round_trips(tmp_path):
    inst = worked_example()
    write_instance(inst, tmp_path / "w.json")
    back = read_instance(tmp_path / "w.json")
    assert back == inst and back.memory is None and back.labels is None


def native_text(nodes, edges, **extra) -> str:
    d = {"format": "pipecert-instance", "version": 1, "name": "t", "nodes": nodes,
         "edges": edges, **extra}
    return json.dumps(d, allow_nan=True)


N2 = [{"id": "a", "work": 1, "comm": 1}, {"id": "b", "work": 2, "comm": 0}]


@pytest.mark.parametrize(
    "text,needles",
    [
        ('{"format": "pipecert-instance",\n "version": 1,\n "nodes": [\n}', ["invalid JSON"]),
        (native_text(N2, [], version=2).replace('"version": 1', '"version": 2'),
         ["schema version 2"]),
        (native_text([{"id": "a", "comm": 1}], []), ["'a'", "'work'"]),
        (native_text([{"id": "a", "work": "x", "comm": 1}], []), ["'a'", "'work'"]),
        (native_text([{"id": "a", "work": 1, "comm": 1, "memory": 3},
                      {"id": "b", "work": 1, "comm": 1}], []), ["'b'", "memory"]),
        (native_text([{"id": "a", "work": float("nan"), "comm": 1}], []), ["'a'", "NaN"]),
        (native_text([{"id": "a", "work": 1, "comm": -2}], []), ["'a'", "negative comm"]),
        (native_text(N2 + [{"id": "a", "work": 1, "comm": 1}], []), ["duplicate", "'a'"]),
        (native_text(N2, [["a", "zz"]]), ["unknown node 'zz'"]),
        (native_text(N2, [["a", "b"], ["b", "a"]]), ["cycle", "'a'", "'b'"]),
        (native_text(N2, [["a", "a"]]), ["self-loop", "'a'"]),
        (native_text(N2, [["a"]]), ["edges[0]"]),
        (native_text([], []), ["no nodes"]),
    ],
    ids=["json-syntax", "version", "missing-work", "bad-work", "partial-memory", "nan",
         "negative", "duplicate", "unknown-node", "cycle", "self-loop", "bad-edge", "empty"],
)
def test_native_malformed_files_name_file_and_problem(tmp_path, text, needles):
    p = write(tmp_path, "bad.json", text)
    with pytest.raises(InputError) as exc:
        read_instance(p)
    one_line_error(exc, p, *needles)


def test_native_json_syntax_error_gives_line(tmp_path):
    p = write(tmp_path, "bad.json", '{"format": "pipecert-instance",\n "version": 1,\n "x": ]}')
    with pytest.raises(FormatError) as exc:
        read_instance(p)
    assert exc.value.line == 3


# ------------------------------------------------------------------ dnn-partitioning
def test_every_dnn_partitioning_layer_graph_reads(shared_instances):
    files = sorted((shared_instances / LG).glob("*.json"))
    assert len(files) == 8
    for f in files:
        raw = json.loads(f.read_text())
        inst = read_instance(f)
        assert detect_format(f).name == "dnn-partitioning"
        assert inst.n_nodes == len(raw["nodes"])
        pairs = {(e["sourceId"], e["destId"]) for e in raw["edges"]}
        assert inst.n_edges == len(pairs)
        assert inst.suggested_k == raw["maxFPGAs"]
        assert inst.memory_limit == raw["maxSizePerFPGA"]
        # comm of every source = its edge cost; work = fpgaLatency (the file's values)
        cost = {e["sourceId"]: e["cost"] for e in raw["edges"]}
        assert "input_work_zeroed" not in inst.metadata
        assert inst.units == {"work": "ms", "comm": "ms", "memory": "bytes"}
        for node in raw["nodes"]:
            i = inst.index[str(node["id"])]
            assert inst.comm[i] == cost.get(node["id"], 0.0)
            assert inst.memory[i] == node["size"]
            assert inst.labels[i] == node["name"]
            assert inst.groups[i] == node["colorClass"]
            assert inst.work[i] == node["fpgaLatency"]


def test_dnn_partitioning_keeps_input_work_zeroes_on_request(shared_instances):
    """The file's values by default; zeroing is explicit (docs/guide/formats.md)."""
    f = shared_instances / LG / "resnet50_inference.json"
    inst = read_instance(f)
    legacy = read_instance(f, keep_input_work=True)  # the old spelling: the default now
    zeroed = read_instance(f, zero_input_work=True)
    assert inst == legacy and inst.work[inst.index["1"]] == 18.962
    assert read_instance(f, keep_input_work=False) == zeroed
    assert dict(zeroed.metadata["input_work_zeroed"]) == {"1": 18.962}
    assert zeroed.metadata["input_work"] == "zeroed"
    assert zeroed.metadata["input_work_option"] == "zero_input_work"
    assert "forward" in zeroed.metadata["input_work_rule"]
    assert zeroed.work[zeroed.index["1"]] == 0.0
    assert inst.total_work == pytest.approx(zeroed.total_work + 18.962)
    with pytest.raises(InputError, match="contradicts"):
        read_instance(f, zero_input_work=True, keep_input_work=True)
    # only the one forward source node is an input; backward sources are never zeroed
    train = read_instance(shared_instances / LG / "resnet50_training.json",
                          zero_input_work=True)
    assert list(train.metadata["input_work_zeroed"]) == ["1"]


def test_zero_input_work_is_one_option_in_every_reader(tmp_path, shared_instances):
    """The same option name for every format, recorded the same way."""
    from instances import FORMATS

    for name, cls in FORMATS.items():
        assert "zero_input_work" in cls.options, name
    regal = read_instance(shared_instances / "regal/sample_small.pbtxt", zero_input_work=True)
    assert dict(regal.metadata["input_work_zeroed"]) == {"2": 40.0}
    p = tmp_path / "w.json"
    write_instance(worked_example(), p)
    nat = read_instance(p, zero_input_work=True)
    sources = np.bincount(nat.dst, minlength=nat.n_nodes) == 0
    assert sources.any() and (nat.work[sources] == 0).all()
    assert np.array_equal(nat.work[~sources], worked_example().work[~sources])
    assert nat.metadata["input_work"] == "zeroed"
    assert read_instance(p) == worked_example()


def dnn_text(nodes, edges, **top) -> str:
    return json.dumps({"maxSizePerFPGA": 100.0, "maxFPGAs": 2, "maxCPUs": 1, **top,
                       "nodes": nodes, "edges": edges})


def dnode(i, lat=1.0, **kw):
    return {"name": f"n{i}", "id": i, "fpgaLatency": lat, "size": 1.0, "colorClass": i,
            "isBackwardNode": 0, **kw}


@pytest.mark.parametrize(
    "text,needles",
    [
        (dnn_text([dnode(1), dnode(2), dnode(3)],
                  [{"sourceId": 1, "destId": 2, "cost": 0.5},
                   {"sourceId": 1, "destId": 3, "cost": 0.7}]), ["node 1", "disagree"]),
        (dnn_text([dnode(1), dnode(2)], [{"sourceId": 1, "destId": 9, "cost": 0.5}]),
         ["unknown node 9"]),
        (dnn_text([dnode(1), {"id": 2, "name": "x"}], []), ["node 2", "fpgaLatency"]),
        (dnn_text([dnode(1), dnode(1)], []), ["duplicate node id 1"]),
        (dnn_text([dnode(1), dnode(2, lat=-1.0)], []), ["'2'", "negative work"]),
        (dnn_text([dnode(1), dnode(2)], [{"sourceId": 1, "destId": 2, "cost": "x"}]),
         ["edges[0]", "cost"]),
        (dnn_text([dnode(1), dnode(2)], [{"sourceId": 1, "destId": 2, "cost": 1},
                                         {"sourceId": 2, "destId": 1, "cost": 1}]),
         ["cycle"]),
        (dnn_text([dnode(1)], [], maxFPGAs=0), ["maxFPGAs"]),
        ('{"maxFPGAs": 2,\n "nodes": [,]}', ["invalid JSON"]),
    ],
    ids=["cost-disagrees", "unknown-node", "missing-latency", "duplicate", "negative",
         "bad-cost", "cycle", "bad-k", "json-syntax"],
)
def test_dnn_partitioning_malformed_files(tmp_path, text, needles):
    p = write(tmp_path, "bad.json", text)
    with pytest.raises(InputError) as exc:
        read_instance(p)
    one_line_error(exc, p, *needles)


def test_dnn_partitioning_write_read_round_trip(tmp_path):
    from instances.generators import layered_dag

    inst = layered_dag(300, rng=5, comm_work_ratio=8.0, weight_fraction=0.4)
    p = tmp_path / "op.json"
    write_instance(inst, p, format="dnn-partitioning")
    assert detect_format(p).name == "dnn-partitioning"
    back = read_instance(p)
    assert back == inst.replace(name="op")  # exact, the file's values kept
    assert read_instance(p, zero_input_work=True).total_work < inst.total_work


def test_dnn_partitioning_cannot_write_precedence_edges(tmp_path):
    with pytest.raises(InputError, match="precedence"):
        write_instance(rich_instance(), tmp_path / "x.json", format="dnn-partitioning")


# ------------------------------------------------------------------ PipeDream
def test_every_pipedream_graph_reads(shared_instances):
    files = sorted((shared_instances / "pipedream").rglob("*.graph.txt"))
    assert len(files) == 14
    for f in files:
        lines = f.read_text().splitlines()
        node_lines = [x for x in lines if x and not x.startswith("\t")]
        edge_lines = {tuple(x.strip().split(" -- ")) for x in lines if x.startswith("\t")}
        inst = read_instance(f)
        assert detect_format(f).name == "pipedream"
        assert inst.n_nodes == len(node_lines)
        assert inst.n_edges == len(edge_lines)
        assert all(v.startswith("node") for v in inst.ids)
        assert inst.units == {"work": "ms", "comm": "ms", "memory": "bytes"}
        fwd = {x.split(" -- ")[0]: float(x.split("forward_compute_time=")[1].split(",")[0])
               for x in node_lines}
        assert all(inst.work[inst.index[v]] == w for v, w in fwd.items())


def test_pipedream_resnet50_values(shared_instances):
    f = shared_instances / PD / "resnet50.graph.txt"
    inst = read_instance(f)
    i = inst.index["node77"]
    assert inst.labels[i].startswith("BatchNorm2d(512")
    assert inst.op_types[i] == "BatchNorm2d"
    assert inst.work[i] == 1.236
    assert inst.comm[i] == 205520896.0 / 2**31
    assert inst.memory[i] == 205520896.0 + 4096.0
    assert inst.work[inst.index["node1"]] == 18.962
    zeroed = read_instance(f, zero_input_work=True)
    assert dict(zeroed.metadata["input_work_zeroed"]) == {"node1": 18.962}
    assert zeroed.work[zeroed.index["node1"]] == 0.0
    half = read_instance(f, bandwidth=2**30)
    assert np.allclose(half.comm, 2 * inst.comm, rtol=0, atol=0)


def test_pipedream_alexnet_large_input_time_is_kept_unless_asked(shared_instances):
    kept = read_instance(shared_instances / PD / "alexnet.graph.txt")
    inst = read_instance(shared_instances / PD / "alexnet.graph.txt", zero_input_work=True)
    assert kept.total_work - inst.total_work == pytest.approx(635.902)


def test_pipedream_tuple_activation_sizes_are_summed(shared_instances):
    inst = read_instance(shared_instances / "pipedream/translation/gnmt.graph.txt")
    i = inst.index["node7"]
    assert inst.comm[i] == (6291456.0 + 131072.0 + 131072.0) / 2**31


PD_OK = ("node1 -- Input -- forward_compute_time=5.0, backward_compute_time=0.0, "
         "activation_size=100.0, parameter_size=0.0\n"
         "node2 -- Conv2d(3, 8) -- forward_compute_time=1.5, backward_compute_time=2.0, "
         "activation_size=200.0, parameter_size=10.0\n"
         "\tnode1 -- node2\n")


@pytest.mark.parametrize(
    "text,needles",
    [
        (PD_OK + "\tnode2 -- node9\n", [":4:", "unknown node 'node9'"]),
        (PD_OK + "node3 -- Add -- forward_compute_time=abc, activation_size=1.0\n",
         [":4:", "node3", "not a number"]),
        (PD_OK + "node2 -- Add -- forward_compute_time=1.0, activation_size=1.0\n",
         [":4:", "duplicate", "node2"]),
        (PD_OK + "node3 -- Add -- activation_size=1.0\n", [":4:", "forward_compute_time"]),
        (PD_OK + "node3 -- Add -- forward_compute_time=-1.0, activation_size=1.0\n",
         [":4:", "node3", ">= 0"]),
        (PD_OK + "node3 Add forward_compute_time=1.0\n", [":4:", "malformed node line"]),
        (PD_OK + "\tnode2 node1\n", [":4:", "malformed edge line"]),
        (PD_OK + "\tnode2 -- node1\n", ["cycle"]),
    ],
    ids=["unknown-node", "not-a-number", "duplicate", "missing-field", "negative",
         "bad-node-line", "bad-edge-line", "cycle"],
)
def test_pipedream_malformed_files(tmp_path, text, needles):
    p = write(tmp_path, "bad.graph.txt", text)
    with pytest.raises(InputError) as exc:
        read_instance(p)
    one_line_error(exc, p, *needles)


@pytest.mark.parametrize("bw", [0, -1.0, float("nan"), "fast"])
def test_pipedream_rejects_bad_bandwidth(tmp_path, bw):
    p = write(tmp_path, "g.graph.txt", PD_OK)
    with pytest.raises(InputError, match="bandwidth"):
        read_instance(p, bandwidth=bw)


# ------------------------------------------------------------------ cross-check
@pytest.mark.parametrize(
    "pipedream,layer_graph",
    [(f"{PD}/resnet50.graph.txt", "resnet50_inference.json"),
     (f"{PD}/inception_v3.graph.txt", "inceptionv3_inference.json"),
     ("pipedream/translation/gnmt_large.graph.txt", "gnmt_inference.json")],
)
@pytest.mark.parametrize("zero", [False, True], ids=["as-given", "zero-input-work"])
def test_pipedream_and_dnn_partitioning_agree_per_node(shared_instances, pipedream,
                                                       layer_graph, zero):
    """Same profiles: PipeDream ``nodeX`` is the layer graph's node named ``nodeX``; with
    the default bandwidth 2^31 B/ms, work, comm (of every node with a consumer; a sink's
    comm is never charged) and memory agree exactly, and so do the edges, both with the
    file's values and with ``zero_input_work`` on both readers (their input rules pick
    the same node)."""
    a = read_instance(shared_instances / pipedream, zero_input_work=zero)
    b = read_instance(shared_instances / LG / layer_graph, zero_input_work=zero)
    assert a.n_nodes == b.n_nodes
    ia = np.array([a.index[lab] for lab in b.labels])  # b node i is a node ia[i]
    assert np.array_equal(a.work[ia], b.work)
    assert np.array_equal(a.memory[ia], b.memory)
    has_succ = (b.out_degree > 0) & (a.out_degree[ia] > 0)
    assert np.array_equal(a.comm[ia][has_succ], b.comm[has_succ])
    ea = {(a.ids[u], a.ids[v]) for u, v in zip(a.src, a.dst)}
    eb = {(b.labels[u], b.labels[v]) for u, v in zip(b.src, b.dst)}
    if "inception" in pipedream:
        # the layer graph links the auxiliary classifier (a sink in PipeDream) onwards
        assert eb - ea == {("node239", "node258")} and not ea - eb
    else:
        assert ea == eb
        assert a.total_comm == pytest.approx(b.total_comm, rel=1e-12)
    assert a.total_work == pytest.approx(b.total_work, rel=1e-12)


# ------------------------------------------------------------------ REGAL
def test_regal_sample_small(shared_instances):
    f = shared_instances / "regal/sample_small.pbtxt"
    inst = read_instance(f)
    assert detect_format(f).name == "regal"
    assert inst.ids == ("1", "2", "3", "4", "5")  # _SOURCE (id 0) dropped
    assert inst.labels == ("node_0", "node_1", "node_2", "node_3", "node_4")
    assert inst.work.tolist() == [0, 40, 55, 61, 9]
    # consumed ports only: node 4 outputs 47 (port 0, unread) and 12 (port 1, read by 5)
    assert inst.comm.tolist() == [0, 64, 31, 12, 0]
    data = {(inst.ids[u], inst.ids[v]) for u, v in zip(inst.src, inst.dst)}
    prec = {(inst.ids[u], inst.ids[v]) for u, v in zip(inst.prec_src, inst.prec_dst)}
    assert data == {("2", "3"), ("2", "4"), ("3", "4"), ("4", "5")}
    assert prec == {("1", "4"), ("3", "5")}  # control inputs from _SOURCE dropped
    allout = read_instance(f, comm_outputs="all")
    assert allout.comm.tolist() == [0, 64, 31, 59, 0]


REGAL_OK = """node {
  name: "_SOURCE"
}
node {
  name: "a"  # a comment
  id: 1
  output_info { size: 10 alias_input_port: -1 shape { dim { size: 3 } } }
  compute_cost: 5
  control_input: 0
}
node: {
  name: "b"
  id: 2
  input_info { preceding_node: 1 preceding_port: 0 }
  compute_cost: 7
}
"""


def test_regal_generic_text_proto_features(tmp_path):
    inst = read_instance(write(tmp_path, "g.pbtxt", REGAL_OK))
    assert inst.ids == ("1", "2") and inst.comm.tolist() == [10, 0]
    assert inst.work.tolist() == [5, 7] and inst.n_edges == 1
    msg = parse_text_proto('a: [1, 2]\nb < c: "x" "y" >\n')
    assert [f.value for f in msg.all("a")] == [1, 2]
    assert msg.get("b").get("c") == "xy"


@pytest.mark.parametrize(
    "text,needles",
    [
        (REGAL_OK + 'node {\n  id: 3\n  input_info { preceding_node: 9 }\n}\n',
         [":19:", "unknown node 9"]),
        (REGAL_OK + 'node {\n  id: 3\n  input_info { preceding_node: 1 preceding_port: 4 }'
                    '\n}\n', [":19:", "port 4"]),
        (REGAL_OK + 'node {\n  id: 2\n}\n', [":17:", "duplicate node id 2"]),
        (REGAL_OK + 'node {\n  id: 3\n  control_input: 8\n}\n', [":19:", "unknown node 8"]),
        (REGAL_OK + 'node {\n  id: 3\n', ["missing closing"]),
        (REGAL_OK + 'node {\n  id: 3 %\n}\n', [":18:", "unexpected character"]),
        (REGAL_OK + 'node {\n  id: "x"\n}\n', [":18:", "integer"]),
        (REGAL_OK + 'node {\n  id: 3\n  compute_cost: -4\n}\n', [":19:", ">= 0"]),
        (REGAL_OK + 'node {\n  id: 3\n  input_info { preceding_node: 2 }\n}\n',
         [":19:", "port 0 of node 2, which has 0 output_info"]),
    ],
    ids=["unknown-input", "bad-port", "duplicate", "unknown-control", "unclosed",
         "bad-char", "bad-id", "negative-cost", "no-output-info"],
)
def test_regal_malformed_files(tmp_path, text, needles):
    p = write(tmp_path, "bad.pbtxt", text)
    with pytest.raises(InputError) as exc:
        read_instance(p)
    one_line_error(exc, p, *needles)


def test_regal_cycle_through_control_edges_is_reported(tmp_path):
    text = REGAL_OK.replace("compute_cost: 5\n", "compute_cost: 5\n  control_input: 2\n")
    p = write(tmp_path, "cyc.pbtxt", text)
    with pytest.raises(InstanceError, match="cycle"):
        read_instance(p)


# ------------------------------------------------------------------ detection
def test_detection_is_by_content_not_extension(tmp_path, shared_instances):
    src = shared_instances / PD / "alexnet.graph.txt"
    p = tmp_path / "misnamed.json"
    shutil.copy(src, p)
    assert detect_format(p).name == "pipedream"
    a, b = read_instance(p), read_instance(src)
    assert a.ids == b.ids and np.array_equal(a.work, b.work) and a.n_nodes == 23


def test_gzipped_foreign_formats_read_transparently(tmp_path, shared_instances):
    for rel in (f"{PD}/resnet18.graph.txt", f"{LG}/bert24_inference.json",
                "regal/sample_small.pbtxt"):
        src = shared_instances / rel
        gz = tmp_path / (src.name + ".gz")
        gz.write_bytes(gzip.compress(src.read_bytes()))
        a, b = read_instance(src), read_instance(gz)
        assert np.array_equal(a.work, b.work) and np.array_equal(a.comm, b.comm)


def test_unknown_format_names_the_file(tmp_path):
    p = write(tmp_path, "notes.dat", "hello world\n")
    with pytest.raises(FormatError) as exc:
        read_instance(p)
    one_line_error(exc, p, "unknown graph format")


def test_explicit_format_overrides_detection(tmp_path, shared_instances):
    p = shared_instances / PD / "vgg16.graph.txt"
    with pytest.raises(FormatError, match="invalid JSON"):
        read_instance(p, format="native")
    with pytest.raises(InputError, match="unknown format"):
        read_instance(p, format="nope")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_instance(tmp_path / "nope.json")
    with pytest.raises(InputError, match="directory"):
        read_instance(tmp_path)


def test_reader_options_unknown_vs_inapplicable(tmp_path):
    p = tmp_path / "w.json"
    write_instance(worked_example(), p)
    assert read_instance(p, bandwidth=5.0, keep_input_work=True) == worked_example()
    with pytest.raises(InputError, match="bandwdith"):
        read_instance(p, bandwdith=5.0)


def test_write_needs_a_known_writable_format(tmp_path):
    with pytest.raises(InputError, match="output format"):
        write_instance(worked_example(), tmp_path / "x.graphml")
    with pytest.raises(InputError, match="read-only"):
        write_instance(worked_example(), tmp_path / "x.txt", format="pipedream")


def test_every_registered_format_is_detected_from_its_own_output(tmp_path):
    for name, cls in instances.FORMATS.items():
        if not cls.writable or name == "dnn-partitioning":
            continue
        p = tmp_path / f"x-{name}{cls.extensions[0]}"
        write_instance(worked_example(), p, format=name)
        assert detect_format(p).name == name


# ------------------------------------------------------------------ networkx
def test_networkx_round_trip_keeps_everything():
    inst = rich_instance()
    G = to_networkx(inst)
    assert G.nodes["a"]["work"] == inst.work[1]
    assert G.edges["b", "c"]["kind"] == "precedence"
    assert G.edges["a", "b"]["kind"] == "data"
    assert from_networkx(G) == inst


def test_from_networkx_custom_attributes_and_errors():
    G = nx.DiGraph()
    G.add_node(1, t=2.0, size=3.0)
    G.add_node(2, t=1.0, size=0.0)
    G.add_edge(1, 2)
    inst = from_networkx(G, work="t", comm="size", name="g")
    assert inst.ids == ("1", "2") and inst.work.tolist() == [2, 1]
    assert inst.comm.tolist() == [3, 0] and inst.n_edges == 1
    del G.nodes[2]["t"]
    with pytest.raises(InstanceError, match="'2' has no 't'"):
        from_networkx(G, work="t", comm="size")
    assert from_networkx(G, work="t", comm="size", default_work=0.0).work[1] == 0.0
    G.add_edge(2, 1)
    with pytest.raises(InstanceError, match="cycle"):
        from_networkx(G, work="t", comm="size", default_work=0.0)


# ------------------------------------------------------------------ resolve
def test_resolve_file_dir_glob_suite_and_bundled_id(tmp_path, shared_instances,
                                                     monkeypatch):
    monkeypatch.chdir(shared_instances.parent)
    one = resolve("instances/regal/sample_small.pbtxt")
    assert [r.id for r in one] == ["instances/regal/sample_small.pbtxt"]
    assert one[0].load().n_nodes == 5
    d = resolve("instances/pipedream")
    assert [r.id for r in d] == sorted(r.id for r in d) and len(d) == 14
    g = resolve("instances/dnn-partitioning/LayerGraphs/*_inference.json")
    assert len(g) == 4
    absolute = resolve(str(shared_instances / "regal" / "sample_small.pbtxt"))
    assert absolute[0].id == "instances/regal/sample_small.pbtxt"  # relative to cwd
    suite = resolve("suite:default")
    assert len(suite) == len(instances.suite_ids("default")) and suite[0].path is None
    assert suite[0].id.startswith("default/")
    b = resolve(suite[0].id)
    assert b[0].id == suite[0].id and b[0].load().name == suite[0].id
    for bad in ("nope/none", "suite:nope", "instances/*.nothing", str(tmp_path)):
        with pytest.raises(InputError):
            resolve(bad)


def test_resolve_passes_reader_options(shared_instances):
    f = str(shared_instances / PD / "alexnet.graph.txt")
    kept = resolve(f, keep_input_work=True)[0].load()
    assert kept.work[kept.index["node1"]] == 635.902


def test_instance_ref_is_frozen():
    ref = resolve("suite:default")[0]
    with pytest.raises(AttributeError):
        ref.id = "x"  # type: ignore[misc]


def test_native_integer_ids_take_the_validating_path(tmp_path):
    p = write(tmp_path, "ints.json", native_text(
        [{"id": 1, "work": 1, "comm": 2}, {"id": 2, "work": 3, "comm": 0}], [[1, 2]]))
    inst = read_instance(p)
    assert inst.ids == ("1", "2") and inst.n_edges == 1 and inst.comm.tolist() == [2, 0]


def test_folder_scan_skips_unrecognised_json(tmp_path, shared_instances):
    shutil.copy(shared_instances / "regal/sample_small.pbtxt", tmp_path / "a.pbtxt")
    (tmp_path / "part.json").write_text('{"k": 2, "stages": [["1"], ["2"]]}')
    (tmp_path / "commented.pbtxt").write_text("# a comment\n" + REGAL_OK)
    write_instance(worked_example(), tmp_path / "w.json.gz")
    refs = resolve(str(tmp_path))
    assert [Path(r.path).name for r in refs] == ["a.pbtxt", "commented.pbtxt", "w.json.gz"]
    assert detect_format(tmp_path / "commented.pbtxt").name == "regal"


# ------------------------------------------------------------------ units
def test_every_reader_states_units(tmp_path, shared_instances):
    """docs/guide/formats.md: ms / ms / bytes for the profiles, us and bytes for REGAL (honestly
    two units), the file's own units for native JSON, "unit" for generated graphs."""
    from instances.generators import layered_dag, regal_like

    ms = {"work": "ms", "comm": "ms", "memory": "bytes"}
    assert read_instance(shared_instances / LG / "bert24_training.json").units == ms
    assert read_instance(shared_instances / PD / "vgg16.graph.txt").units == ms
    regal = read_instance(shared_instances / "regal/sample_small.pbtxt")
    assert regal.units == {"work": "us", "comm": "bytes", "memory": "unspecified"}
    assert regal.time_unit == "us/bytes"
    gen = layered_dag(20, rng=1)
    assert gen.units == {"work": "unit", "comm": "unit", "memory": "unit"}
    assert regal_like(rng=2).units == gen.units
    p = tmp_path / "w.json"
    write_instance(worked_example(), p)
    assert read_instance(p).units == {"work": "unspecified", "comm": "unspecified",
                                      "memory": "unspecified"}
    write_instance(worked_example().replace(metadata={"units": {"work": "s", "comm": "s"}}),
                   p)
    assert read_instance(p).units == {"work": "s", "comm": "s", "memory": "unspecified"}


def test_info_prints_units_and_input_work(tmp_path, shared_instances, capsys):
    from cli import main

    f = shared_instances / LG / "resnet50_inference.json"
    assert main(["info", str(f)]) == 0
    out = capsys.readouterr().out
    assert "total work:          201.45 ms" in out
    assert "units:               work ms, comm ms, memory bytes" in out
    assert "cost model:          none (costs as given in the file)" in out
    assert "input work:          as in the file" in out
    assert main(["info", str(f), "--json", "--zero-input-work"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["units"] == {"work": "ms", "comm": "ms", "memory": "bytes"}
    assert info["input_work"] == "zeroed" and info["input_work_zeroed"] == {"1": 18.962}
    assert info["cost_model"] is None
    assert main(["info", str(f), "--zero-input-work", "--keep-input-work"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(["info", "default/comm-0300", "--zero-input-work", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["input_work"] == "zeroed"


def test_training_style_graph_keeps_small_source_work(tmp_path):
    """A 1e-8 discrepancy (docs/guide/formats.md): forward source nodes (inputs and weights of a
    training graph) with small but nonzero work used to be zeroed by default, shifting
    stage costs by about 1e-8 relative. The file's values are now kept, so evaluate agrees
    with a hand computation from the file exactly."""
    from pipecert import Partition, evaluate

    nodes = [dnode(1, 20.0), dnode(2, 3e-6), dnode(3, 50.0), dnode(4, 2e-6),
             dnode(5, 40.0), dnode(6, 80.0, isBackwardNode=1), dnode(7, 60.0, isBackwardNode=1)]
    edges = [{"sourceId": 1, "destId": 3, "cost": 0.5}, {"sourceId": 2, "destId": 3,
                                                        "cost": 0.25},
             {"sourceId": 3, "destId": 5, "cost": 0.125}, {"sourceId": 4, "destId": 5,
                                                          "cost": 0.25},
             {"sourceId": 5, "destId": 6, "cost": 0.0625},
             {"sourceId": 6, "destId": 7, "cost": 0.5}]
    p = write(tmp_path, "train.json", dnn_text(nodes, edges))
    inst = read_instance(p)
    part = Partition.from_stages(inst, [["1", "2", "3"], ["4", "5", "6", "7"]], 2)
    # by hand: stage 0 = 20 + 3e-6 + 50 + comm out of 3 (0.125); stage 1 = 2e-6 + 40 + 80
    # + 60 + comm in from 3 (0.125)
    assert evaluate(inst, part) == max(20 + 3e-6 + 50 + 0.125, 2e-6 + 40 + 80 + 60 + 0.125)
    old = read_instance(p, zero_input_work=True)  # the old default
    rel = abs(evaluate(old, part) - evaluate(inst, part)) / evaluate(inst, part)
    assert 0 < rel < 1e-7 and set(old.metadata["input_work_zeroed"]) == {"1", "2", "4"}
