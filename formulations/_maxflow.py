"""The anchored cheapest block ``F(H, X)`` as one min s-t cut (docs/theory/min-cut-bounds.md).

For node sets ``H`` (must be in the block) and ``X`` (must stay out)::

    F(H, X) = min { f(S) : H ⊆ S ⊆ V, S ∩ X = ∅ },
    f(S)    = w(S) + c(In(S)) + c(Out(S))          (docs/theory/problem.md#block-cost)

``S`` ranges over *all* node sets, not only convex or order-feasible ones; that only lowers
the minimum, so every use of ``F`` as "the cost of a block that contains H and avoids X" is a
valid lower bound.

Network (source side = "in S")
------------------------------
* ``v -> t`` with capacity ``w(v)``: a node in S pays its work.
* a producer ``u`` with ``c(u) > 0`` and several data successors gets two auxiliary nodes:
  ``u -> out_u`` (``c(u)``) and ``out_u -> v`` (inf) for every successor ``v`` charge ``c(u)``
  once when ``u ∈ S`` has a successor outside S (``Out(S)``); ``in_u -> u`` (``c(u)``) and
  ``v -> in_u`` (inf) charge ``c(u)`` once when a successor is in S and ``u`` is not
  (``In(S)``).
* a producer with exactly one successor ``v`` needs no auxiliary node: ``u -> v`` and
  ``v -> u``, both with capacity ``c(u)``.
* anchors: ``s -> h`` (inf) for ``h ∈ H`` and ``x -> t`` (inf) for ``x ∈ X``.

Every finite cut of this network has value ``f(S)`` for its source side ``S`` (minimised over
the auxiliary nodes), so the minimum cut is ``F(H, X)``.

Constrained variants
--------------------
* Data-only edges: ``f`` charges In/Out over *all* data edges (``instance.src`` / ``dst``),
  whatever their direction, and the network above uses no order at all (a data-only edge
  may close a cycle of data edges; a cut network does not care). So ``F`` is the same
  function on every variant; the callers build ``H`` and ``X`` from ordering edges only.
* Co-location groups (``"groups"`` an active constraint): every block of a feasible partition
  is a union of *units* (:attr:`pipecert.instance.Instance.unit_of`). The network then
  minimises over unions of units only: consecutive members of every unit are joined by
  infinite arcs in both directions (a finite cut keeps a unit on one side), and ``H`` and
  ``X`` are first closed under units (a block that contains ``h`` contains its unit; a block
  that avoids ``x`` avoids its unit). If the closed ``H`` and ``X`` meet, no feasible block
  contains ``H`` and avoids ``X``: the value is ``+inf`` (the minimum over an empty set).
* Memory cap: not modelled here (``F`` is also used for unions of two blocks, which may
  hold up to ``2 M``); :mod:`formulations.path_bound` applies it to single runs.

So with groups active the value is a lower bound on ``min f(S)`` over the blocks
``S`` of feasible partitions that contain ``H`` and avoid ``X``, which is all the bounds
built on ``F`` use. The closed ``H`` is itself a union of units, so ``S = H`` is a finite cut
and the rounding argument below is unchanged.

Integer capacities and validity
-------------------------------
The max-flow engines take integer capacities. Per cut, every finite capacity ``x`` becomes
``floor(x 2^e)`` (``np.ldexp``: exact for normal results; results below 1 floor to 0 either
way, and ``2^e`` is never formed, so neither ``inf * 0`` nor overflow occurs for extreme
``e``). "Infinite" arcs (and the anchors) get ``INF = R + 1``, where ``R`` is the *rounded
integer* cut of the feasible set ``S = H``, summed exactly in int64 from the same floored
capacities (with :meth:`CutNetwork.solve_classes`: the finite arcs out of the contracted
source). Every capacity is clamped to ``INF``. Then

* the rounded min cut is at most ``R < INF``, so it never cuts an ``INF`` (or clamped) arc:
  its source side ``S*`` is feasible (``H ⊆ S*``, ``S* ∩ X = ∅``) and the flow is ``< INF``
  by construction, whatever the cost range;
* every rounded capacity is at most the scaled true one, so for the true minimiser ``S°``,
  ``mincut_int <= rounded cut(S°) <= 2^e F(H, X)``;
* ``mincut_int / 2^e`` is converted to float rounding **down** (:func:`_scaled_down`).

So the returned value is ``<= F(H, X)`` on every input. The rounding goes one way only
because the cut value is only ever used as a *lower* bound: the ``upper`` of a
:class:`CutResult` is ``f(S*)`` recomputed from the returned set (a float sum within a few
ulps), and it is used only to skip work (node-bound pruning, the scale), never as a bound.

Before this, ``INF`` was ``ceil(U 2^e) + 1`` with ``U`` a float estimate of the same cut:
``f(H)`` in :meth:`CutNetwork.solve`, and ``f(H) - const`` in the contracted network, a
difference of two float sums of about ``5e4`` that lost 1e-9 of a remainder of ``4e-4``
(``case96-path-bound.json``), so the scaled cut of ``S = H`` exceeded ``INF`` and the guard
raised "min cut crossed an infinite arc".

``e`` is chosen per cut so that ``U 2^e`` is about ``2^B`` (``U`` = the float estimate of
``R``), ``B = min(52, 61 - ceil(log2 max degree))`` for the int64 engines, so every node's
total capacity (and so every excess) stays below ``2^63`` and the flow value below ``2^53``;
the rounding loses at most one unit per cut arc, about ``1e-12`` relative on 10,000-node
graphs. Arcs far below ``2^-B U`` round to zero: a remainder that small is lost, never
invented.

Engines
-------
``numba`` (default, ``"auto"``): Dinic's algorithm compiled with numba
(:mod:`formulations._dinic`, int64), always installed. ``ortools``: OR-Tools
``SimpleMaxFlow`` (push-relabel, int64), optional. Measured per max flow of
:meth:`CutNetwork.solve` (numba / OR-Tools, a loaded 2-core machine): ``comm-0300`` 0.08 /
0.17 ms, ``comm-3000`` 0.41 / 1.44 ms, PipeDream ``nasnetalarge`` 0.11 / 0.31 ms,
``mamba-130m`` (29,416 nodes) 8.5 / 11.6 ms, a random 20,000-node DAG with 100,000 edges and
costs over 18 decades 22 / 58 ms; the values were identical. For both the arc structure is
built once per instance and a call only rewrites the capacities. ``scipy-dinic`` /
``scipy-edmonds_karp``: ``scipy.sparse.csgraph.maximum_flow``, int32 capacities
(``B <= 29 - log2(degree)``, about 1e-6 relative loss on large graphs, still valid), kept
for comparison (see ``tests/bench/test_bench_spine.py``).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import sys
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from formulations._dinic import ResidualGraph
from formulations._dinic import max_flow as numba_max_flow
from pipecert.instance import Instance
from pipecert.memo import InstanceKey, Memo, instance_key

__all__ = ["CutNetwork", "CutResult", "block_costs_exact", "network_for", "resolve_engine"]

log = logging.getLogger(__name__)

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

ENGINES = ("ortools", "numba", "scipy-dinic", "scipy-edmonds_karp")


def ortools_available() -> bool:
    """Whether OR-Tools' max-flow module can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("ortools.graph.python.max_flow") is not None
    except (ImportError, ValueError):
        return False


