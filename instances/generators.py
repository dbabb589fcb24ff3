"""Deterministic synthetic instance generators.

* :func:`regal_like`: REGAL-like graphs (docs/theory/paper.md): a layered random DAG, 50-300 nodes,
  edges mostly to the next 1 to 3 layers plus occasional long skip edges, integer work
  (``compute_cost``) and output size (comm) uniform on [1, 100], a few multi-consumer nodes.
  :func:`regal_like_set` draws several with distinct topologies.
* :func:`layered_dag`: layered random DAGs with tunable size, layer width, skip-edge
  probability and comm/work ratio, for both regimes (compute-heavy: ratio << 1;
  comm-heavy: ratio >> 1); ``weight_fraction > 0`` adds operator-graph-like zero-work
  weight nodes (sources whose only cost is sending their tensor).

Every generator takes ``rng`` (a :class:`numpy.random.Generator` or an integer seed) and
draws all randomness from it, so the same seed gives the same instance. Node ids are
``v0, v1, ...`` in a topological order; generator name and parameters go to
``metadata["generator"]``; ``metadata["units"]`` says ``"unit"`` for work, comm and memory
(dimensionless: generated costs have no physical unit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipecert.errors import InputError
from pipecert.instance import Instance

__all__ = ["layered_dag", "regal_like", "regal_like_set", "as_rng",
           "GENERATED_UNITS"]

#: units of generated instances: dimensionless
GENERATED_UNITS = {"work": "unit", "comm": "unit", "memory": "unit"}


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` itself, or a fresh PCG64 generator seeded with the integer ``rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise InputError("a seed or numpy Generator is required (generators are deterministic)")
    return np.random.default_rng(int(rng))


def _layer_sizes(n: int, width: float, rng: np.random.Generator, jitter: float) -> list[int]:
    """Split ``n`` nodes into layers of about ``width`` nodes (first layer at least 1)."""
    sizes: list[int] = []
    left = n
    while left > 0:
        w = width * (1.0 + jitter * (2.0 * rng.random() - 1.0))
        s = int(min(left, max(1, round(w))))
        sizes.append(s)
        left -= s
    return sizes


def _layered_edges(
    sizes: Sequence[int],
    rng: np.random.Generator,
    *,
    max_in: int,
    span: int,
    skip_prob: float,
    skip_span: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Edges of a layered DAG: each node of layer L > 0 gets 1..max_in predecessors from
    layers L-span..L-1 (at least one in L-1), plus, with probability ``skip_prob``, one
    long skip edge from a layer further back (up to ``skip_span`` layers, default all).
    Every node but the last layer's also gets a successor, so no node dangles."""
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    src: list[int] = []
    dst: list[int] = []
    n_layers = len(sizes)
    for L in range(1, n_layers):
        lo_prev, hi_prev = int(starts[L - 1]), int(starts[L])
        lo_near = int(starts[max(0, L - span)])
        for v in range(int(starts[L]), int(starts[L + 1])):
            src.append(int(rng.integers(lo_prev, hi_prev)))
            dst.append(v)
            extra = int(rng.integers(0, max_in))  # 0 .. max_in-1 more
            for _ in range(extra):
                src.append(int(rng.integers(lo_near, hi_prev)))
                dst.append(v)
            if L >= 2 and rng.random() < skip_prob:
                far = 0 if skip_span is None else int(starts[max(0, L - skip_span)])
                hi_far = int(starts[L - 1])
                if hi_far > far:
                    src.append(int(rng.integers(far, hi_far)))
                    dst.append(v)
    # give every node outside the last layer a consumer in the next layer
    has_succ = np.zeros(int(starts[-1]), dtype=bool)
    has_succ[np.asarray(src, dtype=np.int64)] = True
    for L in range(n_layers - 1):
        lo_next, hi_next = int(starts[L + 1]), int(starts[L + 2])
        for u in range(int(starts[L]), int(starts[L + 1])):
            if not has_succ[u]:
                src.append(u)
                dst.append(int(rng.integers(lo_next, hi_next)))
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)


def _round_sig(x: np.ndarray, digits: int) -> np.ndarray:
    """Round to ``digits`` significant digits (compact, readable files)."""
    out = np.zeros_like(x)
    nz = x > 0
    mag = np.floor(np.log10(x[nz]))
    scale = 10.0 ** (digits - 1 - mag)
    out[nz] = np.round(x[nz] * scale) / scale
    return out


