"""bench-stages (runtime.bench): each exported stage timed alone vs the cost model's stage."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from instances import read_instance  # noqa: E402
from pipecert.errors import InputError  # noqa: E402
from pipecert.instance import Instance  # noqa: E402
from pipecert.partition import Partition, check_feasible, stage_costs  # noqa: E402
from pipecert.partition_file import write_partition  # noqa: E402
from runtime.bench import bench_stages, export_for_bench  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _cli(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    from cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def chain_partition(inst: Instance, k: int) -> Partition:
    """A feasible partition: the topological order cut into k nearly equal runs."""
    order = inst.topo_order
    stage = np.empty(inst.n_nodes, dtype=int)
    stage[order] = np.minimum(np.arange(inst.n_nodes) * k // inst.n_nodes, k - 1)
    part = Partition(stage, k)
    check_feasible(inst, part)
    return part


@pytest.fixture(scope="module")
def gpt2_layer(tmp_path_factory: Any) -> tuple[str, str, Instance]:
    """Tiny GPT-2 imported at layer level by the CLI, and a k=4 partition file of it."""
    from cli import main

    d = tmp_path_factory.mktemp("gpt2")
    g, p = str(d / "g.json"), str(d / "p.json")
    assert main(["import-torch", "runtime.tiny_models:suite", "--option", "model=gpt2",
                 "--level", "layer", "-o", g]) == 0
    inst = read_instance(g)
    write_partition(p, chain_partition(inst, 4), inst)
    return g, p, inst


def test_cli_table_and_json_end_to_end(gpt2_layer: tuple[str, str, Instance],
                                       capsys: Any) -> None:
    g, p, inst = gpt2_layer
    capsys.readouterr()
    code, out, err = _cli(["bench-stages", g, p, "--device", "cpu", "--repeats", "3",
                           "--warmup", "1"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    head = next(ln for ln in lines if ln.lstrip().startswith("stage"))
    assert "pred work us" in head and "meas total us" in head and "meas/pred" in head
    rows = [ln for ln in lines if ln[:5].strip().isdigit()]
    assert [int(r.split()[0]) for r in rows] == [0, 1, 2, 3]
    assert "bottleneck: predicted stage" in out and "relative error" in out
    assert "GB/s (measured" in out

    code, out, err = _cli(["bench-stages", g, p, "--repeats", "2", "--warmup", "0",
                           "--bandwidth", "1e9", "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["unit"] == "us" and rep["k"] == 4 and len(rep["stages"]) == 4
    assert rep["bandwidth_bytes_per_s"] == 1e9 and rep["bandwidth_source"].startswith("given")
    assert rep["cost_model"] == "roofline" and rep["threads"] == 1 and rep["repeats"] == 2
    for key in ("predicted_bottleneck", "measured_bottleneck", "bottleneck_agrees",
                "predicted_bottleneck_value", "measured_bottleneck_value", "relative_error",
                "measured_at_predicted"):
        assert key in rep
    costs = stage_costs(inst, read_partition(p, inst))
    assert [s["predicted_total"] for s in rep["stages"]] == costs.total.tolist()
    for s in rep["stages"]:
        assert s["measured_transfer"] == pytest.approx(
            (s["bytes_in"] + s["bytes_out"]) / 1e9 * 1e6, rel=1e-12)


def read_partition(path: str, inst: Instance) -> Partition:
    from pipecert.partition_file import PartitionFile

    return PartitionFile.read(path).partition(inst)


def test_predicted_columns_are_stage_costs_and_measured_are_clock_times(
        gpt2_layer: tuple[str, str, Instance]) -> None:
    g, p, _ = gpt2_layer
    inst, part, staged, a, kw = export_for_bench(g, p)
    rep = bench_stages(inst, part, staged, a, kw, device="cpu", warmup=1, repeats=3,
                       bandwidth=2e9)
    costs = stage_costs(inst, part)
    assert rep.k == 4 and rep.unit == "us"
    assert [r.predicted_work for r in rep.rows] == costs.work.tolist()
    assert [r.predicted_transfer for r in rep.rows] == (costs.comm_in + costs.comm_out).tolist()
    assert [r.predicted_total for r in rep.rows] == costs.total.tolist()
    for r in rep.rows:
        assert math.isfinite(r.measured_compute) and r.measured_compute > 0
        assert r.measured_compute < 1e6  # microseconds: a tiny stage runs well under 1 s
        assert r.measured_total == pytest.approx(r.measured_compute + r.measured_transfer)
        assert (r.bytes_in, r.bytes_out) == staged.stage_bytes(r.stage)
        assert r.ratio == pytest.approx(r.measured_total / r.predicted_total)
        assert r.nodes == len(staged.boundary[r.stage].nodes)
    assert sum(r.nodes for r in rep.rows) == inst.n_nodes
    assert 0 <= rep.predicted_bottleneck < 4 and 0 <= rep.measured_bottleneck < 4
    assert rep.predicted_bottleneck == int(np.argmax(costs.total))
    assert rep.predicted_bottleneck_value == float(costs.total.max())
    assert rep.measured_bottleneck_value == max(r.measured_total for r in rep.rows)
    assert rep.measured_at_predicted == rep.rows[rep.predicted_bottleneck].measured_total
    assert rep.measured_at_predicted <= rep.measured_bottleneck_value
    assert rep.relative_error == pytest.approx(
        (rep.predicted_bottleneck_value - rep.measured_bottleneck_value)
        / rep.measured_bottleneck_value)
    d = rep.to_json()
    assert json.loads(json.dumps(d)) == d and d["bottleneck_agrees"] == rep.bottleneck_agrees
    with pytest.raises(InputError, match="repeats"):
        bench_stages(inst, part, staged, a, kw, repeats=0)
    with pytest.raises(InputError, match="bandwidth"):
        bench_stages(inst, part, staged, a, kw, bandwidth=-1.0)
    other = Partition(np.zeros(inst.n_nodes, dtype=int), 1)
    with pytest.raises(InputError, match="not this partition's"):
        bench_stages(inst, other, staged, a, kw, bandwidth=1e9)


def test_bad_input_is_one_line_exit_2(gpt2_layer: tuple[str, str, Instance], tmp_path: Path,
                                      capsys: Any) -> None:
    g, p, _ = gpt2_layer
    mlp = str(tmp_path / "mlp.json")
    code, _, err = _cli(["import-torch", "runtime.tiny_models:mlp", "-o", mlp], capsys)
    assert code == 0, err
    # the MLP at operator level with its own partition and an explicit factory
    mi = read_instance(mlp)
    write_partition(tmp_path / "mlp.part.json", chain_partition(mi, 3), mi)
    code, out, err = _cli(["bench-stages", mlp, str(tmp_path / "mlp.part.json"), "--factory",
                           "runtime.tiny_models:mlp", "--repeats", "2", "--bandwidth", "1e9",
                           "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["k"] == 3 and rep["info"]["level"] == "operator"
    assert rep["info"]["factory"] == "runtime.tiny_models:mlp"
    # a partition of another graph
    code, _, err = _cli(["bench-stages", mlp, p], capsys)
    assert code == 2 and "structure differs" in err and err.count("\n") == 1
    # bad counts and devices
    for extra, msg in ((["--repeats", "0"], "--repeats"), (["--threads", "0"], "--threads"),
                       (["--bandwidth", "0"], "--bandwidth"),
                       (["--device", "tpu"], "unknown device")):
        code, _, err = _cli(["bench-stages", g, p, *extra], capsys)
        assert code == 2 and msg in err and err.count("\n") == 1, (extra, err)
    # a graph not imported from PyTorch
    from instances import write_instance

    plain = Instance(["a", "b"], work=[1, 1], comm=[1, 0], edges=[("a", "b")])
    write_instance(plain, tmp_path / "plain.json")
    write_partition(tmp_path / "plain.part.json", Partition([0, 1], 2), plain)
    code, _, err = _cli(["bench-stages", str(tmp_path / "plain.json"),
                         str(tmp_path / "plain.part.json")], capsys)
    assert code == 2 and "not a graph imported from PyTorch" in err


@pytest.mark.skipif(torch.cuda.is_available(),
                    reason="checks the error when CUDA is missing; this machine has CUDA")
def test_cuda_without_cuda_is_one_line_exit_2(gpt2_layer: tuple[str, str, Instance],
                                              capsys: Any) -> None:
    g, p, _ = gpt2_layer
    code, out, err = _cli(["bench-stages", g, p, "--device", "cuda"], capsys)
    assert code == 2 and "CUDA is not available" in err and err.count("\n") == 1
    assert out == ""


def test_profiled_graph_runs_through_bench_stages(tmp_path: Path, capsys: Any) -> None:
    """A graph measured by `pipecert profile` predicts this machine's stage times."""
    g = str(tmp_path / "prof.json")
    code, _, err = _cli(["profile", "runtime.tiny_models:mlp", "--repeats", "3", "--warmup",
                         "1", "--threads", "1", "--bandwidth", "5e9", "-o", g], capsys)
    assert code == 0, err
    inst = read_instance(g)
    part = chain_partition(inst, 2)
    p = str(tmp_path / "p.json")
    write_partition(p, part, inst)
    code, out, err = _cli(["bench-stages", g, p, "--repeats", "5", "--bandwidth", "5e9",
                           "--json"], capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["cost_model"] == "measured" and rep["unit"] == "us" and rep["k"] == 2
    costs = stage_costs(inst, part)
    assert [s["predicted_work"] for s in rep["stages"]] == costs.work.tolist()
    for s in rep["stages"]:
        assert s["ratio"] is not None and math.isfinite(s["ratio"]) and s["ratio"] > 0
        # same bandwidth on both sides: the transfer terms price the same boundary bytes
        assert s["measured_transfer"] == pytest.approx(
            (s["bytes_in"] + s["bytes_out"]) / 5e9 * 1e6)
    assert rep["predicted_bottleneck"] in (0, 1) and rep["measured_bottleneck"] in (0, 1)
    assert math.isfinite(rep["relative_error"])
