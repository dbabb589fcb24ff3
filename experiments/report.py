"""Reports of a results store: per-k method tables, per-instance tables, run statuses.

:func:`build_report` computes the metrics (:func:`experiments.analysis.summarize`), the time
unit of every instance, the status counts and the reasons of unsupported or failed runs;
:func:`to_markdown`, :func:`to_latex` and :func:`write_csv` render them. Every table is
followed by the definition of each of its columns (``BOUND_LEGEND``, ``HEUR_LEGEND``,
``INST_LEGEND``, the meanings of the statuses present), so a report read alone says what it
shows: the per-k tables give ratios, unit-free because normalised per instance; the
per-instance table gives values in each instance's time unit, and the report says when
instances differ in unit. Statuses keep ``solved`` (a relaxation solved, a gap may remain)
apart from ``optimal`` (proved optimal).

Constrained problems (docs/constraints.md): when some instance has active constraints or is
a variant (``grid.variants``, instance ids ``ID@VARIANT``), a section "Problems and
certified gaps per k" names every instance's variant and active constraints and gives, per
k, the certified gap on that problem, ``infeasible`` where a run proved that no partition
exists (its proof listed under the table), ``no partition`` where none was found.
:func:`gap_table` renders that table on its own (``pipecert report DB --gaps``), e.g. for
the README.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.analysis import EXACT_RTOL, Summary, derive_best, summarize
from experiments.store import ResultsStore
from pipecert.instance import describe_cost_model
from pipecert.results import STATUS_MEANINGS, Status, bound_exceeds

__all__ = ["Report", "build_report", "to_markdown", "to_latex", "write_csv", "write_all",
           "gap_table"]


@dataclass(frozen=True, slots=True)
class StatusCount:
    """How many runs of one method ended with one status."""

    role: str
    method: str
    status: str
    n: int


@dataclass(frozen=True, slots=True)
class Skip:
    """Runs of one method that were ``unsupported`` (or ``error``) for one reason."""

    method: str
    status: str
    reason: str
    n: int
    where: str  #: the first few (instance, k) concerned


@dataclass(frozen=True, slots=True)
class Report:
    """A summary plus where it came from: units, statuses and the reasons of skips."""

    experiment: str
    n_instances: int
    n_runs: int
    summary: Summary
    datasets: dict[str, int]
    #: the time unit of each reported instance (``Instance.time_unit``)
    unit_of: dict[str, str] = field(default_factory=dict)
    #: where costs come from when a model priced them: description -> instances
    cost_models: dict[str, int] = field(default_factory=dict)
    statuses: list[StatusCount] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    #: per instance: (variant name, active constraints comma-separated)
    variants: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: per (instance, k): the derived cell (best partition, best bound, gap, infeasible)
    cells: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    #: per variant name (when the store has several): the summary of its instances only
    by_variant: dict[str, Summary] = field(default_factory=dict)

    @property
    def constrained(self) -> bool:
        """True if some instance is a variant or has active constraints."""
        return any(v != "as_given" or c for v, c in self.variants.values())

    @property
    def units(self) -> dict[str, int]:
        """Time unit -> number of instances in it."""
        out: dict[str, int] = {}
        for u in self.unit_of.values():
            out[u] = out.get(u, 0) + 1
        return dict(sorted(out.items()))


def _first_line(text: Any) -> str:
    for line in str(text or "").strip().splitlines():
        if line.strip():
            return " ".join(line.split())[:160]
    return ""


def _cost_model_text(cm: Any) -> str | None:
    """A short phrase for the cost model that priced an instance (None: costs as given)."""
    if not cm:
        return None
    if isinstance(cm, dict):
        return describe_cost_model(cm).removeprefix("costs priced by ")
    return str(cm)[:120]


def build_report(store: ResultsStore) -> Report:
    """Aggregate every run of ``store``, with units, status counts and skip reasons."""
    runs = store.runs(parse_json=False, columns=(
        "instance", "k", "role", "method_id", "status", "bound", "incumbent", "wall_time_s",
        "error"))
    inst = {r["instance"]: r for r in store.instance_rows()}
    s = summarize(runs, inst)
    names = sorted({r["instance"] for r in runs})
    ds: dict[str, int] = {}
    for name in names:
        d = inst.get(name, {}).get("source") or "all"
        ds[d] = ds.get(d, 0) + 1
    unit_of = {n: str(inst.get(n, {}).get("time_unit") or "unspecified") for n in names}
    cms: dict[str, int] = {}
    for n in names:
        text = _cost_model_text(inst.get(n, {}).get("cost_model"))
        if text:
            cms[text] = cms.get(text, 0) + 1
    counts: dict[tuple[str, str, str], int] = {}
    skips: dict[tuple[str, str, str], list[str]] = {}
    for r in runs:
        key = (r["role"], r["method_id"], r["status"])
        counts[key] = counts.get(key, 0) + 1
        if r["status"] in (Status.UNSUPPORTED, Status.ERROR):
            reason = _first_line(r.get("error")) or "(no reason recorded)"
            skips.setdefault((r["method_id"], r["status"], reason), []).append(
                f"{r['instance']} k={r['k']}")
    statuses = [StatusCount(role, m, st, n) for (role, m, st), n in sorted(counts.items())]
    sk = [Skip(m, st, reason, len(w), ", ".join(w[:3]) + (", ..." if len(w) > 3 else ""))
          for (m, st, reason), w in sorted(skips.items())]
    variants = {n: (str(inst.get(n, {}).get("variant") or "as_given"),
                    str(inst.get(n, {}).get("constraints") or "")) for n in names}
    cells = {(d["instance"], int(d["k"])): d for d in derive_best(runs, inst)}
    by_variant: dict[str, Summary] = {}
    if len({v for v, _ in variants.values()}) > 1:
        for vname in sorted({v for v, _ in variants.values()}):
            members = {n for n, (v, _) in variants.items() if v == vname}
            by_variant[vname] = summarize([r for r in runs if r["instance"] in members], inst)
    return Report(store.get_meta("experiment") or store.path.parent.name, len(names),
                  len(runs), s, ds, unit_of, cms, statuses, sk, variants, cells, by_variant)


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


def _ratio(x: float | None, *, down: bool) -> str:
    """A ratio with 4 decimals, rounded to the conservative side: down for LB/UB* (a bound
    never shows more than it proved: 0.9999996 is 0.9999, not 1.0000), up for UB/UB* and
    approximation ratios."""
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    q = math.floor(x * 1e4 + 1e-9) if down else math.ceil(x * 1e4 - 1e-9)
    return f"{q / 1e4:.4f}"


def _pct(g: float | None) -> str:
    """A gap in percent, 3 significant digits; a gap of floating-point rounding size shows
    as ``<1e-6`` (it is not zero, so it is not printed as 0)."""
    if g is None or math.isnan(g):
        return "-"
    if g <= 0:
        return "0"
    return "<1e-6" if 100 * g < 1e-6 else f"{100 * g:.3g}"


def _closing(x: float) -> str:
    if math.isfinite(x) and x > CLOSING_SHOWN:
        return f">{CLOSING_SHOWN:g}"
    return _f(x, 2)


#: Closing factors above this are shown as ">1000": they divide by gaps of the order of
#: the solvers' safety margin, and measure that margin rather than the method.
CLOSING_SHOWN = 1000.0


def _bound_rows(rep: Report) -> list[list[str]]:
    return [[str(b.k), b.method, _ratio(b.gm_ratio, down=True),
             _ratio(b.approx_ratio, down=False), _closing(b.gap_closing), f"{b.n_exact}/{b.n}",
             str(b.n_fallback), _t(b.median_time_s)] for b in rep.summary.bounds]


def _heur_rows(rep: Report) -> list[list[str]]:
    return [[str(h.k), h.method, _ratio(h.gm_ratio, down=False),
             f"{h.n_best}/{h.n + h.n_failed}", str(h.n_failed), _t(h.median_time_s)]
            for h in rep.summary.heuristics]


def _contradictions(rep: Report) -> list[dict[str, Any]]:
    """Per-instance rows whose best bound exceeds UB*: impossible in a sound store."""
    return [r for r in rep.summary.per_instance
            if r["best_bound"] is not None and r["ub_star"] is not None
            and bound_exceeds(float(r["best_bound"]), float(r["ub_star"]))]


def _inst_rows(rep: Report) -> list[list[str]]:
    bad = {(r["instance"], r["k"]) for r in _contradictions(rep)}
    return [[r["instance"], str(r["k"]), _g(r["ub_star"]), _g(r["best_bound"]),
             rep.unit_of.get(r["instance"], "unspecified"),
             "LB>UB*!" if (r["instance"], r["k"]) in bad else _pct(r["gap"]),
             r["ub_method"] or "-", r["bound_method"] or "-"]
            for r in rep.summary.per_instance]


def _warning(rep: Report) -> str:
    bad = _contradictions(rep)
    if not bad:
        return ""
    where = ", ".join(f"{r['instance']} k={r['k']}" for r in bad[:3])
    return (f"**WARNING: the best bound exceeds the best partition (UB*) on {len(bad)} "
            f"(instance, k) ({where}{', ...' if len(bad) > 3 else ''}): a bound or an "
            "incumbent in this store is wrong; run `pipecert results check`.**\n")


def _status_table(rep: Report) -> tuple[list[str], list[list[str]]]:
    order = [s.value for s in Status]
    present = sorted({c.status for c in rep.statuses},
                     key=lambda s: (order.index(s) if s in order else len(order), s))
    cells: dict[tuple[str, str], dict[str, int]] = {}
    for c in rep.statuses:
        cells.setdefault((c.role, c.method), {})[c.status] = c.n
    head = ["role", "method", *present]
    rows = [[role, m, *(str(v.get(st, 0)) for st in present)]
            for (role, m), v in sorted(cells.items(), key=lambda x: (x[0][0] != "heuristic",
                                                                    x[0][1]))]
    return head, rows


def _skip_rows(rep: Report) -> list[list[str]]:
    return [[sk.method, sk.status, str(sk.n), sk.reason, sk.where] for sk in rep.skips]


BOUND_HEAD = ["k", "bound", "GM LB/UB*", "approx", "closing", "exact", "fallback",
              "median s"]
HEUR_HEAD = ["k", "heuristic", "GM UB/UB*", "found UB*", "failed", "median s"]
INST_HEAD = ["instance", "k", "UB*", "best LB", "unit", "gap %", "UB* by", "LB by"]
SKIP_HEAD = ["method", "status", "runs", "reason", "where"]

#: What every column of the bound table means (printed under the table).
BOUND_LEGEND = (
    "k: number of pipeline stages.",
    "bound: the lower-bound method; best-of: per instance, the best bound of every method at "
    "this k (an exact heuristic that proved optimality counts too).",
    "GM LB/UB*: geometric mean over instances of LB / UB*, where LB is the method's bound and "
    "UB* the best partition value found for this k (or a smaller k) by any method; 1 means "
    "the bound meets the best partition. Rounded down, so it never shows more than proved.",
    "approx: 1 / (GM LB/UB*) = GM(UB*/LB), the certified approximation ratio of UB* "
    "(rounded up).",
    "closing: gap-closing factor (1 - GM_comb) / (1 - GM_method) against the combinatorial "
    "bound max(W/k, max w): how many times smaller the method's geometric-mean gap is than "
    "that bound's; 1 = no better, >1000 = all but closed, inf = gap closed on every "
    "instance.",
    f"exact: instances where LB >= (1 - {EXACT_RTOL:g}) UB*, i.e. where the bound proves UB* "
    "optimal (within that tolerance), out of the instances aggregated.",
    "fallback: instances where the method proved no bound (error, unsupported, killed) and "
    "the combinatorial bound stands in for it (spec U18).",
    "median s: median wall-clock time of the method's runs, in seconds.",
)
HEUR_LEGEND = (
    "GM UB/UB*: geometric mean over instances of the heuristic's partition value / UB* "
    "(>= 1; 1 = it found the best partition everywhere). Rounded up.",
    "found UB*: instances where it found UB* (within 1e-9 relative), out of its runs.",
    "failed: runs without a feasible partition (error, unsupported, killed).",
    "median s: median wall-clock time of its runs, in seconds.",
)
INST_LEGEND = (
    "UB*: the best partition value for k (found at k or a smaller k), in the instance's "
    "time unit (column unit).",
    "best LB: the best lower bound proven for k (bounds for a larger k carry down, OPT being "
    "non-increasing in k), never below the combinatorial bound; same unit.",
    "unit: the instance's time unit (Instance.time_unit: from the file's format or metadata; "
    "unspecified when the source does not say).",
    "gap %: 100 (UB* - best LB) / UB*, the certified optimality gap; 0 means UB* is proved "
    "optimal, <1e-6 a gap of floating-point rounding size, LB>UB*! a contradiction (a wrong "
    "bound or incumbent in the store).",
    "UB* by / LB by: the method attaining each; (k=K) when carried from another k; "
    "combinatorial* when the combinatorial bound max(W/k, max w) is the best.",
)
SKIP_LEGEND = (
    "reason: the first line of the run's message (why the method does not apply, or what "
    "went wrong); where: the first (instance, k) concerned.",
)


def _units_text(rep: Report) -> str:
    units = rep.units
    named = {u: n for u, n in units.items() if u != "unspecified"}
    if not units:
        return ""
    if len(units) == 1:
        (u,) = units
        if u == "unspecified":
            text = ("The instances do not state their time unit: UB* and LB are in the units "
                    "of the input files.")
        else:
            text = f"Time unit of every instance: {u} (UB* and LB are in {u})."
    else:
        mix = ", ".join(f"{u}: {n}" for u, n in units.items())
        text = (f"The instances have different time units ({mix}): UB* and LB are each in "
                "their instance's unit (column unit) and are not comparable across "
                "instances.")
        if not named:  # pragma: no cover - one 'unspecified' key is the len == 1 case
            text = ""
    text += (" Ratios (LB/UB*, UB/UB*) are normalised per instance and unit-free, so the "
             "per-k tables are comparable across instances. Times (median s) are wall-clock "
             "seconds.")
    if rep.cost_models:
        cms = "; ".join(f"{c} ({n} instance{'s' if n > 1 else ''})"
                        for c, n in sorted(rep.cost_models.items()))
        text += f" Costs priced by a cost model: {cms}."
    return text


GAP_LEGEND = (
    "variant: as_given (the constraints the file gives) or the change applied "
    "(memory_limit=..., relax=...; experiments/variants.py); constraints: the active ones "
    "(groups = co-location groups, memory = a binding memory cap, data_only_edges = edges "
    "that carry data but impose no stage order; none = the paper's problem).",
    "k=K: the certified gap 100 (UB* - best LB) / UB* on that problem (0 = proved "
    "optimal); infeasible = a run proved that no partition into k stages meets the "
    "constraints (the proof is listed below); no partition = none found, nothing proven.",
)


VARIANT_BOUND_HEAD = ["k", "variant", "bound", "GM LB/UB*", "exact", "fallback", "median s"]
VARIANT_BOUND_LEGEND = (
    "The lower-bound table restricted to the instances of each variant: how much a bound "
    "proves on each problem (a bound that relaxes a constraint loses what the constraint "
    "adds to OPT; columns as in the lower-bound table below).",
)


def _variant_bound_rows(rep: Report) -> list[list[str]]:
    rows = []
    for vname, s in rep.by_variant.items():
        for b in s.bounds:
            rows.append([str(b.k), vname, b.method, _ratio(b.gm_ratio, down=True),
                         f"{b.n_exact}/{b.n}", str(b.n_fallback), _t(b.median_time_s)])
    rows.sort(key=lambda r: (int(r[0]), r[1]))
    return rows


def _gap_cell(d: dict[str, Any] | None) -> str:
    if d is None:
        return "-"
    if d.get("infeasible"):
        return "infeasible"
    if d.get("best_incumbent") is None:
        return "no partition"
    return _pct(d.get("gap"))


def _gap_rows(rep: Report) -> tuple[list[str], list[list[str]]]:
    ks = rep.summary.ks
    head = ["instance", "variant", "constraints", *(f"k={k}" for k in ks)]
    rows = []
    for name in sorted(rep.variants):
        var, cons = rep.variants[name]
        rows.append([name.split("@", 1)[0], var, cons.replace(",", ", ") or "none",
                     *(_gap_cell(rep.cells.get((name, k))) for k in ks)])
    return head, rows


def _infeasible_lines(rep: Report) -> list[str]:
    return [f"{name} k={k}: {d['infeasible']}" for (name, k), d in sorted(rep.cells.items())
            if d.get("infeasible")]


def gap_table(rep: Report) -> str:
    """The "Problems and certified gaps per k" table (markdown) with its legend and the
    proofs of infeasibility."""
    head, rows = _gap_rows(rep)
    out = _md_table(head, rows) + _md_legend(GAP_LEGEND)
    inf = _infeasible_lines(rep)
    if inf:
        out += "\nProven infeasible:\n" + _md_legend(inf)
    return out


def _md_legend(lines: Sequence[str]) -> str:
    return "\n".join(f"- {ln}" for ln in lines) + "\n"


def _md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "(none)\n"
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def _status_legend(rep: Report) -> list[str]:
    present = {c.status for c in rep.statuses}
    out = [f"{st.value}: {STATUS_MEANINGS[st]}." for st in Status if st.value in present]
    if Status.SOLVED.value in present or Status.OPTIMAL.value in present:
        out.append("optimal is a proof (the value equals OPT); solved is not (the method's "
                   "relaxation was solved, its bound is final, a gap to OPT may remain).")
    return out


def to_markdown(rep: Report, *, per_instance: bool = True) -> str:
    """The report as markdown (what ``pipecert report`` and ``pipecert run`` print); every
    table is followed by the definition of its columns."""
    s = rep.summary
    ds = ", ".join(f"{k}: {v}" for k, v in sorted(rep.datasets.items()))
    parts = [
        f"# Report: {rep.experiment}\n",
        f"{rep.n_instances} instances ({ds}), k in {s.ks}, {rep.n_runs} runs, "
        f"{s.n_errors} errors. UB* = best partition found for k (or a smaller k); ratios "
        "are geometric means over instances (docs/theory/paper.md#metrics). "
        + _units_text(rep) + "\n",
        _warning(rep),
    ]
    if rep.constrained:
        parts += ["## Problems and certified gaps per k\n", gap_table(rep)]
    if rep.by_variant:
        parts += ["\n## Lower bounds per variant: GM(LB / UB*) per k\n",
                  _md_table(VARIANT_BOUND_HEAD, _variant_bound_rows(rep)),
                  _md_legend(VARIANT_BOUND_LEGEND)]
    parts += [
        "## Lower bounds: GM(LB / UB*) per k\n",
        _md_table(BOUND_HEAD, _bound_rows(rep)), _md_legend(BOUND_LEGEND),
        "\n## Heuristics: GM(UB / UB*) per k\n",
        _md_table(HEUR_HEAD, _heur_rows(rep)), _md_legend(HEUR_LEGEND),
    ]
    if per_instance:
        parts += ["\n## Per instance\n", _md_table(INST_HEAD, _inst_rows(rep)),
                  _md_legend(INST_LEGEND)]
    head, rows = _status_table(rep)
    parts += ["\n## Run statuses (runs per method and status)\n", _md_table(head, rows),
              _md_legend(_status_legend(rep))]
    if rep.skips:
        parts += ["\n## Unsupported and failed runs, with their reasons\n",
                  _md_table(SKIP_HEAD, _skip_rows(rep)), _md_legend(SKIP_LEGEND)]
    if s.dropped:
        parts.append("\nNot aggregated: " + "; ".join(s.dropped) + "\n")
    return "\n".join(parts)


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b) if a != "\\" else s.replace(a, "\x00")
    return s.replace("\x00", r"\textbackslash{}")


def _tex_table(head: Sequence[str], rows: Sequence[Sequence[str]], caption: str,
               legend: Sequence[str] = ()) -> str:
    cols = "l" * 2 + "r" * (len(head) - 2)
    out = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex_escape(caption)}}}",
           rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
           " & ".join(_tex_escape(h) for h in head) + r" \\", r"\midrule"]
    out += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    if legend:
        out += [r"\par\smallskip\footnotesize\raggedright",
                r" \\ ".join(_tex_escape(ln) for ln in legend)]
    out += [r"\end{table}", ""]
    return "\n".join(out)


def to_latex(rep: Report, *, per_instance: bool = True) -> str:
    """The report's tables as LaTeX (booktabs), each with its column definitions."""
    units = _units_text(rep)
    parts = [
        _tex_table(BOUND_HEAD, _bound_rows(rep),
                   f"{rep.experiment}: lower bound / best partition (geometric means)",
                   [*BOUND_LEGEND, units]),
        _tex_table(HEUR_HEAD, _heur_rows(rep),
                   f"{rep.experiment}: heuristic value / best partition (geometric means)",
                   HEUR_LEGEND),
    ]
    if per_instance:
        parts.append(_tex_table(INST_HEAD, _inst_rows(rep), f"{rep.experiment}: per instance",
                                [*INST_LEGEND, units]))
    head, rows = _status_table(rep)
    parts.append(_tex_table(head, rows, f"{rep.experiment}: runs per method and status",
                            _status_legend(rep)))
    if rep.skips:
        parts.append(_tex_table(SKIP_HEAD, _skip_rows(rep),
                                f"{rep.experiment}: unsupported and failed runs",
                                SKIP_LEGEND))
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
