"""Synthetic generators: determinism, exact sizes, target ratios, both regimes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instances.generators import layered_dag, regal_like, regal_like_set
from pipecert import InputError, Partition, evaluate


@pytest.mark.parametrize("gen", [lambda s: layered_dag(200, rng=s, weight_fraction=0.3),
                                 lambda s: regal_like(rng=s)])
def test_same_seed_same_instance_different_seed_different(gen):
    assert gen(7) == gen(7)
    assert gen(7) != gen(8)
    assert gen(np.random.default_rng(7)) == gen(np.random.default_rng(7))


def test_generators_require_a_seed():
    with pytest.raises(InputError, match="seed"):
        layered_dag(10, rng=None)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 400),
    width=st.floats(1, 12),
    skip=st.floats(0, 1),
    ratio=st.sampled_from([0.0, 0.05, 1.0, 3.0, 12.0]),
    wf=st.sampled_from([0.0, 0.2, 0.5]),
    seed=st.integers(0, 2**32),
)
def test_layered_dag_size_ratio_and_shape(n, width, skip, ratio, wf, seed):
    inst = layered_dag(n, rng=seed, width=width, skip_prob=skip, comm_work_ratio=ratio,
                       weight_fraction=wf)
    assert inst.n_nodes == n
    # ids are a topological order, so the input order is the cached order
    assert np.all(inst.src < inst.dst)
    if inst.n_edges and inst.total_work > 0:
        if ratio == 0:
            assert inst.total_comm == 0
        else:  # hit up to the rounding to 4 significant digits
            assert inst.comm_work_ratio == pytest.approx(ratio, rel=2e-3)
    # only the last layer's operator nodes (the last ones in order) have no consumer
    sinks = np.flatnonzero(inst.out_degree == 0)
    ops = np.flatnonzero([t == "op" for t in inst.op_types])
    assert sinks.size >= 1
    assert np.array_equal(sinks, ops[ops.size - sinks.size:])
    assert sinks.size <= max(1, round(width * 1.5))


def test_operator_like_graph_has_zero_work_weight_sources():
    inst = layered_dag(1000, rng=3, weight_fraction=0.4, comm_work_ratio=10.0)
    w = np.array([t == "weight" for t in inst.op_types])
    assert w.sum() == 400
    assert np.all(inst.work[w] == 0) and np.all(inst.comm[w] > 0)
    indeg = np.bincount(inst.dst, minlength=inst.n_nodes)
    assert np.all(indeg[w] == 0) and np.all(inst.out_degree[w] == 1)
    assert inst.comm_work_ratio == pytest.approx(10.0, rel=1e-3)


def test_regimes_show_in_the_cost_of_a_cut():
    """Compute-heavy: a balanced 2-way cut nearly halves the bottleneck; comm-heavy: the
    cut's communication makes splitting barely worth it."""
    for ratio, lo, hi in ((0.02, 0.45, 0.6), (5.0, 0.6, 3.0)):
        inst = layered_dag(400, rng=11, width=3, comm_work_ratio=ratio)
        one = evaluate(inst, Partition(np.zeros(inst.n_nodes, dtype=int), 1))
        cw = np.cumsum(inst.work)
        cut = int(np.searchsorted(cw, cw[-1] / 2))
        two = evaluate(inst, Partition((np.arange(inst.n_nodes) > cut).astype(int), 2))
        assert lo * one <= two <= hi * one


def test_regal_like_matches_spec_section_9():
    for seed in range(20):
        inst = regal_like(rng=seed)
        assert 50 <= inst.n_nodes <= 300
        for arr in (inst.work, inst.comm):
            assert np.all(arr == np.round(arr)) and arr.min() >= 1 and arr.max() <= 100
        assert np.any(inst.out_degree >= 2)  # some multi-consumer nodes
        assert np.all(inst.src < inst.dst)
    assert regal_like(120, rng=1).n_nodes == 120


def test_regal_like_set_has_distinct_topologies():
    insts = regal_like_set(12, rng=0, n_range=(50, 60))
    hashes = {i.structure_fingerprint for i in insts}
    assert len(hashes) == 12


def test_generator_parameter_errors():
    with pytest.raises(InputError):
        layered_dag(0, rng=1)
    with pytest.raises(InputError):
        layered_dag(10, rng=1, skip_prob=2.0)
    with pytest.raises(InputError):
        layered_dag(10, rng=1, comm_work_ratio=-1)


def test_metadata_records_generator_and_seed():
    inst = layered_dag(50, rng=42, comm_work_ratio=2.0)
    gen = inst.metadata["generator"]
    assert gen["name"] == "layered_dag" and gen["seed"] == 42
    assert gen["params"]["comm_work_ratio"] == 2.0
    assert layered_dag(rng=gen["seed"], **gen["params"]) == inst