def resolve_engine(engine: str) -> str:
    """The concrete engine for ``engine``; ``"auto"`` is ``"numba"`` (always installed).

    The numba Dinic engine was 1.3 to 4 times faster than OR-Tools per max flow on every
    graph measured (300 to 36,000 nodes, see the module docstring), so it is the default;
    OR-Tools stays available by name.

    Raises
    ------
    ValueError
        For an unknown name, or ``"ortools"`` asked for explicitly but not installed.
    """
    if engine == "auto":
        return "numba"
    if engine not in ENGINES:
        raise ValueError(f"unknown max-flow engine {engine!r}; known: auto, {', '.join(ENGINES)}")
    if engine == "ortools" and not ortools_available():
        raise ValueError("max-flow engine 'ortools' needs OR-Tools (pip install ortools); "
                         "engine='auto' or 'numba' runs without it")
    return engine


@dataclass(frozen=True, slots=True)
class CutResult:
    """One evaluation of ``F(H, X)``.

    Attributes
    ----------
    value : float
        A valid lower bound on ``F(H, X)`` (the rounded min cut, see the module docstring).
    upper : float
        ``f(S*)`` of the returned minimiser, computed exactly: ``F(H, X) <= upper``, and
        ``upper - value`` is the rounding loss (typically ~1e-12 relative).
    in_block : ndarray of bool or None
        The source side ``S*`` (a set with ``f(S*) = upper``), when requested.
    """

    value: float
    upper: float
    in_block: BoolArray | None


