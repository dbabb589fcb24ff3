"""Figure C: heuristic quality, GM(UB_method / UB*) against k, one line per heuristic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from paper_figures._common import (
    OVERLAP,
    OVERLAP_NOTE,
    Records,
    add_notes,
    coincide_note,
    coinciding,
    save,
    styles,
    unit_note,
)

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


def draw(info: Info, notes: Sequence[str] = ()) -> Any:
    """Line plot on a log2 k axis; y starts at 1 (the best partition found). Every method its
    own marker and line style; coinciding lines all drawn (larger hollow markers) and named
    under the figure with ``notes``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    top = 1.0
    sty = styles(info.methods)
    for m in info.methods:
        top = max([top, *[y for y in info.gm[m] if math.isfinite(y)]])
    hi = top + 0.05 * (top - 1) + 0.01
    groups = coinciding({m: info.gm[m] for m in info.methods}, atol=OVERLAP * (hi - 0.99))
    rank = {m: j for g in groups for j, m in enumerate(g)}
    for m in info.methods:
        ys = info.gm[m]
        j = rank.get(m, 0)
        st = sty[m]
        extra: dict[str, Any] = {"mfc": "none", "mew": 1.4} if j else {}
        ax.plot(info.ks, ys, label=m, lw=1.6 + 1.8 * j, ms=5 + 3.5 * j, zorder=3 - 0.1 * j,
                color=st["color"],
                marker=st["marker"], linestyle=st["linestyle"], **extra)
    ax.set_xscale("log", base=2)
    ax.set_xticks(info.ks)
    ax.set_xticklabels([str(k) for k in info.ks])
    ax.set_ylim(0.99, hi)
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.set_xlabel("k (stages)")
    ax.set_ylabel("geometric mean of UB / best partition\n(unit-free)")
    ax.set_title("Heuristic quality vs number of stages", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    note = coincide_note(groups)
    add_notes(fig, [OVERLAP_NOTE + note if note else "", *notes])
    return fig


def make(rec: Records, out: Path) -> list[Path]:
    """Write fig_c_heuristics.png/.pdf."""
    return save(draw(data(rec), [unit_note(rec)]), out, NAME)
