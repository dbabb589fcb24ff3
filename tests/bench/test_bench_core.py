"""Load and evaluate timings on the largest graphs (pytest-benchmark).

Run with::

    pytest -o addopts="" tests/bench/test_bench_core.py --benchmark-only

(the default options skip benchmarks). Figures are quoted in the README section
"Formats and bundled data".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instances import load_bundled, read_instance, write_instance
from instances.generators import layered_dag
from pipecert import Partition, evaluate, stage_costs

LARGEST = {
    "pipedream-nasnetalarge-1251": "pipedream/image_classification/nasnetalarge.graph.txt",
    "dnn-inceptionv3-training-652": "dnn-partitioning/LayerGraphs/inceptionv3_training.json",
    "bundled-operator-3000": "default/operator-3000",
    "bundled-compute-3000": "default/compute-3000",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bench")
    op = layered_dag(2000, rng=1, comm_work_ratio=10.0, weight_fraction=0.45)
    big = layered_dag(100_000, rng=2, width=50, comm_work_ratio=1.0)
    out = {"dnn-operator-2000": d / "op2000.json", "native-100k": d / "big.json.gz"}
    write_instance(op, out["dnn-operator-2000"], format="dnn-partitioning")
    write_instance(big, out["native-100k"])
    return out


def _load(key: str, shared: Path, generated: dict[str, Path]):
    if key in generated:
        return lambda: read_instance(generated[key])
    spec = LARGEST[key]
    if spec.startswith("default/"):
        return lambda: load_bundled(spec)
    return lambda: read_instance(shared / spec)


KEYS = [*LARGEST, "dnn-operator-2000", "native-100k"]


@pytest.mark.parametrize("key", KEYS)
def test_bench_load(benchmark, key, shared_instances, generated):
    load = _load(key, shared_instances, generated)
    inst = benchmark.pedantic(load, rounds=5, iterations=1, warmup_rounds=1)
    assert inst.n_nodes >= 600


@pytest.mark.parametrize("key", KEYS)
def test_bench_evaluate_k8(benchmark, key, shared_instances, generated):
    inst = _load(key, shared_instances, generated)()
    order = inst.topo_order
    cuts = np.linspace(0, inst.n_nodes, 9).astype(int)[1:-1]
    part = Partition.from_slices(order, cuts.tolist(), 8)
    value = benchmark(evaluate, inst, part)
    assert value == pytest.approx(stage_costs(inst, part).bottleneck)
