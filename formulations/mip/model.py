"""A MILP in scipy's standard form, written block by block from index arrays.

A formulation declares named variable *blocks* (``X`` of shape ``(n, k-1)``, ``T`` of
shape ``()``...) and writes constraints as vectorized linear expressions::

    mb = ModelBuilder()
    X = mb.add_block("X", (n, k - 1), integer=True)      # binaries (bounds 0..1)
    T = mb.add_block("T", (), lb=0.0, ub=np.inf, cost=1.0)
    # X[v, j] <= X[u, j] on every edge (u, v) and every level j: m * (k-1) rows at once
    mb.add_le(X.at(dst[:, None], lv[None, :]) - X.at(src[:, None], lv[None, :]), 0.0)
    model = mb.build()

An :class:`Expr` holds many linear expressions at once: a leading shape ``S`` (one
expression per element) and a trailing *term* axis (``cols`` and ``vals`` of shape
``S + (t,)``, ``cols = -1`` meaning "no term") plus a constant of shape ``S``. Sums,
differences and scalings broadcast on the leading shape and concatenate terms; ``sum(axis)``
folds an axis of the leading shape into the terms. No Python loop runs per element: the
sparse matrix is assembled once with :func:`scipy.sparse.coo_array` (duplicates summed).

The result, :class:`MipModel`, is exactly what :func:`scipy.optimize.milp` takes
(``c``, ``LinearConstraint(A, lb, ub)``, ``Bounds``, ``integrality``), and every backend in
:mod:`formulations.mip.backends` solves that one object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import Bounds, LinearConstraint

__all__ = ["Block", "Expr", "ModelBuilder", "MipModel"]

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


class Expr:
    """Many linear expressions ``sum_t vals[..., t] * x[cols[..., t]] + const[...]``.

    Parameters
    ----------
    cols : int array, shape ``S + (t,)``
        Column indices, ``-1`` for an absent term.
    vals : float array, broadcastable to ``cols``
    const : float array, broadcastable to ``S``
    """

    __slots__ = ("cols", "vals", "const")

    def __init__(self, cols: ArrayLike, vals: ArrayLike, const: ArrayLike = 0.0) -> None:
        c = np.asarray(cols, dtype=np.int64)
        if c.ndim == 0:
            raise ValueError("Expr.cols needs a trailing term axis")
        v = np.broadcast_to(np.asarray(vals, dtype=np.float64), c.shape)
        self.cols: IntArray = c
        self.vals: FloatArray = v
        self.const: FloatArray = np.broadcast_to(
            np.asarray(const, dtype=np.float64), c.shape[:-1]
        )

    # ------------------------------------------------------------------ shape
    @property
    def shape(self) -> tuple[int, ...]:
        """The leading shape (one expression per element)."""
        return self.cols.shape[:-1]

    @staticmethod
    def constant(value: ArrayLike) -> Expr:
        """Expressions with no variable term."""
        v = np.asarray(value, dtype=np.float64)
        return Expr(np.full(v.shape + (1,), -1, dtype=np.int64), 0.0, v)

    def _broadcast(self, shape: tuple[int, ...]) -> Expr:
        t = self.cols.shape[-1]
        return Expr(
            np.broadcast_to(self.cols, shape + (t,)),
            np.broadcast_to(self.vals, shape + (t,)),
            np.broadcast_to(self.const, shape),
        )

    # ------------------------------------------------------------------ algebra
    def __add__(self, other: Expr | float | ArrayLike) -> Expr:
        if not isinstance(other, Expr):
            return Expr(self.cols, self.vals, self.const + np.asarray(other, dtype=np.float64))
        shape = np.broadcast_shapes(self.shape, other.shape)
        a, b = self._broadcast(shape), other._broadcast(shape)
        return Expr(
            np.concatenate([a.cols, b.cols], axis=-1),
            np.concatenate([a.vals, b.vals], axis=-1),
            a.const + b.const,
        )

    __radd__ = __add__

    def __neg__(self) -> Expr:
        return Expr(self.cols, -self.vals, -self.const)

    def __sub__(self, other: Expr | float | ArrayLike) -> Expr:
        return self + (-other if isinstance(other, Expr) else -np.asarray(other, dtype=float))

    def __rsub__(self, other: float | ArrayLike) -> Expr:
        return (-self) + other

    def __mul__(self, coef: float | ArrayLike) -> Expr:
        a = np.asarray(coef, dtype=np.float64)
        shape = np.broadcast_shapes(self.shape, a.shape)
        e = self._broadcast(shape)
        return Expr(e.cols, e.vals * a[..., None], e.const * a)

    __rmul__ = __mul__

    def sum(self, axis: int = 0) -> Expr:
        """Sum over one axis of the leading shape (its terms join the term axis)."""
        nd = len(self.shape)
        ax = axis % nd
        cols = np.moveaxis(self.cols, ax, -2)
        vals = np.moveaxis(self.vals, ax, -2)
        new = cols.shape[:-2] + (cols.shape[-2] * cols.shape[-1],)
        return Expr(cols.reshape(new), vals.reshape(new), self.const.sum(axis=ax))

    def __getitem__(self, idx: Any) -> Expr:
        if not isinstance(idx, tuple):
            idx = (idx,)
        full = idx + (slice(None),)
        return Expr(self.cols[full], self.vals[full], self.const[idx])

    def value(self, x: ArrayLike) -> FloatArray:
        """Evaluate the expressions at the column values ``x``."""
        xv = np.asarray(x, dtype=np.float64)
        if xv.size == 0:
            xv = np.zeros(1)
        safe = np.where(self.cols >= 0, self.cols, 0)
        terms = np.where(self.cols >= 0, self.vals * xv[safe], 0.0)
        return terms.sum(axis=-1) + self.const


@dataclass(frozen=True)
class Block:
    """A named block of columns with an index shape.

    ``cols`` holds the column index of every element (shape ``shape``).
    """

    name: str
    start: int
    shape: tuple[int, ...]
    cols: IntArray = field(repr=False)

    @property
    def size(self) -> int:
        """Number of columns in the block."""
        return int(self.cols.size)

    def at(self, *index: Any) -> Expr:
        """The variables at ``index`` (numpy fancy indexing) as an :class:`Expr`."""
        c = self.cols[index] if index else self.cols
        c = np.asarray(c)
        return Expr(c[..., None], 1.0)

    def expr(self) -> Expr:
        """The whole block as an :class:`Expr` of its shape."""
        return self.at()

    def values(self, x: ArrayLike) -> FloatArray:
        """The block's values in a solution vector ``x`` (shape ``shape``)."""
        return np.asarray(x, dtype=np.float64)[self.cols]


