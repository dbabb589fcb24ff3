"""Reports of a results store: per-k method tables and per-instance tables.

:func:`build_report` computes the metrics (:func:`experiments.analysis.summarize`) and
:func:`to_markdown`, :func:`to_latex` and :func:`write_csv` render them. Columns:

* lower bounds, per k and method: ``GM LB/UB*`` (geometric mean of bound / best partition),
  ``approx`` (GM of UB*/LB, the certified approximation ratio), ``closing`` (gap-closing
  factor against the combinatorial bound, spec §5.4), ``exact`` (instances where the bound
  meets UB*), ``fallback`` (instances where the method proved nothing and the combinatorial
  bound stands in, spec U18) and the median wall time;
* heuristics, per k and method: ``GM UB/UB*`` (>= 1), instances where it found UB*, failures,
  median wall time;
* per instance and k: UB*, the best bound (carried across k), the certified gap and which
  method gave each.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from experiments.analysis import Summary, summarize
from experiments.store import ResultsStore

__all__ = ["Report", "build_report", "to_markdown", "to_latex", "write_csv", "write_all"]


@dataclass(frozen=True, slots=True)
class Report:
    """A summary plus where it came from."""

    experiment: str
    n_instances: int
    n_runs: int
    summary: Summary
    datasets: dict[str, int]


def build_report(store: ResultsStore) -> Report:
    """Aggregate every run of ``store``."""
    runs = store.runs(parse_json=False, columns=(
        "instance", "k", "role", "method_id", "status", "bound", "incumbent", "wall_time_s"))
    inst = {r["instance"]: r for r in store.instance_rows()}
    s = summarize(runs, inst)
    ds: dict[str, int] = {}
    for name in {r["instance"] for r in runs}:
        d = inst.get(name, {}).get("source") or "all"
        ds[d] = ds.get(d, 0) + 1
    return Report(store.get_meta("experiment") or store.path.parent.name,
                  len({r["instance"] for r in runs}), len(runs), s, ds)


def _f(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isnan(x):
            return "-"
        if math.isinf(x):
            return "inf"
        return f"{x:.{digits}f}"
    return str(x)


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def _t(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.3g}"


def _bound_rows(rep: Report) -> list[list[str]]:
    return [[str(b.k), b.method, _f(b.gm_ratio), _f(b.approx_ratio, 3), _f(b.gap_closing, 2),
             f"{b.n_exact}/{b.n}", str(b.n_fallback), _t(b.median_time_s)]
            for b in rep.summary.bounds]


def _heur_rows(rep: Report) -> list[list[str]]:
    return [[str(h.k), h.method, _f(h.gm_ratio), f"{h.n_best}/{h.n + h.n_failed}",
             str(h.n_failed), _t(h.median_time_s)] for h in rep.summary.heuristics]


def _inst_rows(rep: Report) -> list[list[str]]:
    return [[r["instance"], str(r["k"]), _g(r["ub_star"]), _g(r["best_bound"]),
             _f(None if r["gap"] is None else 100 * r["gap"], 2), r["ub_method"] or "-",
             r["bound_method"] or "-"] for r in rep.summary.per_instance]


BOUND_HEAD = ["k", "bound", "GM LB/UB*", "approx", "closing", "exact", "fallback",
              "median s"]
HEUR_HEAD = ["k", "heuristic", "GM UB/UB*", "found UB*", "failed", "median s"]
INST_HEAD = ["instance", "k", "UB*", "best LB", "gap %", "UB* by", "LB by"]


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "(none)\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def to_markdown(rep: Report, *, per_instance: bool = True) -> str:
    """The report as markdown (what ``pipecert report`` and ``pipecert run`` print)."""
    s = rep.summary
    ds = ", ".join(f"{k}: {v}" for k, v in sorted(rep.datasets.items()))
    parts = [
        f"# Report: {rep.experiment}\n",
        f"{rep.n_instances} instances ({ds}), k in {s.ks}, {rep.n_runs} runs, "
        f"{s.n_errors} errors. UB* = best partition found for k (or a smaller k); ratios "
        "are geometric means over instances (spec §5.4).\n",
        "## Lower bounds: GM(LB / UB*) per k\n",
        _md_table(BOUND_HEAD, _bound_rows(rep)),
        "\n## Heuristics: GM(UB / UB*) per k\n",
        _md_table(HEUR_HEAD, _heur_rows(rep)),
    ]
    if per_instance:
        parts += ["\n## Per instance\n", _md_table(INST_HEAD, _inst_rows(rep))]
    if s.dropped:
        parts.append("\nNot aggregated: " + "; ".join(s.dropped) + "\n")
    return "\n".join(parts)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b) if a != "\\" else s.replace(a, "\x00")
    return s.replace("\x00", r"\textbackslash{}")


def _tex_table(head: Sequence[str], rows: Sequence[Sequence[str]], caption: str) -> str:
    cols = "l" * 2 + "r" * (len(head) - 2)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}",
           rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
           " & ".join(_tex_escape(h) for h in head) + r" \\", r"\midrule"]
    out += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(out)


def to_latex(rep: Report, *, per_instance: bool = True) -> str:
    """The report's tables as LaTeX (booktabs)."""
    parts = [
        _tex_table(BOUND_HEAD, _bound_rows(rep),
                   f"{rep.experiment}: lower bound / best partition (geometric means)"),
        _tex_table(HEUR_HEAD, _heur_rows(rep),
                   f"{rep.experiment}: heuristic value / best partition (geometric means)"),
    ]
    if per_instance:
        parts.append(_tex_table(INST_HEAD, _inst_rows(rep), f"{rep.experiment}: per instance"))
    return "\n".join(parts)


def write_csv(rep: Report, out_dir: str | Path) -> list[Path]:
    """``bounds.csv``, ``heuristics.csv`` and ``instances.csv`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in (("bounds.csv", [asdict(b) for b in rep.summary.bounds]),
                       ("heuristics.csv", [asdict(h) for h in rep.summary.heuristics]),
                       ("instances.csv", rep.summary.per_instance)):
        p = out / name
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        with p.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys or ["empty"])
            w.writeheader()
            w.writerows(rows)
        paths.append(p)
    return paths


def write_all(rep: Report, out_dir: str | Path) -> list[Path]:
    """``report.md``, ``report.tex`` and the CSV files in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "report.md"
    md.write_text(to_markdown(rep))
    tex = out / "report.tex"
    tex.write_text(to_latex(rep))
    return [md, tex, *write_csv(rep, out)]
