"""Path-segmentation bound: min-max split of a path into runs of anchored blocks (min cuts).

Model
-----
Take a chain ``P = (v_0, ..., v_{L-1})`` of nodes, each reaching the next over ordering edges
(a source-to-sink path, or a subsequence of one). For the run of positions ``i..j`` let

* ``H(i, j) = desc(v_i) ∩ anc(v_j)`` (the nodes between ``v_i`` and ``v_j``),
* ``X(i, j) = anc(v_{i-1}) ∪ desc(v_{j+1})`` (empty parts when ``i = 0`` / ``j = L-1``),
* ``g(i, j) = F(H(i, j), X(i, j))``, the anchored cheapest block (one min cut, see
  :mod:`formulations._maxflow`),

and ``LB_path(P, k) = min over splits of 0..L-1 into at most k contiguous runs of
max_run g(run)``, the min-max segmentation recurrence (Algorithm 1) on the ``L`` positions.
The reported bound is ``max(LB_node, max_P LB_path(P, k), values proven for larger k)``.

What it relaxes
---------------
Only the blocks that meet ``P`` are modelled, each by its own cheapest anchored block: the
other nodes may be in or out of it freely, and the blocks are not required to partition V.

Validity
--------
Let ``(S_1, ..., S_k)`` be an optimal partition. Every ordering edge goes forward, so the block
index is non-decreasing along ``P`` and the blocks that meet ``P`` cut it into at most ``k``
contiguous runs. For a run ``i..j`` held by ``S``: every node ``x`` between ``v_i`` and
``v_j`` satisfies ``block(v_i) <= block(x) <= block(v_j)``, so ``x ∈ S`` (``H(i,j) ⊆ S``);
``v_{i-1}`` is in an earlier block, and so is each of its ancestors, symmetrically for the
descendants of ``v_{j+1}`` (``S ∩ X(i,j) = ∅``). Hence ``f(S) >= g(i, j)`` and
``OPT >= max_run g(run) >= LB_path(P, k)``. The DP runs on *lower estimates* of ``g`` (below),
and replacing any entry by a smaller number can only lower the min-max value, so every
intermediate value is valid; every max flow is itself rounded down
(:mod:`formulations._maxflow`). ``OPT(k)`` never increases with ``k`` (empty blocks are
allowed), so a bound proven for ``k' > k`` also holds for ``k``.

Constrained variants
--------------------
* Data-only edges (handled): the chain, ``anc``, ``desc``, ``H`` and ``X`` use ordering
  edges only (``order_*_csr``, ``topo_order``), and the argument above speaks only about
  ordering edges (block indices are non-decreasing along them). A data-only edge orders
  nothing, so it plays no part in ``H`` or ``X``; it only adds communication, which ``F``
  charges over all data edges (:mod:`formulations._maxflow`). The run estimates count a
  producer's forced charge only from the membership of its endpoints in ``H`` and ``X``,
  never from an edge direction, so they stay lower bounds.
* Co-location groups (handled): a block of a feasible partition is a union of units that
  contains ``H(i, j)`` and avoids ``X(i, j)``, hence contains their unit closures; the max
  flows minimise over exactly such sets and return ``+inf`` for a run whose closed ``H`` and
  ``X`` meet (no feasible block holds that run, so the optimal split never uses it, and an
  infinite entry only removes splits the optimum does not need). The estimates are
  computed without the closure: lower bounds of the closed values.
* Memory cap (relaxed, but used): a run whose units (those meeting ``H``, all in the run's
  block) need more memory than the cap cannot be one block: its *single-run* entry is
  ``+inf`` by the same argument (:func:`formulations._spine.run_memory_over`, exact integer
  sums rounded down). The union of two runs in the pair split spans two blocks, so the union
  entries never carry this test (``gu`` of :func:`formulations._spine.pair_segment_value`).
  When every split into at most ``k`` runs has an infinite run, no feasible partition
  exists (a feasible one would give a split with finite runs): the run is ``infeasible``,
  with the reason. The infinities come from set tests and a memory sum compared with
  ``M (1 + 1e-9)``, never from rounded cuts.
* The pair split (:func:`formulations._spine.pair_segment_value`): two consecutive runs in
  adjacent blocks ``S, S'`` make ``S u S'`` a union of units containing the closed ``H`` of
  their union and avoiding its ``X``, so ``g(union) <= f(S u S') <= 2 OPT`` as before, and an
  infinite ``g(union)`` (closed ``H`` and ``X`` meet) forces a block between them.

Numerics
--------
Every entry of the DP table is a lower bound as computed, not only in exact arithmetic:
max-flow values are rounded down (:mod:`formulations._maxflow`), the estimates are integer
sums of floored scaled costs converted down (:func:`formulations._spine.run_estimates`; a
float 2D inclusion-exclusion could round ``1e9 + 1e-9 - 1e9`` up), and the DPs only compare
entries (the pair DP doubles a threshold, exact in binary, and its candidate set holds both
``g / 2`` and the next float up, so a rounded half cannot skip the optimum). On any input,
including costs of 1e-9 next to 1e9 or 1e300, the value is valid; when a remainder is below
the scale of a cut it is dropped, never invented. Nothing here raises on extreme costs.

Computation
-----------
* Chains: the heaviest source-to-sink paths under several node weights (default ``work``,
  ``work_comm`` = w + c and ``count`` = 1; also ``node`` = the node bounds and ``comm``;
  on 10 graphs x 4 values of k the default three always reached the five-path maximum),
  deduplicated, plus ``cover`` paths through heavy nodes no chosen path holds;
  a path longer than ``max_len`` is thinned to ``max_len`` evenly spaced positions (a
  subsequence of a path is a chain, so the argument above still holds).
* Estimates ``g~(i, j) <= g(i, j)`` for all ``O(L^2)`` runs at once, O(L^2 + n + m)
  (:func:`formulations._spine.run_estimates`): ``w(H)`` plus the communication every feasible
  block must pay, or the largest node bound inside ``H``.
* Lazy refinement: solve the DP on the current entries; compute the runs of its optimal split
  that are still estimates exactly by max flow; repeat until the split uses exact entries only
  (then the value equals the DP on exact ``g``) or the budget ends. Entries stay cached per
  graph (``context.cache`` and a bounded module memo), so the runs of every ``k`` share the work.
  Each chain also keeps its sorted DP thresholds (a superset of the entries, new max-flow
  values merged in, :meth:`ChainState.candidates`) and its memory-masked table, so a round
  costs two binary searches instead of a sort of all ``L^2`` entries (same value and split).

* Budget: checked before every max flow, between DP rounds and between chains; one max flow
  took at most 84 ms on a 60,000-node graph, so a 30 s limit ends within ~0.1 s of it
  (measured 30.01 s), keeping the best value proven so far.

Size
----
Per chain: ``L^2`` floats and an ``O(L^2)`` DP per step; a few dozen max flows on the network
of :mod:`formulations._maxflow` in practice (``stats["max_flows"]``).

References
----------
pipecert, ``docs/theory/min-cut-bounds.md#path-bound`` (not in Archer et al.); the segmentation
recurrence is Algorithm 1 of Archer et al. (docs/theory/algorithms.md#algorithm-1).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from formulations._maxflow import network_for, resolve_engine
from formulations._spine import (
    _path_through,
    chain_indices,
    heaviest_path,
    pair_segment_value,
    path_tables,
    row_suffix_min,
    run_classes,
    run_estimates,
    run_memory_over,
    segment_value,
)
from formulations.base import FORMULATIONS, Formulation
from formulations.node_bound import _engine_supported, node_bounds
from pipecert.instance import Instance
from pipecert.memo import InstanceKey, Memo, instance_key
from pipecert.results import BoundResult, Budget, SolveContext, Status, bound_exceeds

__all__ = ["PathBound", "ChainState", "chain_states"]

log = logging.getLogger(__name__)

WEIGHTS = ("work", "work_comm", "count", "node", "comm")


@dataclass
class ChainState:
    """The cached run table of one chain.

    ``g[i, j]`` is a valid lower bound on ``F(H(i, j), X(i, j))`` for ``i <= j`` (``+inf``
    below the diagonal) and ``exact[i, j]`` says it is the max-flow value.
    """

    name: str
    chain: NDArray[np.int64]
    a: NDArray[np.int64]
    d: NDArray[np.int64]
    g: NDArray[np.float64]
    exact: NDArray[np.bool_]
    smin: NDArray[np.float64]
    values: dict[int, float] = field(default_factory=dict)
    converged: dict[int, bool] = field(default_factory=dict)
    splits: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    pair_values: dict[int, float] = field(default_factory=dict)
    max_flows: int = 0
    #: runs no single block can hold (memory cap), or None without an active cap
    mem_over: NDArray[np.bool_] | None = None

    #: ``single()`` kept in step with ``g`` (None until first asked for)
    _single: NDArray[np.float64] | None = None
    #: sorted candidate values, a superset of the finite entries of ``g`` (then ``+inf``),
    #: and the values written since it was last merged (:meth:`candidates`)
    _cand: NDArray[np.float64] | None = None
    _pending: list[float] = field(default_factory=list)

    def single(self) -> NDArray[np.float64]:
        """``g`` for single runs: ``+inf`` where the memory cap forbids the run."""
        if self.mem_over is None:
            return self.g
        if self._single is None:
            self._single = np.where(self.mem_over, np.inf, self.g)
        return self._single

    def set_entry(self, i: int, j: int, value: float) -> None:
        """Raise ``g[i, j]`` to ``value`` (an exact max-flow value) and keep the derived
        tables (``exact``, ``smin``, :meth:`single`, :meth:`candidates`) in step."""
        new = max(float(self.g[i, j]), float(value))
        self.g[i, j] = new
        self.exact[i, j] = True
        if self._single is not None and self.mem_over is not None and not self.mem_over[i, j]:
            self._single[i, j] = new
        if self._cand is not None and math.isfinite(new):
            self._pending.append(new)
        self.update_smin(i, j)

    def candidates(self) -> NDArray[np.float64]:
        """Sorted, duplicate-free superset of the finite values of ``g``, then ``+inf``.

        Built once in ``O(L^2 log L)``; afterwards each call merges only the values written
        by :meth:`set_entry` since the last call (``O(N + p log p)`` for ``p`` new values,
        a memory move instead of a sort of all ``L^2`` entries). Values that were raised stay
        in as stale candidates: :func:`formulations._spine.segment_value` only needs a
        superset of the entries (see there).
        """
        if self._cand is None:
            vals = self.g[np.isfinite(self.g)]
            self._cand = np.append(np.unique(vals), np.inf)
            self._pending = []
        elif self._pending:
            new = np.unique(np.asarray(self._pending, dtype=np.float64))
            self._pending = []
            pos = np.searchsorted(self._cand, new)
            fresh = self._cand[np.minimum(pos, self._cand.size - 1)] != new
            self._cand = np.insert(self._cand, pos[fresh], new[fresh])
        return self._cand

    def update_smin(self, i: int, j: int) -> None:
        """Keep ``smin[i, p] = min(single()[i, p:])`` after ``g[i, j]`` changed."""
        row = self.g[i, : j + 1]
        if self.mem_over is not None:
            row = np.where(self.mem_over[i, : j + 1], np.inf, row)
        after = self.smin[i, j + 1] if j + 1 < self.g.shape[0] else np.inf
        self.smin[i, : j + 1] = np.minimum(np.minimum.accumulate(row[::-1])[::-1], after)


#: The chains and run tables of the last graphs (by fingerprint and chain parameters).
_CHAIN_STATES: Memo[InstanceKey, list[ChainState]] = Memo("formulations.chain_states", 4)


def _thin(path: NDArray[np.int64], max_len: int) -> NDArray[np.int64]:
    if path.size <= max_len:
        return path
    keep = np.unique(np.round(np.linspace(0, path.size - 1, max_len)).astype(np.int64))
    return path[keep]


def _weights(instance: Instance, which: str, node_low: NDArray[np.float64]) -> NDArray[np.float64]:
    if which == "work":
        return instance.work
    if which == "comm":
        return instance.comm
    if which == "work_comm":
        return instance.work + instance.comm
    if which == "count":
        return np.ones(instance.n_nodes)
    if which == "node":
        return node_low
    raise ValueError(f"unknown path weight {which!r}; known: {', '.join(WEIGHTS)}")


def cover_paths(instance: Instance, chosen: list[NDArray[np.int64]], count: int,
                node_low: NDArray[np.float64]) -> list[NDArray[np.int64]]:
    """``count`` more paths, each the heaviest (work) path through the node with the largest
    node bound that no chosen path covers yet (a greedy chain cover of the heavy nodes)."""
    covered = np.zeros(instance.n_nodes, dtype=bool)
    for p in chosen:
        covered[p] = True
    w = instance.work
    to, frm, bp, bs = path_tables(instance, w)
    out = []
    for _ in range(count):
        score = np.where(covered, -np.inf, node_low + w)
        v = int(np.argmax(score))
        if not np.isfinite(score[v]):
            break
        p = _path_through(v, bp, bs)
        covered[p] = True
        out.append(p)
    return out


def chain_states(
    instance: Instance,
    weights: tuple[str, ...],
    max_len: int,
    node_low: NDArray[np.float64],
    context: SolveContext | None = None,
    cover: int = 0,
) -> list[ChainState]:
    """The chains of ``instance`` with their run tables (cached per graph and parameters)."""
    key = instance_key(instance, tuple(weights), max_len, cover)
    if context is not None:
        hit = context.cache.get("path_bound")
        if hit is not None and hit[0] == key:
            return hit[1]  # type: ignore[no-any-return]
    states = _CHAIN_STATES.get(key)
    if states is None:
        states = []
        seen: set[bytes] = set()
        named = [(wname, heaviest_path(instance, _weights(instance, wname, node_low)))
                 for wname in weights]
        named += [(f"cover{q}", p) for q, p in
                  enumerate(cover_paths(instance, [p for _, p in named], cover, node_low))]
        for wname, full in named:
            path = _thin(full, max_len)
            sig = path.tobytes()
            if sig in seen:
                continue
            seen.add(sig)
            a, d = chain_indices(instance, path)
            g = run_estimates(instance, a, d, node_low, path.size)
            over = run_memory_over(instance, a, d, path.size)
            gs = g if over is None else np.where(over, np.inf, g)
            states.append(ChainState(wname, path, a, d, g, np.zeros(g.shape, dtype=bool),
                                     row_suffix_min(gs), mem_over=over))
        _CHAIN_STATES.put(key, states)
    if context is not None:
        context.cache["path_bound"] = (key, states)
    return states


def clear_cache() -> None:
    """Forget every cached run table (for benchmarks)."""
    _CHAIN_STATES.clear()


def refine_chain(
    instance: Instance,
    state: ChainState,
    k: int,
    budget: Budget,
    *,
    stop_at: float | None = None,
    engine: str = "auto",
    spread: int = 0,
) -> float:
    """Lazy refinement of one chain for ``k``; returns a valid ``LB_path(chain, k)``."""
    net = network_for(instance, engine)
    lower = max([v for kk, v in state.values.items() if kk >= k] + [0.0])
    hint = state.splits.get(k)
    if state.converged.get(k):
        return state.values[k]
    value = lower
    while True:
        value, runs = segment_value(state.single(), k, lower, hint, state.smin,
                                    cand=state.candidates())
        lower, hint = value, runs
        state.values[k] = max(state.values.get(k, 0.0), value)
        state.splits[k] = runs
        todo = [(i, j) for i, j in runs if not state.exact[i, j]]
        if not todo:
            state.converged[k] = True
            break
        if stop_at is not None and value >= stop_at:
            break
        if budget.expired():
            break
        # the next split usually moves a boundary by a position or two: refine the runs
        # around each estimated run at once (fewer DP rounds; a max flow costs less)
        L = state.g.shape[0]
        more = {
            (i2, j2)
            for i, j in todo
            for i2 in range(max(0, i - spread), min(L, i + spread + 1))
            for j2 in range(max(i2, j - spread), min(L, j + spread + 1))
            if not state.exact[i2, j2]
        }
        todo = sorted(more, key=lambda r: -state.g[r])
        for i, j in todo:
            _refine_entry(net, state, i, j)
            if budget.expired():
                break
    return state.values[k]


def _refine_entry(net, state: ChainState, i: int, j: int) -> None:  # type: ignore[no-untyped-def]
    res = net.solve_classes(run_classes(state.a, state.d, i, j))
    state.max_flows += 1
    # keeps smin[i, p] = min(g[i, p:]) for p <= j (entries after j did not change)
    state.set_entry(i, j, res.value)


def refine_pairs(
    instance: Instance, state: ChainState, k: int, budget: Budget, *, engine: str = "auto",
    max_rounds: int = 20,
) -> float:
    """Pair-window value of one chain (:func:`formulations._spine.pair_segment_value`).

    Refines the runs of its split and the unions of consecutive runs until they are exact,
    ``max_rounds`` or the budget; every value is valid (entries are lower bounds).
    """
    net = network_for(instance, engine)
    lower = max(state.values.get(k, 0.0), state.pair_values.get(k, 0.0))
    value = lower
    for _ in range(max_rounds):
        value, runs = pair_segment_value(state.single(), k, lower, gu=state.g)
        lower = value
        state.pair_values[k] = max(state.pair_values.get(k, 0.0), value)
        want = list(runs) + [(runs[t][0], runs[t + 1][1]) for t in range(len(runs) - 1)]
        todo = [(i, j) for i, j in want if not state.exact[i, j]]
        if not todo or budget.expired():
            break
        for i, j in todo:
            _refine_entry(net, state, i, j)
            if budget.expired():
                break
    return state.pair_values.get(k, value)


@FORMULATIONS.register
class PathBound(Formulation):
    """Min-max split of heavy paths into <= k runs of anchored cheapest blocks (min cuts)."""

    name = "path_bound"
    citation = "pipecert, docs/theory/min-cut-bounds.md#path-bound (beyond Archer et al. 2024)"
    handles = frozenset({"groups", "data_only_edges"})
    relaxes = frozenset({"memory"})

    def __init__(
        self,
        *,
        paths: str = "work,work_comm,count",
        max_len: int = 1000,
        node_share: float = 0.5,
        engine: str = "auto",
        cover: int = 0,
        pairs: int = 300,
    ) -> None:
        self.paths = paths
        self.cover = cover
        self.pairs = pairs
        self.max_len = max_len
        self.node_share = node_share
        self.engine = engine

    def supports(self, instance: Instance, k: int) -> tuple[bool, str | None]:
        """Unsupported only when an engine that is not installed is asked for by name."""
        return _engine_supported(self.engine)

    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """``max(LB_node, max over chains of LB_path(chain, k))`` within ``budget``."""
        t0 = time.perf_counter()
        weights = tuple(w.strip() for w in self.paths.split(",") if w.strip())
        for wname in weights:
            if wname not in WEIGHTS:
                raise ValueError(f"unknown path weight {wname!r}; known: {', '.join(WEIGHTS)}")
        nodes = node_bounds(instance, budget.fraction(self.node_share), context,
                            engine=self.engine)
        best = nodes.value
        t_node = time.perf_counter() - t0
        states = chain_states(instance, weights, int(self.max_len), nodes.lower, context,
                              cover=int(self.cover))
        ub = context.upper_bound if context is not None else None
        stop_at = None if ub is None else ub * (1 - 1e-9)
        per_chain: dict[str, float] = {}
        converged = True
        flows0 = sum(s.max_flows for s in states)
        for idx, st in enumerate(states):
            if idx > 0 and budget.expired():  # time up or cancelled: keep what is proven
                converged = False
                break
            left = len(states) - idx
            rem = budget.remaining()
            share = budget.fraction(1.0 / left) if math.isfinite(rem) else budget
            v = refine_chain(instance, st, k, share, stop_at=stop_at, engine=self.engine)
            if 0 < st.chain.size <= int(self.pairs) and k < st.chain.size and (
                    stop_at is None or v < stop_at) and math.isfinite(v):
                v = max(v, refine_pairs(instance, st, k, share, engine=self.engine))
            per_chain[st.name] = v
            converged &= bool(st.converged.get(k))
            best = max(best, v)
            if stop_at is not None and best >= stop_at:
                break
        if math.isinf(best):
            # every feasible partition splits each chain into <= k runs of finite value
            # (module docstring): none exists
            worst = max(per_chain, key=lambda c: per_chain[c])
            why = (f"no split of the chain {worst!r} into at most {k} runs fits the "
                   "co-location groups and the memory cap")
            return BoundResult(None, Status.INFEASIBLE,
                               stats={"reason": why, "path_values": per_chain})
        status = Status.BOUND if converged and nodes.complete else Status.TIME_LIMIT
        if ub is not None and not bound_exceeds(ub, best):
            status = Status.OPTIMAL
        stats = {
            "node_bound": nodes.value,
            "node_bound_complete": nodes.complete,
            "node_bound_time_s": t_node,
            "path_values": per_chain,
            "path_lengths": {s.name: int(s.chain.size) for s in states},
            "max_flows": sum(s.max_flows for s in states) - flows0,
            "converged": converged,
            "engine": resolve_engine(self.engine),
        }
        return BoundResult(best, status, stats=stats)