@dataclass
class MipModel:
    """``min c @ x`` s.t. ``row_lb <= A @ x <= row_ub``, ``col_lb <= x <= col_ub``.

    ``integrality[j] = 1`` for integer columns (scipy's convention). ``blocks`` maps block
    names to :class:`Block`; ``objective_integral`` says whether every feasible objective
    value is known to be integral (a backend may then round a dual bound up).
    """

    c: FloatArray
    A: sp.csr_array
    row_lb: FloatArray
    row_ub: FloatArray
    col_lb: FloatArray
    col_ub: FloatArray
    integrality: NDArray[np.int8]
    blocks: dict[str, Block]
    row_names: list[tuple[str, int, int]] = field(default_factory=list)
    objective_integral: bool = False
    build_time_s: float = 0.0

    @property
    def n_vars(self) -> int:
        """Number of columns."""
        return int(self.c.size)

    @property
    def n_cons(self) -> int:
        """Number of rows."""
        return int(self.A.shape[0])

    @property
    def n_integer(self) -> int:
        """Number of integer columns."""
        return int(np.count_nonzero(self.integrality))

    def linear_constraint(self) -> LinearConstraint:
        """The rows as a :class:`scipy.optimize.LinearConstraint` (sparse)."""
        return LinearConstraint(self.A, self.row_lb, self.row_ub)

    def bounds(self) -> Bounds:
        """The column bounds as :class:`scipy.optimize.Bounds`."""
        return Bounds(self.col_lb, self.col_ub)

    def violation(self, x: ArrayLike) -> float:
        """Largest violation of a row, a bound or integrality at ``x`` (0 if feasible)."""
        xv = np.asarray(x, dtype=np.float64)
        ax = self.A @ xv
        viol = [
            np.max(self.row_lb - ax, initial=0.0),
            np.max(ax - self.row_ub, initial=0.0),
            np.max(self.col_lb - xv, initial=0.0),
            np.max(xv - self.col_ub, initial=0.0),
        ]
        ints = self.integrality.astype(bool)
        if ints.any():
            viol.append(float(np.max(np.abs(xv[ints] - np.round(xv[ints])), initial=0.0)))
        return float(max(viol))


