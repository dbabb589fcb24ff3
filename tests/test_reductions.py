"""The exact graph reductions of :mod:`heuristics.downset_dp` (rules 1-4, to a fixpoint).

Oracle: brute force over all partitions (``pipecert.testing.brute_force``) on small
instances built to contain what the rules target: chains of zero-work weight sources
(parameter -> transpose -> consumer), zero-work pass-through ops (views, casts) with
growing, equal and shrinking tensors, zero-work fan-outs and precedence edges.
"""

import math

import numpy as np
import pytest

from heuristics import HEURISTICS
from heuristics.downset_dp import DownsetDP, lift_partition, reduce_instance
from pipecert.instance import Instance
from pipecert.partition import Partition, check_feasible, evaluate
from pipecert.results import Budget, Status
from pipecert.testing import brute_force, enumerate_partitions, random_dag

RNG = np.random.default_rng


def moe_like(seed: int, n_core: int = 4, n_extra: int = 5) -> Instance:
    """A random core DAG plus ``n_extra`` zero-work nodes in MoE-like patterns.

    Patterns: a weight source feeding a zero-work chain into a core node; a zero-work
    pass-through between two core nodes; a zero-work op fanning out to several core nodes;
    a zero-work node hanging off a core node with a precedence edge. Comm costs are drawn
    from a few values so that equal, growing and shrinking tensors all occur.
    """
    gen = RNG(seed)
    core = random_dag(gen, n_core, edge_prob=0.5, zero_prob=0.2)
    ids = list(core.ids)
    work = core.work.tolist()
    comm = core.comm.tolist()
    edges = [(core.ids[u], core.ids[v]) for u, v in zip(core.src, core.dst, strict=True)]
    prec: list[tuple[str, str]] = []
    topo = [core.ids[i] for i in core.topo_order]
    levels = [0.0, 1.0, 3.0, 3.0, 8.0]
    made = 0
    while made < n_extra:
        kind = int(gen.integers(0, 5))
        new = f"z{made}"
        c = float(gen.choice(levels))
        a, b = sorted(gen.choice(len(topo), size=2, replace=False).tolist())
        if kind == 0:  # weight -> zero-work chain -> consumer
            chain = [new] + ([f"z{made + 1}"] if made + 1 < n_extra else [])
            for j, x in enumerate(chain):
                ids.append(x)
                work.append(0.0)
                comm.append(c if j == 0 else float(gen.choice(levels)))
            edges += list(zip(chain, chain[1:], strict=False)) + [(chain[-1], topo[b])]
            made += len(chain)
            continue
        ids.append(new)
        work.append(0.0)
        comm.append(c)
        if kind == 1:  # pass-through u -> z -> t
            edges += [(topo[a], new), (new, topo[b])]
        elif kind == 2:  # zero-work fan-out from a core node
            edges += [(topo[a], new), (new, topo[b])]
            edges += [(new, t) for t in topo[b + 1:]][:2]
        elif kind == 3:  # zero-work source with several consumers
            edges += [(new, topo[a]), (new, topo[b])]
        else:  # pass-through with a precedence edge out of it
            edges += [(topo[a], new), (new, topo[b])]
            if b + 1 < len(topo):
                prec.append((new, topo[b + 1]))
        made += 1
    return Instance(ids, work, comm, edges, prec, name=f"moe_like_{seed}")


CASES = [moe_like(s) for s in range(60)]


def test_the_generator_produces_reducible_cases() -> None:
    removed = [inst.n_nodes - reduce_instance(inst)[0].n_nodes for inst in CASES]
    assert sum(r > 0 for r in removed) >= 50 and max(removed) >= 4


@pytest.mark.parametrize("k", [2, 3, 4])
def test_reductions_preserve_opt_and_every_lift_costs_the_same(k: int) -> None:
    for inst in CASES:
        red, kept, host = reduce_instance(inst)
        opt, _ = brute_force(inst, k)
        opt_red, part_red = brute_force(red, k)
        assert math.isclose(opt, opt_red, abs_tol=1e-9), (inst.name, k)
        # every feasible partition of the reduced instance lifts to a feasible one of
        # the original instance with the same bottleneck (checked on a sample)
        rows = enumerate_partitions(red, k)
        for r in RNG(0).choice(len(rows), size=min(40, len(rows)), replace=False):
            p_red = Partition(rows[r].astype(np.int64), k)
            lifted = lift_partition(inst, kept, host, p_red.stage_of, k)
            assert not check_feasible(inst, lifted, k=k)
            assert math.isclose(evaluate(inst, lifted), evaluate(red, p_red),
                                abs_tol=1e-9), (inst.name, k, rows[r])