def _mask(n: int, nodes: ArrayLike | None) -> BoolArray:
    if nodes is None:
        return np.zeros(n, dtype=bool)
    a = np.asarray(nodes)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"boolean node mask has shape {a.shape}, expected ({n},)")
        return a
    m = np.zeros(n, dtype=bool)
    m[a.astype(np.int64)] = True
    return m


def _pays(instance: Instance, in_block: BoolArray) -> tuple[BoolArray, BoolArray]:
    """Masks of ``In(S)`` and ``Out(S)`` for ``S = in_block`` (data edges only)."""
    s = instance.src
    d = instance.dst
    n = instance.n_nodes
    ins = in_block[s]
    ind = in_block[d]
    pays_in = np.zeros(n, dtype=bool)
    pays_in[s[~ins & ind]] = True
    pays_out = np.zeros(n, dtype=bool)
    pays_out[s[ins & ~ind]] = True
    return pays_in, pays_out


def block_costs_exact(instance: Instance, in_block: BoolArray) -> float:
    """``f(S)`` for the node mask ``in_block`` (vectorized; same model as ``block_cost``).

    A float sum (pairwise), so within a few ulps of the exact value: used only as an upper
    estimate (pruning, the scale of a cut), never as a lower bound.
    """
    pays_in, pays_out = _pays(instance, in_block)
    c = instance.comm
    return float(instance.work[in_block].sum() + c[pays_in].sum() + c[pays_out].sum())


