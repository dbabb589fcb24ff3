"""``import-torch --training``: forward + backward graph, groups, memory, data-only edges.

Backward FLOPs are autograd's kernels counted on meta tensors; here they are checked against
hand formulas (``Y = X W^T + b``: ``dW`` and ``dX`` are products as large as the forward one,
``dX`` only when ``X`` needs a gradient), and the graph against the rule of
:mod:`instances.training`.
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cli import main  # noqa: E402
from instances import read_instance  # noqa: E402
from instances.costmodel import CostModel, HardwareProfile  # noqa: E402
from instances.torch_import import backward_flops, import_module  # noqa: E402
from pipecert.partition import Partition, check_feasible  # noqa: E402

pytestmark = pytest.mark.torch

#: round numbers: 1e12 FLOP/s, 1e12 B/s, no launch overhead, 1 MB of device memory
PROFILE = HardwareProfile(name="unit", peak_flops={"float32": 1e12}, memory_bandwidth=1e12,
                          interconnect_bandwidth=1e9, memory_capacity=1e6)


def mlp() -> tuple[object, tuple[object, ...]]:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    return m.eval(), (torch.zeros(4, 16),)


def by_id(inst, key):  # noqa: ANN001, ANN201
    return {v: float(getattr(inst, key)[i]) for i, v in enumerate(inst.ids)}


def test_backward_flops_match_hand_formulas() -> None:
    x, w, b = torch.zeros(8, 16), torch.zeros(32, 16), torch.zeros(32)
    lin = torch.ops.aten.linear.default
    fwd = 2 * 8 * 16 * 32
    assert backward_flops(lin, [x, w, b], {}, lambda t: True) == 2 * fwd
    assert backward_flops(lin, [x, w, b], {}, lambda t: t is not x) == fwd  # dW only
    assert backward_flops(lin, [x, w, b], {}, lambda t: False) == 0.0
    c, k = torch.zeros(2, 3, 16, 16), torch.zeros(8, 3, 3, 3)
    conv_fwd = 2 * (2 * 8 * 14 * 14) * 3 * 9  # no padding: 14 x 14 outputs
    conv = torch.ops.aten.conv2d.default
    assert backward_flops(conv, [c, k], {}, lambda t: True) == 2 * conv_fwd
    assert backward_flops(conv, [c, k], {}, lambda t: t is k) == conv_fwd
    assert backward_flops(torch.ops.aten.relu.default, [x], {}, lambda t: True) == 0.0


def test_mlp_training_graph_operator_level() -> None:
    model, args = mlp()
    inst = import_module(model, args, cost_model=CostModel(PROFILE, None), training=True)
    fwd = import_module(model, args, cost_model=CostModel(PROFILE, None))
    ids = set(inst.ids)
    # every parameter and operator has a backward node; the model input has none
    assert ids == set(fwd.ids) | {f"{v}grad" for v in fwd.ids if v != "input"}
    assert inst.constraints == {"groups", "data_only_edges"}  # 1 MB cap: not binding
    assert inst.memory_limit == 1e6
    assert inst.n_units == fwd.n_nodes
    # ordering edges are exactly the forward graph's
    o = inst.edge_orders
    fwd_pairs = {(fwd.ids[u], fwd.ids[v]) for u, v in zip(fwd.src.tolist(), fwd.dst.tolist())}
    assert {(inst.ids[u], inst.ids[v]) for u, v in
            zip(inst.src[o].tolist(), inst.dst[o].tolist())} == fwd_pairs
    free = {(inst.ids[u], inst.ids[v]) for u, v in
            zip(inst.src[~o].tolist(), inst.dst[~o].tolist())}
    mirrored = {(u + "grad", v + "grad") for u, v in fwd_pairs if u != "input"}
    stash = {(v, v + "grad") for v in fwd.ids if v != "input"}
    assert free == mirrored | stash
    # groups: a node and its backward node
    g = dict(zip(inst.ids, inst.groups.tolist()))
    assert all(g[v] == g[v + "grad"] >= 0 for v in fwd.ids if v != "input")
    assert g["input"] == -1
    # backward FLOPs: first linear dW only (its input needs no gradient), second dW + dX
    assert inst.metadata["totals"]["backward_flops"] == 2 * 4 * 16 * 32 + 2 * (2 * 4 * 32 * 8)
    assert inst.metadata["training"] is True
    # work of the backward nodes: the roofline of their FLOPs and bytes (us)
    work = by_id(inst, "work")
    f1 = 2 * 4 * 16 * 32
    bytes1 = 4 * (4 * 32 + (4 * 16 + 32 * 16 + 32) + (32 * 16 + 32))  # out + in + grads
    assert work["lineargrad"] == pytest.approx(max(f1 / 1e12, bytes1 / 1e12) * 1e6)
    assert work["relugrad"] == pytest.approx(4 * (3 * 4 * 32) / 1e12 * 1e6)
    assert work["p_0_weightgrad"] == 0.0
    # memory: weights on the parameter, gradient + 2 Adam moments on its backward node,
    # the stashed output on the operator, nothing on the operator's backward node
    mem = by_id(inst, "memory")
    assert mem["p_0_weight"] == 4 * 32 * 16 and mem["p_0_weightgrad"] == 3 * 4 * 32 * 16
    assert mem["linear"] == 4 * 4 * 32 and mem["lineargrad"] == 0.0
    # comm of a backward node = its forward node's (the gradient has the output's shape)
    comm = by_id(inst, "comm")
    assert all(comm[v + "grad"] == comm[v] for v in fwd.ids if v != "input")


def test_optimizer_states_change_parameter_memory() -> None:
    model, args = mlp()
    for states in (0, 1, 2):
        inst = import_module(model, args, cost_model=CostModel(PROFILE, None), training=True,
                             optimizer_states=states)
        mem = by_id(inst, "memory")
        assert mem["p_2_weightgrad"] == (1 + states) * mem["p_2_weight"]
        assert inst.metadata["backward"]["optimizer_states"] == states
    with pytest.raises(ValueError, match="optimizer_states must be an integer >= 0"):
        import_module(model, args, cost_model=CostModel(PROFILE, None), training=True,
                      optimizer_states=-1)


def test_layer_level_training_sums_the_operators() -> None:
    model, args = mlp()
    cm = CostModel(PROFILE, None)
    ops = import_module(model, args, cost_model=cm, training=True)
    lay = import_module(model, args, cost_model=cm, training=True, level="layer",
                        layer_depth=1)
    assert lay.ids == ("0", "1", "2", "0grad", "1grad", "2grad")
    assert lay.total_work == pytest.approx(ops.total_work, rel=1e-12)
    assert lay.memory.sum() == pytest.approx(ops.memory.sum(), rel=1e-12)
    assert lay.constraints == {"groups", "data_only_edges"}
    assert lay.n_units == 3 and lay.n_data_only_edges == 2 + 3
    assert check_feasible(lay, Partition([0, 1, 1, 0, 1, 1], k=2)) == []
    assert check_feasible(lay, Partition([0, 1, 1, 0, 0, 1], k=2)) != []  # group split


def test_training_cap_from_the_profile_binds() -> None:
    """A cap below the model's memory is active; a cap below one unit is infeasible."""
    model, args = mlp()
    small = HardwareProfile(name="small", peak_flops={"float32": 1e12}, memory_bandwidth=1e12,
                            interconnect_bandwidth=1e9, memory_capacity=10_000.0)
    inst = import_module(model, args, cost_model=CostModel(small, None), training=True,
                         level="layer", layer_depth=1)
    total = float(inst.memory.sum())
    assert total > 10_000 and "memory" in inst.constraints
    assert inst.infeasible_reason(1) is not None
    tiny = inst.replace(memory_limit=100.0)
    assert "need memory" in tiny.infeasible_reason(8)


