"""Table 1: GM(LB / UB*) per k (rows) and bound method (columns), one block per dataset."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from paper_figures._common import Records, gm_by, order_methods, write_table

NAME = "table1_bounds"


class Info(NamedTuple):
    """Rows (dataset, k) and, per method, the GM ratio (nan where absent)."""

    methods: list[str]
    rows: list[tuple[str, int, list[float]]]


def data(rec: Records) -> Info:
    """Pure: aggregate the per-instance ratios by dataset, k and method."""
    ratios = rec.summary.ratios
    methods = order_methods(sorted({r["method"] for r in ratios}))
    g = gm_by(ratios, "dataset", "k", "method")
    rows = []
    for d in sorted({r["dataset"] for r in ratios}):
        for k in rec.summary.ks:
            vals = [g.get((d, k, m), (math.nan, 0))[0] for m in methods]
            if any(math.isfinite(v) for v in vals):
                rows.append((d, k, vals))
    return Info(methods, rows)


def render(info: Info) -> tuple[list[str], list[list[str]]]:
    """Header and string cells."""
    head = ["dataset", "k", *info.methods]
    cells = [[d, str(k), *("-" if not math.isfinite(v) else f"{v:.4f}" for v in vals)]
             for d, k, vals in info.rows]
    return head, cells


def make(rec: Records, out: Path) -> list[Path]:
    """Write table1_bounds.md/.tex/.csv."""
    head, cells = render(data(rec))
    return write_table(out, NAME, head, cells,
                       "Table 1: geometric mean of lower bound / best partition")
