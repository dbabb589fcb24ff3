"""The roofline cost model, hardware profiles and layer aggregation (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from instances.costmodel import (
    CostModel,
    HardwareProfile,
    OpNode,
    build_instance,
    dtype_name,
    layer_key,
    list_profiles,
    load_profile,
)
from pipecert.errors import InputError


def _profile(**kw: object) -> HardwareProfile:
    data = dict(name="toy", peak_flops={"float32": 1e12, "bfloat16": 4e12},
                memory_bandwidth=1e11, interconnect_bandwidth=1e10)
    data.update(kw)
    return HardwareProfile.from_dict(data)


def test_bundled_profiles_have_positive_numbers_and_sources() -> None:
    names = list_profiles()
    assert {"a100", "h100", "tpu-v4", "a100-pcie"} <= set(names)
    for name in names:
        p = load_profile(name)
        assert p.name == name
        assert p.peak("bfloat16") > 1e12
        assert p.memory_bandwidth > 1e11 and p.interconnect_bandwidth > 1e9
        assert p.sources, f"{name} lists no source"


def test_named_profile_numbers_match_datasheets() -> None:
    a100, h100, tpu = load_profile("a100"), load_profile("h100"), load_profile("tpu-v4")
    assert a100.peak("bfloat16") == 312e12 and a100.memory_bandwidth == 2.039e12
    assert h100.peak("bfloat16") == 989.4e12 and h100.memory_bandwidth == 3.35e12
    assert tpu.peak("bfloat16") == 275e12 and tpu.memory_bandwidth == 1.2e12


def test_user_toml_profile_loads(tmp_path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('name = "mine"\npeak_flops = 2e12\nmemory_bandwidth = 5e11\n'
                 'interconnect_bandwidth = 2.5e10\nlaunch_overhead = 3e-6\n'
                 'sources = ["my measurements"]\n')
    p = load_profile(str(f))
    assert p.name == "mine" and p.peak("bfloat16") == 2e12 and p.launch_overhead == 3e-6
    assert CostModel(str(f)).overhead_s == 3e-6


@pytest.mark.parametrize("text, problem", [
    ('name = "x"\npeak_flops = 1e12\nmemory_bandwidth = 1e11\n', "interconnect_bandwidth"),
    ('name = "x"\npeak_flops = 1e12\nmemory_bandwidth = -1\ninterconnect_bandwidth = 1\n',
     "memory_bandwidth"),
    ('name = "x"\npeak_flops = {fp99 = 1}\nmemory_bandwidth = 1\ninterconnect_bandwidth = 1\n',
     "fp99"),
    ('name = "x"\npeak_flops = 1\nmemory_bandwidth = 1\ninterconnect_bandwidth = 1\nbw = 2\n',
     "bw"),
    ("name = [", "invalid TOML"),
])
def test_bad_toml_profile_names_file_and_key(tmp_path, text: str, problem: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        load_profile(str(f))
    assert "bad.toml" in str(err.value) and problem in str(err.value)


def test_unknown_profile_name_lists_bundled_ones() -> None:
    with pytest.raises(InputError, match="a100"):
        load_profile("no-such-gpu")


def test_dtype_names_are_canonical() -> None:
    assert dtype_name("torch.float32") == "float32"
    assert dtype_name("bf16") == "bfloat16"
    with pytest.raises(InputError):
        dtype_name("float99")


def test_roofline_compute_bound_and_memory_bound() -> None:
    cm = CostModel(_profile(), compute_dtype="float32")
    # 1000 x 1000 x 1000 matmul: 2e9 FLOPs / 1e12 = 2 ms; bytes 3 * 4e6 / 1e11 = 0.12 ms
    mm = OpNode("mm", "op", "mm", in_tensors=((10**6, "float32"), (10**6, "float32")),
                out_tensors=((10**6, "float32"),), flops=2e9)
    assert cm.work_seconds(mm) == pytest.approx(2e-3)
    # element-wise add of 1e6 floats: 0 FLOPs, 12e6 bytes / 1e11 = 120 us
    add = OpNode("add", "op", "add", in_tensors=((10**6, "float32"), (10**6, "float32")),
                 out_tensors=((10**6, "float32"),))
    assert cm.work_seconds(add) == pytest.approx(1.2e-4)
    assert cm.comm_seconds(add) == pytest.approx(4e6 / 1e10)
    assert cm.memory_bytes(add) == 4e6


def test_compute_dtype_rescales_floating_tensors_only() -> None:
    cm = CostModel(_profile(), compute_dtype="bfloat16")
    assert cm.tensor_bytes((10, "float32")) == 20
    assert cm.tensor_bytes((10, "int64")) == 80
    mm = OpNode("mm", "op", "mm", out_tensors=((1, "float32"),), flops=4e12)
    assert cm.work_seconds(mm) == pytest.approx(1.0)  # bf16 peak 4e12


def test_launch_overhead_applies_to_kernels_not_views_or_sources() -> None:
    cm = CostModel(_profile(), compute_dtype=None, launch_overhead=5e-6)
    op = OpNode("r", "op", "relu", in_tensors=((1, "float32"),), out_tensors=((1, "float32"),))
    view = OpNode("v", "view", "reshape", in_tensors=((1, "float32"),),
                  out_tensors=((1, "float32"),))
    w = OpNode("w", "parameter", "parameter", out_tensors=((100, "float32"),))
    assert cm.work_seconds(op) == pytest.approx(5e-6 + 8 / 1e11)
    assert cm.work_seconds(view) == 0 and cm.memory_bytes(view) == 0
    assert cm.work_seconds(w) == 0 and cm.memory_bytes(w) == 400
    assert cm.comm_seconds(view) == pytest.approx(4 / 1e10)


def test_negative_launch_overhead_is_rejected() -> None:
    with pytest.raises(InputError, match="launch overhead"):
        CostModel(_profile(), launch_overhead=-1.0)


def _toy_graph() -> list[OpNode]:
    f = "float32"
    return [
        OpNode("x", "input", "input", out_tensors=((100, f),)),
        OpNode("w1", "parameter", "parameter", out_tensors=((1000, f),), module="l.0.fc"),
        OpNode("fc1", "op", "mm", ("x", "w1"), ((100, f), (1000, f)), ((10, f),), flops=2e3,
               module="l.0.fc"),
        OpNode("act1", "op", "relu", ("fc1",), ((10, f),), ((10, f),), module="l.0"),
        OpNode("w2", "parameter", "parameter", out_tensors=((50, f),), module="l.1.fc"),
        OpNode("fc2", "op", "mm", ("act1", "w2"), ((10, f), (50, f)), ((5, f),), flops=1e2,
               module="l.1.fc"),
        OpNode("skip", "view", "view", ("fc1",), ((10, f),), ((10, f),), module="l.1"),
        OpNode("out", "op", "add", ("fc2", "skip"), ((5, f), (10, f)), ((5, f),),
               module="head"),
    ]


def test_build_instance_operator_level_prices_every_node_in_microseconds() -> None:
    cm = CostModel(_profile(), compute_dtype=None)
    nodes = _toy_graph()
    inst = build_instance(nodes, cm, name="toy")
    assert inst.n_nodes == 8 and inst.n_edges == 8
    assert inst.metadata["units"] == {"work": "us", "comm": "us", "memory": "bytes"}
    assert inst.metadata["cost_model"]["hardware"]["name"] == "toy"
    for i, nd in enumerate(nodes):
        assert inst.work[i] == pytest.approx(cm.work_seconds(nd) * 1e6)
        assert inst.comm[i] == pytest.approx(cm.comm_seconds(nd) * 1e6)
    assert inst.metadata["totals"]["flops"] == 2100
    assert inst.metadata["totals"]["parameter_bytes"] == 4200


def test_layer_level_merges_contiguous_layers_and_keeps_totals() -> None:
    cm = CostModel(_profile(), compute_dtype=None)
    nodes = _toy_graph()
    ops = build_instance(nodes, cm, name="toy")
    layers = build_instance(nodes, cm, name="toy", level="layer", layer_depth=1)
    # sources join their first consumer: l.0 (x, w1, fc1, act1) | l.1 (w2, fc2, skip) | head
    assert layers.ids == ("l.0", "l.1", "head")
    assert layers.total_work == pytest.approx(ops.total_work)
    assert float(layers.memory.sum()) == pytest.approx(float(ops.memory.sum()))
    # l.0 sends fc1 (to skip) and act1 (to fc2): both tensors' comm
    i = layers.index["l.0"]
    assert layers.comm[i] == pytest.approx(ops.comm[ops.index["fc1"]]
                                           + ops.comm[ops.index["act1"]])
    assert set(zip(layers.src.tolist(), layers.dst.tolist())) == {(0, 1), (1, 2)}
    assert layers.metadata["layer_sizes"] == [4, 3, 1]


def test_layer_aggregation_is_acyclic_when_a_module_is_revisited() -> None:
    f = "float32"
    # module "a" runs, then "b", then "a" again: keys repeat but segments stay ordered
    nodes = [
        OpNode("x", "input", "input", out_tensors=((4, f),)),
        OpNode("a1", "op", "relu", ("x",), ((4, f),), ((4, f),), module="a"),
        OpNode("b1", "op", "relu", ("a1",), ((4, f),), ((4, f),), module="b"),
        OpNode("a2", "op", "add", ("b1", "a1"), ((4, f), (4, f)), ((4, f),), module="a"),
    ]
    inst = build_instance(nodes, CostModel(_profile()), level="layer")
    assert inst.ids == ("a", "b", "a#2")
    assert np.all(inst.src < inst.dst)


@pytest.mark.parametrize("path, depth, extra, key", [
    ("encoder.layer.3.attention.self.query", 2, 0, "encoder.layer.3"),
    ("encoder.layer.3.attention.self.query", 1, 1, "encoder.layer.3.attention"),
    ("resnet.encoder.stages.1.layers.2.shortcut", 2, 0, "resnet.encoder.stages.1.layers.2"),
    ("embeddings.word_embeddings", 2, 1, "embeddings"),
    ("", 1, 0, ""),
])
def test_layer_key(path: str, depth: int, extra: int, key: str) -> None:
    assert layer_key(path, depth, extra) == key


def test_graph_errors_name_the_operator() -> None:
    nodes = [OpNode("a", "op", "aten.relu", ("ghost",))]
    with pytest.raises(InputError, match=r"aten\.relu.*ghost"):
        build_instance(nodes, CostModel(_profile()))
    with pytest.raises(InputError, match="unknown graph level"):
        build_instance([OpNode("a", "input", "input")], CostModel(_profile()), level="x")