class CutNetwork:
    """The min-cut network of ``f`` for one instance; evaluates ``F(H, X)`` repeatedly.

    The arc structure (tails, heads, which arcs are infinite, the anchor arc of every node)
    is built once, vectorized; :meth:`solve` only sets the anchor capacities and the
    per-cut scale, then runs the max-flow engine.

    Parameters
    ----------
    instance : Instance
    engine : {"auto", "ortools", "numba", "scipy-dinic", "scipy-edmonds_karp"}
        ``"auto"`` is the numba engine (:func:`resolve_engine`).

    Examples
    --------
    >>> from pipecert.testing import worked_example
    >>> net = CutNetwork(worked_example())
    >>> net.solve([1]).value   # cheapest block containing b
    8.0
    """

    def __init__(self, instance: Instance, *, engine: str = "auto") -> None:
        engine = resolve_engine(engine)
        self.instance = instance
        self.engine = engine
        n = instance.n_nodes
        self.n = n
        src, dst = instance.src, instance.dst
        w, c = instance.work, instance.comm
        s_node, t_node = n, n + 1
        outdeg = np.bincount(src, minlength=n)
        charged = (c > 0) & (outdeg > 0)
        single = charged & (outdeg == 1)
        multi = charged & (outdeg > 1)
        prod = np.flatnonzero(multi)
        n_aux = 2 * prod.size
        aux_out = np.full(n, -1, dtype=np.int64)
        aux_in = np.full(n, -1, dtype=np.int64)
        aux_out[prod] = n + 2 + np.arange(prod.size)
        aux_in[prod] = n + 2 + prod.size + np.arange(prod.size)
        self.n_net_nodes = n + 2 + n_aux
        tails: list[IntArray] = []
        heads: list[IntArray] = []
        caps: list[NDArray[np.float64]] = []
        inf: list[NDArray[np.bool_]] = []

        def add(t: IntArray, h: IntArray, cap: NDArray[np.float64], is_inf: bool) -> None:
            tails.append(np.asarray(t, dtype=np.int64))
            heads.append(np.asarray(h, dtype=np.int64))
            caps.append(np.asarray(cap, dtype=np.float64))
            inf.append(np.full(len(t), is_inf, dtype=bool))

        nodes = np.arange(n, dtype=np.int64)
        # anchors first: arc i is s -> i, arc n + i is i -> t
        add(np.full(n, s_node), nodes, np.zeros(n), False)
        add(nodes, np.full(n, t_node), w.copy(), False)
        # single-successor producers: u -> v and v -> u with c(u)
        # co-location: consecutive members of every unit joined both ways (inf)
        self.units = "groups" in instance.constraints
        if self.units:
            ua, ub = _unit_pairs(instance)
            add(ua, ub, np.zeros(ua.size), True)
            add(ub, ua, np.zeros(ua.size), True)
        e1 = single[src]
        add(src[e1], dst[e1], c[src[e1]], False)
        add(dst[e1], src[e1], c[src[e1]], False)
        # multi-successor producers: auxiliary out_u / in_u nodes
        add(prod, aux_out[prod], c[prod], False)
        add(aux_in[prod], prod, c[prod], False)
        em = multi[src]
        add(aux_out[src[em]], dst[em], np.zeros(int(em.sum())), True)
        add(dst[em], aux_in[src[em]], np.zeros(int(em.sum())), True)
        self.tails = np.concatenate(tails)
        self.heads = np.concatenate(heads)
        self.base_cap = np.concatenate(caps)
        self.is_inf = np.concatenate(inf)
        self.n_arcs = int(self.tails.size)
        deg = np.bincount(self.tails, minlength=self.n_net_nodes) + np.bincount(
            self.heads, minlength=self.n_net_nodes
        )
        # the source may get up to n infinite arcs
        self._max_deg = int(max(int(deg.max()), n) + 2)
        self._solver = None
        self._residual: ResidualGraph | None = None
        self.calls = 0

    # ------------------------------------------------------------------ engines
    def _bits(self) -> int:
        return _bits_for(self.engine, self._max_deg)

    def _ortools(self):  # type: ignore[no-untyped-def]
        if self._solver is None:
            from ortools.graph.python import max_flow

            smf = max_flow.SimpleMaxFlow()
            arcs = smf.add_arcs_with_capacity(
                self.tails, self.heads, np.zeros(self.n_arcs, dtype=np.int64)
            )
            self._arcs = np.asarray(arcs, dtype=np.int32)
            self._solver = smf
        return self._solver

    def _run(self, icap: IntArray, want_cut: str | None) -> tuple[int, BoolArray | None]:
        s_node, t_node = self.n, self.n + 1
        if self.engine == "ortools":
            smf = self._ortools()
            smf.set_arcs_capacity(self._arcs, icap)
            status = smf.solve(s_node, t_node)
            if status != smf.OPTIMAL:
                raise RuntimeError(f"OR-Tools max-flow returned {status}")
            value = int(smf.optimal_flow())
            cut = None
            if want_cut == "min":
                cut = np.zeros(self.n_net_nodes, dtype=bool)
                cut[np.asarray(smf.get_source_side_min_cut(), dtype=np.int64)] = True
            elif want_cut == "max":
                cut = np.ones(self.n_net_nodes, dtype=bool)
                cut[np.asarray(smf.get_sink_side_min_cut(), dtype=np.int64)] = False
            return value, None if cut is None else cut[: self.n]
        if self.engine == "numba":
            if self._residual is None:
                self._residual = ResidualGraph(self.n_net_nodes, self.tails, self.heads)
            value = self._residual.max_flow(icap, s_node, t_node)
            cut = None
            if want_cut is not None:
                cut = self._residual.cut(s_node, t_node, largest=want_cut == "max")
            return value, None if cut is None else cut[: self.n]
        value, cut = _scipy_flow(self.engine, self.n_net_nodes, self.tails, self.heads, icap,
                                 s_node, t_node, want_cut)
        return value, None if cut is None else cut[: self.n]

    def _close(self, hmask: BoolArray, xmask: BoolArray) -> tuple[BoolArray, BoolArray, bool]:
        """``H`` and ``X`` closed under units, and whether they meet (then no feasible block
        contains ``H`` and avoids ``X``): see the module docstring."""
        inst = self.instance
        if self.units:
            uof = inst.unit_of
            hit = np.zeros(inst.n_units, dtype=bool)
            hit[uof[hmask]] = True
            hmask = hit[uof]
            hit[:] = False
            hit[uof[xmask]] = True
            xmask = hit[uof]
            if (hmask & xmask).any():
                return hmask, xmask, True
        return hmask, xmask, False

    # ------------------------------------------------------------------ public
    def solve(
        self,
        hold: ArrayLike,
        exclude: ArrayLike | None = None,
        *,
        want_cut: str | None = None,
    ) -> CutResult:
        """Evaluate ``F(H, X)`` with ``H = hold`` and ``X = exclude``.

        Parameters
        ----------
        hold, exclude : array_like of int or bool mask
            Node indices (or masks) of ``H`` (non-empty) and ``X``.
        want_cut : {None, "min", "max"}
            Also return the smallest or the largest minimising set ``S*``.

        Returns
        -------
        CutResult
            ``value <= F(H, X) <= upper`` (see the module docstring for the rounding).

        Raises
        ------
        ValueError
            If ``H`` and ``X`` intersect (no feasible block).
        """
        n = self.n
        inst = self.instance
        hmask = _mask(n, hold)
        xmask = _mask(n, exclude)
        if (hmask & xmask).any():
            raise ValueError("F(H, X) is undefined: H and X intersect")
        hmask, xmask, empty = self._close(hmask, xmask)
        if empty:  # no feasible block contains H and avoids X
            return CutResult(math.inf, math.inf, None)
        pays_in, pays_out = _pays(inst, hmask)
        c = inst.comm
        f_h = float(inst.work[hmask].sum() + c[pays_in].sum() + c[pays_out].sum())
        self.calls += 1
        if not f_h > 0.0:  # F(H, X) >= 0 = f(H): H itself is a minimiser
            return CutResult(0.0, f_h, hmask.copy() if want_cut else None)
        e = self._bits() - math.ceil(math.log2(f_h))
        icap = _scaled_floor(self.base_cap, e)
        ic = _scaled_floor(c, e)
        # the rounded capacity of the cut of S = H, summed exactly in int64
        cut_h = int(icap[n : 2 * n][hmask].sum()) + int(ic[pays_in].sum()) + int(
            ic[pays_out].sum())
        big = cut_h + 1
        np.minimum(icap, big, out=icap)
        icap[self.is_inf] = big
        icap[:n][hmask] = big  # s -> h
        icap[n : 2 * n][xmask] = big  # x -> t
        flow, cut = self._run(icap, want_cut)
        if not 0 <= flow < big:  # pragma: no cover - S = H is a cut of value cut_h < big
            log.warning("max flow %d outside [0, %d) (engine %s): F(H, X) bounded by 0",
                        flow, big, self.engine)
            return CutResult(0.0, f_h, hmask.copy() if want_cut else None)
        value = _scaled_down(flow, e)
        if cut is not None:
            cut = cut | hmask
            up = block_costs_exact(inst, cut)
        else:
            up = f_h
        return CutResult(min(value, up), max(up, value), cut)

    def solve_local(self, hold: ArrayLike, exclude: ArrayLike | None = None) -> CutResult:
        """``F(H, X)`` on the network contracted to the free nodes ``V ∖ (H ∪ X)``.

        Same value as :meth:`solve` up to rounding (and the same rounding-down guarantee),
        but the network only holds the free nodes, the producers next to them and the arcs
        between: ``H`` is merged into the source and ``X`` into the sink, and every charge
        fixed by ``H`` and ``X`` alone (``w(H)``, a producer in ``H`` with a consumer in ``X``,
        a producer in ``X`` with a consumer in ``H``) is a constant. When ``H ∪ X`` covers
        most of the graph (the runs of a path through a DNN) the max flow is tiny and the
        network is built by a compiled O(n + m) pass. Does not return the cut set.
        """
        n = self.n
        hm = _mask(n, hold)
        xm = _mask(n, exclude)
        if (hm & xm).any():
            raise ValueError("F(H, X) is undefined: H and X intersect")
        cls = np.ones(n, dtype=np.int8)
        cls[hm] = 0
        cls[xm] = 2
        return self.solve_classes(cls)

    def solve_classes(self, cls: NDArray[np.int8]) -> CutResult:
        """:meth:`solve_local` with the classes given directly: 0 = in H, 2 = in X, 1 = free.

        Value ``(const + mincut_int 2^-e) (1 - (n + 4) 2^-52)``: ``const`` is a float sum
        of at most ``2 n`` non-negative terms (``w(H)`` and one ``c(u)`` per producer), so
        it exceeds the exact sum by at most a factor ``(1 + 2^-53)^(2n - 1)``; one more
        addition and one multiplication round by at most ``2^-53`` each, and the factor
        ``1 - (n + 4) 2^-52`` absorbs all of them. ``mincut_int 2^-e`` is the rounded-down
        min cut of the free part (module docstring).
        """
        inst = self.instance
        self.calls += 1
        if self.units:
            hm, xm, empty = self._close(cls == 0, cls == 2)
            if empty:  # no feasible block contains H and avoids X
                return CutResult(math.inf, math.inf, None)
            cls = np.where(hm, 0, np.where(xm, 2, 1)).astype(np.int8)
        sptr, sidx = inst.succ_csr
        tl, hd, cap, isinf, n_net, const, f_h = _local_network(
            cls, inst.work, inst.comm, sptr, sidx
        )
        if self.units:
            # free members of one unit stay together: inf arcs both ways (the closed H and X
            # are unions of units, so a unit is wholly free or not at all)
            ua, ub = _unit_pairs(inst)
            free = cls == 1
            keep = free[ua]
            if keep.any():
                nid = np.cumsum(free) + 1  # free node v has network id 2 + rank
                a, b = nid[ua[keep]], nid[ub[keep]]
                tl = np.concatenate([tl, a, b])
                hd = np.concatenate([hd, b, a])
                cap = np.concatenate([cap, np.zeros(2 * a.size)])
                isinf = np.concatenate([isinf, np.ones(2 * a.size, dtype=bool)])
        shrink = 1.0 - (self.n + 4) * 2.0**-52
        fixed = CutResult(max(0.0, min(const * shrink, f_h)), f_h, None)
        if tl.size == 0:
            return fixed
        # the cut {source} (S = H): no infinite arc leaves the source, so its capacity is
        # the sum of the finite arcs out of node 0 -- an upper bound on the min cut
        from_src = tl == 0
        rest = float(cap[from_src].sum())
        if not rest > 1e-12 * f_h:
            # nothing to decide, or a remainder below 1e-12 of f(H): F >= const is kept
            return fixed
        deg = np.bincount(tl, minlength=n_net) + np.bincount(hd, minlength=n_net)
        e = _bits_for(self.engine, int(deg.max()) + 2) - math.ceil(math.log2(rest))
        icap = _scaled_floor(cap, e)
        big = int(icap[from_src].sum()) + 1  # exact int64 sum: the rounded cut {source}
        np.minimum(icap, big, out=icap)
        icap[isinf] = big
        if self.engine == "ortools":
            from ortools.graph.python import max_flow

            smf = max_flow.SimpleMaxFlow()
            smf.add_arcs_with_capacity(tl, hd, icap)
            status = smf.solve(0, 1)
            if status != smf.OPTIMAL:
                raise RuntimeError(f"OR-Tools max-flow returned {status}")
            flow = int(smf.optimal_flow())
        elif self.engine == "numba":
            flow = numba_max_flow(int(n_net), tl, hd, icap, 0, 1)
        else:
            flow = _scipy_flow(self.engine, int(n_net), tl, hd, icap, 0, 1, None)[0]
        if not 0 <= flow < big:  # pragma: no cover - the cut {source} has value big - 1
            log.warning("max flow %d outside [0, %d) (engine %s): F(H, X) bounded by const",
                        flow, big, self.engine)
            return fixed
        value = (const + _scaled_down(flow, e)) * shrink
        return CutResult(max(0.0, min(value, f_h)), f_h, None)