class ModelBuilder:
    """Accumulates blocks and constraint rows, then builds a :class:`MipModel` once."""

    def __init__(self) -> None:
        self._n = 0
        self._blocks: dict[str, Block] = {}
        self._lb: list[FloatArray] = []
        self._ub: list[FloatArray] = []
        self._int: list[NDArray[np.int8]] = []
        self._cost: list[FloatArray] = []
        self._rows: list[tuple[IntArray, IntArray, FloatArray]] = []
        self._rlb: list[FloatArray] = []
        self._rub: list[FloatArray] = []
        self._m = 0
        self._names: list[tuple[str, int, int]] = []

    @property
    def n_cols(self) -> int:
        """Columns declared so far."""
        return self._n

    def add_block(
        self,
        name: str,
        shape: int | Sequence[int],
        *,
        lb: ArrayLike = 0.0,
        ub: ArrayLike = 1.0,
        integer: bool = False,
        cost: ArrayLike = 0.0,
    ) -> Block:
        """Declare ``prod(shape)`` columns named ``name`` (default: [0, 1], continuous)."""
        if name in self._blocks:
            raise ValueError(f"block {name!r} declared twice")
        shp = (shape,) if isinstance(shape, int | np.integer) else tuple(int(s) for s in shape)
        size = int(np.prod(shp, dtype=np.int64))
        cols = np.arange(self._n, self._n + size, dtype=np.int64).reshape(shp)
        blk = Block(name, self._n, shp, cols)
        self._blocks[name] = blk
        self._lb.append(np.broadcast_to(np.asarray(lb, float), shp).ravel().copy())
        self._ub.append(np.broadcast_to(np.asarray(ub, float), shp).ravel().copy())
        self._int.append(np.full(size, 1 if integer else 0, dtype=np.int8))
        self._cost.append(np.broadcast_to(np.asarray(cost, float), shp).ravel().copy())
        self._n += size
        return blk

    def add_rows(
        self, expr: Expr, lb: ArrayLike = -np.inf, ub: ArrayLike = np.inf, name: str = ""
    ) -> tuple[int, int]:
        """Add ``lb <= expr <= ub`` elementwise; returns the row range ``(start, stop)``."""
        shape = expr.shape
        r = int(np.prod(shape, dtype=np.int64))
        if r == 0:
            return (self._m, self._m)
        t = expr.cols.shape[-1]
        cols = np.ascontiguousarray(expr.cols).reshape(r, t)
        vals = np.ascontiguousarray(expr.vals).reshape(r, t)
        const = np.ascontiguousarray(expr.const).reshape(r)
        keep = (cols >= 0) & (vals != 0.0)
        rows = np.broadcast_to(np.arange(self._m, self._m + r, dtype=np.int64)[:, None],
                               (r, t))
        self._rows.append((rows[keep], cols[keep], vals[keep]))
        lbv = np.broadcast_to(np.asarray(lb, float), shape).reshape(r) - const
        ubv = np.broadcast_to(np.asarray(ub, float), shape).reshape(r) - const
        self._rlb.append(lbv)
        self._rub.append(ubv)
        start = self._m
        self._m += r
        self._names.append((name, start, self._m))
        return (start, self._m)

    def add_le(self, expr: Expr, rhs: ArrayLike = 0.0, name: str = "") -> tuple[int, int]:
        """``expr <= rhs``."""
        return self.add_rows(expr, -np.inf, rhs, name)

    def add_ge(self, expr: Expr, rhs: ArrayLike = 0.0, name: str = "") -> tuple[int, int]:
        """``expr >= rhs``."""
        return self.add_rows(expr, rhs, np.inf, name)

    def add_eq(self, expr: Expr, rhs: ArrayLike = 0.0, name: str = "") -> tuple[int, int]:
        """``expr == rhs``."""
        return self.add_rows(expr, rhs, rhs, name)

    def build(self, *, objective_integral: bool = False) -> MipModel:
        """Assemble the sparse matrix (duplicate entries summed) and the vectors."""
        if self._rows:
            r = np.concatenate([x[0] for x in self._rows])
            c = np.concatenate([x[1] for x in self._rows])
            v = np.concatenate([x[2] for x in self._rows])
        else:
            r = c = np.zeros(0, np.int64)
            v = np.zeros(0)
        A = sp.coo_array((v, (r, c)), shape=(self._m, self._n)).tocsr()
        A.sum_duplicates()
        A.eliminate_zeros()
        cat = np.concatenate
        return MipModel(
            c=cat(self._cost) if self._cost else np.zeros(0),
            A=A,
            row_lb=cat(self._rlb) if self._rlb else np.zeros(0),
            row_ub=cat(self._rub) if self._rub else np.zeros(0),
            col_lb=cat(self._lb) if self._lb else np.zeros(0),
            col_ub=cat(self._ub) if self._ub else np.zeros(0),
            integrality=cat(self._int) if self._int else np.zeros(0, np.int8),
            blocks=dict(self._blocks),
            row_names=list(self._names),
            objective_integral=objective_integral,
        )
