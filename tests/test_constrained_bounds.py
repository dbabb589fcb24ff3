"""Every lower bound on every constrained variant it claims, vs brute force (docs/constraints.md).

For every registered formulation (and the option variants whose validity arguments differ:
prefix cuts and symmetry rows, the assign form, Guess's min variant, the path bound without
the pair split) and every instance of a pool of small constrained graphs:

* a variant the method neither handles nor relaxes is ``unsupported`` (with a reason);
* otherwise ``bound <= OPT`` (``pipecert.testing.brute_force``, which enforces ordering edges
  only, co-location groups and the memory cap) within the framework's tolerance, for every
  ``k`` in ``1..n+1``; an ``infeasible`` answer only when brute force finds no partition;
* an ``exact`` method that reports ``optimal`` equals OPT (within its documented margin).

The pool: ``random_training_dag`` (forward chain with skips, mirrored backward nodes in the
forward node's group, data-only gradient and stash edges) with memory caps None / loose /
binding / tight, orphan layers, the three cost regimes, integer and float costs, and cost
ratios of 1e-9 and 1e9; ``random_dag`` with random co-location groups, a memory cap and
precedence edges.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from formulations import FORMULATIONS
from formulations.best import Best
from formulations.path_bound import PathBound
from pipecert.instance import Instance
from pipecert.results import Budget, Status
from pipecert.testing import (
    assert_bound_valid,
    brute_force,
    make_formulation,
    meets_optimum,
    random_dag,
    random_training_dag,
)

EXTRA_SPECS = (
    "exact_mip[prefix_cuts=True,symmetry=True]",
    "exact_mip[form=assign]",
    "guess[variant=min]",
    "path_bound[pairs=0]",
)
SPECS = tuple(n for n in FORMULATIONS.names()) + EXTRA_SPECS
N_TRAINING = 28
N_GROUPED = 10
TIME_LIMIT_S = 30.0


def _extreme(inst: Instance, rng: np.random.Generator, ratio: float) -> Instance:
    """Some costs multiplied by ``ratio`` (1e-9 or 1e9): extreme cost ranges."""
    w = np.asarray(inst.work, dtype=float).copy()
    c = np.asarray(inst.comm, dtype=float).copy()
    w[rng.random(w.size) < 0.4] *= ratio
    c[rng.random(c.size) < 0.4] *= ratio
    return inst.replace(work=w, comm=c, name=f"{inst.name}-x{ratio:g}")


@cache
def training_case(i: int) -> Instance:
    """The i-th random training graph of the pool (deterministic)."""
    rng = np.random.default_rng(1000 + i)
    layers = 1 + i % 4
    memory = (None, "loose", "binding", "tight")[(i // 4) % 4]
    regime = ("mixed", "comm", "compute")[i % 3]
    inst = random_training_dag(rng, layers, memory=memory, regime=regime,
                               integer=bool(i % 2), orphan_prob=0.4 if i % 5 == 0 else 0.0,
                               name=f"training{i}")
    if i % 7 == 3:
        inst = _extreme(inst, rng, 1e-9)
    elif i % 7 == 5:
        inst = _extreme(inst, rng, 1e9)
    return inst


@cache
def grouped_case(i: int) -> Instance:
    """The i-th random DAG with random co-location groups (and memory every other one)."""
    rng = np.random.default_rng(2000 + i)
    n = 4 + i % 4
    inst = random_dag(rng, n, regime=("mixed", "comm", "compute")[i % 3], integer=bool(i % 2),
                      precedence_prob=0.15, memory=True, name=f"grouped{i}")
    groups = rng.integers(-1, max(2, n // 2), size=n)
    cap = None
    if i % 2 == 0:
        mem = np.asarray(inst.memory, dtype=float)
        cap = float(mem.max() + rng.uniform(0.3, 0.7) * (mem.sum() - mem.max()))
    return inst.replace(groups=groups, memory_limit=cap)


@cache
def opt(kind: str, i: int, k: int) -> float:
    inst = training_case(i) if kind == "training" else grouped_case(i)
    return brute_force(inst, k)[0]


def _claims(method: object, inst: Instance) -> bool:
    have = set(type(method).handles) | set(type(method).relaxes)  # type: ignore[attr-defined]
    return set(inst.constraints) <= have


def _check(spec: str, kind: str, i: int) -> int:
    inst = training_case(i) if kind == "training" else grouped_case(i)
    method = make_formulation(spec)
    checked = 0
    for k in range(1, inst.n_nodes + 2):
        where = f"{spec} on {inst.name} ({sorted(inst.constraints)}, k={k})"
        out = method.run(inst, k, Budget(time_limit_s=TIME_LIMIT_S), raise_errors=True)
        if not _claims(method, inst):
            assert out.status is Status.UNSUPPORTED and out.error, where
            continue
        assert out.status not in (Status.UNSUPPORTED, Status.ERROR), f"{where}: {out.error}"
        best = opt(kind, i, k)
        if out.status is Status.INFEASIBLE:
            assert math.isinf(best), f"{where}: infeasible, but brute force finds {best}"
            continue
        if math.isinf(best):
            assert out.status is not Status.OPTIMAL, f"{where}: optimal on an infeasible case"
            continue
        assert_bound_valid(out.bound, best, where)
        if getattr(method, "exact", False) and out.status is Status.OPTIMAL:
            assert out.bound is not None and meets_optimum(out.bound, best, out.stats), \
                f"{where}: exact method reports optimal {out.bound}, OPT is {best}"
        checked += 1
    return checked


#: ``best`` is the maximum of the others (each checked on the whole pool): every 3rd case
STRIDE = {"best": 3}


@pytest.mark.parametrize("spec", SPECS)
def test_bounds_valid_on_training_graphs(spec: str) -> None:
    step = STRIDE.get(spec, 1)
    checked = sum(_check(spec, "training", i) for i in range(0, N_TRAINING, step))
    assert checked > 0


@pytest.mark.parametrize("spec", SPECS)
def test_bounds_valid_with_random_groups(spec: str) -> None:
    step = STRIDE.get(spec, 1)
    checked = sum(_check(spec, "grouped", i) for i in range(0, N_GROUPED, step))
    assert checked > 0


def test_pool_covers_the_variants() -> None:
    seen = {frozenset(training_case(i).constraints) for i in range(N_TRAINING)}
    seen |= {frozenset(grouped_case(i).constraints) for i in range(N_GROUPED)}
    assert frozenset({"groups", "data_only_edges", "memory"}) in seen
    assert frozenset({"groups", "data_only_edges"}) in seen
    assert frozenset({"groups", "memory"}) in seen
    assert any(math.isinf(opt("training", i, 1)) for i in range(N_TRAINING))


def test_every_formulation_supports_every_variant() -> None:
    """Each bound takes data-only edges, handles or relaxes groups/memory (docs/constraints.md)."""
    for name in FORMULATIONS.names():
        cls = FORMULATIONS.get(name)
        have = set(cls.handles) | set(cls.relaxes)
        assert {"groups", "memory", "data_only_edges"} <= have, name
        assert "data_only_edges" not in cls.relaxes, name  # never a relaxation


def test_exact_mip_is_exact_on_the_constrained_problem() -> None:
    cls = FORMULATIONS.get("exact_mip")
    assert cls.exact and cls.handles == frozenset({"groups", "memory", "data_only_edges"})
    inst = training_case(10)  # binding memory, groups, data-only edges
    assert inst.constraints == frozenset({"groups", "memory", "data_only_edges"})
    for k in (2, 3):
        best = opt("training", 10, k)
        out = make_formulation("exact_mip").run(inst, k, Budget(time_limit_s=30),
                                                raise_errors=True)
        if math.isinf(best):
            continue
        assert out.status is Status.OPTIMAL and meets_optimum(out.bound, best, out.stats)
        assert out.partition is None or abs(out.incumbent - best) <= 1e-6 * max(1, best)


def test_unclaimed_variant_is_unsupported_and_best_skips_it(monkeypatch) -> None:
    """A bound that does not claim data-only edges is unsupported on a training graph, and
    ``best`` skips it (listed in stats['skipped'], not an error)."""
    inst = training_case(1)
    assert "data_only_edges" in inst.constraints
    monkeypatch.setattr(PathBound, "handles", frozenset({"groups"}))
    out = make_formulation("path_bound").run(inst, 2, Budget(time_limit_s=10))
    assert out.status is Status.UNSUPPORTED and "path_bound" in (out.error or "")
    res = Best(methods=("combinatorial", "path_bound", "node_bound")).run(
        inst, 2, Budget(time_limit_s=10), raise_errors=True)
    assert res.status is not Status.UNSUPPORTED and res.bound is not None
    assert "path_bound" in res.stats["skipped"]
    assert not res.stats["errors"]
    assert [r["method"] for r in res.stats["runs"]] == ["combinatorial", "node_bound"]


def test_best_runs_on_every_variant() -> None:
    for i in range(0, N_TRAINING, 5):
        inst = training_case(i)
        for k in (1, 2, 3):
            best = opt("training", i, k)
            out = Best().run(inst, k, Budget(time_limit_s=20), raise_errors=True)
            assert out.status is not Status.UNSUPPORTED, out.error
            if math.isinf(best):
                assert out.status is not Status.OPTIMAL
                continue
            assert_bound_valid(out.bound, best, f"best on {inst.name} k={k}")
            assert not out.stats.get("errors"), out.stats.get("errors")


def test_memory_cap_strengthens_the_path_bound() -> None:
    """A run whose units exceed the cap cannot be one block: the bound sees a binding cap."""
    ids = [f"v{i}" for i in range(4)]
    edges = [("v0", "v1"), ("v1", "v2"), ("v2", "v3")]
    base = Instance(ids, [1.0, 1.0, 1.0, 3.0], [0.0] * 4, edges, memory=[2.0, 1.0, 1.0, 1.0])
    loose = make_formulation("path_bound").run(base, 2, Budget(time_limit_s=10))
    assert loose.bound == pytest.approx(3.0)  # {v0, v1, v2} | {v3}
    capped = base.replace(memory_limit=3.0)  # {v0, v1, v2} needs 4 > 3
    out = make_formulation("path_bound").run(capped, 2, Budget(time_limit_s=10))
    assert brute_force(capped, 2)[0] == pytest.approx(4.0)
    assert out.bound == pytest.approx(4.0)  # {v0, v1} | {v2, v3}
    tight = Instance(ids, [1.0] * 4, [0.0] * 4, edges, memory=[1.0] * 4, memory_limit=1.5)
    # one node per stage, 3 stages, 4 nodes (total 4 <= 3 x 1.5: only the runs prove it)
    assert math.isinf(brute_force(tight, 3)[0])
    out3 = make_formulation("path_bound").run(tight, 3, Budget(time_limit_s=10))
    assert out3.status is Status.INFEASIBLE and "memory" in (out3.error or "")


def test_groups_strengthen_the_node_bound() -> None:
    """A unit shares its block: the node bound anchors the whole unit."""
    ids = ["a", "b", "c"]
    base = Instance(ids, [5.0, 1.0, 5.0], [0.0, 0.0, 0.0], [("a", "b"), ("b", "c")])
    plain = make_formulation("node_bound").run(base, 3, Budget(time_limit_s=10))
    grouped = base.replace(groups=np.array([0, -1, 0]))  # a and c together: b too
    out = make_formulation("node_bound").run(grouped, 3, Budget(time_limit_s=10))
    assert plain.bound == pytest.approx(5.0)
    assert out.bound == pytest.approx(11.0)
    assert brute_force(grouped, 3)[0] == pytest.approx(11.0)


def test_data_only_edge_charged_not_ordering() -> None:
    """A data-only edge back to an earlier stage is charged (In and Out), never ordered."""
    ids = ["f0", "f1", "b1", "b0"]
    inst = Instance(ids, [1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0],
                    [("f0", "f1")],
                    data_only_edges=[("b1", "b0"), ("f0", "b0"), ("f1", "b1")],
                    groups=np.array([0, 1, 1, 0]))
    for k in (1, 2):
        best = brute_force(inst, k)[0]
        out = make_formulation("exact_mip").run(inst, k, Budget(time_limit_s=20),
                                                raise_errors=True)
        assert out.status is Status.OPTIMAL
        assert meets_optimum(out.bound, best, out.stats)


def _brute_anchored(inst: Instance, hold: np.ndarray, excl: np.ndarray) -> float:
    """min f(S) over unions of units S with hold ⊆ S, S ∩ excl = ∅ (inf if none)."""
    from formulations._maxflow import block_costs_exact

    n = inst.n_nodes
    uof = inst.unit_of
    best = math.inf
    for bits in range(1, 1 << inst.n_units):
        units = np.array([(bits >> u) & 1 for u in range(inst.n_units)], dtype=bool)
        s = units[uof]
        if (hold & ~s).any() or (excl & s).any():
            continue
        best = min(best, block_costs_exact(inst, s))
    assert n == uof.size
    return best


@pytest.mark.parametrize("kind", ["training", "grouped"])
def test_cut_network_minimises_over_unions_of_units(kind: str) -> None:
    """The contracted min cut equals the brute-force anchored minimum over unions of units
    (data-only edges charged, no order), for both network paths (full and local)."""
    from formulations._maxflow import CutNetwork

    rng = np.random.default_rng(7)
    for i in range(12):
        inst = training_case(i) if kind == "training" else grouped_case(i)
        net = CutNetwork(inst)
        n = inst.n_nodes
        for v in range(n):
            hold = np.zeros(n, dtype=bool)
            hold[v] = True
            want = _brute_anchored(inst, hold, np.zeros(n, dtype=bool))
            got = net.solve([v]).value
            assert got <= want * (1 + 1e-12) + 1e-12
            assert got >= want * (1 - 1e-9) - 1e-9, (inst.name, v, got, want)
        for _ in range(6):
            cls = rng.integers(0, 3, size=n).astype(np.int8)
            if not (cls == 0).any():
                cls[rng.integers(n)] = 0
            want = _brute_anchored(inst, cls == 0, cls == 2)
            got = net.solve_classes(cls).value
            if math.isinf(want):
                assert math.isinf(got), (inst.name, cls, got)
                continue
            assert got <= want * (1 + 1e-12) + 1e-12, (inst.name, cls, got, want)
            assert got >= want * (1 - 1e-9) - 1e-9, (inst.name, cls, got, want)