def _bits_for(engine: str, max_deg: int) -> int:
    """Scaled cut size ``2^B``: every node's total capacity stays below the engine's limit.

    int64 engines (OR-Tools, numba): ``B = min(52, 61 - ceil(log2 deg))``; scipy (int32):
    ``B = 29 - ceil(log2 deg)`` (at least 1). ``B <= 52`` keeps the flow value exactly
    representable as a float.
    """
    top = 61 if engine in ("ortools", "numba") else 29
    return max(1, min(52, top - math.ceil(math.log2(max(2, max_deg)))))


_LIMIT = float(2**62)


def _scaled_floor(cap: NDArray[np.float64], e: int) -> IntArray:
    """``floor(cap 2^e)`` as int64, clamped to ``2^62`` (the caller clamps further).

    ``np.ldexp`` multiplies by ``2^e`` exactly whenever the result is a normal float, and
    values below 1 (the only ones that can be subnormal) floor to 0 either way; ``2^e``
    itself is never formed, so no ``inf * 0`` for extreme ``e``.
    """
    with np.errstate(over="ignore"):  # inf is clamped to 2^62 next
        return np.minimum(np.floor(np.ldexp(cap, e)), _LIMIT).astype(np.int64)


def _scaled_down(x: int, e: int) -> float:
    """The largest float ``<= x 2^-e`` (``x >= 0`` an int): the conversion never rounds up."""
    f = float(x)
    if f > x:  # int -> float rounded up (x > 2^53); Python compares int and float exactly
        f = math.nextafter(f, -math.inf)
    try:
        y = math.ldexp(f, -e)
    except OverflowError:  # the value exceeds every float: the largest one is below it
        return sys.float_info.max
    if y > 0.0 and math.ldexp(y, e) > f:  # subnormal result rounded up
        y = math.nextafter(y, 0.0)
    return y


