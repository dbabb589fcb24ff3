"""Figure C: heuristic quality, GM(UB_method / UB*) against k, one line per heuristic."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from paper_figures._common import Records, save, style

NAME = "fig_c_heuristics"


class Info(NamedTuple):
    """Per heuristic, GM(UB/UB*) at each k (nan where it found nothing)."""

    ks: list[int]
    methods: list[str]
    gm: dict[str, list[float]]


def data(rec: Records) -> Info:
    """Pure: from the heuristic summaries."""
    ks = rec.summary.ks
    methods = list(rec.summary.heuristic_methods)
    table = {(h.method, h.k): h.gm_ratio for h in rec.summary.heuristics}
    return Info(ks, methods, {m: [table.get((m, k), math.nan) for k in ks] for m in methods})


def draw(info: Info) -> Any:
    """Line plot on a log2 k axis; y starts at 1 (the best partition found)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    top = 1.0
    for m in info.methods:
        ys = info.gm[m]
        ax.plot(info.ks, ys, label=m, lw=1.6, ms=5, **style(m))
        top = max([top, *[y for y in ys if math.isfinite(y)]])
    ax.set_xscale("log", base=2)
    ax.set_xticks(info.ks)
    ax.set_xticklabels([str(k) for k in info.ks])
    ax.set_ylim(0.99, top + 0.05 * (top - 1) + 0.01)
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.set_xlabel("k (stages)")
    ax.set_ylabel("geometric mean of UB / best partition")
    ax.set_title("Heuristic quality vs number of stages", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def make(rec: Records, out: Path) -> list[Path]:
    """Write fig_c_heuristics.png/.pdf."""
    return save(draw(data(rec)), out, NAME)
