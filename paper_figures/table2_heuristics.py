"""Table 2: GM(UB_method / UB*) per heuristic (rows) and k (columns)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from paper_figures._common import Records, write_table

NAME = "table2_heuristics"


class Info(NamedTuple):
    """The k columns and, per heuristic, GM(UB/UB*) and median seconds per k."""

    ks: list[int]
    rows: list[tuple[str, list[float], list[float]]]


def data(rec: Records) -> Info:
    """Pure: from the heuristic summaries."""
    ks = rec.summary.ks
    t = {(h.method, h.k): h for h in rec.summary.heuristics}
    rows = []
    for m in rec.summary.heuristic_methods:
        gm = [t[(m, k)].gm_ratio if (m, k) in t else math.nan for k in ks]
        sec = [t[(m, k)].median_time_s if (m, k) in t else math.nan for k in ks]
        rows.append((m, gm, sec))
    return Info(ks, rows)


def render(info: Info) -> tuple[list[str], list[list[str]]]:
    """Header and cells ``ratio (median s)``."""
    head = ["heuristic", *(f"k={k}" for k in info.ks)]
    cells = []
    for m, gm, sec in info.rows:
        cells.append([m, *("-" if not math.isfinite(g) else f"{g:.4f} ({s:.2g}s)"
                           for g, s in zip(gm, sec))])
    return head, cells


def make(rec: Records, out: Path) -> list[Path]:
    """Write table2_heuristics.md/.tex/.csv."""
    head, cells = render(data(rec))
    return write_table(out, NAME, head, cells,
                       "Table 2: geometric mean of heuristic value / best partition "
                       "(median time)")