def test_downset_dp_with_fixpoint_reductions_is_optimal() -> None:
    for inst in CASES[:30]:
        for k in (2, 3):
            res = DownsetDP().solve(inst, k, Budget(), RNG(0))
            assert res.status == Status.OPTIMAL
            assert not check_feasible(inst, res.partition, k=k)
            assert math.isclose(evaluate(inst, res.partition), brute_force(inst, k)[0],
                                abs_tol=1e-9)


def test_weight_behind_a_transpose_joins_its_consumer_through_the_chain() -> None:
    # W -> T1 -> T2 -> mm: the iterated rule 1 removes W, T1 and T2; hosts resolve to mm
    inst = Instance(["x", "W", "T1", "T2", "mm", "y"], work=[1, 0, 0, 0, 5, 1],
                    comm=[1, 50, 50, 50, 1, 1],
                    edges=[("W", "T1"), ("T1", "T2"), ("T2", "mm"), ("x", "mm"), ("mm", "y")])
    red, kept, host = reduce_instance(inst)
    assert [red.ids[i] for i in range(red.n_nodes)] == ["x", "mm", "y"]
    mm = inst.index["mm"]
    assert all(host[inst.index[v]] == mm for v in ("W", "T1", "T2"))
    for k in (2, 3):
        assert brute_force(red, k)[0] == brute_force(inst, k)[0]


def test_lift_partition_follows_unresolved_host_chains() -> None:
    inst = Instance(["W", "T", "mm"], work=[0, 0, 4], comm=[9, 9, 1],
                    edges=[("W", "T"), ("T", "mm")])
    kept = np.array([2])
    host = np.array([1, 2, 2])  # W -> T -> mm, as one application at a time records it
    lifted = lift_partition(inst, kept, host, np.array([1]), 2)
    assert lifted.stage_of.tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="neither kept nor hosted"):
        lift_partition(inst, kept, np.array([0, 2, 2]), np.array([1]), 2)


def test_pass_through_rules_respect_the_comm_direction() -> None:
    # a -> v -> b with w(v) = 0 and v the only consumer of a: v joins b if its tensor is
    # at least a's (rule 3), joins a and a then sends v's tensor if smaller (rule 4)
    for cv, joins in ((5.0, "b"), (2.0, "a")):
        inst = Instance(["a", "v", "b"], work=[3, 0, 3], comm=[4, cv, 1],
                        edges=[("a", "v"), ("v", "b")])
        red, kept, host = reduce_instance(inst)
        assert red.n_nodes == 2 and host[1] == inst.index[joins]
        assert red.comm[red.index["a"]] == min(4.0, cv)
        assert brute_force(red, 2)[0] == brute_force(inst, 2)[0]
    # a has a second consumer and v's tensor is smaller: neither rule applies (moving v
    # to a's stage could add v's charge there while a still pays its own)
    inst = Instance(["a", "v", "b", "c"], work=[3, 0, 3, 3], comm=[4, 2, 1, 1],
                    edges=[("a", "v"), ("v", "b"), ("a", "c")])
    assert reduce_instance(inst)[0].n_nodes == 4


def test_chain_contraction_counterexample_is_not_reduced() -> None:
    # the module docstring's counterexample: u -> v with positive work on both
    inst = Instance(["u", "v"], work=[10, 10], comm=[1, 0], edges=[("u", "v")])
    assert reduce_instance(inst)[0] is inst
    assert brute_force(inst, 2)[0] == 11.0


@pytest.mark.parametrize("name", ["dfs_order", "bfs_order", "input_order"])
def test_single_order_baselines_on_the_reduced_instance(name: str) -> None:
    for inst in CASES[:30]:
        for k in (2, 3):
            out = HEURISTICS.make(f"{name}[reduce=true]").run(inst, k, Budget(), 0)
            assert out.partition is not None and not check_feasible(inst, out.partition, k=k)
            # the reduced slicing's value is the lifted partition's value
            assert math.isclose(out.value, out.stats["slice_value"], abs_tol=1e-9)
            assert out.value >= brute_force(inst, k)[0] - 1e-9

