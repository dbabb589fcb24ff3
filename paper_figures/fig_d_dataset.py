"""Figure D: the data set - histograms of node counts (log scale) and communication share,
titled with the experiment and the suites (or files) the graphs come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from paper_figures._common import Records, add_notes, dataset_title, save

NAME = "fig_d_dataset"


class Info(NamedTuple):
    """Per dataset: node counts and communication shares sum c / (sum w + sum c)."""

    datasets: list[str]
    n_nodes: dict[str, list[int]]
    comm_share: dict[str, list[float]]
    #: which data set this is (experiment, suites or files, graph counts)
    title: str = ""
    #: notes printed under the figure (units)
    notes: tuple[str, ...] = ()


def data(rec: Records) -> Info:
    """Pure: from the instance facts of the instances that have runs."""
    used = {r["instance"] for r in rec.runs}
    rows = [r for name, r in rec.instances.items() if name in used]
    ds = sorted({r.get("source") or "all" for r in rows})
    mixed = sorted({str(r.get("time_unit")) for r in rows if "/" in str(r.get("time_unit"))})
    notes = ("communication share = sum c / (sum w + sum c) per graph: unit-free when work "
             "and comm share a unit" + (f"; NOT so for units {', '.join(mixed)} (work/comm)"
                                        if mixed else "") + ".",)
    return Info(
        ds,
        {d: [int(r["n_nodes"]) for r in rows if (r.get("source") or "all") == d] for d in ds},
        {d: [float(r["comm_share"]) for r in rows if (r.get("source") or "all") == d]
         for d in ds},
        dataset_title(rec),
        notes,
    )


def draw(info: Info) -> Any:
    """Two panels: log-binned node counts and the communication share in [0, 1]."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    alln = [n for v in info.n_nodes.values() for n in v] or [1]
    lo, hi = max(1, min(alln)), max(alln)
    bins = np.logspace(np.log10(lo) - 0.05, np.log10(hi) + 0.05, 16)
    series = [info.n_nodes[d] for d in info.datasets]
    if series:
        a1.hist(series, bins=bins, label=info.datasets, stacked=True, edgecolor="white")
    a1.set_xscale("log")
    # plain numbers at 1, 2, 5 x 10^j; no labels on the other minor ticks (they overlapped)
    a1.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a1.xaxis.set_major_formatter(ScalarFormatter())
    a1.xaxis.set_minor_formatter(NullFormatter())
    a1.set_xlabel("nodes per graph")
    a1.set_ylabel("graphs")
    a1.set_title("Graph size", fontsize=11)
    shares = [info.comm_share[d] for d in info.datasets]
    if shares:
        a2.hist(shares, bins=np.linspace(0, 1, 21), label=info.datasets, stacked=True,
                edgecolor="white")
    a2.set_xlim(0, 1)
    a2.set_xlabel("communication share  sum c / (sum w + sum c)")
    a2.set_ylabel("graphs")
    a2.set_title("Cost regime", fontsize=11)
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(info.datasets) > 1:
        a2.legend(fontsize=8, frameon=False)
    if info.title:
        fig.suptitle(info.title, fontsize=11)
    fig.tight_layout()
    add_notes(fig, info.notes)
    return fig


def make(rec: Records, out: Path) -> list[Path]:
    """Write fig_d_dataset.png/.pdf."""
    return save(draw(data(rec)), out, NAME)
