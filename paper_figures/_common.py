"""Shared pieces of the figure modules: loading records, stable styles, saving."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from experiments.analysis import BEST, COMBINATORIAL, Summary, geomean, summarize

__all__ = ["Records", "load_records", "style", "styles", "coinciding", "coincide_note",
           "unit_note", "dataset_title", "add_notes", "OVERLAP",
           "OVERLAP_NOTE", "save", "gm_by", "pick_k",
           "LB_ORDER"]

#: Preferred order of bound methods in legends and tables (others follow alphabetically).
LB_ORDER = (COMBINATORIAL, "bottleneck", "guess", "exact_mip", "node_bound", "path_bound",
            "best", BEST)

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
_LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
#: colour, marker, line style of the usual methods: no two share marker and line style
_FIXED: dict[str, tuple[str, str, Any]] = {
    COMBINATORIAL: ("#7f7f7f", "o", ":"), BEST: ("#000000", "*", "--"),
    "node_bound": ("#2ca02c", "^", "-"), "path_bound": ("#d62728", "D", "-."),
    "bottleneck": ("#1f77b4", "s", "-."), "guess": ("#ff7f0e", "v", (0, (5, 1))),
    "exact_mip": ("#9467bd", "P", "-"), "best": ("#8c564b", "X", ":"),
    "brkga-100": ("#1f77b4", "o", "-"), "brkga-10000": ("#d62728", "s", "--"),
    "input_order": ("#17becf", "<", "-"), "dfs_order": ("#8c564b", "s", "--"),
    "bfs_order": ("#d62728", "^", "-."), "downset_dp": ("#1f77b4", "D", ":"),
    "random_orders": ("#bcbd22", "v", (0, (5, 1))), "equal_work": ("#7f7f7f", "o", ":"),
    "local_search": ("#9467bd", "P", "-"), "tube": ("#e377c2", "X", "--"),
    "brkga": ("#2ca02c", ">", (0, (3, 1, 1, 1, 1, 1))),
}


class Records(NamedTuple):
    """What every figure reads: runs, instance facts and the summary (docs/theory/paper.md)."""

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
    """Colour, marker and line style of a method, the same in every figure.

    The usual methods have fixed styles (no two share a marker and a line style); others
    get one from a hash of their name. :func:`styles` makes a figure's styles distinct.
    """
    base = method.split("[", 1)[0]
    if method in _FIXED:
        c, m, ls = _FIXED[method]
    elif base in _FIXED and base == method:  # pragma: no cover - same as above
        c, m, ls = _FIXED[base]
    else:
        h = int(hashlib.sha256(method.encode()).hexdigest(), 16)
        c, m = _PALETTE[h % len(_PALETTE)], _MARKERS[(h // 10) % len(_MARKERS)]
        ls = _LINESTYLES[(h // 1000) % len(_LINESTYLES)]
    return {"color": c, "marker": m, "linestyle": ls}


def styles(methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The styles of the methods drawn in one figure: :func:`style`, then every method whose
    (marker, line style) pair is taken by an earlier one gets the first free pair, and its
    colour too when another is free. So no method can hide behind another's look."""
    out: dict[str, dict[str, Any]] = {}
    pairs: set[tuple[str, Any]] = set()
    colours: set[str] = set()
    for m in methods:
        st = dict(style(m))
        if (st["marker"], st["linestyle"]) in pairs:
            st["marker"], st["linestyle"] = next(
                (mk, ls) for ls in _LINESTYLES for mk in _MARKERS if (mk, ls) not in pairs)
        if st["color"] in colours:
            st["color"] = next((c for c in _PALETTE if c not in colours), st["color"])
        pairs.add((st["marker"], st["linestyle"]))
        colours.add(st["color"])
        out[m] = st
    return out


#: How a figure introduces its overlapping lines (see :func:`coinciding`).
OVERLAP_NOTE = ("Overlapping lines (all drawn: later ones wider, under, with larger hollow "
                "markers): ")
