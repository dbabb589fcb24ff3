"""Figure B: empirical CDF of per-instance LB / UB* at k = 16 (or the nearest k run)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from experiments.analysis import BEST
from paper_figures._common import (
    OVERLAP,
    Records,
    add_notes,
    coincide_note,
    coinciding,
    order_methods,
    pick_k,
    save,
    styles,
    unit_note,
)

NAME = "fig_b_distribution"


class Info(NamedTuple):
    """The k shown and, per bound method, the sorted per-instance ratios."""

    k: int | None
    methods: list[str]
    ratios: dict[str, list[float]]


def data(rec: Records, k: int = 16) -> Info:
    """Pure: ratios at the chosen k, sorted, per method."""
    kk = pick_k(rec.summary.ks, k)
    rows = [r for r in rec.summary.ratios if r["k"] == kk]
    methods = order_methods(sorted({r["method"] for r in rows}))
    ratios = {m: sorted(r["ratio"] for r in rows if r["method"] == m) for m in methods}
    return Info(kk, methods, ratios)


def draw(info: Info, notes: Sequence[str] = ()) -> Any:
    """Step ECDF per method: the fraction of instances whose ratio is at most x. Every
    method its own colour, line style and marker (at its steps); curves that coincide are
    all drawn (wider, under) and named under the figure with ``notes``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    drawn = [m for m in info.methods if info.ratios[m]]
    sty = styles(drawn)
    groups = coinciding({m: info.ratios[m] for m in drawn}, atol=OVERLAP * 1.01)
    rank = {m: j for g in groups for j, m in enumerate(g)}
    for m in drawn:
        xs = info.ratios[m]
        n = len(xs)
        st = sty[m]
        j = rank.get(m, 0)
        ys = [(i + 1) / n for i in range(n)]
        ax.step([0.0, *xs, 1.0], [0.0, *ys, 1.0], where="post", label=f"{m} (n={n})",
                color=st["color"], ls=st["linestyle"],
                lw=(1.3 if m == BEST else 2.0) + 1.2 * j, zorder=4 - 0.1 * j)
        if n <= 60:  # a marker where each instance enters the curve
            ax.plot(xs, ys, ls="none", marker=st["marker"], color=st["color"],
                    ms=4 + 3 * j, mfc="none" if j else st["color"], mew=1.4,
                    zorder=5 - 0.1 * j)
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("LB / best partition (per instance, unit-free)")
    ax.set_ylabel("fraction of instances with ratio <= x")
    ax.set_title(f"Distribution of bound quality at k = {info.k}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    note = coincide_note(groups)
    add_notes(fig, [f"Overlapping curves (all drawn, wider under narrower): {note}" if note
                    else "", *notes])
    return fig


def make(rec: Records, out: Path) -> list[Path]:
    """Write fig_b_distribution.png/.pdf."""
    return save(draw(data(rec), [unit_note(rec)]), out, NAME)
