"""Shared pieces of the figure modules: loading records, stable styles, saving."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

from experiments.analysis import BEST, COMBINATORIAL, Summary, geomean, summarize

__all__ = ["Records", "load_records", "style", "save", "gm_by", "pick_k", "LB_ORDER"]

#: Preferred order of bound methods in legends and tables (others follow alphabetically).
LB_ORDER = (COMBINATORIAL, "bottleneck", "guess", "exact_mip", "node_bound", "path_bound",
            "best", BEST)

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_FIXED = {COMBINATORIAL: ("#7f7f7f", "o"), BEST: ("#000000", "*"),
          "node_bound": ("#2ca02c", "^"), "path_bound": ("#d62728", "D"),
          "bottleneck": ("#1f77b4", "s"), "guess": ("#ff7f0e", "v"),
          "exact_mip": ("#9467bd", "P"), "brkga-100": ("#1f77b4", "o"),
          "brkga-10000": ("#d62728", "s")}


class Records(NamedTuple):
    """What every figure reads: runs, instance facts and the §5.4 summary."""

    runs: list[dict[str, Any]]
    instances: dict[str, dict[str, Any]]
    summary: Summary
    experiment: str


def load_records(store: Any) -> Records:
    """Read a store (object or database path) into :class:`Records`."""
    from experiments.store import ResultsStore

    own = not isinstance(store, ResultsStore)
    st = ResultsStore(store, readonly=True) if own else store
    try:
        runs = st.runs(parse_json=False, columns=(
            "instance", "k", "role", "method_id", "status", "bound", "incumbent",
            "wall_time_s"))
        inst = {r["instance"]: r for r in st.instance_rows()}
        name = st.get_meta("experiment") or Path(st.path).parent.name
    finally:
        if own:
            st.close()
    return Records(runs, inst, summarize(runs, inst), name)


def style(method: str) -> dict[str, Any]:
    """Colour and marker of a method, the same in every figure (stable across runs)."""
    base = method.split("[", 1)[0]
    if method in _FIXED:
        c, m = _FIXED[method]
    elif base in _FIXED and base == method:
        c, m = _FIXED[base]
    else:
        h = int(hashlib.sha256(method.encode()).hexdigest(), 16)
        c, m = _PALETTE[h % len(_PALETTE)], _MARKERS[(h // 10) % len(_MARKERS)]
    return {"color": c, "marker": m, "linestyle": "--" if method == BEST else "-"}


def order_methods(methods: list[str], order: tuple[str, ...] = LB_ORDER) -> list[str]:
    """Sort ``methods`` by ``order`` (by registry base name), then alphabetically."""
    def key(m: str) -> tuple[int, str]:
        base = m.split("[", 1)[0]
        return (order.index(base) if base in order else len(order), m)
    return sorted(methods, key=key)


def gm_by(rows: list[dict[str, Any]], *keys: str) -> dict[tuple[Any, ...], tuple[float, int]]:
    """Geometric mean of ``ratio`` per group of ``keys``: {group: (gm, count)}."""
    groups: dict[tuple[Any, ...], list[float]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r["ratio"])
    return {g: (geomean(v), len(v)) for g, v in groups.items()}


def pick_k(ks: list[int], want: int = 16) -> int | None:
    """``want`` if present, else the available k closest to it (ties: the larger)."""
    if not ks:
        return None
    return want if want in ks else min(ks, key=lambda k: (abs(k - want), -k))


def save(fig: Any, out: Path, name: str) -> list[Path]:
    """Save ``fig`` as ``name.png`` (150 dpi) and ``name.pdf``; close it."""
    import matplotlib.pyplot as plt

    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def write_table(out: Path, name: str, head: list[str], rows: list[list[str]],
                caption: str) -> list[Path]:
    """Write a table as markdown, LaTeX and CSV."""
    import csv

    from experiments.report import _md_table, _tex_table

    md = out / f"{name}.md"
    md.write_text(f"{caption}\n\n" + _md_table(head, rows))
    tex = out / f"{name}.tex"
    tex.write_text(_tex_table(head, rows, caption))
    cp = out / f"{name}.csv"
    with cp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(head)
        w.writerows(rows)
    return [md, tex, cp]