#: Two lines closer than this fraction of the y axis at every point look like one line.
OVERLAP = 0.005


def coinciding(series: Mapping[str, Sequence[float]], atol: float = 0.0,
               rtol: float = 1e-9) -> list[list[str]]:
    """Groups (in input order, two or more methods each) of series that overlap everywhere.

    Two series overlap when they have the same length, the same missing (nan) points and,
    at every other point, values within ``atol`` (pass :data:`OVERLAP` times the axis span:
    drawn, one line would hide the other) or ``rtol`` relative, with at least one value.
    Groups are formed greedily against their first member.
    """
    def same(a: Sequence[float], b: Sequence[float]) -> bool:
        if len(a) != len(b) or not any(math.isfinite(x) for x in a):
            return False
        for x, y in zip(a, b):
            fx, fy = math.isfinite(x), math.isfinite(y)
            if fx != fy or (fx and abs(x - y) > max(atol, rtol * max(1.0, abs(x)))):
                return False
        return True

    groups: list[list[str]] = []
    for m, ys in series.items():
        for g in groups:
            if same(series[g[0]], ys):
                g.append(m)
                break
        else:
            groups.append([m])
    return [g for g in groups if len(g) > 1]


def coincide_note(groups: list[list[str]], where: str = "") -> str:
    """One line naming the methods whose lines overlap (empty if none)."""
    if not groups:
        return ""
    prefix = f"{where}: " if where else ""
    return prefix + "; ".join(" = ".join(g) for g in groups)


def unit_note(rec: Records) -> str:
    """What the ratios' units are: per instance, unit-free; and the instances' time units."""
    used = {r["instance"] for r in rec.runs}
    units: dict[str, int] = {}
    for name in used:
        u = str(rec.instances.get(name, {}).get("time_unit") or "unspecified")
        units[u] = units.get(u, 0) + 1
    if not units:
        return ""
    mix = ", ".join(f"{u}: {n}" for u, n in sorted(units.items()))
    if len(units) > 1:
        return (f"Instances in different time units ({mix}); each ratio divides two values of "
                "one instance, so ratios are unit-free and comparable.")
    return f"Ratios are per instance and unit-free (instances' time unit: {mix.split(':')[0]})."


def _short_name(text: str) -> str:
    """A file path as its file name; an id (``suite/name``) as it is."""
    p = Path(text)
    return p.name if (p.is_absolute() or text.startswith(".") or len(p.parts) > 2) else text


def dataset_title(rec: Records, width: int = 110) -> str:
    """Which data set a figure shows: the experiment, its suites or sources with graph counts
    (naming the graphs, by file name, when there are at most three) and the files or
    directories read; wrapped to lines of ``width`` characters."""
    import textwrap

    used = sorted({r["instance"] for r in rec.runs})
    by: dict[str, list[str]] = {}
    specs: set[str] = set()
    for name in used:
        r = rec.instances.get(name, {})
        d = str(r.get("source") or "all")
        by.setdefault(d, []).append(name)
        if d == "files" and r.get("spec"):
            specs.add(str(r["spec"]))
    parts = []
    for d, names in sorted(by.items()):
        n = len(names)
        what = f"{n} graph{'s' if n != 1 else ''}"
        if n <= 3:
            what += ": " + ", ".join(_short_name(x) for x in names)
        elif d == "files" and specs:
            shown = sorted(specs)
            what += " from " + ", ".join(shown[:2]) + (f" +{len(shown) - 2} more"
                                                       if len(shown) > 2 else "")
        parts.append(f"{d} ({what})")
    text = f"Data set of experiment {rec.experiment!r}: " + "; ".join(parts)
    return "\n".join(textwrap.wrap(text, width)) if width else text


def add_notes(fig: Any, lines: Sequence[str]) -> None:
    """Print ``lines`` (the non-empty ones) under the figure, left-aligned, small."""
    text = "\n".join(ln for ln in lines if ln)
    if text:
        fig.text(0.01, 0.0, text, ha="left", va="top", fontsize=7.5, wrap=False)


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
