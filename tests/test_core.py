"""The core model: Instance validation, the reference cost function, feasibility."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipecert import (
    InputError,
    Instance,
    InstanceError,
    Partition,
    block_cost,
    check_feasible,
    evaluate,
    stage_costs,
    validate_k,
)
from pipecert.testing import brute_force, random_dag, worked_example


# Worked example of docs/theory/problem.md#worked-example:
#   node |  a  b  c  d  e
#   w    |  2  4  3  2  1
#   c    |  3  1  2  1  5      edges a->b a->c b->d c->d d->e a->e
def test_worked_example_singleton_costs():
    inst = worked_example()
    assert [block_cost(inst, [i]) for i in range(5)] == [5, 8, 8, 6, 5]
    assert block_cost(inst, np.ones(5, bool)) == 12


@pytest.mark.parametrize("k,opt", [(1, 12), (2, 10), (3, 10)])
def test_worked_example_optimum(k, opt):
    assert brute_force(worked_example(), k)[0] == opt


def test_worked_example_stage_breakdown():
    inst = worked_example()
    p = Partition.from_stages(inst, [["a", "b"], ["c", "d", "e"]])
    sc = stage_costs(inst, p)
    # {a,b}: work 6, out a (3) + b (1); {c,d,e}: work 6, in a (3) + b (1)
    assert sc.work.tolist() == [6, 6]
    assert sc.comm_out.tolist() == [4, 0]
    assert sc.comm_in.tolist() == [0, 4]
    assert evaluate(inst, p) == 10


def test_order_acbde_slices_cost_12_at_k2():
    inst = worked_example()
    p = Partition.from_stages(inst, [["a", "c"], ["b", "d", "e"]])
    assert stage_costs(inst, p).total.tolist() == [10, 12]


def test_skip_edge_charges_only_endpoints():
    inst = Instance(["a", "b", "c"], [1, 1, 1], [5, 7, 0], [("a", "b"), ("b", "c"), ("a", "c")])
    sc = stage_costs(inst, Partition([0, 1, 2], 3))
    # a pays out once (5); b receives a (5) and sends b (7); c receives a and b once each
    assert sc.total.tolist() == [6, 13, 13]


def test_precedence_edges_order_but_carry_no_cost():
    inst = Instance(["a", "b"], [1, 1], [5, 5], precedence_edges=[("a", "b")])
    assert evaluate(inst, Partition([0, 1], 2)) == 1
    assert check_feasible(inst, Partition([1, 0], 2)) == [
        "precedence edge 'a' -> 'b' goes backward (stage 1 -> 0)"
    ]


def _hand_cost(inst: Instance, stage_of: np.ndarray, k: int) -> float:
    best = 0.0
    for b in range(k):
        s = {v for v in range(inst.n_nodes) if stage_of[v] == b}
        cost = sum(inst.work[v] for v in s)
        prod_in = {u for u, v in zip(inst.src, inst.dst) if u not in s and v in s}
        prod_out = {u for u, v in zip(inst.src, inst.dst) if u in s and v not in s}
        cost += sum(inst.comm[u] for u in prod_in) + sum(inst.comm[u] for u in prod_out)
        best = max(best, cost)
    return best


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 9), k=st.integers(1, 5),
       regime=st.sampled_from(["mixed", "compute", "comm"]))
def test_evaluate_matches_hand_computation(seed, n, k, regime):
    rng = np.random.default_rng(seed)
    inst = random_dag(rng, n, regime=regime, integer=False)
    stage_of = rng.integers(0, k, size=n)
    got = evaluate(inst, Partition(stage_of, k))
    want = _hand_cost(inst, stage_of, k)
    assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 7))
def test_opt_is_monotone_in_k(seed, n):
    inst = random_dag(np.random.default_rng(seed), n)
    vals = [brute_force(inst, k)[0] for k in (1, 2, 3)]
    assert vals[0] >= vals[1] >= vals[2]
    assert vals[0] == pytest.approx(inst.total_work)


def test_brute_force_partition_is_feasible_and_optimal():
    for seed in range(30):
        inst = random_dag(seed, 7, precedence_prob=0.1)
        opt, part = brute_force(inst, 3)
        assert check_feasible(inst, part) == []
        assert evaluate(inst, part) == opt


def test_evaluate_100k_nodes_is_vectorized():
    rng = np.random.default_rng(0)
    n = 100_000
    src = rng.integers(0, n - 1, size=2 * n)
    dst = src + rng.integers(1, 50, size=2 * n)
    keep = dst < n
    inst = Instance.from_arrays([f"v{i}" for i in range(n)], rng.random(n), rng.random(n),
                                src[keep], dst[keep])
    p = Partition(np.minimum(np.arange(n) * 64 // n, 63), 64)
    assert check_feasible(inst, p) == []
    assert evaluate(inst, p) > 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(nodes=[], work=[], comm=[]), "no nodes"),
        (dict(nodes=["a", "a"], work=[1, 1], comm=[1, 1]), "duplicate node id 'a'"),
        (dict(nodes=["a"], work=[float("nan")], comm=[1]), "node 'a' has NaN work"),
        (dict(nodes=["a"], work=[1], comm=[float("inf")]), "node 'a' has infinite comm"),
        (dict(nodes=["a"], work=[-1], comm=[1]), "node 'a' has negative work"),
        (dict(nodes=["a"], work=[1], comm=[1], edges=[("a", "z")]), "unknown node 'z'"),
        (dict(nodes=["a"], work=[1], comm=[1], edges=[("a", "a")]), "self-loop"),
        (dict(nodes=["a", "b", "c"], work=[1] * 3, comm=[1] * 3,
              edges=[("a", "b"), ("b", "c"), ("c", "b")]), "cycle: 'b' -> 'c' -> 'b'"),
        (dict(nodes=["a", "b"], work=[1], comm=[1, 1]), "work has 1 values for 2 nodes"),
    ],
)
def test_invalid_instances_raise_one_clear_error(kwargs, match):
    with pytest.raises(InstanceError, match=match):
        Instance(**kwargs, source="g.json")
    try:
        Instance(**kwargs, source="g.json")
    except InstanceError as exc:
        assert str(exc).startswith("g.json: ") and "\n" not in str(exc)


def test_duplicate_edges_are_merged():
    inst = Instance(["a", "b"], [1, 1], [1, 1], [("a", "b"), ("a", "b")], [("a", "b")])
    assert inst.n_edges == 1 and inst.n_precedence_edges == 0


@pytest.mark.parametrize("k", [0, -1, 1.5, "2", True])
def test_invalid_k(k):
    with pytest.raises(InputError, match="k must be"):
        validate_k(k)


def test_topological_order_respects_all_edges():
    inst = random_dag(3, 30, precedence_prob=0.2)
    pos = np.empty(inst.n_nodes, int)
    pos[inst.topo_order] = np.arange(inst.n_nodes)
    assert np.all(pos[inst.all_src] < pos[inst.all_dst])


def test_partition_from_stages_errors():
    inst = worked_example()
    with pytest.raises(InputError, match="in no stage"):
        Partition.from_stages(inst, [["a"]])
    with pytest.raises(InputError, match="unknown node 'x'"):
        Partition.from_stages(inst, [["a", "b", "c", "d", "e", "x"]])
    with pytest.raises(InputError, match="in stages 0 and 1"):
        Partition.from_stages(inst, [["a", "b", "c", "d", "e"], ["a"]])


def test_units_fingerprints_and_overflow() -> None:
    import pytest

    from pipecert.errors import InstanceError

    a = Instance(["a", "b"], work=[1.0, 2.0], comm=[3.0, 0.0], edges=[("a", "b")],
                 metadata={"units": {"work": "ms", "comm": "ms", "memory": "bytes"}})
    assert a.units == {"work": "ms", "comm": "ms", "memory": "bytes"}
    assert a.time_unit == "ms" and a.memory_unit == "bytes"
    b = a.replace(work=[1.0, 2.5], metadata={})
    assert b.units["work"] == "unspecified"
    assert a.structure_fingerprint == b.structure_fingerprint
    assert a.fingerprint != b.fingerprint
    c = a.replace(dst=[0], src=[1])
    assert c.structure_fingerprint != a.structure_fingerprint
    with pytest.raises(InstanceError, match="overflow"):
        Instance(["a", "b"], work=[1.7e308, 1.7e308], comm=[0.0, 0.0])
