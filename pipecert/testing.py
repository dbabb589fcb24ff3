"""Test oracles and reusable checks: every method is tested against true optima.

* :func:`brute_force` enumerates every feasible ordered partition of a small graph (about
  10 nodes) and returns the exact optimum with an optimal partition. It shares no code with
  any method except the reference cost model, which it re-implements independently.
* :func:`random_dag`, :func:`dnn_chain` and :func:`small_cases` generate small instances of
  both cost regimes (compute-heavy and communication-heavy).
* :func:`check_formulation` and :func:`check_heuristic` run a method on many small cases and
  raise :class:`AssertionError` with a message that says what to fix. A researcher can call
  them on a draft method outside the repository.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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
    "dnn_chain",
    "small_cases",
    "worked_example",
    "check_formulation",
    "check_heuristic",
    "assert_bound_valid",
    "meets_optimum",
]

MAX_ENUMERATION = 3_000_000


def worked_example() -> Instance:
    """The 5-node example of spec §2.8 (OPT = 12, 10, 10 for k = 1, 2, 3)."""
    return Instance(
        ["a", "b", "c", "d", "e"],
        work=[2, 4, 3, 2, 1],
        comm=[3, 1, 2, 1, 5],
        edges=[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"), ("a", "e")],
        name="worked_example",
    )


def enumerate_partitions(instance: Instance, k: int) -> np.ndarray:
    """All order-feasible stage vectors with stages in ``0..min(k, n)-1``, as rows.

    Builds the assignments node by node in topological order, giving each node every stage
    at or after the latest stage of its predecessors (data and precedence edges). With at
    most n non-empty stages, stages beyond n are never needed.
    """
    k = validate_k(k)
    n = instance.n_nodes
    ke = min(k, n)
    topo = instance.topo_order
    pos = np.empty(n, dtype=np.int64)
    pos[topo] = np.arange(n)
    pptr, pidx = instance.order_pred_csr
    rows = np.zeros((1, 0), dtype=np.int8)
    for v in topo.tolist():
        preds = pidx[pptr[v] : pptr[v + 1]]
        lo = rows[:, pos[preds]].max(axis=1) if preds.size else np.zeros(len(rows), np.int8)
        parts = []
        for s in range(ke):
            keep = lo <= s
            if keep.any():
                r = rows[keep]
                parts.append(np.hstack([r, np.full((len(r), 1), s, dtype=np.int8)]))
        rows = np.vstack(parts)
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
    rows = _constrained_rows(instance, enumerate_partitions(instance, k))
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
    ``"binding"`` (a cap between the largest layer and the total) or ``"tight"`` (a cap
    just above the largest layer, often infeasible for small k).
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
        layer = mem[:L] + mem[L:]
        total = float(mem.sum())
        biggest = float(layer.max())
        if memory == "loose":
            cap = total
        elif memory == "binding":
            cap = biggest + (total - biggest) * float(gen.uniform(0.2, 0.6))
        elif memory == "tight":
            cap = biggest
        else:
            raise ValueError(f"memory must be None, 'loose', 'binding' or 'tight', got {memory!r}")
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
    (``stats["margin"]``, original units; see formulations/_mip/template.py), so an exact
    method solved to optimality may report ``OPT - margin``, never more than ``OPT``.
    """
    margin = float((stats or {}).get("margin", 0.0) or 0.0)
    return opt - margin - 1e-5 * abs(opt) - 1e-6 <= bound <= opt + _tol(opt)


def check_formulation(
    method: Any,
    *,
    count: int = 60,
    seed: int = 0,
    ks: tuple[int, ...] = (1, 2, 3, 4),
    max_nodes: int = 8,
    time_limit_s: float = 20.0,
) -> int:
    """Check a formulation instance on ``count`` small cases x ``ks`` against brute force.

    Asserts ``bound <= OPT`` (with tolerance), that any returned partition is feasible and
    no better than OPT, and, for ``exact`` methods reporting ``optimal``, ``bound == OPT``.
    Returns the number of (case, k) pairs checked.
    """
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
) -> int:
    """Check a heuristic instance on ``count`` small cases x ``ks`` against brute force.

    Asserts every partition is feasible with value >= OPT (== OPT if ``exact``), and that
    two runs with the same seed return the same partition. Returns the number checked.
    """
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
    memory data, precedence-only edges, integer and float costs, a topological input order.
    One graph of each kind covers them.
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
    ]


def make_formulation(spec: str, solver: str | None = None) -> Any:
    """The registered formulation ``spec``, with its MIP backend set to ``solver`` (if given)."""
    from formulations import FORMULATIONS

    method = FORMULATIONS.make(spec)
    if solver is not None:
        method.solver = solver
    return method
