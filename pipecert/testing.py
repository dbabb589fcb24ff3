"""Test oracles and reusable checks: every method is tested against true optima.

* :func:`brute_force` enumerates every feasible ordered partition of a small graph (about
  10 nodes) and returns the exact optimum with an optimal partition, for every variant:
  order along ordering edges only (data-only edges order nothing), co-location groups in
  one stage, stage memory within the cap; ``(inf, None)`` when nothing is feasible. It
  shares no code with any method except the reference cost model, which it
  re-implements independently, and reads the instance's edge arrays, not its derived
  views (topological order, units), so it checks those too.
* :func:`random_dag`, :func:`dnn_chain` and :func:`small_cases` generate small instances of
  both cost regimes (compute-heavy and communication-heavy); :func:`random_training_dag`,
  :func:`random_constrained_dag` and :func:`with_extreme_costs` the constrained variants,
  and :func:`variant_cases` the cases of every variant of :data:`VARIANTS`.
* :func:`check_formulation` and :func:`check_heuristic` run a method on many small cases and
  raise :class:`AssertionError` with a message that says what to fix; :func:`check_run`
  checks one graded run (the gate ``method.run``) against brute force, on any variant. A
  researcher can call them on a draft method outside the repository, e.g.
  ``check_heuristic(MyHeuristic(), variants="all")``; :mod:`pipecert.contract` packages
  them as a contract suite with one test id per check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import numpy as np

from pipecert.instance import Instance, validate_k
from pipecert.partition import Partition, check_feasible, evaluate
from pipecert.results import BOUND_ATOL, BOUND_RTOL, Budget, SolveContext

__all__ = [
    "brute_force",
    "enumerate_partitions",
    "random_dag",
    "random_training_dag",
    "random_constrained_dag",
    "with_extreme_costs",
    "dnn_chain",
    "small_cases",
    "worked_example",
    "VARIANTS",
    "VariantCase",
    "variant_cases",
    "claimed_constraints",
    "check_run",
    "check_formulation",
    "check_heuristic",
    "assert_bound_valid",
    "meets_optimum",
    "warmup_instances",
    "make_formulation",
]

MAX_ENUMERATION = 3_000_000


def worked_example() -> Instance:
    """The example of docs/theory/problem.md#worked-example (OPT = 12, 10, 10 for k = 1, 2, 3)."""
    return Instance(
        ["a", "b", "c", "d", "e"],
        work=[2, 4, 3, 2, 1],
        comm=[3, 1, 2, 1, 5],
        edges=[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"), ("a", "e")],
        name="worked_example",
    )


def _ordering_topo(instance: Instance) -> tuple[list[int], list[list[int]]]:
    """A topological order of the ordering edges and the ordering predecessors of every
    node, computed here from the instance's edge arrays (not from its derived ``topo_order``
    or CSR views, so the oracle checks them): ordering data edges (``edge_orders``) and
    precedence edges; data-only edges order nothing."""
    n = instance.n_nodes
    orders = instance.edge_orders
    pairs = list(zip(instance.src[orders].tolist(), instance.dst[orders].tolist(),
                     strict=True))
    pairs += list(zip(instance.prec_src.tolist(), instance.prec_dst.tolist(), strict=True))
    preds: list[list[int]] = [[] for _ in range(n)]
    succs: list[list[int]] = [[] for _ in range(n)]
    for u, v in pairs:
        preds[v].append(u)
        succs[u].append(v)
    indeg = [len(p) for p in preds]
    ready = [v for v in range(n) if indeg[v] == 0]
    topo: list[int] = []
    while ready:
        u = ready.pop()
        topo.append(u)
        for v in succs[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    if len(topo) < n:  # the Instance constructor rejects these; never silently wrong
        raise ValueError(f"{instance.name!r}: the ordering edges have a cycle")
    return topo, preds


def enumerate_partitions(
    instance: Instance, k: int, *, constrained: bool = True, compact: bool = False
) -> np.ndarray:
    """All feasible stage vectors with stages in ``0..min(k, n)-1``, as rows.

    Builds the assignments node by node in a topological order of the ordering edges,
    giving each node every stage at or after the latest stage of its ordering predecessors
    (ordering data edges and precedence edges; data-only edges order nothing). With at most
    n non-empty stages, stages beyond n are never needed.

    Parameters
    ----------
    constrained : bool
        Also enforce the instance's co-location groups (a node whose group already has a
        stage gets that stage) and its memory cap (a stage's memory never exceeds it,
        relative tolerance 1e-12), pruning during the construction: the rows are then
        exactly the feasible partitions of :func:`pipecert.partition.check_feasible`.
        False gives the partitions that respect the order only.
    compact : bool
        Only partitions whose used stages are ``0..m-1`` (no empty stage before a used
        one). Moving empty stages to the end keeps a partition feasible with the same
        stage costs, so the optimum over compact rows is the optimum; there are far fewer
        of them (at most the ordered Bell number of n).
    """
    k = validate_k(k)
    n = instance.n_nodes
    ke = min(k, n)
    topo, preds = _ordering_topo(instance)
    pos = np.empty(n, dtype=np.int64)
    pos[topo] = np.arange(n)
    groups = instance.groups if constrained else None
    mem = instance.memory if constrained else None
    cap = instance.memory_limit if mem is not None else None
    cap_tol = None if cap is None else cap * (1 + 1e-12)
    group_col: dict[int, int] = {}  # group -> column of its first assigned member
    rows = np.zeros((1, 0), dtype=np.int8)
    used = np.zeros((1, ke), dtype=bool)
    smem = np.zeros((1, ke))
    for t, v in enumerate(topo):
        pc = pos[np.asarray(preds[v], dtype=np.int64)]
        lo = rows[:, pc].max(axis=1) if pc.size else np.zeros(len(rows), np.int8)
        g = -1 if groups is None else int(groups[v])
        if g >= 0 and g in group_col:
            cand = [rows[:, group_col[g]]]  # forced: the group's stage
        else:
            cand = [np.full(len(rows), s, dtype=np.int8) for s in range(ke)]
        parts_r, parts_u, parts_m = [], [], []
        for st in cand:
            keep = lo <= st
            if cap_tol is not None:
                keep &= smem[np.arange(len(rows)), st] + mem[v] <= cap_tol  # type: ignore[index]
            if not keep.any():
                continue
            r, sk = rows[keep], st[keep]
            u = used[keep].copy()
            u[np.arange(len(r)), sk] = True
            m = smem[keep].copy()
            if mem is not None:
                m[np.arange(len(r)), sk] += mem[v]
            if compact:  # gaps below the highest used stage must be fillable by the rest
                top = np.where(u.any(axis=1), ke - 1 - np.argmax(u[:, ::-1], axis=1), -1)
                ok = (top + 1 - u.sum(axis=1)) <= n - t - 1
                r, sk, u, m = r[ok], sk[ok], u[ok], m[ok]
            parts_r.append(np.hstack([r, sk[:, None]]))
            parts_u.append(u)
            parts_m.append(m)
        if not parts_r:
            return np.zeros((0, n), dtype=np.int8)
        rows = np.vstack(parts_r)
        used = np.vstack(parts_u)
        smem = np.vstack(parts_m)
        if g >= 0 and g not in group_col:
            group_col[g] = t
        if len(rows) > MAX_ENUMERATION:
            raise ValueError(
                f"brute force on {instance.name!r} (n={n}, k={k}) exceeds "
                f"{MAX_ENUMERATION} partitions; use a smaller graph"
            )
    out = np.empty_like(rows)
    out[:, topo] = rows  # columns back to node order
    return out


def _costs_of_rows(instance: Instance, rows: np.ndarray, k: int) -> np.ndarray:
    """Bottleneck of every row, computed from the definition of f (independent code)."""
    n = instance.n_nodes
    w = instance.work
    c = instance.comm
    ptr, succ = instance.succ_csr
    best = np.zeros(len(rows))
    for b in range(k):
        m = rows == b
        cost = m.astype(np.float64) @ w
        for u in range(n):
            cons = succ[ptr[u] : ptr[u + 1]]
            if cons.size == 0 or c[u] == 0:
                continue
            any_in = m[:, cons].any(axis=1)
            any_out = (~m[:, cons]).any(axis=1)
            # receiving: u outside block b, some consumer inside -> pays c(u) once
            # sending: u inside block b, some consumer outside -> pays c(u) once
            pays = (~m[:, u] & any_in) | (m[:, u] & any_out)
            cost += c[u] * pays
        np.maximum(best, cost, out=best)
    return best


def _constrained_rows(instance: Instance, rows: np.ndarray) -> np.ndarray:
    """The rows that keep every co-location group in one stage and meet the memory cap
    (checked from the definitions, independently of :func:`check_feasible`)."""
    keep = np.ones(len(rows), dtype=bool)
    if instance.groups is not None:
        for g in np.unique(instance.groups[instance.groups >= 0]):
            members = np.flatnonzero(instance.groups == g)
            if members.size > 1:
                keep &= (rows[:, members] == rows[:, members[:1]]).all(axis=1)
    if instance.memory_limit is not None and instance.memory is not None:
        cap = instance.memory_limit * (1 + 1e-12)
        for b in range(int(rows.max()) + 1 if rows.size else 0):
            keep &= ((rows == b).astype(np.float64) @ instance.memory) <= cap
    return rows[keep]


def brute_force(instance: Instance, k: int) -> tuple[float, Partition | None]:
    """Exact OPT(instance, k) by enumerating every feasible partition (n up to ~10).

    Feasible means the instance's whole variant: ordering edges only (data-only edges
    order nothing), co-location groups in one stage, stage memory within the cap.

    Returns
    -------
    (float, Partition or None)
        The optimum and one optimal partition (with ``k`` stages); ``(inf, None)`` when no
        partition is feasible (a memory cap that cannot be met).
    """
    rows = _constrained_rows(instance, enumerate_partitions(instance, k, compact=True))
    if len(rows) == 0:
        return math.inf, None
    ke = min(k, instance.n_nodes)
    vals = _costs_of_rows(instance, rows, ke)
    i = int(np.argmin(vals))
    return float(vals[i]), Partition(rows[i].astype(np.int64), k)


def random_dag(
    rng: np.random.Generator | int,
    n: int,
    *,
    edge_prob: float = 0.35,
    regime: str = "mixed",
    integer: bool = True,
    precedence_prob: float = 0.0,
    zero_prob: float = 0.1,
    memory: bool = False,
    name: str | None = None,
) -> Instance:
    """A random DAG on ``n`` nodes (edges only from lower to higher index, then shuffled).

    Parameters
    ----------
    regime : {"mixed", "compute", "comm"}
        Cost regime: comm costs of the order of work, much smaller, or much larger.
    integer : bool
        Integer costs in [0, 9] (scaled by regime) rather than floats.
    precedence_prob : float
        Probability that a non-edge forward pair becomes a precedence-only edge.
    zero_prob : float
        Probability that a node's work (and separately its comm) is 0.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    scale_c = {"mixed": 1.0, "compute": 0.1, "comm": 6.0}[regime]
    if integer:
        w = gen.integers(0, 10, size=n).astype(float)
        c = np.round(gen.integers(0, 10, size=n) * scale_c)
    else:
        w = gen.uniform(0, 10, size=n)
        c = gen.uniform(0, 10, size=n) * scale_c
    w[gen.random(n) < zero_prob] = 0.0
    c[gen.random(n) < zero_prob] = 0.0
    if w.sum() == 0:
        w[0] = 1.0
    perm = gen.permutation(n)  # node ids in a shuffled order: input order not topological
    ids = [f"v{i}" for i in range(n)]
    edges, prec = [], []
    for i in range(n):
        for j in range(i + 1, n):
            r = gen.random()
            if r < edge_prob:
                edges.append((ids[perm[i]], ids[perm[j]]))
            elif r < edge_prob + precedence_prob:
                prec.append((ids[perm[i]], ids[perm[j]]))
    mem = gen.integers(1, 5, size=n).astype(float) if memory else None
    return Instance(
        ids, w, c, edges, prec, memory=mem,
        name=name or f"random_{regime}_n{n}",
    )


def _memory_cap(
    gen: np.random.Generator, mem: np.ndarray, unit_mem: np.ndarray, mode: str
) -> float:
    """A memory cap of the kind ``mode`` for node memory ``mem`` whose largest unit (a set
    of nodes that must share a stage) needs ``unit_mem.max()``; see
    :func:`random_constrained_dag`."""
    total = float(mem.sum())
    biggest = float(unit_mem.max()) if unit_mem.size else 0.0
    if mode == "loose":  # above the total in any summation order (no active constraint)
        return total * (1 + 1e-9)
    if mode == "binding":
        return biggest + (total - biggest) * float(gen.uniform(0.2, 0.6))
    if mode == "tight":
        return biggest
    if mode == "impossible":
        return biggest * float(gen.uniform(0.5, 0.95))
    raise ValueError(f"memory must be None, 'loose', 'binding', 'tight' or 'impossible', "
                     f"got {mode!r}")


def random_constrained_dag(
    rng: np.random.Generator | int,
    n: int,
    *,
    edge_prob: float = 0.35,
    regime: str = "mixed",
    integer: bool = True,
    precedence_prob: float = 0.0,
    zero_prob: float = 0.1,
    groups: float = 0.0,
    data_only: float = 0.0,
    memory: str | None = None,
    name: str | None = None,
) -> Instance:
    """A random DAG (as :func:`random_dag`) with random constraints of every kind.

    Parameters
    ----------
    groups : float
        Probability that a node joins a co-location group (labels drawn among
        ``max(1, n // 3)``); when positive, at least one group has two nodes. A group may
        join nodes far apart in the order, forcing whatever lies between into its unit.
    data_only : float
        Probability, per pair of nodes, of a data-only edge in a random direction: it may
        run against the order, close a cycle with ordering edges (allowed: it orders
        nothing) or duplicate an ordering edge (then the pair orders).
    memory : {None, "loose", "binding", "tight", "impossible"}
        Node memory in 1..9 (floats if not ``integer``) and a cap: ``"loose"`` just above the total
        (no constraint), ``"binding"`` between the largest unit and the total, ``"tight"``
        the largest unit (often infeasible for small k), ``"impossible"`` below the largest
        unit (:meth:`Instance.infeasible_reason` proves it infeasible for every k).
    Other parameters are those of :func:`random_dag`.
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    base = random_dag(gen, n, edge_prob=edge_prob, regime=regime, integer=integer,
                      precedence_prob=precedence_prob, zero_prob=zero_prob)
    ids = list(base.ids)
    extra: list[tuple[str, str]] = []
    if data_only > 0:
        for i in range(n):
            for j in range(i + 1, n):
                if gen.random() < data_only:
                    extra.append((ids[i], ids[j]) if gen.random() < 0.5 else (ids[j], ids[i]))
    grp = None
    if groups > 0 and n >= 2:
        labels = max(1, n // 3)
        grp = np.where(gen.random(n) < groups, gen.integers(0, labels, size=n), -1)
        lab = grp[grp >= 0]
        if lab.size == np.unique(lab).size:  # no group has two nodes yet: make one
            a, b = gen.choice(n, size=2, replace=False)
            grp[b] = grp[a] if grp[a] >= 0 else labels
            grp[a] = grp[b]
    mem = None
    if memory is not None:
        mem = (gen.integers(1, 10, size=n).astype(float) if integer
               else gen.uniform(0.5, 10, size=n))
    inst = Instance.from_arrays(
        ids, base.work, base.comm,
        np.concatenate([base.src, [base.index[u] for u, _ in extra]]).astype(np.int64),
        np.concatenate([base.dst, [base.index[v] for _, v in extra]]).astype(np.int64),
        base.prec_src, base.prec_dst,
        orders=np.r_[np.ones(base.n_edges, dtype=bool), np.zeros(len(extra), dtype=bool)],
        memory=mem, groups=grp,
        name=name or f"constrained_{regime}_n{n}",
        metadata={"units": {"work": "unit", "comm": "unit", "memory": "unit"}},
    )
    if memory is not None:
        assert mem is not None
        inst = inst.replace(memory_limit=_memory_cap(gen, mem, inst.unit_sums(mem), memory))
    return inst


#: Cost values of :func:`with_extreme_costs`: zeros, ties and ratios of 1e18.
EXTREME_VALUES = (0.0, 1e-9, 1.0, 1.0, 1e9)


def with_extreme_costs(instance: Instance, rng: np.random.Generator | int,
                       *, ties: bool = False) -> Instance:
    """The same graph and constraints with extreme costs: work and comm drawn from
    :data:`EXTREME_VALUES` (1e-9 next to 1e9, zeros, ties), or, with ``ties``, every cost
    1 except some zeros (every partition of the same shape ties)."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    n = instance.n_nodes
    if ties:
        w = np.where(gen.random(n) < 0.2, 0.0, 1.0)
        c = np.where(gen.random(n) < 0.2, 0.0, 1.0)
    else:
        w = gen.choice(EXTREME_VALUES, size=n)
        c = gen.choice(EXTREME_VALUES, size=n)
    if w.sum() == 0:
        w[0] = 1.0
    return instance.replace(work=w, comm=c, name=f"{instance.name}-"
                            f"{'ties' if ties else 'extreme'}")


def random_training_dag(
    rng: np.random.Generator | int,
    n_layers: int,
    *,
    skip_prob: float = 0.3,
    regime: str = "mixed",
    integer: bool = True,
    zero_prob: float = 0.1,
    memory: str | None = None,
    orphan_prob: float = 0.0,
    name: str | None = None,
) -> Instance:
    """A random training graph: ``2 * n_layers`` nodes like the dnn-partitioning ones.

    Forward nodes ``f0..f{L-1}`` form a chain with random skip edges (ordering data edges);
    each layer has a backward node ``b{i}`` in the same co-location group as ``f{i}``; the
    backward edges mirror the forward ones (``f_i -> f_j`` gives ``b_j -> b_i``, a gradient
    flowing back) and every ``f_i -> b_i`` and some ``f_i -> b_j`` (stashed activations)
    are data-only edges. ``orphan_prob`` leaves a layer without a group (its two nodes are
    free). ``memory``: None (no memory), ``"loose"`` (a cap the graph fits in one stage),
    ``"binding"`` (a cap between the largest layer and the total), ``"tight"`` (the largest
    layer's memory, often infeasible for small k) or ``"impossible"`` (below the largest
    layer: :meth:`Instance.infeasible_reason` proves every k infeasible when the layer is
    grouped).
    """
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    L = int(n_layers)
    if L < 1:
        raise ValueError("n_layers must be >= 1")
    scale_c = {"mixed": 1.0, "compute": 0.1, "comm": 6.0}[regime]
    n = 2 * L
    if integer:
        w = gen.integers(0, 10, size=n).astype(float)
        c = np.round(gen.integers(0, 10, size=n) * scale_c)
    else:
        w = gen.uniform(0, 10, size=n)
        c = gen.uniform(0, 10, size=n) * scale_c
    w[gen.random(n) < zero_prob] = 0.0
    c[gen.random(n) < zero_prob] = 0.0
    if w.sum() == 0:
        w[0] = 1.0
    ids = [f"f{i}" for i in range(L)] + [f"b{i}" for i in range(L)]
    fwd: list[tuple[str, str]] = []
    data_only: list[tuple[str, str]] = []
    for i in range(L - 1):
        fwd.append((f"f{i}", f"f{i + 1}"))
        for j in range(i + 2, L):
            if gen.random() < skip_prob:
                fwd.append((f"f{i}", f"f{j}"))
    for u, v in fwd:
        data_only.append((f"b{v[1:]}", f"b{u[1:]}"))
    for i in range(L):
        data_only.append((f"f{i}", f"b{i}"))
        for j in range(i + 1, L):
            if gen.random() < skip_prob / 2:
                data_only.append((f"f{i}", f"b{j}"))
    groups = np.array([i for i in range(L)] * 2, dtype=np.int64)
    for i in range(L):
        if gen.random() < orphan_prob:
            groups[i] = groups[L + i] = -1
    perm = gen.permutation(n)  # input order not topological
    mem = None
    cap = None
    if memory is not None:
        mem = (gen.integers(0, 10, size=n) if integer else gen.uniform(0, 10, size=n))
        mem = np.asarray(mem, dtype=float)
        cap = _memory_cap(gen, mem, mem[:L] + mem[L:], memory)
    return Instance(
        [ids[p] for p in perm], w[perm], c[perm], fwd,
        data_only_edges=data_only,
        memory=None if mem is None else mem[perm],
        groups=groups[perm],
        memory_limit=cap,
        name=name or f"training-{L}-{regime}",
        metadata={"units": {"work": "unit", "comm": "unit", "memory": "unit"}},
    )


def dnn_chain(
    rng: np.random.Generator | int,
    n_layers: int,
    *,
    skip_prob: float = 0.3,
    weights: bool = True,
    regime: str = "comm",
    name: str | None = None,
) -> Instance:
    """A DNN-like chain: layers in sequence, skip edges, zero-work weight source nodes."""
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    ids: list[str] = []
    w: list[float] = []
    c: list[float] = []
    edges: list[tuple[str, str]] = []
    scale_c = {"mixed": 1.0, "compute": 0.1, "comm": 4.0}[regime]
    prev: str | None = None
    layers: list[str] = []
    for i in range(n_layers):
        v = f"L{i}"
        ids.append(v)
        w.append(float(gen.integers(1, 10)))
        c.append(float(np.round(gen.integers(1, 10) * scale_c)))
        if prev is not None:
            edges.append((prev, v))
        if len(layers) >= 2 and gen.random() < skip_prob:
            edges.append((layers[int(gen.integers(0, len(layers) - 1))], v))
        if weights and gen.random() < 0.5:
            p = f"W{i}"
            ids.append(p)
            w.append(0.0)
            c.append(float(np.round(gen.integers(1, 10) * scale_c)))
            edges.append((p, v))
        layers.append(v)
        prev = v
    return Instance(ids, w, c, edges, name=name or f"dnn_chain_{regime}_{n_layers}")


def small_cases(count: int, *, seed: int = 0, max_nodes: int = 8) -> Iterator[Instance]:
    """``count`` small instances mixing random DAGs (all regimes) and DNN-like chains."""
    gen = np.random.default_rng(seed)
    for i in range(count):
        kind = i % 5
        if kind == 3:
            inst = dnn_chain(gen, int(gen.integers(3, max(4, max_nodes // 2 + 1))),
                             regime=["comm", "compute", "mixed"][i % 3])
        else:
            n = int(gen.integers(2, max_nodes + 1))
            inst = random_dag(
                gen, n,
                edge_prob=float(gen.uniform(0.15, 0.6)),
                regime=["mixed", "compute", "comm"][kind % 3],
                integer=bool(i % 7 != 6),
                precedence_prob=0.1 if i % 4 == 1 else 0.0,
            )
        yield inst.replace(name=f"case{i}_{inst.name}")


@lru_cache(maxsize=4096)
def _cached_case(count: int, seed: int, max_nodes: int, i: int) -> Instance:
    for j, inst in enumerate(small_cases(count, seed=seed, max_nodes=max_nodes)):
        if j == i:
            return inst
    raise IndexError(i)


@lru_cache(maxsize=8192)
def _cached_opt(count: int, seed: int, max_nodes: int, i: int, k: int) -> float:
    return brute_force(_cached_case(count, seed, max_nodes, i), k)[0]


def _tol(x: float) -> float:
    return BOUND_ATOL + BOUND_RTOL * abs(x)


def assert_bound_valid(bound: float | None, opt: float, what: str) -> None:
    """Raise an AssertionError saying what to fix if ``bound > opt`` beyond tolerance."""
    if bound is not None and bound > opt + _tol(opt):
        raise AssertionError(
            f"{what}: bound {bound!r} > OPT {opt!r}: the lower bound is invalid; fix the "
            "formulation's model or its dual-bound handling"
        )


def meets_optimum(bound: float, opt: float, stats: Any = None) -> bool:
    """True if ``bound`` equals ``opt`` up to 1e-5 relative and the method's safety margin.

    A solver's dual bound is reported minus a documented safety margin
    (``stats["margin"]``, original units; see formulations/mip/base.py), so an exact
    method solved to optimality may report ``OPT - margin``, never more than ``OPT``.
    """
    margin = float((stats or {}).get("margin", 0.0) or 0.0)
    return opt - margin - 1e-5 * abs(opt) - 1e-6 <= bound <= opt + _tol(opt)


#: The constrained variants of :func:`variant_cases` (name: what its instances are).
VARIANTS: dict[str, str] = {
    "training": "random training graphs (forward chain with skips, mirrored backward "
                "nodes grouped with their forward node, data-only gradient and stash "
                "edges, some layers ungrouped), no memory",
    "training-memory-loose": "training graphs with a cap the whole graph fits (no memory "
                             "constraint)",
    "training-memory-binding": "training graphs with a cap between the largest layer and "
                               "the total",
    "training-memory-tight": "training graphs with a cap at (or below) the largest layer: "
                             "often infeasible",
    "groups": "random DAGs with random co-location groups (units joining nodes far apart)",
    "data-only": "random DAGs with random data-only edges (against the order, closing "
                 "cycles, duplicating ordering edges)",
    "memory": "random DAGs with binding, tight and impossible memory caps",
    "memory-loose": "random DAGs with a cap the graph fits (no active constraint)",
    "mixed": "random DAGs mixing groups, data-only edges and memory caps",
    "extreme": "constrained graphs with costs 1e-9 next to 1e9, zeros and ties",
}


class VariantCase:
    """One ``(instance, k)`` of a variant, with its brute-force optimum (computed lazily).

    Attributes
    ----------
    instance : Instance
    k : int
    variant : str
    index : int
    """

    __slots__ = ("instance", "k", "variant", "index", "_solution")

    def __init__(self, instance: Instance, k: int, variant: str, index: int = 0) -> None:
        self.instance = instance
        self.k = k
        self.variant = variant
        #: Position of the instance in its variant (cases of one instance share it).
        self.index = index
        self._solution: tuple[float, Partition | None] | None = None

    @property
    def solution(self) -> tuple[float, Partition | None]:
        """``brute_force(instance, k)``: OPT (inf when infeasible) and an optimal partition."""
        if self._solution is None:
            self._solution = brute_force(self.instance, self.k)
        return self._solution

    @property
    def opt(self) -> float:
        """OPT(instance, k); inf when no partition is feasible."""
        return self.solution[0]

    def __repr__(self) -> str:
        return f"VariantCase({self.instance.name!r}, k={self.k})"


def _variant_instance(variant: str, i: int, gen: np.random.Generator) -> Instance:
    regime = ("mixed", "compute", "comm")[i % 3]
    integer = i % 4 != 3
    if variant.startswith("training"):
        memory = {"training": None, "training-memory-loose": "loose",
                  "training-memory-binding": "binding",
                  "training-memory-tight": "impossible" if i % 4 == 3 else "tight"}[variant]
        return random_training_dag(gen, 2 + i % 4, memory=memory, regime=regime,
                                   integer=integer, orphan_prob=(0.0, 0.3, 0.6)[i % 3],
                                   skip_prob=float(gen.uniform(0.1, 0.5)))
    n = int(gen.integers(3, 8))
    common: dict[str, Any] = dict(regime=regime, integer=integer,
                                  edge_prob=float(gen.uniform(0.2, 0.6)),
                                  precedence_prob=0.1 if i % 4 == 1 else 0.0)
    if variant == "groups":
        return random_constrained_dag(gen, n + 1, groups=float(gen.uniform(0.3, 0.8)),
                                      **common)
    if variant == "data-only":
        return random_constrained_dag(gen, n, data_only=float(gen.uniform(0.1, 0.4)),
                                      **common)
    if variant == "memory":
        mode = ("binding", "tight", "binding", "impossible", "binding")[i % 5]
        return random_constrained_dag(gen, n + 1, memory=mode, **common)
    if variant == "memory-loose":
        return random_constrained_dag(gen, n + 1, memory="loose", **common)
    if variant == "mixed":
        return random_constrained_dag(
            gen, n, groups=float(gen.uniform(0.2, 0.7)) if i % 3 != 2 else 0.0,
            data_only=float(gen.uniform(0.1, 0.3)) if i % 3 != 1 else 0.0,
            memory=(None, "binding", "tight", "binding")[i % 4], **common)
    if variant == "extreme":
        kind = i % 3
        if kind == 0:
            inst = random_training_dag(gen, 2 + i % 3, orphan_prob=0.3,
                                       memory=(None, "binding")[i % 2])
        else:
            inst = random_constrained_dag(gen, n, groups=0.5, data_only=0.2 * (kind == 1),
                                          memory=(None, "binding", "tight")[i % 3])
        return with_extreme_costs(inst, gen, ties=i % 4 == 2)
    raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")


@lru_cache(maxsize=256)
def variant_cases(variant: str, count: int = 8, *, seed: int = 0) -> tuple[VariantCase, ...]:
    """``count`` instances of ``variant`` (a key of :data:`VARIANTS`), each with 2-3 values
    of k covering ``1..n+1`` over the cases (k = 1, 2 or 3, a random k and ``n + 1``).

    Instances have at most 10 nodes, so :func:`brute_force` (``VariantCase.opt``) is fast.
    Deterministic in ``(variant, count, seed)``; cached.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    gen = np.random.default_rng([seed, sorted(VARIANTS).index(variant)])
    out: list[VariantCase] = []
    for i in range(count):
        inst = _variant_instance(variant, i, gen)
        inst = inst.replace(name=f"{variant}{i}-{inst.name}")
        n = inst.n_nodes
        ks = sorted({1 + i % 3, int(gen.integers(2, n + 2)), n + 1})
        out.extend(VariantCase(inst, k, variant, i) for k in ks)
    return tuple(out)


def _is_formulation(method: Any) -> bool:
    return hasattr(method, "lower_bound")


def claimed_constraints(method: Any) -> frozenset[str]:
    """The constraints a method claims: those it handles, and for a lower bound also those
    it relaxes (a bound that ignores a constraint stays valid)."""
    claimed = set(getattr(method, "handles", ()))
    if _is_formulation(method):
        claimed |= set(getattr(method, "relaxes", ()))
    return frozenset(claimed)


def check_run(
    method: Any,
    instance: Instance,
    k: int,
    *,
    solution: tuple[float, Partition | None] | None = None,
    context: SolveContext | None = None,
    time_limit_s: float = 20.0,
    seed: int = 1234,
    exact: bool | None = None,
    reproducible: bool = False,
    floor: bool = False,
) -> Any:
    """Run a formulation or heuristic through its framework gate (``method.run``) on
    ``(instance, k)`` and check the outcome against the brute-force optimum.

    Checks, raising an :class:`AssertionError` that says what to fix:

    * an active constraint (:attr:`Instance.constraints`) the method does not claim
      (:func:`claimed_constraints`) gives ``unsupported`` with a reason, no bound and no
      partition: never an answer to a different problem;
    * no run ends in ``error``; ``unsupported`` (for another reason) and ``infeasible``
      always carry a reason and neither a bound nor a partition;
    * a proof of infeasibility (:meth:`Instance.infeasible_reason`) gives ``infeasible``;
    * an infeasible instance (brute force finds no partition) gets no partition and no
      ``optimal``; a feasible one is never called ``infeasible``;
    * a bound is at most OPT (tolerances of :func:`assert_bound_valid`), including the
      per-guess bounds of ``stats["per_b"]``; an ``exact`` formulation at ``optimal``
      equals OPT (up to its documented margin, :func:`meets_optimum`);
    * a partition passes :func:`pipecert.partition.check_feasible` (order on ordering edges,
      groups, memory cap, at most k stages) and is worth at least OPT; a heuristic at
      ``optimal`` (or ``exact``) is worth OPT; a heuristic returns a partition whenever
      the instance has no memory cap (one stage is then feasible) unless it says why not;
    * ``reproducible``: a heuristic run again with the same seed gives the same value.

    Parameters
    ----------
    solution : (float, Partition or None), optional
        ``brute_force(instance, k)`` if already known.
    context : SolveContext, optional
        Passed to the run (a formulation's warm start, cutoff and proven lower bound).
    exact : bool, optional
        A heuristic that must find OPT (default: a formulation's ``exact`` attribute only
        matters at ``optimal``; a heuristic is held to OPT when it reports ``optimal``).
    floor : bool
        A formulation's bound with the combinatorial floor (``run(floor=True)``); the
        default checks the method's own bound.

    Returns
    -------
    RunOutcome
        The checked outcome.
    """
    from pipecert.results import Status

    opt, _ = solution if solution is not None else brute_force(instance, k)
    form = _is_formulation(method)
    where = (f"{method.method_id()} on {instance.name} (k={k}, OPT={opt}, constraints="
             f"{sorted(instance.constraints) or 'none'})")
    if form:
        out = method.run(instance, k, Budget(time_limit_s=time_limit_s), context, floor=floor)
    else:
        out = method.run(instance, k, Budget(time_limit_s=time_limit_s),
                         np.random.default_rng(seed), context)
    missing = instance.constraints - claimed_constraints(method)
    if missing:
        assert out.status is Status.UNSUPPORTED, (
            f"{where}: the method does not claim {sorted(missing)} but returned "
            f"{out.status}: it must return unsupported (declare `handles`/`relaxes` only "
            "for what it models)")
    assert out.status is not Status.ERROR, f"{where}: error: {out.error}"
    if out.status in (Status.UNSUPPORTED, Status.INFEASIBLE):
        assert out.error, f"{where}: {out.status} without a reason"
        assert out.bound is None and out.partition is None and out.incumbent is None, \
            f"{where}: {out.status} with a bound or a partition"
        if out.status is Status.UNSUPPORTED:
            return out
    reason = instance.infeasible_reason(k)
    if reason is not None:
        assert math.isinf(opt), (f"core bug: infeasible_reason({k}) = {reason!r} but brute "
                                 f"force found a partition of value {opt}")
        assert out.status is Status.INFEASIBLE, \
            f"{where}: infeasibility is proven ({reason}) but the run says {out.status}"
    if math.isinf(opt):
        assert out.partition is None, f"{where}: a partition of an infeasible instance"
        assert out.status is not Status.OPTIMAL, \
            f"{where}: optimal on an infeasible instance (bound {out.bound})"
        return out
    assert out.status is not Status.INFEASIBLE, \
        f"{where}: reported infeasible ({out.error}) but a partition of value {opt} exists"
    assert_bound_valid(out.bound, opt, where)
    for b, v in dict(out.stats.get("per_b", {}) or {}).items():
        assert_bound_valid(v, opt, f"{where}, Guess({b})")
    val = None
    if out.partition is not None:
        probs = check_feasible(instance, out.partition, k=k)
        assert not probs, f"{where}: infeasible partition: {probs[0]}"
        val = evaluate(instance, out.partition)
        assert val >= opt - _tol(opt), f"{where}: partition value {val} < OPT {opt}: cost bug"
    if form:
        if getattr(method, "exact", False) and out.status is Status.OPTIMAL:
            assert out.bound is not None and meets_optimum(out.bound, opt, out.stats), \
                f"{where}: exact method reports optimal {out.bound} but OPT is {opt}"
        return out
    if val is None:
        assert "memory" in instance.constraints or out.error, (
            f"{where}: no partition ({out.status}) and no reason, but one stage is feasible")
        assert not exact, f"{where}: an exact method found no partition ({out.status})"
        assert out.status is not Status.OPTIMAL, f"{where}: optimal without a partition"
        return out
    if exact or out.status is Status.OPTIMAL:
        assert math.isclose(val, opt, rel_tol=1e-9, abs_tol=1e-9), \
            f"{where}: exact or optimal ({out.status}) but found {val}, OPT is {opt}"
    if reproducible:
        again = method.run(instance, k, Budget(time_limit_s=time_limit_s),
                           np.random.default_rng(seed), context)
        assert again.partition is not None and evaluate(instance, again.partition) == val, \
            f"{where}: not reproducible with the same seed"
    return out


def _iter_cases(
    cases: Iterable[Instance | tuple[Instance, int] | VariantCase], ks: tuple[int, ...]
) -> Iterator[tuple[Instance, int, tuple[float, Partition | None] | None]]:
    for c in cases:
        if isinstance(c, VariantCase):
            yield c.instance, c.k, c.solution
        elif isinstance(c, Instance):
            for k in ks:
                yield c, k, None
        else:
            inst, k = c
            yield inst, int(k), None


def _selected_cases(
    cases: Iterable[Instance | tuple[Instance, int] | VariantCase] | None,
    variants: Iterable[str] | str | None, count: int, seed: int,
) -> list[Instance | tuple[Instance, int] | VariantCase]:
    out: list[Instance | tuple[Instance, int] | VariantCase] = list(cases or ())
    if isinstance(variants, str):
        variants = tuple(VARIANTS) if variants == "all" else (variants,)
    for v in variants or ():
        out.extend(variant_cases(v, count, seed=seed))
    return out


def check_formulation(
    method: Any,
    *,
    count: int = 60,
    seed: int = 0,
    ks: tuple[int, ...] = (1, 2, 3, 4),
    max_nodes: int = 8,
    time_limit_s: float = 20.0,
    cases: Iterable[Instance | tuple[Instance, int] | VariantCase] | None = None,
    variants: Iterable[str] | str | None = None,
) -> int:
    """Check a formulation instance on small cases against brute force.

    Without ``cases`` or ``variants``: ``count`` cases of :func:`small_cases` (the
    unconstrained problem) x ``ks``, calling :meth:`lower_bound` directly; asserts
    ``bound <= OPT`` (with tolerance), that any returned partition is feasible and no
    better than OPT, and, for ``exact`` methods reporting ``optimal``, ``bound == OPT``.

    With ``cases`` (instances, checked for every k of ``ks``, or ``(instance, k)`` pairs,
    or :class:`VariantCase`) and/or ``variants`` (names of :data:`VARIANTS`, or
    ``"all"``; ``count`` instances each): every case goes through the framework gate
    ``method.run`` and :func:`check_run` (constraints the method does not claim must give
    ``unsupported``; infeasible instances no partition; ...).

    Returns the number of (case, k) pairs checked.
    """
    if cases is not None or variants is not None:
        checked = 0
        chosen = _selected_cases(cases, variants, count, seed)
        for inst, k, sol in _iter_cases(chosen, ks):
            check_run(method, inst, k, solution=sol, time_limit_s=time_limit_s)
            checked += 1
        return checked
    checked = 0
    for i in range(count):
        inst = _cached_case(count, seed, max_nodes, i)
        for k in ks:
            opt = _cached_opt(count, seed, max_nodes, i, k)
            res = method.lower_bound(inst, k, Budget(time_limit_s=time_limit_s),
                                     SolveContext())
            where = f"{method.method_id()} on {inst.name} (k={k})"
            assert_bound_valid(res.bound, opt, where)
            if res.partition is not None:
                probs = check_feasible(inst, res.partition, k=k)
                assert not probs, f"{where}: infeasible incumbent: {probs[0]}"
                val = evaluate(inst, res.partition)
                assert val >= opt - _tol(opt), f"{where}: incumbent {val} < OPT {opt}"
            if getattr(method, "exact", False) and str(res.status) == "optimal":
                assert res.bound is not None and meets_optimum(res.bound, opt, res.stats), \
                    f"{where}: exact method reports optimal {res.bound} but OPT is {opt}"
            checked += 1
    return checked


def check_heuristic(
    method: Any,
    *,
    count: int = 60,
    seed: int = 0,
    ks: tuple[int, ...] = (1, 2, 3, 4),
    max_nodes: int = 8,
    time_limit_s: float = 5.0,
    exact: bool = False,
    cases: Iterable[Instance | tuple[Instance, int] | VariantCase] | None = None,
    variants: Iterable[str] | str | None = None,
) -> int:
    """Check a heuristic instance on small cases against brute force.

    Without ``cases`` or ``variants``: ``count`` cases of :func:`small_cases` x ``ks``
    through :meth:`solve`; asserts every partition is feasible with value >= OPT (== OPT
    if ``exact``), and that two runs with the same seed return the same partition.

    With ``cases`` and/or ``variants`` (as in :func:`check_formulation`): every case goes
    through ``method.run`` and :func:`check_run` (reproducibility included).

    Returns the number checked.
    """
    if cases is not None or variants is not None:
        checked = 0
        chosen = _selected_cases(cases, variants, count, seed)
        for inst, k, sol in _iter_cases(chosen, ks):
            check_run(method, inst, k, solution=sol, time_limit_s=time_limit_s,
                      exact=exact, reproducible=True)
            checked += 1
        return checked
    checked = 0
    for i in range(count):
        inst = _cached_case(count, seed, max_nodes, i)
        for k in ks:
            opt = _cached_opt(count, seed, max_nodes, i, k)
            where = f"{method.method_id()} on {inst.name} (k={k})"
            res = method.solve(inst, k, Budget(time_limit_s=time_limit_s),
                               np.random.default_rng(1234))
            assert res.partition is not None, f"{where}: returned no partition"
            probs = check_feasible(inst, res.partition, k=k)
            assert not probs, f"{where}: infeasible partition: {probs[0]}"
            val = evaluate(inst, res.partition)
            assert val >= opt - _tol(opt), f"{where}: value {val} < OPT {opt}: cost bug"
            if exact:
                assert math.isclose(val, opt, rel_tol=1e-9, abs_tol=1e-9), \
                    f"{where}: exact method found {val}, OPT is {opt}"
            again = method.solve(inst, k, Budget(time_limit_s=time_limit_s),
                                 np.random.default_rng(1234))
            assert again.partition is not None and evaluate(inst, again.partition) == val, \
                f"{where}: not reproducible with the same seed"
            checked += 1
    return checked


def warmup_instances() -> list[Instance]:
    """Tiny graphs that, run through every method, compile every numba specialisation the
    methods use on real graphs (untimed warm-up of ``pipecert solve`` and ``pipecert run``).

    numba compiles one machine-code version per argument type signature, and real graphs
    take paths a 6-node random DAG does not: zero-work weight chains that the exact
    reductions contract (new, writable arrays instead of the instance's read-only ones),
    memory data, precedence-only edges, integer and float costs, a topological input order,
    and the constrained paths (co-location groups, data-only edges and a memory cap that
    binds yet is feasible at k = 2 and 3, the ks of ``portfolio.warm_up``; a
    layer without a group). One graph of each kind covers them.
    """
    chain_ids = [f"w{i}" for i in range(8)]
    # a weight (zero work) feeding a chain, a zero-work pass-through, float costs
    weights = Instance(
        chain_ids, [0.0, 1.5, 0.0, 2.25, 3.0, 0.0, 1.0, 0.5],
        [0.5, 0.25, 2.0, 0.75, 0.5, 0.125, 0.25, 0.0],
        [("w0", "w1"), ("w1", "w2"), ("w2", "w3"), ("w3", "w4"), ("w1", "w5"),
         ("w5", "w6"), ("w4", "w7"), ("w6", "w7")],
        memory=[1.0, 2.0, 0.5, 1.0, 3.0, 0.5, 1.0, 2.0], name="warmup-weights")
    return [
        random_dag(0, 6, name="warmup"),
        weights,
        random_dag(1, 7, integer=False, precedence_prob=0.2, memory=True,
                   name="warmup-float"),
        random_training_dag(4, 4, memory="binding", orphan_prob=0.3, integer=False,
                            name="warmup-training"),
    ]


def make_formulation(spec: str, solver: str | None = None) -> Any:
    """The registered formulation ``spec``, with its MIP backend set to ``solver`` (if given)."""
    from formulations import FORMULATIONS

    method = FORMULATIONS.make(spec)
    if solver is not None:
        method.solver = solver  # type: ignore[attr-defined]  # the MIP formulations' knob
    return method