def layered_dag(
    n: int,
    *,
    rng: np.random.Generator | int,
    width: float = 4.0,
    width_jitter: float = 0.5,
    max_in: int = 2,
    span: int = 2,
    skip_prob: float = 0.1,
    skip_span: int | None = None,
    comm_work_ratio: float = 0.1,
    work_sigma: float = 1.0,
    comm_sigma: float = 1.0,
    weight_fraction: float = 0.0,
    digits: int = 4,
    name: str | None = None,
) -> Instance:
    """A layered random DAG with lognormal costs scaled to a target comm/work ratio.

    Parameters
    ----------
    n : int
        Number of nodes (>= 1), weight nodes included.
    rng : numpy.random.Generator or int
        Source of all randomness (an int is a seed).
    width : float
        Mean number of operator nodes per layer; ``width_jitter`` varies it by up to that
        fraction per layer. ``width=1`` gives a chain with skip edges.
    max_in : int
        Each operator node gets 1 to ``max_in`` data predecessors from the previous ``span``
        layers (always at least one in the previous layer).
    skip_prob : float
        Probability that a node also gets one long skip edge from an earlier layer (at most
        ``skip_span`` layers back, default any), like residual or concat connections.
    comm_work_ratio : float
        Total comm (over nodes with a consumer) divided by total work, hit exactly up to the
        rounding to ``digits`` significant digits. Below 1: compute-heavy; above: comm-heavy.
    work_sigma, comm_sigma : float
        Log-standard deviations of the lognormal work and comm draws (0 = all equal).
    weight_fraction : float
        Fraction of the ``n`` nodes that are operator-graph weight nodes: zero work, a comm
        cost (their tensor) and one consumer among the operator nodes.
    digits : int
        Significant digits kept in every cost.
    name : str, optional
        Instance name (default ``layered-<n>``).

    Returns
    -------
    Instance
        With ``op_types`` ``"op"`` / ``"weight"`` and the parameters in
        ``metadata["generator"]``.
    """
    if int(n) < 1:
        raise InputError(f"n must be >= 1, got {n}")
    if width < 1 or max_in < 1 or span < 1:
        raise InputError("width, max_in and span must be >= 1")
    if not 0 <= skip_prob <= 1 or not 0 <= weight_fraction < 1:
        raise InputError("skip_prob must be in [0, 1] and weight_fraction in [0, 1)")
    if not comm_work_ratio >= 0:
        raise InputError(f"comm_work_ratio must be >= 0, got {comm_work_ratio}")
    params: dict[str, Any] = dict(
        n=int(n), width=width, width_jitter=width_jitter, max_in=max_in, span=span,
        skip_prob=skip_prob, skip_span=skip_span, comm_work_ratio=comm_work_ratio,
        work_sigma=work_sigma, comm_sigma=comm_sigma, weight_fraction=weight_fraction,
        digits=digits,
    )
    g = as_rng(rng)
    seed = None if isinstance(rng, np.random.Generator) else int(rng)
    n = int(n)
    n_w = int(round(n * weight_fraction))
    n_ops = n - n_w
    if n_ops < 1:
        n_ops, n_w = 1, n - 1
    sizes = _layer_sizes(n_ops, width, g, width_jitter)
    src, dst = _layered_edges(sizes, g, max_in=max_in, span=span, skip_prob=skip_prob,
                              skip_span=skip_span)
    work = g.lognormal(0.0, work_sigma, n_ops)
    comm_ops = g.lognormal(0.0, comm_sigma, n_ops)
    # weight nodes: interleaved before their consumer so ids stay topological
    consumers = np.sort(g.integers(0, n_ops, n_w)) if n_w else np.zeros(0, dtype=np.int64)
    comm_w = g.lognormal(0.0, comm_sigma, n_w)
    # new index of op i = i + number of weights attached to ops <= i
    shift = np.searchsorted(consumers, np.arange(n_ops), side="right")
    op_new = np.arange(n_ops) + shift
    w_new = consumers + np.arange(n_w)  # weight j sits just before its consumer
    total = n_ops + n_w
    W = np.zeros(total)
    C = np.zeros(total)
    W[op_new] = work
    C[op_new] = comm_ops
    C[w_new] = comm_w
    kind = np.array(["op"] * total, dtype=object)
    kind[w_new] = "weight"
    s_all = np.concatenate([op_new[src], w_new])
    d_all = np.concatenate([op_new[dst], op_new[consumers]])
    has_succ = np.zeros(total, dtype=bool)
    has_succ[s_all] = True
    W = _round_sig(W, digits)
    csum = C[has_succ].sum()
    if csum > 0 and comm_work_ratio > 0:
        C = C * (comm_work_ratio * W.sum() / csum)
    else:
        C[:] = 0.0
    C = _round_sig(C, digits)
    return Instance.from_arrays(
        [f"v{i}" for i in range(total)],
        W,
        C,
        s_all,
        d_all,
        name=name or f"layered-{n}",
        op_types=kind.tolist(),
        metadata={"generator": {"name": "layered_dag", "seed": seed, "params": params},
                  "units": dict(GENERATED_UNITS)},
    )


