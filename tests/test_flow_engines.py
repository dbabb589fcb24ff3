"""Max-flow engines: the numba Dinic engine against OR-Tools, a plain install without
OR-Tools, and the rounding helpers of the min-cut bounds on extreme magnitudes."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formulations import _maxflow
from formulations._dinic import ResidualGraph
from formulations._maxflow import CutNetwork, _scaled_down, _scaled_floor, resolve_engine
from formulations._spine import scaled_down
from formulations.node_bound import NodeBound
from formulations.node_bound import clear_cache as clear_node_cache
from formulations.path_bound import PathBound
from formulations.path_bound import clear_cache as clear_path_cache
from pipecert.instance import Instance
from pipecert.results import Budget, Status
from pipecert.testing import brute_force, dnn_chain, random_dag


@st.composite
def networks(draw: st.DrawFn) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(2, 12))
    m = draw(st.integers(0, 40))
    tl = np.array(draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)), dtype=np.int64)
    hd = np.array(draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m)), dtype=np.int64)
    cap = np.array(draw(st.lists(st.sampled_from([0, 1, 2, 7, 2**40, 2**52]), min_size=m,
                                 max_size=m)), dtype=np.int64)
    return n, tl, hd, cap


@settings(max_examples=150, deadline=None, derandomize=True)
@given(networks())
def test_numba_max_flow_equals_ortools_and_its_cut_sides_are_minimum_cuts(net) -> None:  # type: ignore[no-untyped-def]
    from ortools.graph.python import max_flow

    n, tl, hd, cap = net
    s, t = 0, n - 1
    smf = max_flow.SimpleMaxFlow()
    smf.add_arcs_with_capacity(tl, hd, cap)
    assert smf.solve(s, t) == smf.OPTIMAL
    rg = ResidualGraph(n, tl, hd)
    flow = rg.max_flow(cap, s, t)
    assert flow == smf.optimal_flow()
    for largest in (False, True):
        side = rg.cut(s, t, largest=largest)
        assert side[s] and not side[t]
        assert int(cap[side[tl] & ~side[hd]].sum()) == flow  # a minimum cut
    small, large = rg.cut(s, t, largest=False), rg.cut(s, t, largest=True)
    assert not (small & ~large).any()  # the smallest source side is inside the largest


def _block_ortools(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import ortools`` fail, as on an install without the extra."""
    for name in list(sys.modules):
        if name == "ortools" or name.startswith("ortools."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ortools", None)
    _maxflow._NETWORKS.clear()
    clear_node_cache()
    clear_path_cache()


def _run_both(inst: Instance, k: int, engine: str) -> tuple[float | None, float | None]:
    clear_node_cache()
    clear_path_cache()
    _maxflow._NETWORKS.clear()
    a = NodeBound(engine=engine).run(inst, k, Budget(time_limit_s=30), floor=False)
    b = PathBound(engine=engine).run(inst, k, Budget(time_limit_s=30), floor=False)
    assert a.status is Status.BOUND and b.status is Status.BOUND, (a.error, b.error)
    return a.bound, b.bound


def test_bounds_without_ortools_match_the_ortools_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from instances.resolve import resolve

    inst = resolve("default/comm-0300")[0].load()
    cases = [(inst, 8), (inst, 2), (dnn_chain(np.random.default_rng(4), 40), 5)]
    with_ortools = [_run_both(i, k, "ortools") for i, k in cases]
    _block_ortools(monkeypatch)
    with pytest.raises(ImportError):
        import ortools  # noqa: F401
    assert resolve_engine("auto") == "numba"
    ok, why = NodeBound(engine="ortools").supports(inst, 8)
    assert not ok and why is not None and "OR-Tools" in why
    out = PathBound(engine="ortools").run(inst, 8)
    assert out.status is Status.UNSUPPORTED and "OR-Tools" in (out.error or "")
    for (i, k), (node, path) in zip(cases, with_ortools):
        got = _run_both(i, k, "auto")  # the default
        assert got[0] == pytest.approx(node, rel=1e-12), f"node_bound k={k}"
        assert got[1] == pytest.approx(path, rel=1e-12), f"path_bound k={k}"
        assert got[0] is not None and got[1] is not None and got[1] > got[0]


def test_default_engine_is_the_installed_numba_one() -> None:
    assert resolve_engine("auto") == "numba"
    assert NodeBound().method_id() == "node_bound"
    with pytest.raises(ValueError, match="unknown max-flow engine"):
        resolve_engine("bogus")


@pytest.mark.parametrize("x", [0, 1, 3, 2**53 - 1, 2**53 + 1, 2**62 - 1])
@pytest.mark.parametrize("e", [-1100, -60, 0, 40, 1074, 1100])
def test_scaled_down_never_rounds_up(x: int, e: int) -> None:
    from fractions import Fraction

    y = _scaled_down(x, e)
    assert math.isfinite(y) and Fraction(y) <= Fraction(x) * Fraction(2) ** -e
    arr = scaled_down(np.array([x if x < 2**53 else 2**53 - 1]), e)
    assert Fraction(float(arr[0])) <= Fraction(int(min(x, 2**53 - 1))) * Fraction(2) ** -e


def test_scaled_floor_handles_extreme_exponents() -> None:
    cap = np.array([0.0, 5e-324, 1e-300, 1.0, 1e300])
    for e in (-1100, 0, 1100):
        got = _scaled_floor(cap, e)
        assert (got >= 0).all() and got[0] == 0
        assert got.dtype == np.int64


@pytest.mark.parametrize("scale", [1e-300, 1e-9, 1.0, 1e9, 1e250])
@pytest.mark.parametrize("engine", ["numba", "ortools"])
def test_anchored_block_rescales_exactly_on_any_magnitude(scale: float, engine: str) -> None:
    # powers of two times small integers: F scales exactly, so the cut must too (or be
    # lower, never higher)
    rng = np.random.default_rng(9)
    for _ in range(10):
        base = random_dag(rng, 7, integer=True)
        big = base.replace(work=base.work * scale, comm=base.comm * scale)
        a, b = CutNetwork(base, engine=engine), CutNetwork(big, engine=engine)
        for v in range(base.n_nodes):
            want = a.solve([v]).value
            got = b.solve([v]).value
            assert got <= want * scale * (1 + 1e-15)
            assert got == pytest.approx(want * scale, rel=1e-9)
            local = b.solve_local([v]).value
            assert local <= want * scale * (1 + 1e-15)


def test_path_bound_on_subnormal_and_huge_costs_is_valid() -> None:
    rng = np.random.default_rng(2)
    for scale in (5e-324 * 2**20, 1e300):
        inst = random_dag(rng, 6, integer=True)
        inst = inst.replace(work=inst.work * scale, comm=inst.comm * scale)
        for k in (1, 2, 3, 8):
            opt, _ = brute_force(inst, k)
            for m in (NodeBound(), PathBound()):
                out = m.run(inst, k, Budget(), floor=False)
                assert out.status is Status.BOUND, out.error
                assert out.bound is not None and out.bound <= opt, (m.name, k, out.bound, opt)
