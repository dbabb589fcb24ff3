"""The constrained core, checked against independent definitions (hypothesis).

Instances are drawn as raw edge lists (ordering data edges, precedence edges, data-only
edges, pairs given both ways), co-location groups, node memory and a cap; the expected
answers are computed here from those lists and the definitions of docs/constraints.md, never from
the instance's derived views:

* :func:`check_feasible` = at most k stages, order along ordering edges only (data and
  precedence; data-only edges order nothing), every group in one stage, every stage's
  memory within the cap (relative tolerance 1e-12);
* :attr:`Instance.unit_of` joins exactly the nodes that share a stage in every feasible
  partition (all stage vectors enumerated), numbered topologically;
* :attr:`Instance.constraints`, :meth:`Instance.relaxed`, :meth:`Instance.infeasible_reason`
  (a reason implies brute force finds nothing);
* fingerprints of instances without data-only edges are the values of the code before
  data-only edges existed; ``replace`` keeps ``edge_orders``; a cycle of ordering edges is
  an error, one closed by a data-only edge is not.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipecert import InstanceError, Partition, check_feasible, evaluate
from pipecert.instance import Instance
from pipecert.testing import brute_force, enumerate_partitions, random_constrained_dag

TOL = 1 + 1e-12


@dataclass
class Raw:
    """An instance as drawn, with the expected semantics computed from the lists."""

    n: int
    data: list[tuple[int, int]]  # ordering data edges as given
    data_only: list[tuple[int, int]]  # data-only edges as given
    prec: list[tuple[int, int]]
    groups: list[int] | None
    memory: list[float] | None
    cap: float | None
    inst: Instance

    @property
    def ordering(self) -> set[tuple[int, int]]:
        """Pairs that order: ordering data edges and precedence edges."""
        return set(self.data) | set(self.prec)

    @property
    def charged(self) -> set[tuple[int, int]]:
        """Pairs that carry data (charged comm): every data edge, ordering or not."""
        return set(self.data) | set(self.data_only)

    @property
    def only_data(self) -> set[tuple[int, int]]:
        """Data pairs that impose no order (a pair also given as ordering data orders)."""
        return set(self.data_only) - set(self.data)

    def feasible_rows(self, rows: np.ndarray, k: int, *, memory: bool = True,
                      colocation: bool = True) -> np.ndarray:
        """Which stage vectors (rows) are feasible partitions into at most ``k`` stages."""
        rows = np.atleast_2d(rows)
        ok = (rows.min(axis=1) >= 0) & (rows.max(axis=1) < k)
        for u, v in self.ordering:
            ok &= rows[:, u] <= rows[:, v]
        if colocation and self.groups is not None:
            g = np.asarray(self.groups)
            for label in set(self.groups) - {-1}:
                members = np.flatnonzero(g == label)
                ok &= (rows[:, members] == rows[:, members[:1]]).all(axis=1)
        if memory and self.cap is not None and self.memory is not None:
            mem = np.asarray(self.memory)
            for s in range(int(rows.max()) + 1):
                ok &= (rows == s).astype(float) @ mem <= self.cap * TOL
        return ok

    def feasible(self, stage: np.ndarray, k: int, **kwargs: bool) -> bool:
        """The definition of a feasible partition into at most ``k`` stages."""
        return bool(self.feasible_rows(stage, k, **kwargs)[0])


@st.composite
def raw_instances(draw, max_n: int = 6, memory: bool | None = None) -> Raw:
    """A random constrained instance: a hidden topological order, every pair of nodes
    getting no edge, an ordering data edge, a precedence edge, a data-only edge forward or
    backward (a cycle with the order, allowed), or a pair given both ways."""
    n = draw(st.integers(1, max_n))
    perm = draw(st.permutations(list(range(n))))
    data, data_only, prec = [], [], []
    for i, j in itertools.combinations(range(n), 2):
        u, v = perm[i], perm[j]
        kind = draw(st.sampled_from(["none", "none", "data", "data", "prec", "only",
                                     "only_back", "both", "data_and_back"]))
        if kind == "data":
            data.append((u, v))
        elif kind == "prec":
            prec.append((u, v))
        elif kind == "only":
            data_only.append((u, v))
        elif kind == "only_back":
            data_only.append((v, u))
        elif kind == "both":  # given as ordering and as data-only: it orders
            data.append((u, v))
            data_only.append((u, v))
        elif kind == "data_and_back":  # a 2-cycle closed by a data-only edge
            data.append((u, v))
            data_only.append((v, u))
    groups = draw(st.none() | st.lists(st.integers(-1, max(1, n // 2)), min_size=n,
                                       max_size=n))
    with_mem = draw(st.booleans()) if memory is None else memory
    mem = draw(st.lists(st.integers(0, 6).map(float), min_size=n, max_size=n)) \
        if with_mem else None
    cap = None
    if mem is not None:
        total = sum(mem)
        cap = draw(st.none() | st.sampled_from([0.0, 1.0, max(mem), total, total * 0.6,
                                                 max(mem) + 1.0]))
    work = draw(st.lists(st.integers(0, 9).map(float), min_size=n, max_size=n))
    comm = draw(st.lists(st.integers(0, 9).map(float), min_size=n, max_size=n))
    ids = [f"v{i}" for i in range(n)]
    inst = Instance(ids, work, comm,
                    [(ids[u], ids[v]) for u, v in data],
                    [(ids[u], ids[v]) for u, v in prec],
                    data_only_edges=[(ids[u], ids[v]) for u, v in data_only],
                    memory=mem, groups=groups, memory_limit=cap, name="raw")
    return Raw(n, data, data_only, prec, groups, mem, cap, inst)


def _all_vectors(n: int, k: int) -> np.ndarray:
    """Every stage vector of n nodes over k stages (k ** n rows)."""
    return np.array(list(itertools.product(range(k), repeat=n)), dtype=np.int64) \
        .reshape(-1, n)


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------- check_feasible
@SETTINGS
@given(raw=raw_instances(), data=st.data())
def test_check_feasible_matches_the_definition(raw: Raw, data) -> None:
    k = data.draw(st.integers(1, raw.n + 1))
    pk = data.draw(st.integers(k, k + 2))  # a partition declared with more stages
    stage = np.array(data.draw(st.lists(st.integers(0, pk - 1), min_size=raw.n,
                                        max_size=raw.n)))
    part = Partition(stage, pk)
    for memory, coloc in ((True, True), (False, True), (True, False), (False, False)):
        kwargs = {} if memory else {"memory_limit": None}
        got = check_feasible(raw.inst, part, k=k, colocation=coloc, **kwargs)
        want = raw.feasible(stage, k, memory=memory, colocation=coloc)
        assert (got == []) == want, (got, stage.tolist(), k, memory, coloc)


@SETTINGS
@given(raw=raw_instances(max_n=5), k=st.integers(1, 4))
def test_enumeration_is_exactly_the_feasible_partitions(raw: Raw, k: int) -> None:
    """The brute-force oracle's rows = the feasible vectors among all k^n (with stages
    < min(k, n)), and each passes check_feasible; compact rows = those without gaps."""
    ke = min(k, raw.n)
    every = _all_vectors(raw.n, ke)
    want = {tuple(r) for r in every[raw.feasible_rows(every, ke)]}
    rows = enumerate_partitions(raw.inst, k)
    got = {tuple(int(x) for x in r) for r in rows}
    assert got == want
    assert len(rows) == len(got)  # no duplicates
    for r in rows[:50]:
        assert check_feasible(raw.inst, Partition(r.astype(np.int64), k)) == []
    compact = {tuple(int(x) for x in r) for r in enumerate_partitions(raw.inst, k,
                                                                      compact=True)}
    assert compact == {r for r in want if set(r) == set(range(max(r) + 1))}
    order_only = {tuple(int(x) for x in r)
                  for r in enumerate_partitions(raw.inst, k, constrained=False)}
    assert order_only == {tuple(r) for r in
                          every[raw.feasible_rows(every, ke, memory=False, colocation=False)]}


@settings(max_examples=60, deadline=None)
@given(raw=raw_instances(max_n=6), k=st.integers(1, 7))
def test_brute_force_optimum_over_every_feasible_vector(raw: Raw, k: int) -> None:
    """OPT from the compact, pruned enumeration = the minimum of the reference cost over
    every feasible vector; inf exactly when there is none."""
    ke = min(k, raw.n)
    opt, part = brute_force(raw.inst, k)
    every = _all_vectors(raw.n, ke)
    vals = [evaluate(raw.inst, Partition(r, ke)) for r in every[raw.feasible_rows(every, ke)]]
    if not vals:
        assert math.isinf(opt) and part is None
        assert "memory" in raw.inst.constraints
        return
    assert opt == pytest.approx(min(vals), abs=1e-9)
    assert part is not None and check_feasible(raw.inst, part, k=k) == []
    assert evaluate(raw.inst, part) == pytest.approx(opt, abs=1e-9)


@SETTINGS
@given(raw=raw_instances(), data=st.data())
def test_cost_charges_data_only_edges_like_every_data_edge(raw: Raw, data) -> None:
    k = data.draw(st.integers(1, raw.n))
    stage = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=raw.n,
                                        max_size=raw.n)))
    best = 0.0
    for b in range(k):
        s = {v for v in range(raw.n) if stage[v] == b}
        cost = sum(raw.inst.work[v] for v in s)
        cost += sum(raw.inst.comm[u] for u in {u for u, v in raw.charged
                                               if u not in s and v in s})
        cost += sum(raw.inst.comm[u] for u in {u for u, v in raw.charged
                                               if u in s and v not in s})
        best = max(best, cost)
    assert evaluate(raw.inst, Partition(stage, k)) == pytest.approx(best, abs=1e-9)


# ------------------------------------------------------------------------------- units
@SETTINGS
@given(raw=raw_instances(max_n=6, memory=False))
def test_units_are_exactly_the_nodes_forced_together(raw: Raw) -> None:
    """u, v share a unit iff every feasible partition (k = n: any split allowed) puts
    them in one stage."""
    inst = raw.inst
    every = _all_vectors(raw.n, raw.n)
    rows = every[raw.feasible_rows(every, raw.n)]
    together = (rows[:, :, None] == rows[:, None, :]).all(axis=0)
    unit = inst.unit_of
    assert np.array_equal(unit[:, None] == unit[None, :], together)


@SETTINGS
@given(raw=raw_instances(max_n=7))
def test_units_numbered_topologically_with_consistent_views(raw: Raw) -> None:
    inst = raw.inst
    unit = inst.unit_of
    nu = inst.n_units
    assert sorted(set(unit.tolist())) == list(range(nu))
    for u, v in raw.ordering:
        assert unit[u] <= unit[v]  # predecessors have smaller numbers
    ptr, idx = inst.unit_members
    for x in range(nu):
        assert sorted(idx[ptr[x]:ptr[x + 1]].tolist()) == np.flatnonzero(unit == x).tolist()
    want = {(int(unit[u]), int(unit[v])) for u, v in raw.ordering if unit[u] != unit[v]}
    sp, sx = inst.unit_succ_csr
    pp, px = inst.unit_pred_csr
    assert {(a, int(b)) for a in range(nu) for b in sx[sp[a]:sp[a + 1]]} == want
    assert {(int(b), a) for a in range(nu) for b in px[pp[a]:pp[a + 1]]} == want
    w = inst.unit_sums(inst.work)
    assert np.allclose(w, [inst.work[unit == x].sum() for x in range(nu)])
    if "groups" not in inst.constraints:
        assert nu == raw.n


@SETTINGS
@given(raw=raw_instances(max_n=7, memory=False))
def test_topological_order_and_longest_path_use_ordering_edges_only(raw: Raw) -> None:
    inst = raw.inst
    pos = np.empty(raw.n, dtype=np.int64)
    pos[inst.topo_order] = np.arange(raw.n)
    for u, v in raw.ordering:
        assert pos[u] < pos[v]
    # longest path by DP over the ordering pairs only
    dist = [0.0] * raw.n
    for v in inst.topo_order.tolist():
        dist[v] = inst.work[v] + max([dist[u] for u, x in raw.ordering if x == v],
                                     default=0.0)
    assert inst.longest_path() == pytest.approx(max(dist))


# ----------------------------------------------------------- constraints and relaxations
@settings(max_examples=80, deadline=None)
@given(raw=raw_instances())
def test_constraints_relaxed_and_infeasible_reason(raw: Raw) -> None:
    inst = raw.inst
    want = set()
    if raw.groups is not None:
        labels = [g for g in raw.groups if g >= 0]
        if len(labels) > len(set(labels)):
            want.add("groups")
    if raw.cap is not None and raw.memory is not None and sum(raw.memory) > raw.cap * TOL:
        want.add("memory")
    if raw.only_data:
        want.add("data_only_edges")
    assert inst.constraints == want
    assert inst.relaxed() is inst
    assert inst.relaxed("groups").constraints == want - {"groups"}
    assert inst.relaxed("memory").constraints == want - {"memory"}
    assert inst.relaxed("groups", "memory").constraints == want - {"groups", "memory"}
    with pytest.raises(ValueError, match="cannot relax"):
        inst.relaxed("data_only_edges")
    # relaxing only enlarges the feasible set; a proof of infeasibility is one
    for k in sorted({1, 2, raw.n + 1}):
        opt = brute_force(inst, k)[0]
        for r in (inst.relaxed("groups"), inst.relaxed("memory")):
            assert brute_force(r, k)[0] <= opt + 1e-9
        reason = inst.infeasible_reason(k)
        if reason is not None:
            assert math.isinf(opt), (k, reason)
            assert "memory" in inst.constraints
        if "memory" not in inst.constraints:
            assert reason is None and math.isfinite(opt)


def test_memory_constraint_is_active_exactly_when_one_stage_breaks_the_cap() -> None:
    """A cap the whole graph fits under within check_feasible's tolerance (relative
    1e-12) constrains nothing: it must not be an active constraint (else methods that do
    not model memory are refused on an instance the cap cannot bind)."""
    mem = [0.1, 0.2, 0.3]
    cap = 0.6 * (1 - 1e-14)  # below the float sum 0.6000000000000001, within 1e-12
    inst = Instance(["a", "b", "c"], [1, 1, 1], [1, 1, 1], [("a", "b"), ("b", "c")],
                    memory=mem, memory_limit=cap)
    assert check_feasible(inst, Partition([0, 0, 0], 1)) == []
    assert "memory" not in inst.constraints
    assert inst.replace(memory_limit=0.59).constraints == {"memory"}


def test_infeasible_reason_names_the_unit_or_the_stage_count() -> None:
    inst = Instance(["f", "b", "g"], [1, 1, 1], [1, 1, 1], [("f", "g")],
                    data_only_edges=[("g", "b")], memory=[3.0, 3.0, 2.0], groups=[0, 0, -1],
                    memory_limit=5.0)
    assert inst.constraints == {"groups", "memory", "data_only_edges"}
    assert "2 nodes that must share a stage with 'f'" in inst.infeasible_reason(4)
    ok = inst.replace(memory_limit=6.0)
    assert ok.infeasible_reason(1) is not None and "at least 2 stages" in \
        ok.infeasible_reason(1)
    assert ok.infeasible_reason(2) is None and math.isfinite(brute_force(ok, 2)[0])


# ---------------------------------------------------------------- fingerprints, replace
#: values of the code before data-only edges existed (commit d73e8ae), for these instances
OLD_FINGERPRINTS = {
    "fp": ("e6755e36d934ec51fd819d3a9fdc1a9e", "49ec6a49b7c9bbed221cf3b4249e58aa"),
    "fp2": ("01b7107ecf4d87f09cb48f4fdd671227", "d400f33f72b410c589f226d37a758024"),
}


def _fp_instances() -> dict[str, Instance]:
    return {
        "fp": Instance(["a", "b", "c", "d", "e"], work=[2, 4, 3, 2, 1], comm=[3, 1, 2, 1, 5],
                       edges=[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"),
                              ("a", "e")],
                       precedence_edges=[("b", "c")], memory=[1.0, 2.0, 3.0, 4.0, 5.0],
                       groups=[0, 0, 1, -1, 1], memory_limit=9.0, name="fp"),
        "fp2": Instance(["x", "y", "z"], work=[1.5, 0.0, 2.25], comm=[0.5, 1.0, 0.0],
                        edges=[("z", "x"), ("x", "y")]),
    }


def test_fingerprints_without_data_only_edges_are_unchanged() -> None:
    for key, inst in _fp_instances().items():
        assert (inst.structure_fingerprint, inst.fingerprint) == OLD_FINGERPRINTS[key]


def test_fingerprints_differ_when_an_edge_flag_differs() -> None:
    base = _fp_instances()["fp"]
    flags = base.edge_orders.copy()
    flags[2] = False  # one ordering edge becomes data-only
    other = base.replace(orders=flags)
    assert other.n_data_only_edges == 1 and other != base
    assert other.structure_fingerprint != base.structure_fingerprint
    assert other.fingerprint != base.fingerprint
    flags2 = base.edge_orders.copy()
    flags2[3] = False  # a different edge: a different fingerprint again
    assert base.replace(orders=flags2).structure_fingerprint != other.structure_fingerprint
    # flags back on: the old value
    assert other.replace(orders=base.edge_orders).structure_fingerprint == \
        OLD_FINGERPRINTS["fp"][0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_replace_keeps_edge_orders_and_constraints(seed: int) -> None:
    inst = random_constrained_dag(seed, 7, groups=0.5, data_only=0.3, memory="binding",
                                  integer=bool(seed % 2))
    for changed in (inst.replace(name="x"), inst.replace(work=inst.work * 2),
                    inst.replace(comm=inst.comm + 1), inst.replace(metadata={})):
        assert np.array_equal(changed.edge_orders, inst.edge_orders)
        assert np.array_equal(changed.src, inst.src) and np.array_equal(changed.dst, inst.dst)
        assert changed.constraints == inst.constraints
        assert np.array_equal(changed.unit_of, inst.unit_of)
        assert changed.structure_fingerprint == inst.structure_fingerprint
    same = Instance.from_arrays(inst.ids, inst.work, inst.comm, inst.src, inst.dst,
                                inst.prec_src, inst.prec_dst, orders=inst.edge_orders,
                                memory=inst.memory, groups=inst.groups,
                                memory_limit=inst.memory_limit, name=inst.name,
                                metadata=dict(inst.metadata))
    assert same == inst and same.fingerprint == inst.fingerprint


def test_duplicate_pairs_merge_flags_ordering_wins() -> None:
    inst = Instance(["a", "b"], [1, 1], [1, 1], [("a", "b")], data_only_edges=[("a", "b")])
    assert inst.n_edges == 1 and inst.edge_orders.tolist() == [True]
    assert inst.constraints == frozenset()
    rev = Instance(["a", "b"], [1, 1], [1, 1], [("a", "b")], data_only_edges=[("b", "a")])
    assert rev.n_edges == 2 and rev.n_data_only_edges == 1
    assert rev.constraints == {"data_only_edges"}
    assert check_feasible(rev, Partition([0, 1], 2)) == []
    assert check_feasible(rev, Partition([1, 0], 2)) != []


# ------------------------------------------------------------------------------ cycles
def test_a_cycle_of_ordering_edges_is_an_error() -> None:
    with pytest.raises(InstanceError, match="cycle"):
        Instance(["a", "b", "c"], [1] * 3, [1] * 3, [("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(InstanceError, match="cycle"):  # closed by a precedence edge
        Instance(["a", "b", "c"], [1] * 3, [1] * 3, [("a", "b"), ("b", "c")],
                 precedence_edges=[("c", "a")], data_only_edges=[("c", "b")])
    with pytest.raises(InstanceError, match="cycle"):  # flags given by from_arrays
        Instance.from_arrays(["a", "b"], [1, 1], [1, 1], [0, 1], [1, 0],
                             orders=[True, True])
    with pytest.raises(InstanceError, match="self-loop"):
        Instance(["a"], [1], [1], data_only_edges=[("a", "a")])


def test_a_cycle_closed_by_a_data_only_edge_is_allowed() -> None:
    inst = Instance(["a", "b", "c"], [1, 2, 3], [4, 5, 6], [("a", "b"), ("b", "c")],
                    data_only_edges=[("c", "a")])
    assert inst.topo_order.tolist() == [0, 1, 2]
    assert inst.constraints == {"data_only_edges"}
    # the gradient c -> a is charged: a receives c's output in its stage
    p = Partition([0, 1, 2], 3)
    assert check_feasible(inst, p) == []
    assert evaluate(inst, p) == max(1 + 4 + 6, 2 + 4 + 5, 3 + 5 + 6)
    arr = Instance.from_arrays(["a", "b"], [1, 1], [1, 1], [0, 1], [1, 0],
                               orders=[True, False])
    assert arr.n_data_only_edges == 1 and arr.topo_order.tolist() == [0, 1]
    # groups through a data-only cycle: one unit, as the order forces nothing more
    g = inst.replace(groups=[0, -1, 0])
    assert g.n_units == 1  # a <= b <= c and a, c together: b is squeezed in


def test_replace_with_new_edges() -> None:
    """New data edges through replace: all ordering by default (as before data-only edges
    existed; a different edge count raised "orders has 1 entries for 2 data edges"), their
    own flags with orders=, and a clear error when the old flags cannot apply."""
    plain = Instance(["a", "b", "c"], [1, 1, 1], [1, 1, 1], [("a", "b")])
    more = plain.replace(src=[0, 1], dst=[1, 2])
    assert more.n_edges == 2 and more.edge_orders.tolist() == [True, True]
    flagged = plain.replace(src=[0, 2], dst=[1, 0], orders=[True, False])
    assert flagged.n_data_only_edges == 1 and flagged.constraints == {"data_only_edges"}
    with pytest.raises(InstanceError, match="needs orders="):
        flagged.replace(src=[0, 1], dst=[1, 2])
    assert flagged.replace(src=[0, 1], dst=[1, 2], orders=[True, True]).constraints == set()
