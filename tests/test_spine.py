"""Min-cut lower bounds (node_bound, path_bound): F(H, X) against enumeration, bounds vs OPT."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from formulations import FORMULATIONS
from formulations._maxflow import ENGINES, CutNetwork, block_costs_exact, network_for
from formulations._spine import (
    chain_indices,
    heaviest_path,
    pair_segment_value,
    run_estimates,
    segment_value,
)
from formulations.node_bound import NodeBound, node_bounds
from formulations.path_bound import PathBound, _refine_entry, chain_states
from formulations.path_bound import clear_cache as clear_path_cache
from pipecert.instance import Instance
from pipecert.partition import block_cost
from pipecert.results import Budget, SolveContext
from pipecert.testing import (
    assert_bound_valid,
    brute_force,
    check_formulation,
    dnn_chain,
    random_dag,
    worked_example,
)

REGIMES = ("comm", "compute", "mixed")


def _all_block_costs(inst: Instance) -> np.ndarray:
    n = inst.n_nodes
    masks = np.array(list(itertools.product([False, True], repeat=n)))[:, ::-1]
    return masks, np.array([block_cost(inst, np.flatnonzero(m)) for m in masks])


def _enum_F(masks: np.ndarray, costs: np.ndarray, hold: np.ndarray, excl: np.ndarray) -> float:
    ok = masks[:, hold].all(axis=1) & ~masks[:, excl].any(axis=1)
    return float(costs[ok].min())


@pytest.mark.parametrize("engine", ENGINES)
def test_anchored_block_matches_enumeration_of_all_subsets(engine: str) -> None:
    rng = np.random.default_rng(11)
    for trial in range(40):
        inst = random_dag(rng, int(rng.integers(2, 9)), regime=REGIMES[trial % 3],
                          integer=trial % 2 == 0, precedence_prob=0.1)
        masks, costs = _all_block_costs(inst)
        net = CutNetwork(inst, engine=engine)
        for _ in range(6):
            hold = rng.random(inst.n_nodes) < 0.3
            hold[rng.integers(inst.n_nodes)] = True
            excl = (rng.random(inst.n_nodes) < 0.3) & ~hold
            want = _enum_F(masks, costs, hold, excl)
            res = net.solve(hold, excl, want_cut="max")
            where = f"{engine} on {inst.name}: F(H, X)"
            assert res.value <= want, f"{where} = {res.value} above the true {want}: invalid"
            assert res.value == pytest.approx(want, rel=1e-6, abs=1e-9), where
            assert res.upper == pytest.approx(want, rel=1e-12, abs=1e-12), where
            assert res.in_block is not None and not (res.in_block & excl).any()
            assert block_costs_exact(inst, res.in_block) == pytest.approx(res.upper)
            local = net.solve_local(hold, excl)
            assert local.value <= want, f"{where} contracted = {local.value} > {want}"
            assert local.value == pytest.approx(want, rel=1e-6, abs=1e-9), where


def test_anchored_block_rounds_down_on_irrational_costs() -> None:
    # costs that are not representable on any binary grid: the value must stay <= F
    rng = np.random.default_rng(3)
    for trial in range(20):
        inst = random_dag(rng, 7, regime=REGIMES[trial % 3], integer=False)
        inst = inst.replace(work=inst.work * np.pi, comm=inst.comm * np.e)
        masks, costs = _all_block_costs(inst)
        net = CutNetwork(inst)
        for v in range(inst.n_nodes):
            hold = np.zeros(inst.n_nodes, bool)
            hold[v] = True
            want = _enum_F(masks, costs, hold, np.zeros(inst.n_nodes, bool))
            got = net.solve(hold).value
            assert got <= want, f"{inst.name} node {v}: {got} > F = {want} (rounding up)"
            assert got >= want * (1 - 1e-12)
            excl = rng.random(inst.n_nodes) < 0.3
            excl[v] = False
            want = _enum_F(masks, costs, hold, excl)
            got = net.solve_local(hold, excl).value
            assert want * (1 - 1e-11) <= got <= want, f"{inst.name}: contracted {got} vs {want}"


def test_anchored_block_on_worked_example() -> None:
    inst = worked_example()
    net = CutNetwork(inst)
    # the cheapest block around b is {b} itself (f = 4 + c(a) + c(b) = 8)
    assert net.solve([inst.index["b"]]).value == 8.0
    # holding a and e with d excluded: e's predecessor d is outside, so In pays c(d)
    assert net.solve([0, 4], [3]).value == _enum_F(*_all_block_costs(inst),
                                                   np.array([1, 0, 0, 0, 1], bool),
                                                   np.array([0, 0, 0, 1, 0], bool))


def test_anchored_block_rejects_intersecting_anchor_sets() -> None:
    with pytest.raises(ValueError, match="intersect"):
        CutNetwork(worked_example()).solve([1], [1])


def test_node_bound_equals_max_over_all_nodes_despite_pruning() -> None:
    rng = np.random.default_rng(5)
    for trial in range(12):
        inst = (dnn_chain(rng, 60, regime=REGIMES[trial % 3]) if trial % 2
                else random_dag(rng, 40, regime=REGIMES[trial % 3], edge_prob=0.08))
        data = node_bounds(inst)
        net = CutNetwork(inst)
        full = max(net.solve([v]).value for v in range(inst.n_nodes))
        assert data.complete
        assert data.value == pytest.approx(full, rel=1e-9), inst.name
        assert np.all(data.lower <= data.upper * (1 + 1e-12))


def test_node_bound_is_cached_in_the_context() -> None:
    inst = dnn_chain(2, 30)
    ctx = SolveContext()
    first = node_bounds(inst, context=ctx)
    assert ctx.cache["node_bound"][1] is first
    assert node_bounds(inst, context=ctx) is first


def test_run_estimates_are_below_exact_run_values() -> None:
    rng = np.random.default_rng(8)
    for trial in range(15):
        inst = (dnn_chain(rng, 25, regime=REGIMES[trial % 3]) if trial % 2
                else random_dag(rng, 25, regime=REGIMES[trial % 3], edge_prob=0.15,
                                precedence_prob=0.05))
        path = heaviest_path(inst, inst.work + inst.comm)
        # every consecutive pair is an ordering edge: a path
        edges = set(zip(inst.all_src.tolist(), inst.all_dst.tolist(), strict=True))
        assert all((u, v) in edges for u, v in itertools.pairwise(path.tolist()))
        a, d = chain_indices(inst, path)
        low = node_bounds(inst).lower
        g = run_estimates(inst, a, d, low, path.size)
        net = CutNetwork(inst)
        L = path.size
        for i in range(L):
            for j in range(i, L):
                hold = (d >= i) & (a <= j)
                excl = (a <= i - 1) | (d >= j + 1)
                exact = net.solve(hold, excl).value
                assert g[i, j] <= exact * (1 + 1e-12) + 1e-12, (inst.name, i, j, g[i, j], exact)
        assert np.all(np.isinf(g[np.tril_indices(L, -1)]))


def _dp_reference(g: np.ndarray, k: int) -> float:
    L = g.shape[0]
    D = np.full((k + 1, L + 1), np.inf)
    D[:, 0] = 0.0
    for b in range(1, k + 1):
        for j in range(1, L + 1):
            D[b, j] = min([D[b - 1, j]] + [max(D[b - 1, i], g[i, j - 1]) for i in range(j)])
    return float(D[k, L])


def test_segment_value_matches_the_spec_recurrence() -> None:
    rng = np.random.default_rng(2)
    for _ in range(60):
        L = int(rng.integers(1, 12))
        g = np.triu(rng.integers(0, 20, size=(L, L)).astype(float))
        g[np.tril_indices(L, -1)] = np.inf
        for k in (1, 2, 3, 5, 13):
            value, runs = segment_value(g, k)
            assert value == _dp_reference(g, k)
            assert len(runs) <= k and runs[0][0] == 0 and runs[-1][1] == L - 1
            assert max(g[r] for r in runs) == value


@pytest.mark.parametrize(
    "make",
    [NodeBound, PathBound, lambda: PathBound(cover=3, max_len=4), lambda: PathBound(pairs=0)],
    ids=["node_bound", "path_bound", "path_bound-cover-thinned", "path_bound-no-pairs"],
)
def test_bound_below_brute_force_optimum_on_shared_small_cases(make) -> None:  # type: ignore[no-untyped-def]
    assert check_formulation(make(), count=60, ks=(1, 2, 3, 4)) == 240


def test_pair_windows_never_below_plain_segmentation() -> None:
    rng = np.random.default_rng(12)
    for _ in range(40):
        L = int(rng.integers(1, 9))
        g = np.triu(rng.integers(0, 20, size=(L, L)).astype(float))
        g[np.tril_indices(L, -1)] = np.inf
        for k in (1, 2, 3, 5):
            plain, _ = segment_value(g, k)
            pair, runs = pair_segment_value(g, k)
            assert pair >= plain
            assert runs and runs[0][0] == 0 and runs[-1][1] == L - 1 and len(runs) <= k


@pytest.mark.parametrize("regime", REGIMES)
def test_path_bound_valid_on_random_dags_and_dnn_chains(regime: str) -> None:
    # a fixed seed per regime (str hash() is salted per process: runs would differ)
    rng = np.random.default_rng(REGIMES.index(regime) + 17)
    form = PathBound()
    closes = 0
    total = 0
    for trial in range(16):
        if trial % 2:
            inst = dnn_chain(rng, int(rng.integers(4, 7)), regime=regime, skip_prob=0.5)
        else:
            inst = random_dag(rng, int(rng.integers(5, 10)), regime=regime,
                              edge_prob=float(rng.uniform(0.15, 0.5)), integer=trial % 4 != 2,
                              precedence_prob=0.1 if trial % 3 == 0 else 0.0)
        for k in (2, 3, 4, 6):
            opt, _ = brute_force(inst, k)
            out = form.run(inst, k, Budget(10.0), SolveContext(upper_bound=opt),
                           raise_errors=True)
            assert_bound_valid(out.bound, opt, f"path_bound on {inst.name} (k={k})")
            total += 1
            closes += out.bound is not None and out.bound >= opt * (1 - 1e-9)
    # not a validity check: the bound is informative (closes a good share of the cases)
    assert closes >= total // 4, f"path_bound closed only {closes} of {total} cases"


def test_path_bound_intermediate_values_valid_under_a_tiny_budget() -> None:
    rng = np.random.default_rng(4)
    for trial in range(10):
        inst = dnn_chain(rng, 5, regime="comm") if trial % 2 else random_dag(rng, 8, regime="comm")
        for k in (2, 3):
            opt, _ = brute_force(inst, k)
            res = PathBound().lower_bound(inst, k, Budget(0.0), SolveContext())
            assert_bound_valid(res.bound, opt, f"path_bound(budget=0) on {inst.name}")


def test_path_bound_reuses_run_tables_across_k_and_is_monotone() -> None:
    inst = dnn_chain(7, 200, regime="comm")
    ctx = SolveContext()
    values = {k: PathBound().lower_bound(inst, k, Budget(20.0), ctx).bound for k in (64, 8, 2)}
    assert values[2] >= values[8] >= values[64]
    again = PathBound().lower_bound(inst, 8, Budget(20.0), ctx)
    assert again.bound == values[8] and again.stats["max_flows"] == 0


def test_both_bounds_are_registered_and_default_constructible() -> None:
    for name in ("node_bound", "path_bound"):
        assert name in FORMULATIONS
        FORMULATIONS.make(name)
    with pytest.raises(ValueError, match="unknown path weight"):
        PathBound(paths="bogus").lower_bound(worked_example(), 2, Budget(1.0))


def test_segment_value_with_a_stale_candidate_superset_is_unchanged() -> None:
    # cand = every entry plus stale values (old entries that were raised) gives the same
    # value and split as the selection from g itself
    rng = np.random.default_rng(21)
    for _ in range(80):
        L = int(rng.integers(1, 12))
        g = np.triu(rng.integers(0, 20, size=(L, L)).astype(float))
        g[np.tril_indices(L, -1)] = np.inf
        stale = rng.integers(0, 40, size=int(rng.integers(0, 10))).astype(float) + 0.5
        cand = np.append(np.unique(np.concatenate([g[np.isfinite(g)], stale])), np.inf)
        for k in (1, 2, 3, 5, 13):
            assert segment_value(g, k, cand=cand) == segment_value(g, k)
            assert segment_value(g, k)[0] == _dp_reference(g, k)


@pytest.mark.parametrize("capped", [False, True], ids=["no-cap", "memory-cap"])
def test_chain_state_candidates_stay_a_superset_of_the_entries(capped: bool) -> None:
    inst = dnn_chain(3, 60, regime="comm")
    if capped:  # a cap that forbids the long runs: single() masks them
        mem = np.ones(inst.n_nodes)
        inst = inst.replace(memory=mem, memory_limit=float(mem.sum()) / 4)
    nodes = node_bounds(inst)
    clear_path_cache()
    (st, *_) = chain_states(inst, ("work",), 1000, nodes.lower)
    net = network_for(inst, "auto")
    rng = np.random.default_rng(5)
    L = st.g.shape[0]
    for _ in range(3):
        for _ in range(15):
            i = int(rng.integers(0, L))
            j = int(rng.integers(i, L))
            _refine_entry(net, st, i, j)
        cand = st.candidates()
        finite = st.g[np.isfinite(st.g)]
        assert np.all(np.diff(cand) > 0) and cand[-1] == np.inf
        assert np.isin(finite, cand).all()
        assert np.array_equal(st.single(), st.g if st.mem_over is None
                              else np.where(st.mem_over, np.inf, st.g))
        for k in (2, 4, 8):
            assert segment_value(st.single(), k, cand=cand) == segment_value(st.single(), k)
    assert (st.mem_over is not None and bool(st.mem_over.any())) == capped
    clear_path_cache()