def _scipy_flow(engine: str, n_net: int, tl: IntArray, hd: IntArray, icap: IntArray,
                s: int, t: int, want_cut: str | None) -> tuple[int, BoolArray | None]:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import breadth_first_order, maximum_flow

    keep = icap > 0
    g = sp.csr_matrix((icap[keep].astype(np.int32), (tl[keep], hd[keep])), shape=(n_net, n_net))
    res = maximum_flow(g, s, t, method=engine.split("-", 1)[1])
    value = int(res.flow_value)
    if want_cut is None:
        return value, None
    # residual reachability from s (smallest source side; scipy gives no largest one, and
    # any minimum cut's source side is a minimiser)
    flow = res.flow.tocsr()
    resid = (g - flow).tocoo()
    back = flow.tocoo()
    rows = np.concatenate([resid.row[resid.data > 0], back.col[back.data > 0]])
    cols = np.concatenate([resid.col[resid.data > 0], back.row[back.data > 0]])
    r = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_net, n_net))
    reach = breadth_first_order(r, s, return_predecessors=False)
    cut = np.zeros(n_net, dtype=bool)
    cut[reach] = True
    return value, cut


@njit(cache=True)
def _local_network(cls, w, c, sptr, sidx):  # type: ignore[no-untyped-def]
    """Arcs of the contracted network (0 = source = H, 1 = sink = X, then free nodes, aux).

    Returns tails, heads, capacities, infinite flags, node count, the constant part and
    ``f(H)``.
    """
    n = cls.size
    nid = np.full(n, -1, np.int64)
    nxt = 2
    for v in range(n):
        if cls[v] == 1:
            nid[v] = nxt
            nxt += 1
        elif cls[v] == 0:
            nid[v] = 0
        else:
            nid[v] = 1
    m = sidx.size
    cap_arcs = 2 * n + 4 * m + 4
    tl = np.empty(cap_arcs, np.int64)
    hd = np.empty(cap_arcs, np.int64)
    cp = np.empty(cap_arcs, np.float64)
    inf = np.zeros(cap_arcs, np.bool_)
    na = 0
    const = 0.0
    f_h = 0.0
    for v in range(n):
        if cls[v] == 0:
            const += w[v]
        elif cls[v] == 1:
            tl[na] = nid[v]
            hd[na] = 1
            cp[na] = w[v]
            na += 1
    f_h = const
    for u in range(n):
        lo, hi = sptr[u], sptr[u + 1]
        if hi == lo:
            continue
        cu = c[u]
        cu_cls = cls[u]
        hx = False
        hh = False
        nfree = 0
        any_out = False
        any_in = False
        for q in range(lo, hi):
            cv = cls[sidx[q]]
            if cv == 2:
                hx = True
            elif cv == 0:
                hh = True
            else:
                nfree += 1
            if cu_cls == 0 and cv != 0:
                any_out = True
            if cu_cls != 0 and cv == 0:
                any_in = True
        if any_out or any_in:
            f_h += cu
        if cu <= 0.0:
            continue
        if cu_cls == 0 and hx:
            const += cu
        if cu_cls == 2 and hh:
            const += cu
        if cu_cls == 1 and hx:  # Out forced when u joins the block
            tl[na] = nid[u]
            hd[na] = 1
            cp[na] = cu
            na += 1
        if cu_cls == 1 and hh:  # In forced unless u joins the block
            tl[na] = 0
            hd[na] = nid[u]
            cp[na] = cu
            na += 1
        if nfree == 0:
            continue
        if cu_cls <= 1 and not hx:  # Out side decided by the free consumers
            if nfree == 1:
                for q in range(lo, hi):
                    v = sidx[q]
                    if cls[v] == 1:
                        tl[na] = nid[u]
                        hd[na] = nid[v]
                        cp[na] = cu
                        na += 1
            else:
                aux = nxt
                nxt += 1
                tl[na] = nid[u]
                hd[na] = aux
                cp[na] = cu
                na += 1
                for q in range(lo, hi):
                    v = sidx[q]
                    if cls[v] == 1:
                        tl[na] = aux
                        hd[na] = nid[v]
                        cp[na] = 0.0
                        inf[na] = True
                        na += 1
        if cu_cls >= 1 and not hh:  # In side decided by the free consumers
            if nfree == 1:
                for q in range(lo, hi):
                    v = sidx[q]
                    if cls[v] == 1:
                        tl[na] = nid[v]
                        hd[na] = nid[u]
                        cp[na] = cu
                        na += 1
            else:
                aux = nxt
                nxt += 1
                tl[na] = aux
                hd[na] = nid[u]
                cp[na] = cu
                na += 1
                for q in range(lo, hi):
                    v = sidx[q]
                    if cls[v] == 1:
                        tl[na] = nid[v]
                        hd[na] = aux
                        cp[na] = 0.0
                        inf[na] = True
                        na += 1
    return tl[:na], hd[:na], cp[:na], inf[:na], nxt, const, f_h


def _unit_pairs(instance: Instance) -> tuple[IntArray, IntArray]:
    """Consecutive members ``(a, b)`` of every unit with two or more members."""
    ptr, idx = instance.unit_members
    same = instance.unit_of[idx[1:]] == instance.unit_of[idx[:-1]]
    return (np.ascontiguousarray(idx[:-1][same], dtype=np.int64),
            np.ascontiguousarray(idx[1:][same], dtype=np.int64))


#: The :class:`CutNetwork` of the last few graphs and engines (by fingerprint and engine).
_NETWORKS: Memo[InstanceKey, CutNetwork] = Memo("formulations.cut_networks", 8)


def network_for(instance: Instance, engine: str = "auto") -> CutNetwork:
    """A cached :class:`CutNetwork` for ``instance`` (kept for the last few instances)."""
    engine = resolve_engine(engine)
    return _NETWORKS.get_or_compute(instance_key(instance, engine),
                                    lambda: CutNetwork(instance, engine=engine))
