"""``pipecert profile``: import-torch's graph with measured work and bandwidth-priced comm.

Times are measurements: no test asserts a value, only structure, signs, metadata and one
ordering that no machine reverses (a 256x256 matmul against a 4-element add).
"""

from __future__ import annotations

import importlib
import json
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

FACTORY_SRC = '''
import torch


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = torch.nn.Conv2d(c, c, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))) + x


class TinyCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = torch.nn.Sequential(Block(8), Block(8))
        self.head = torch.nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).flatten(1))


def mlp(batch_size=2, width=32):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, width), torch.nn.ReLU(),
                            torch.nn.Linear(width, width), torch.nn.GELU(),
                            torch.nn.Linear(width, 4))
    return m.eval(), (torch.randn(batch_size, 16),)


def cnn(batch_size=2):
    torch.manual_seed(0)
    return TinyCNN().eval(), (torch.randn(batch_size, 3, 8, 8),)


class BigSmall(torch.nn.Module):
    def forward(self, a, b):
        return torch.mm(a, a), b + 1.0


def big_small(batch_size=1):
    torch.manual_seed(0)
    return BigSmall(), (torch.randn(256, 256), torch.randn(4))


def on_meta():
    with torch.device("meta"):
        m = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    return m, (torch.zeros(2, 4, device="meta"),)


class Scaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.empty(4))  # no initialiser of its own

    def forward(self, x):
        return x * self.scale


def on_meta_uninitialisable():
    with torch.device("meta"):
        m = Scaled()
    return m, (torch.zeros(2, 4, device="meta"),)
'''

FAST = {"warmup": 1, "repeats": 3}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def factories(tmp_path, monkeypatch):
    """Module ``prof_factories`` (mlp, cnn, big_small, on_meta) importable from the cwd."""
    (tmp_path / "prof_factories.py").write_text(FACTORY_SRC)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("prof_factories")
    yield mod
    sys.modules.pop("prof_factories", None)


def _fast_bandwidth(monkeypatch) -> None:
    """Shrink the bandwidth probe (64 MiB copies) to 1 MiB to keep tests quick."""
    import runtime.profile as rp

    orig = rp.measure_bandwidth
    monkeypatch.setattr(rp, "measure_bandwidth",
                        lambda dev, **kw: orig(dev, **{**kw, "nbytes": 2**20}))


@pytest.mark.parametrize("model", ["mlp", "cnn"])
@pytest.mark.parametrize("level", ["operator", "layer"])
def test_profile_has_import_torch_structure(factories, monkeypatch, model, level) -> None:
    from instances.torch_import import import_module
    from runtime.profile import profile_module

    _fast_bandwidth(monkeypatch)
    module, args = getattr(factories, model)()
    ref = import_module(module, args, compute_dtype=None, level=level, layer_depth=1,
                        layer_extra=1, name=model)
    module, args = getattr(factories, model)()
    inst = profile_module(module, args, level=level, name=model, batch_size=2, **FAST)
    assert inst.ids == ref.ids
    assert inst.structure_fingerprint == ref.structure_fingerprint
    np.testing.assert_array_equal(inst.memory, ref.memory)
    assert np.all(np.isfinite(inst.work)) and np.all(inst.work >= 0)
    assert np.all(np.isfinite(inst.comm)) and np.all(inst.comm >= 0)
    assert inst.total_work > 0
    if level == "operator":  # sources cost nothing, operators were timed
        kinds = [inst.op_types[i] for i in range(inst.n_nodes)]
        for i, k in enumerate(kinds):
            if k in ("parameter", "buffer", "input", "constant"):
                assert inst.work[i] == 0
        ops = [i for i, k in enumerate(kinds)
               if k.startswith("aten.") and "view" not in k and "flatten" not in k]
        assert ops and all(inst.work[i] > 0 for i in ops)
    else:
        assert inst.metadata["layer_key"] == {"depth": 1, "extra": 1}
        assert sum(inst.metadata["layer_sizes"]) == ref.metadata["totals"]["operators"] \
            + sum(v for k, v in ref.metadata["totals"]["nodes_by_kind"].items()
                  if k not in ("op", "view"))
    cm = inst.metadata["cost_model"]
    assert cm["kind"] == "measured" and cm["time_unit"] == "us"
    assert cm["device"] == "cpu" and cm["dtype"] == "float32" and cm["batch_size"] == 2
    assert cm["threads"] == 1 and cm["torch_version"] == torch.__version__
    assert cm["method"]["repeats"] == 3 and cm["method"]["warmup_passes"] == 1
    assert cm["method"]["statistic"] == "median"
    assert 0 <= cm["timer_overhead_us"] < 1000
    assert cm["bandwidth"]["source"] == "measured" and cm["bandwidth_bytes_per_s"] > 0
    assert inst.metadata["units"] == {"work": "us", "comm": "us", "memory": "bytes"}
    prof = inst.metadata["profile"]
    for med, q1, q3 in prof["per_operator_us"]["values"].values():
        assert 0 <= q1 <= med <= q3
    assert prof["total_us"]["median"] > 0 and prof["eager_forward_us"]["median"] > 0