def regal_like(
    n: int | None = None,
    *,
    rng: np.random.Generator | int,
    n_range: tuple[int, int] = (50, 300),
    width_range: tuple[int, int] = (2, 8),
    skip_prob: float = 0.05,
    multi_consumer_prob: float = 0.15,
    cost_range: tuple[int, int] = (1, 100),
    name: str | None = None,
) -> Instance:
    """A REGAL-like graph (docs/theory/paper.md#implementation-notes; parameters are guesses).

    A layered random DAG with ``n`` nodes (drawn uniformly from ``n_range`` if ``None``);
    each node takes one input from the previous layer and, with probability
    ``multi_consumer_prob``, one more from the previous 3 layers (so some producers feed
    several consumers); with probability ``skip_prob`` a long skip edge from any earlier
    layer. Work (``compute_cost``) and comm (output size, unit bandwidth) are integers
    uniform on ``cost_range``.
    """
    g = as_rng(rng)
    seed = None if isinstance(rng, np.random.Generator) else int(rng)
    if n is None:
        n = int(g.integers(n_range[0], n_range[1] + 1))
    width = float(g.integers(width_range[0], width_range[1] + 1))
    sizes = _layer_sizes(int(n), width, g, 0.5)
    # max_in 2 with the extra input from up to 3 layers back; the extra edge is drawn with
    # probability multi_consumer_prob by sampling max_in per node below
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    src: list[int] = []
    dst: list[int] = []
    for L in range(1, len(sizes)):
        lo_prev, hi_prev = int(starts[L - 1]), int(starts[L])
        lo_near = int(starts[max(0, L - 3)])
        for v in range(int(starts[L]), int(starts[L + 1])):
            src.append(int(g.integers(lo_prev, hi_prev)))
            dst.append(v)
            if g.random() < multi_consumer_prob:
                src.append(int(g.integers(lo_near, hi_prev)))
                dst.append(v)
            if L >= 3 and g.random() < skip_prob:
                src.append(int(g.integers(0, int(starts[L - 2]))))
                dst.append(v)
    has_succ = np.zeros(int(n), dtype=bool)
    has_succ[np.asarray(src, dtype=np.int64)] = True
    for L in range(len(sizes) - 1):
        for u in range(int(starts[L]), int(starts[L + 1])):
            if not has_succ[u]:
                src.append(u)
                dst.append(int(g.integers(int(starts[L + 1]), int(starts[L + 2]))))
    lo, hi = cost_range
    work = g.integers(lo, hi + 1, int(n)).astype(np.float64)
    comm = g.integers(lo, hi + 1, int(n)).astype(np.float64)
    params = dict(n=int(n), width=width, skip_prob=skip_prob,
                  multi_consumer_prob=multi_consumer_prob, cost_range=list(cost_range))
    return Instance.from_arrays(
        [f"v{i}" for i in range(int(n))],
        work,
        comm,
        src,
        dst,
        name=name or f"regal-like-{n}",
        metadata={"generator": {"name": "regal_like", "seed": seed, "params": params},
                  "units": dict(GENERATED_UNITS)},
    )


def regal_like_set(count: int, *, rng: np.random.Generator | int, **kwargs: Any) -> list[Instance]:
    """``count`` REGAL-like graphs with pairwise distinct topologies (as REGAL's splits).

    Raises :class:`InputError` if 20 * ``count`` draws do not give enough distinct ones.
    """
    g = as_rng(rng)
    out: list[Instance] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 20 * max(count, 1):
            raise InputError(f"could not draw {count} distinct REGAL-like topologies")
        inst = regal_like(rng=g, **kwargs)
        h = inst.structure_fingerprint  # ids are v0, v1, ...: the topology alone
        if h in seen:
            continue
        seen.add(h)
        out.append(inst)
    return out
