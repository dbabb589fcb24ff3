"""The anchored cheapest block ``F(H, X)`` as one minimum s-t cut (spine-bound.md §1).

For node sets ``H`` (must be in the block) and ``X`` (must stay out)::

    F(H, X) = min { f(S) : H ⊆ S ⊆ V, S ∩ X = ∅ },
    f(S)    = w(S) + c(In(S)) + c(Out(S))          (spec §2.3, data edges only)

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

Integer capacities and validity
-------------------------------
The max-flow engines take integer capacities. Per cut, the finite capacities are multiplied
by a power of two ``2^e`` (exact in floating point) and rounded **down**; "infinite" arcs get
``INF = ceil(U 2^e) + 1`` where ``U = f(H) >= F(H, X)`` is the value of the feasible set
``S = H``, and every capacity is clamped to ``INF``. Then

* the rounded cut of ``S = H`` is at most ``U 2^e < INF``, so a minimum cut of the rounded
  network never cuts an ``INF`` (or clamped) arc: its source side ``S*`` is feasible
  (``H ⊆ S*``, ``S* ∩ X = ∅``);
* every rounded capacity is at most the scaled true capacity, so
  ``mincut_int <= 2^e f(S*)`` for that ``S*`` and, for the true minimiser ``S°``,
  ``mincut_int <= rounded cut(S°) <= 2^e F(H, X)``.

So ``mincut_int / 2^e <= F(H, X)`` exactly (the division by a power of two is exact because
``mincut_int < 2^53``): the returned value is always a valid lower bound. ``e`` is chosen per
cut so that ``U 2^e`` is about ``2^B`` with ``B = min(52, 61 - log2(max in/out degree))``,
which keeps every node's total capacity (and so every excess) below ``2^63``; the rounding loses
at most one unit per cut arc, about ``1e-10`` relative on 10,000-node graphs.

Engines
-------
``ortools`` (default): OR-Tools ``SimpleMaxFlow`` (push-relabel, int64 capacities). The arc
structure is built once per instance; a call only rewrites the capacity vector (anchors and
scale). ``scipy-dinic`` / ``scipy-edmonds_karp``: ``scipy.sparse.csgraph.maximum_flow``, which
needs int32 capacities (``B <= 30 - log2(degree)``, so about 1e-6 relative loss on large
graphs, still valid) and is kept for comparison (see ``tests/bench/test_bench_spine.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import ArrayLike, NDArray

from pipecert.instance import Instance

__all__ = ["CutNetwork", "CutResult", "block_costs_exact", "network_for"]

BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]

ENGINES = ("ortools", "scipy-dinic", "scipy-edmonds_karp")


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


def _down(x: float) -> float:
    return float(np.nextafter(x, -np.inf))


def block_costs_exact(instance: Instance, in_block: BoolArray) -> float:
    """``f(S)`` for the node mask ``in_block`` (vectorized; same model as ``block_cost``)."""
    s = instance.src
    d = instance.dst
    n = instance.n_nodes
    ins = in_block[s]
    ind = in_block[d]
    pays_in = np.zeros(n, dtype=bool)
    pays_in[s[~ins & ind]] = True
    pays_out = np.zeros(n, dtype=bool)
    pays_out[s[ins & ~ind]] = True
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
    engine : {"ortools", "scipy-dinic", "scipy-edmonds_karp"}

    Examples
    --------
    >>> from pipecert.testing import worked_example
    >>> net = CutNetwork(worked_example())
    >>> net.solve([1]).value   # cheapest block containing b
    8.0
    """

    def __init__(self, instance: Instance, *, engine: str = "ortools") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown max-flow engine {engine!r}; known: {', '.join(ENGINES)}")
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
        self._csr_order: IntArray | None = None
        self._csr = None
        self.calls = 0

    # ------------------------------------------------------------------ engines
    def _bits(self) -> int:
        top = 61 if self.engine == "ortools" else 30
        return min(52, top - math.ceil(math.log2(self._max_deg)))

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
        import scipy.sparse as sp
        from scipy.sparse.csgraph import maximum_flow

        keep = icap > 0
        nn = self.n_net_nodes
        g = sp.csr_matrix(
            (icap[keep].astype(np.int32), (self.tails[keep], self.heads[keep])), shape=(nn, nn)
        )
        res = maximum_flow(g, s_node, t_node, method=self.engine.split("-", 1)[1])
        value = int(res.flow_value)
        cut = None
        if want_cut is not None:
            # residual reachability from s (minimal source side)
            from scipy.sparse.csgraph import breadth_first_order

            flow = res.flow.tocsr()
            resid = (g - flow).tocoo()
            back = flow.tocoo()
            rows = np.concatenate([resid.row[resid.data > 0], back.col[back.data > 0]])
            cols = np.concatenate([resid.col[resid.data > 0], back.row[back.data > 0]])
            r = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(nn, nn))
            reach = breadth_first_order(r, s_node, return_predecessors=False)
            cut = np.zeros(nn, dtype=bool)
            cut[reach] = True
        return value, None if cut is None else cut[: self.n]

    # ------------------------------------------------------------------ public
    def solve(
        self,
        hold: ArrayLike,
        exclude: ArrayLike | None = None,
        *,
        want_cut: str | None = None,
        upper: float | None = None,
    ) -> CutResult:
        """Evaluate ``F(H, X)`` with ``H = hold`` and ``X = exclude``.

        Parameters
        ----------
        hold, exclude : array_like of int or bool mask
            Node indices (or masks) of ``H`` (non-empty) and ``X``.
        want_cut : {None, "min", "max"}
            Also return the smallest or the largest minimising set ``S*``.
        upper : float, optional
            A known upper bound on ``F(H, X)`` (default ``f(H)``); it sets the scale.

        Returns
        -------
        CutResult
            ``value <= F(H, X) <= upper``.

        Raises
        ------
        ValueError
            If ``H`` and ``X`` intersect (no feasible block).
        """
        n = self.n
        hmask = _mask(n, hold)
        xmask = _mask(n, exclude)
        if (hmask & xmask).any():
            raise ValueError("F(H, X) is undefined: H and X intersect")
        f_h = block_costs_exact(self.instance, hmask)
        u = f_h if upper is None else min(float(upper), f_h)
        self.calls += 1
        if u <= 0.0:
            return CutResult(0.0, f_h, hmask.copy() if want_cut else None)
        bits = self._bits()
        e = bits - math.ceil(math.log2(u))
        scale = math.ldexp(1.0, e)
        big = math.ceil(u * scale) + 1
        cap = self.base_cap * scale
        cap = np.floor(cap)
        cap[self.is_inf] = big
        cap[:n][hmask] = big  # s -> h
        cap[n : 2 * n][xmask] = big  # x -> t
        np.minimum(cap, big, out=cap)
        icap = cap.astype(np.int64)
        flow, cut = self._run(icap, want_cut)
        if flow >= big:  # cannot happen (S = H is a cheaper cut); guard anyway
            raise RuntimeError("min cut crossed an infinite arc: scaling bug")
        value = math.ldexp(float(flow), -e)
        if cut is not None:
            cut = cut | hmask
            up = block_costs_exact(self.instance, cut)
        else:
            up = u
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
        """:meth:`solve_local` with the classes given directly: 0 = in H, 2 = in X, 1 = free."""
        inst = self.instance
        self.calls += 1
        sptr, sidx = inst.succ_csr
        tl, hd, cap, isinf, n_net, const, f_h = _local_network(
            cls, inst.work, inst.comm, sptr, sidx
        )
        # recursive float sums of n non-negative terms are within (n - 1) u of the exact sum
        shrink = 1.0 - (self.n + 4) * 2.0**-52
        rest = (f_h - const) * (1 + 1e-9)
        if tl.size == 0 or rest <= 1e-12 * f_h:
            # nothing left to decide (or a remainder below rounding noise): F >= const
            return CutResult(max(0.0, min(const * shrink, f_h)), f_h, None)
        deg = np.bincount(tl, minlength=n_net) + np.bincount(hd, minlength=n_net)
        top = 61 if self.engine == "ortools" else 30
        bits = min(52, top - math.ceil(math.log2(int(deg.max()) + 2)))
        e = bits - math.ceil(math.log2(rest))
        scale = math.ldexp(1.0, e)
        big = math.ceil(rest * scale) + 1
        icap = np.floor(cap * scale)
        icap[isinf] = big
        np.minimum(icap, big, out=icap)
        icap = icap.astype(np.int64)
        if self.engine == "ortools":
            from ortools.graph.python import max_flow

            smf = max_flow.SimpleMaxFlow()
            smf.add_arcs_with_capacity(tl, hd, icap)
            status = smf.solve(0, 1)
            if status != smf.OPTIMAL:
                raise RuntimeError(f"OR-Tools max-flow returned {status}")
            flow = int(smf.optimal_flow())
        else:
            import scipy.sparse as sp
            from scipy.sparse.csgraph import maximum_flow

            keep = icap > 0
            g = sp.csr_matrix((icap[keep].astype(np.int32), (tl[keep], hd[keep])),
                              shape=(n_net, n_net))
            flow = int(maximum_flow(g, 0, 1, method=self.engine.split("-", 1)[1]).flow_value)
        if flow >= big:  # pragma: no cover - S = H is a cheaper cut
            raise RuntimeError("min cut crossed an infinite arc: scaling bug")
        value = (const + math.ldexp(float(flow), -e)) * shrink
        return CutResult(max(0.0, min(value, f_h)), f_h, None)


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


_NETWORKS: dict[int, tuple[Instance, CutNetwork]] = {}


def network_for(instance: Instance, engine: str = "ortools") -> CutNetwork:
    """A cached :class:`CutNetwork` for ``instance`` (kept for the last few instances)."""
    key = id(instance)
    hit = _NETWORKS.get(key)
    if hit is not None and hit[0] is instance and hit[1].engine == engine:
        return hit[1]
    net = CutNetwork(instance, engine=engine)
    if len(_NETWORKS) >= 8:
        _NETWORKS.pop(next(iter(_NETWORKS)))
    _NETWORKS[key] = (instance, net)
    return net