def test_layer_work_is_the_sum_of_its_operators(factories, monkeypatch) -> None:
    """The layer graph of a profile is aggregate_layers over the operator times."""
    from instances.costmodel import aggregate_layers, layer_key
    from instances.torch_import import graph_from_exported, trace
    from runtime import profile as rp

    module, args = factories.cnn()
    times = {}

    def fixed(ep, a, kw, dev, *, warmup, repeats):  # deterministic "measurements"
        out = {}
        for i, node in enumerate(n for n in ep.graph.nodes if n.op == "call_function"):
            out[node.name] = [1e-6 * (i + 1)] * repeats
            times[node.name] = 1e-6 * (i + 1)
        return out

    monkeypatch.setattr(rp, "time_exported", fixed)
    inst = rp.profile_module(module, args, level="layer", bandwidth=1e9,
                             clock_overhead=lambda dev: 0.0, **FAST)
    op_inst = rp.profile_module(module, args, level="operator", bandwidth=1e9,
                                clock_overhead=lambda dev: 0.0, **FAST)
    records = graph_from_exported(trace(module, args))
    agg = aggregate_layers(records, op_inst.work, op_inst.comm, op_inst.memory,
                           key=lambda nd: layer_key(nd.module, 1, 1), name="x")
    assert inst.ids == agg.ids
    np.testing.assert_allclose(inst.work, agg.work)
    np.testing.assert_allclose(inst.total_work, 1e6 * sum(times.values()))


def test_big_matmul_measures_slower_than_tiny_add(factories) -> None:
    from runtime.profile import profile_module

    module, args = factories.big_small()
    inst = profile_module(module, args, bandwidth=1e9, warmup=1, repeats=5)
    idx = inst.index
    assert inst.work[idx["mm"]] > 5 * inst.work[idx["add"]]


def test_given_bandwidth_prices_comm_as_bytes_over_bandwidth(factories) -> None:
    from instances.torch_import import import_module
    from runtime.profile import profile_module

    module, args = factories.mlp()
    ref = import_module(module, args, compute_dtype=None)  # comm = bytes / profile's link
    link = ref.metadata["cost_model"]["hardware"]["interconnect_bandwidth"]
    inst = profile_module(module, args, bandwidth=2.5e9, **FAST)
    np.testing.assert_allclose(inst.comm * 2.5e9, ref.comm * link, rtol=1e-12)
    bw = inst.metadata["cost_model"]["bandwidth"]
    assert bw["source"].startswith("given") and bw["bytes_per_s"] == 2.5e9


def test_timer_samples_overhead_and_bandwidth_probe(factories) -> None:
    from instances.torch_import import trace
    from runtime.profile import measure_bandwidth, measure_timer_overhead, time_exported

    module, args = factories.mlp()
    ep = trace(module, args)
    samples = time_exported(ep, args, {}, torch.device("cpu"), warmup=0, repeats=4)
    calls = [n.name for n in ep.graph.nodes if n.op == "call_function"]
    assert sorted(samples) == sorted(calls)
    assert all(len(xs) == 4 and all(x > 0 for x in xs) for xs in samples.values())
    over = measure_timer_overhead(torch.device("cpu"), repeats=50)
    assert 0 < over < 1e-3
    bw = measure_bandwidth(torch.device("cpu"), nbytes=2**20, repeats=3)
    assert math.isfinite(bw["bytes_per_s"]) and bw["bytes_per_s"] > 0
    assert bw["bytes"] == 2**20 and "cpu" in bw["path"]


