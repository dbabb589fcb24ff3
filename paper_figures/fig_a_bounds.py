"""Figure A (headline): GM(LB / UB*) against k, one line per bound, one panel per dataset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from experiments.analysis import BEST
from paper_figures._common import (
    OVERLAP,
    OVERLAP_NOTE,
    Records,
    add_notes,
    coincide_note,
    coinciding,
    gm_by,
    order_methods,
    save,
    styles,
    unit_note,
)

NAME = "fig_a_bounds"


class Info(NamedTuple):
    """Per dataset: the k values and, per method, GM(LB/UB*) at each k (nan if absent)."""

    datasets: list[str]
    ks: list[int]
    methods: list[str]
    gm: dict[str, dict[str, list[float]]]  # dataset -> method -> values over ks
    n: dict[str, int]  # dataset -> instances


def data(rec: Records) -> Info:
    """Pure: aggregate the per-instance ratios of the summary."""
    ratios = rec.summary.ratios
    ks = rec.summary.ks
    datasets = sorted({r["dataset"] for r in ratios})
    methods = order_methods(sorted({r["method"] for r in ratios}))
    g = gm_by(ratios, "dataset", "method", "k")
    gm = {d: {m: [g.get((d, m, k), (float("nan"), 0))[0] for k in ks] for m in methods}
          for d in datasets}
    n = {d: len({r["instance"] for r in ratios if r["dataset"] == d}) for d in datasets}
    return Info(datasets, ks, methods, gm, n)


def draw(info: Info, notes: Sequence[str] = ()) -> Any:
    """Line plot, log2 k axis, y in [0, 1.02]; every method its own marker and line style.

    Lines that coincide on every point of a panel are all drawn (the later ones with larger
    hollow markers, so each stays visible) and named in a note under the figure; ``notes``
    are printed there too.
    """
    import matplotlib.pyplot as plt

    nd = max(1, len(info.datasets))
    fig, axes = plt.subplots(1, nd, figsize=(4.6 * nd + 1.6, 3.8), sharey=True, squeeze=False)
    sty = styles(info.methods)
    lines: list[str] = []
    handles: dict[str, Any] = {}
    for ax, d in zip(axes[0], info.datasets or [""]):
        series = {m: ys for m in info.methods if (ys := info.gm.get(d, {}).get(m)) is not None}
        groups = coinciding(series, atol=OVERLAP * 1.02)  # the y axis spans [0, 1.02]
        rank = {m: j for g in groups for j, m in enumerate(g)}
        for m, ys in series.items():
            j = rank.get(m, 0)
            st = sty[m]
            extra: dict[str, Any] = {"mfc": "none", "mew": 1.4} if j else {}
            # an overlapping line goes under the earlier ones, wider, with a larger hollow
            # marker: its colour shows around theirs
            (h,) = ax.plot(info.ks, ys, label=m, lw=(1.3 if m == BEST else 1.8) + 1.8 * j,
                           ms=5 + 3.5 * j, zorder=3 - 0.1 * j, color=st["color"],
                           marker=st["marker"], linestyle=st["linestyle"], **extra)
            handles.setdefault(m, h)
        lines.append(coincide_note(groups, d if nd > 1 else ""))
        ax.set_xscale("log", base=2)
        ax.set_xticks(info.ks)
        ax.set_xticklabels([str(k) for k in info.ks])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (stages)")
        n = info.n.get(d, 0)
        ax.set_title(f"{d} ({n} instance{'s' if n != 1 else ''})", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("geometric mean of LB / best partition\n(unit-free)")
    fig.legend(list(handles.values()), list(handles), loc="center left",
               bbox_to_anchor=(1.0, 0.5), fontsize=9, frameon=False)
    fig.suptitle("Lower bound quality vs number of stages", fontsize=11)
    fig.tight_layout()
    coincide = [ln for ln in lines if ln]
    add_notes(fig, [(OVERLAP_NOTE + " | ".join(coincide)) if coincide else "",
                    *notes])
    return fig


def make(rec: Records, out: Path) -> list[Path]:
    """Write fig_a_bounds.png/.pdf."""
    return save(draw(data(rec), [unit_note(rec)]), out, NAME)
