"""Figure A (headline): GM(LB / UB*) against k, one line per bound, one panel per dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from paper_figures._common import Records, gm_by, order_methods, save, style

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


def draw(info: Info) -> Any:
    """Line plot, log2 k axis, y in [0, 1.02]."""
    import matplotlib.pyplot as plt

    nd = max(1, len(info.datasets))
    fig, axes = plt.subplots(1, nd, figsize=(4.6 * nd + 1.6, 3.8), sharey=True, squeeze=False)
    for ax, d in zip(axes[0], info.datasets or [""]):
        for m in info.methods:
            ys = info.gm.get(d, {}).get(m)
            if ys is None:
                continue
            st = style(m)
            ax.plot(info.ks, ys, label=m, lw=1.3 if st["linestyle"] == "--" else 1.8, ms=5,
                    zorder=3 if st["linestyle"] == "--" else 2, **st)
        ax.set_xscale("log", base=2)
        ax.set_xticks(info.ks)
        ax.set_xticklabels([str(k) for k in info.ks])
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("k (stages)")
        ax.set_title(f"{d} ({info.n.get(d, 0)} instances)", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("geometric mean of LB / best partition")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9,
               frameon=False)
    fig.suptitle("Lower bound quality vs number of stages", fontsize=11)
    fig.tight_layout()
    return fig


def make(rec: Records, out: Path) -> list[Path]:
    """Write fig_a_bounds.png/.pdf."""
    return save(draw(data(rec)), out, NAME)