def test_describe_cost_model_names_the_measurement(factories) -> None:
    from pipecert.instance import describe_cost_model
    from runtime.profile import profile_module

    module, args = factories.mlp()
    inst = profile_module(module, args, bandwidth=1e9, **FAST)
    text = describe_cost_model(inst.metadata["cost_model"])
    assert text.startswith("costs priced by the measured cost model for cpu")
    assert text.endswith(", float32")


def test_api_rejects_bad_inputs(factories, monkeypatch) -> None:
    from pipecert.errors import InputError
    from runtime.profile import profile_module, resolve_device

    module, args = factories.mlp()
    for bad in ("tpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(InputError, match="unknown device"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda") == torch.device("cuda:0")
    with pytest.raises(InputError, match="only 1 CUDA device"):
        resolve_device("cuda:3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match="CUDA is not available"):
        profile_module(module, args, device="cuda")
    with pytest.raises(InputError, match="repeats"):
        profile_module(module, args, repeats=0)
    with pytest.raises(InputError, match="bandwidth"):
        profile_module(module, args, bandwidth=-1.0)
    with pytest.raises(InputError, match="level"):
        profile_module(module, args, level="block")
    m, a = factories.on_meta_uninitialisable()
    with pytest.raises(InputError, match="no initialiser"):
        profile_module(m, a)


def test_meta_device_module_ismaterialised(factories) -> None:
    from runtime.profile import profile_module

    m, a = factories.on_meta()
    inst = profile_module(m, a, bandwidth=1e9, **FAST)
    assert inst.metadata["cost_model"]["weights"].startswith("random")
    assert inst.total_work > 0
    m, a = factories.mlp()
    inst = profile_module(m, a, bandwidth=1e9, **FAST)
    assert inst.metadata["cost_model"]["weights"] == "the factory's"


def test_cli_profile_then_solve(factories, tmp_path, capsys) -> None:
    from cli import main
    from instances.io import read_instance

    out = tmp_path / "mlp.json.gz"
    rc = main(["profile", "prof_factories:mlp", "--device", "cpu", "--batch-size", "3",
               "--option", "width=24", "--level", "layer", "--warmup", "1", "--repeats", "3",
               "--bandwidth", "1e9", "--threads", "1", "-o", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "timer overhead" in text and "wrote" in text
    inst = read_instance(out)
    assert inst.metadata["cost_model"]["kind"] == "measured"
    assert inst.metadata["batch_size"] == 3
    assert inst.metadata["factory_options"] == {"width": 24}
    assert inst.metadata["level"] == "layer" and inst.total_work > 0
    rc = main(["solve", str(out), "-k", "2", "--time-limit", "5", "--json", "-q"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["upper_bound"] >= res["lower_bound"] > 0


@pytest.mark.parametrize("argv, needle", [
    (["--device", "tpu"], "unknown device"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--repeats", "0"], "--repeats"),
    (["--bandwidth", "0"], "--bandwidth"),
    (["--batch-size", "0"], "--batch-size"),
])
def test_cli_bad_options_exit_2_with_one_line(factories, monkeypatch, capsys, argv,
                                              needle) -> None:
    from cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["profile", "prof_factories:mlp", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


@pytest.mark.parametrize("spec, needle", [
    ("prof_factories:missing", "missing"),
    ("no_such_module_xyz:f", "no_such_module_xyz"),
    ("prof_factories", "module:function"),
    ("prof_factories:on_meta_uninitialisable", "no initialiser"),
])
def test_cli_bad_factory_exits_2(factories, capsys, spec, needle) -> None:
    from cli import main

    assert main(["profile", spec, "--repeats", "1", "--bandwidth", "1e9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="CUDA event timing needs a CUDA device (CI runs CPU only)")
def test_cuda_profile_uses_events(factories) -> None:  # pragma: no cover - GPU only
    from runtime.profile import profile_module

    module, args = factories.mlp()
    inst = profile_module(module, args, device="cuda", **FAST)
    cm = inst.metadata["cost_model"]
    assert cm["device"].startswith("cuda") and "cuda.Event" in cm["method"]["timer"]
    assert inst.total_work > 0 and cm["bandwidth_bytes_per_s"] > 0
