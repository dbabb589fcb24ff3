"""Node bound: the cheapest block around the costliest node (docs/theory/min-cut-bounds.md).

Model
-----
``LB_node = max_v F({v}, ∅)`` with ``F(H, X) = min { f(S) : H ⊆ S, S ∩ X = ∅ }`` the anchored
cheapest block of :mod:`formulations._maxflow` (one minimum s-t cut per node) and
``f(S) = w(S) + c(In(S)) + c(Out(S))`` the block cost of docs/theory/problem.md#block-cost.

What it relaxes
---------------
Everything except one block: the block that holds ``v`` may be any node set containing ``v``
(not necessarily convex, no other block is modelled), and ``k`` plays no role.

Validity
--------
In an optimal partition ``(S_1, ..., S_k)`` every node ``v`` lies in some block ``S_i``, and
``f(S_i) <= OPT``. ``S_i`` is one of the sets the minimum in ``F({v}, ∅)`` ranges over, so
``F({v}, ∅) <= f(S_i) <= OPT`` for every ``v``; hence the maximum over any subset of nodes is a
valid bound. The min cuts are computed with capacities rounded down (see
:mod:`formulations._maxflow`), which only lowers each value. Skipping a node (pruning below, or
the time budget ending) only lowers the maximum, so every intermediate value is valid too.

Constrained variants
--------------------
``F`` charges over all data edges and uses no order (:mod:`formulations._maxflow`), so the
argument above holds word for word with data-only edges (handled). With co-location groups
(handled) the block holding ``v`` in a feasible partition holds ``v``'s whole unit and is a
union of units, and the network minimises over exactly such sets: ``F({v}, ∅)`` is then
the same for every member of the unit (computed once per unit) and can only grow. The memory
cap is relaxed (a unit above the cap is caught before, by ``Instance.infeasible_reason``).

Computation
-----------
Independent of ``k``: computed once per graph and reused for every ``k`` (cached in
``context.cache["node_bound"]`` and in a bounded module memo keyed by the instance's
fingerprint, :mod:`pipecert.memo`). Nodes are processed by decreasing upper estimate
``ub(v)``, initially ``f({v})``; a node is skipped once ``ub(v) <= LB`` (its ``F({v}, ∅)``
cannot raise the maximum). Every max flow returns a largest minimising set ``S*`` with exact
cost ``f(S*)``, and ``F({u}, ∅) <= f(S*)`` for every ``u ∈ S*``, which lowers ``ub(u)`` for
the whole block: on DNN graphs a few dozen to a few hundred max flows cover all ``n`` nodes.

Numerics and budget
-------------------
Each ``F({v}, ∅)`` is a rounded-down min cut (:mod:`formulations._maxflow`: exact integer
arithmetic on capacities floored at a per-cut power-of-two scale, "infinity" above the
integer cut of ``{v}``), so ``LB_node`` is valid on any cost range and never raises. The
upper estimates ``f(S*)`` only decide which nodes to skip. The budget is checked before every
max flow (at most 84 ms each on a 60,000-node graph); an interrupted run returns the maximum
over the nodes done, valid as it is. Engine: ``"auto"`` = numba (always installed);
``"ortools"`` when asked for by name (unsupported, with the reason, if not installed).

Size
----
At most n max flows on a network of ``n + 2 + 2 p`` nodes and ``2n + 2p + 2m`` arcs (``p`` =
producers with several consumers); in practice far fewer (see ``stats["max_flows"]``).

References
----------
pipecert, ``docs/theory/min-cut-bounds.md#node-bound`` (not in Archer et al., ICML 2024).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from formulations._maxflow import network_for, resolve_engine
from formulations.base import FORMULATIONS, Formulation
from pipecert.instance import Instance
from pipecert.memo import InstanceKey, Memo, instance_key
from pipecert.results import BoundResult, Budget, SolveContext, Status

__all__ = ["NodeBound", "NodeBoundData", "node_bounds"]

log = logging.getLogger(__name__)

CACHE_KEY = "node_bound"


@dataclass
class NodeBoundData:
    """Per-graph node bounds.

    Attributes
    ----------
    lower : ndarray
        A valid lower bound on ``F({v}, ∅)`` per node (the exact max-flow value where one
        was computed, ``w(v)`` otherwise).
    upper : ndarray
        An upper bound on ``F({v}, ∅)`` per node (``f`` of a block containing ``v``).
    value : float
        ``max(lower)``: the node bound, valid.
    complete : bool
        True when every node was either computed or proven unable to raise ``value``.
    max_flows : int
        Number of max flows run.
    time_s : float
        Wall-clock time spent.
    """

    lower: NDArray[np.float64]
    upper: NDArray[np.float64]
    value: float
    complete: bool
    max_flows: int
    time_s: float


#: The node bounds of the last graphs (by fingerprint): complete ones, or the last
#: incomplete one, resumed from by the next call.
_NODE_BOUNDS: Memo[InstanceKey, NodeBoundData] = Memo("formulations.node_bounds", 64)


def singleton_costs(instance: Instance) -> NDArray[np.float64]:
    """``f({v})`` for every node, vectorized (an upper bound on ``F({v}, ∅)``)."""
    n = instance.n_nodes
    c = instance.comm
    has_succ = np.bincount(instance.src, minlength=n) > 0
    return instance.work + c * has_succ + np.bincount(
        instance.dst, weights=c[instance.src], minlength=n
    )


def node_bounds(
    instance: Instance,
    budget: Budget | None = None,
    context: SolveContext | None = None,
    *,
    engine: str = "auto",
) -> NodeBoundData:
    """Compute (or fetch from the caches) the node bounds of ``instance``.

    A complete result is cached in ``context.cache`` and in a module-level memo keyed by
    the instance's fingerprint (:func:`pipecert.memo.instance_key`); an incomplete one
    (budget ended) is returned and kept only until a complete one replaces it, resuming
    from its upper estimates.
    """
    budget = budget if budget is not None else Budget()
    key = instance_key(instance)
    hit = None
    if context is not None:
        hit = context.cache.get(CACHE_KEY)
        if hit is not None and hit[0] != key:
            hit = None
        hit = None if hit is None else hit[1]
    if hit is None:
        hit = _NODE_BOUNDS.get(key)
    if hit is not None and hit.complete:
        if context is not None:
            context.cache[CACHE_KEY] = (key, hit)
        return hit
    t0 = time.perf_counter()
    if hit is not None:
        lower = hit.lower.copy()
        upper = hit.upper.copy()
        flows = hit.max_flows
    else:
        lower = instance.work.astype(np.float64).copy()
        upper = np.maximum(singleton_costs(instance), lower)
        flows = 0
    best = float(lower.max())
    done = lower >= upper  # exact already
    net = network_for(instance, engine)
    complete = True
    while True:
        cand = np.where(done, -np.inf, upper)
        v = int(np.argmax(cand))
        # relative test only: an absolute slack would skip every node of a graph whose costs
        # are all tiny (skipping is valid, but the bound would stay at max w)
        if not cand[v] > best * (1 + 1e-12):
            break
        if budget.expired():
            complete = False
            break
        res = net.solve(np.array([v]), want_cut="max")
        flows += 1
        if net.units:  # F({v}, ∅) = F(unit(v), ∅): the same value for the whole unit
            mates = instance.unit_of == instance.unit_of[v]
            np.maximum(lower, np.where(mates, res.value, -np.inf), out=lower)
            np.minimum(upper, np.where(mates, res.upper, np.inf), out=upper)
            done |= mates
        lower[v] = max(lower[v], res.value)
        upper[v] = min(upper[v], res.upper)
        done[v] = True
        if res.in_block is not None:
            np.minimum(upper, np.where(res.in_block, res.upper, np.inf), out=upper)
        best = max(best, lower[v])
    data = NodeBoundData(lower, upper, float(lower.max()), complete, flows,
                         (0.0 if hit is None else hit.time_s) + time.perf_counter() - t0)
    _NODE_BOUNDS.put(key, data)
    if context is not None:
        context.cache[CACHE_KEY] = (key, data)
    log.debug("node bound of %s: %.6g with %d max flows in %.3fs (complete=%s)",
              instance.name, data.value, flows, data.time_s, complete)
    return data


def clear_cache() -> None:
    """Forget every cached node bound (for benchmarks)."""
    _NODE_BOUNDS.clear()


def _engine_supported(engine: str) -> tuple[bool, str | None]:
    try:
        resolve_engine(engine)
    except ValueError as exc:
        return False, str(exc)
    return True, None


@FORMULATIONS.register
class NodeBound(Formulation):
    """max_v of the cheapest block containing v (one min cut per node): OPT >= LB_node."""

    name = "node_bound"
    citation = "pipecert, docs/theory/min-cut-bounds.md#node-bound (beyond Archer et al. 2024)"
    handles = frozenset({"groups", "data_only_edges"})
    relaxes = frozenset({"memory"})

    def __init__(self, *, engine: str = "auto") -> None:
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
        """``max_v F({v}, ∅)`` (valid for every k; computed once per graph)."""
        data = node_bounds(instance, budget, context, engine=self.engine)
        status = Status.BOUND if data.complete else Status.TIME_LIMIT
        return BoundResult(
            data.value, status,
            stats={"max_flows": data.max_flows, "node_bound_time_s": data.time_s,
                   "complete": data.complete, "engine": resolve_engine(self.engine)},
        )
