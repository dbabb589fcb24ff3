"""Timings of the upper-bound kernels (pytest-benchmark).

Run with::

    pytest -o addopts="" tests/bench/test_bench_heuristics.py --benchmark-only

Algorithm 1 (one slicing of a good order), the decoder (one random-key chromosome: sort +
slice), one BRKGA generation (population 100), the down-set DP and the tube search, on generated
operator-like graphs (comm-heavy: chains of layers, zero-work weight sources, skip edges) up
to 10,000 nodes and on real graphs from ../shared/instances. Figures are quoted in the README
section "Upper bounds".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from heuristics.brkga import brkga_search
from heuristics.decoder import decode_batch, dfs_order
from heuristics.downset_dp import DownsetDP
from heuristics.slicing import slice_order, slice_value
from instances.generators import layered_dag
from instances.io import read_instance
from pipecert.instance import Instance
from pipecert.results import Budget

SHARED = Path(os.environ.get("PIPECERT_SHARED", Path(__file__).resolve().parents[3] / "shared")
              ) / "instances"
REAL = {
    "resnet50-177": "pipedream/image_classification/resnet50.graph.txt",
    "nasnetalarge-1251": "pipedream/image_classification/nasnetalarge.graph.txt",
    "inceptionv3-inf-326": "dnn-partitioning/LayerGraphs/inceptionv3_inference.json",
    "resnet50-training-354": "dnn-partitioning/LayerGraphs/resnet50_training.json",
}


def operator_graph(n: int) -> Instance:
    """A comm-heavy operator-like graph (comm = 8 x work, 30% zero-work weight nodes)."""
    return layered_dag(n, rng=0, width=1.5, comm_work_ratio=8.0, weight_fraction=0.3,
                       skip_prob=0.2)


@pytest.fixture(scope="module")
def graphs() -> dict[str, Instance]:
    out = {f"op-{n}": operator_graph(n) for n in (500, 1000, 2000, 5000, 10000)}
    for key, rel in REAL.items():
        out[key] = read_instance(str(SHARED / rel))
    return out


@pytest.mark.parametrize("k", [8, 16, 64])
@pytest.mark.parametrize("name", ["op-500", "op-1000", "op-2000", "op-5000", "op-10000",
                                  "nasnetalarge-1251"])
def test_bench_algorithm1(benchmark, graphs, name: str, k: int) -> None:  # noqa: ANN001
    inst = graphs[name]
    order = dfs_order(inst)
    slice_order(inst, order, k)  # compile / load the cache
    val, cuts = benchmark(slice_order, inst, order, k, check=False)
    benchmark.extra_info.update(n=inst.n_nodes, k=k, value=val)
    assert np.isfinite(val)


@pytest.mark.parametrize("k", [16, 64])
@pytest.mark.parametrize("name", ["op-2000", "nasnetalarge-1251"])
def test_bench_algorithm1_value_only(benchmark, graphs, name: str, k: int) -> None:  # noqa: ANN001
    inst = graphs[name]
    order = dfs_order(inst)
    val = benchmark(slice_value, inst, order, k)
    assert np.isfinite(val)


@pytest.mark.parametrize("k", [16, 64])
@pytest.mark.parametrize("name", ["op-1000", "op-2000", "op-10000", "nasnetalarge-1251"])
def test_bench_decoder(benchmark, graphs, name: str, k: int) -> None:  # noqa: ANN001
    inst = graphs[name]
    keys = np.random.default_rng(0).random((1, inst.n_nodes))
    decode_batch(inst, keys, k)
    vals = benchmark(decode_batch, inst, keys, k)
    benchmark.extra_info.update(n=inst.n_nodes, k=k)
    assert np.isfinite(vals[0])


@pytest.mark.parametrize("name", ["op-1000", "nasnetalarge-1251"])
def test_bench_brkga_generation(benchmark, graphs, name: str) -> None:  # noqa: ANN001
    """Two generations of population 100 (the first unpruned, the second pruned)."""
    inst = graphs[name]

    def two_generations() -> float:
        _, val, _, _, _ = brkga_search(inst, 16, Budget(), np.random.default_rng(0),
                                       population=100, generations=2)
        return val

    val = benchmark.pedantic(two_generations, rounds=2, iterations=1)
    assert np.isfinite(val)


@pytest.mark.parametrize("k", [2, 16, 64])
@pytest.mark.parametrize("name", ["resnet50-177", "inceptionv3-inf-326"])
def test_bench_downset_dp(benchmark, graphs, name: str, k: int) -> None:  # noqa: ANN001
    inst = graphs[name]
    method = DownsetDP()

    def solve() -> str:
        return str(method.solve(inst, k, Budget(), np.random.default_rng(0)).status)

    status = benchmark.pedantic(solve, rounds=1, iterations=1, warmup_rounds=1)
    assert status == "optimal"


@pytest.mark.parametrize(("name", "k"), [("op-500", 8), ("op-500", 32), ("op-2000", 16),
                                         ("resnet50-training-354", 32)])
def test_bench_tube_search(benchmark, graphs, name: str, k: int) -> None:  # noqa: ANN001
    """The brkga polish's tube search (widths 1..4, 50,000 down-sets) from the DFS slicing."""
    from heuristics.brkga import TUBE_MAX_IDEALS, TUBE_MAX_WIDTH
    from heuristics.tube import tube_search
    from pipecert.partition import Partition

    inst = graphs[name]
    if inst.constraints:  # a training graph: start from the feasible unit-order slicing
        from heuristics.downset_dp import slice_units

        got = slice_units(inst, k)
        assert got is not None
        start_val, start = got
    else:
        order = dfs_order(inst)
        start_val, cuts = slice_order(inst, order, k)
        start = Partition.from_slices(order, cuts.tolist(), k)
    tube_search(inst, start, k, width=0, max_width=0, max_ideals=100)  # compile / load
    part, st = benchmark.pedantic(
        tube_search, args=(inst, start, k),
        kwargs={"width": 1, "max_width": TUBE_MAX_WIDTH, "max_ideals": TUBE_MAX_IDEALS},
        rounds=1, iterations=1)
    benchmark.extra_info.update(n=inst.n_nodes, k=k, start=start_val, value=st["tube_after"],
                                rounds=st["tube_rounds"], ideals=st["tube_ideals"],
                                stop=st["tube_stop"])
