"""Figures and tables of the paper (docs/theory/paper.md#figures), regenerated from a store.

One module per figure or table; each has a pure data step (``data(records) -> NamedTuple``,
unit-tested) and a drawing step (``draw(info) -> Figure`` or ``render(info, fmt) -> str``)
that never shows or saves. :func:`make_all` writes every one of them:

=====================  ==========================================================
``fig_a_bounds``       GM(LB/UB*) vs k, one line per bound, one panel per dataset
``fig_b_distribution`` empirical CDF of per-instance LB/UB* at k = 16 (or nearest)
``fig_c_heuristics``   GM(UB_method/UB*) vs k, one line per heuristic
``fig_d_dataset``      histograms of node counts (log) and communication share
``table1_bounds``      rows k, columns bounds: GM(LB/UB*) per dataset
``table2_heuristics``  rows heuristics, columns k: GM(UB_method/UB*)
=====================  ==========================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["FIGURES", "TABLES", "make_all"]

FIGURES = ("fig_a_bounds", "fig_b_distribution", "fig_c_heuristics", "fig_d_dataset")
TABLES = ("table1_bounds", "table2_heuristics")


def make_all(store: Any, out_dir: str | Path) -> list[Path]:
    """Write every figure (PNG and PDF) and table (md, tex, csv) of ``store`` to ``out_dir``.

    ``store`` is a :class:`experiments.store.ResultsStore` or the path of its database.
    """
    import importlib

    from paper_figures._common import load_records

    records = load_records(store)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name in FIGURES + TABLES:
        mod = importlib.import_module(f"paper_figures.{name}")
        paths += mod.make(records, out)
    return paths