def test_conv_model_first_layer_has_weight_gradient_only() -> None:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
                            torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)).eval()
    x = torch.zeros(2, 3, 8, 8)
    inst = import_module(m, (x,), cost_model=CostModel(PROFILE, None), training=True)
    f0 = 2 * (2 * 8 * 8 * 8) * 3 * 9
    f1 = 2 * (2 * 8 * 8 * 8) * 8 * 9
    assert inst.metadata["totals"]["flops"] == f0 + f1
    assert inst.metadata["totals"]["backward_flops"] == f0 + 2 * f1


FACTORY_SRC = '''
import torch


def mlp(batch_size=4):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    return m.eval(), (torch.zeros(batch_size, 16),)
'''


@pytest.fixture()
def factory(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    (tmp_path / "train_factory.py").write_text(FACTORY_SRC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("train_factory", None)
    yield importlib.import_module("train_factory")
    sys.modules.pop("train_factory", None)


def test_cli_import_torch_training_with_memory_limit(factory, tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "t.json"
    assert main(["import-torch", "train_factory:mlp", "--training", "--memory-limit", "4KB",
                 "--compute-dtype", "traced", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "training:" in printed and "binds" in printed
    inst = read_instance(out)
    assert inst.memory_limit == 4000.0
    assert inst.constraints == {"groups", "memory", "data_only_edges"}
    assert main(["import-torch", "train_factory:mlp", "--training", "--memory-limit", "none",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    assert read_instance(out).memory_limit is None
    assert main(["import-torch", "train_factory:mlp", "-o", str(out)]) == 0
    capsys.readouterr()
    plain = read_instance(out)
    assert plain.memory_limit == 80e9 and not plain.constraints  # a100 device memory
    assert plain.groups is None and plain.n_data_only_edges == 0


@pytest.mark.parametrize("argv, match", [
    (["--memory-limit", "80XB"], "unknown unit 'XB'"),
    (["--memory-limit=-3GB"], "negative"),
    (["--training", "--optimizer-states", "-1"], "--optimizer-states must be >= 0"),
])
def test_cli_import_torch_training_bad_options(factory, capsys, argv, match) -> None:  # noqa: ANN001
    assert main(["import-torch", "train_factory:mlp", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err


def test_training_graph_round_trips_through_native_json(tmp_path) -> None:  # noqa: ANN001
    from instances import write_instance

    model, args = mlp()
    inst = import_module(model, args, cost_model=CostModel(PROFILE, None), training=True)
    p = tmp_path / "t.json.gz"
    write_instance(inst, p)
    back = read_instance(p)
    assert back == inst
    assert np.array_equal(back.edge_orders, inst.edge_orders)


def test_measurement_script_runs_on_a_small_model() -> None:
    """The measurement behind the docstring's numbers: one (forward, backward) time per
    layer, measured and predicted, on the same layers."""
    from instances.measure_training import measure_layers, predict_layers

    model, (x,) = mlp()
    meas = measure_layers(model, x, reps=1)
    pred = predict_layers(model, x, PROFILE)
    assert len(meas) == len(pred) == 3
    assert all(f > 0 and b > 0 for f, b in meas)
    assert all(f > 0 and b > 0 for f, b in pred)  # the ReLU's backward is memory-bound
