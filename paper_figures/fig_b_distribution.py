"""Figure B: empirical CDF of per-instance LB / UB* at k = 16 (or the nearest k run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from paper_figures._common import Records, order_methods, pick_k, save, style

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


def draw(info: Info) -> Any:
    """Step ECDF per method: the fraction of instances whose ratio is at most x."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for m in info.methods:
        xs = info.ratios[m]
        if not xs:
            continue
        n = len(xs)
        st = style(m)
        best = st["linestyle"] == "--"
        ax.step([0.0, *xs, 1.0], [0.0, *[(i + 1) / n for i in range(n)], 1.0], where="post",
                label=f"{m} (n={n})", color=st["color"], ls=st["linestyle"],
                lw=1.3 if best else 2.0, zorder=3 if best else 2)
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("LB / best partition (per instance)")
    ax.set_ylabel("fraction of instances with ratio <= x")
    ax.set_title(f"Distribution of bound quality at k = {info.k}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def make(rec: Records, out: Path) -> list[Path]:
    """Write fig_b_distribution.png/.pdf."""
    return save(draw(data(rec)), out, NAME)
