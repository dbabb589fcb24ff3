"""Pure aggregation of stored runs into the metrics of docs/theory/paper.md#metrics.

Everything here takes plain row dicts (as returned by :meth:`ResultsStore.runs`) and
returns plain data; the report, the figures and the store's ``derived`` table share it.

Metrics, per (instance, k):

* ``UB*`` - the best partition value found by any run at k or at a smaller k (a partition
  into at most k' <= k stages is feasible for k). MIP incumbents count (spec U17).
* an exact heuristic that finished (status ``optimal``, e.g. ``downset_dp``) proves its
  value as a lower bound too: it counts in ``best-of`` and in the derived best bound. Only
  ``optimal`` proves optimality: a bound run with status ``solved`` (its relaxation solved,
  :data:`pipecert.results.STATUS_MEANINGS`) contributes its bound like any other bound, and
  a heuristic never proves anything with another status.
* ``r_M = LB_M / UB*`` for every lower-bound method M. A method that proved nothing (error,
  unsupported, killed) falls back to the combinatorial bound (spec U18) and is counted.
* per k: ``GM(r_M)`` over instances (geometric mean), the approximation ratio
  ``1 / GM(r_M) = GM(UB*/LB_M)``, the gap-closing factor
  ``(1 - GM(r_comb)) / (1 - GM(r_M))`` and the median wall time.
* heuristics: ``GM(UB_M / UB*) >= 1`` per k.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipecert.registry import Role

__all__ = [
    "BEST",
    "COMBINATORIAL",
    "EXACT_RTOL",
    "derive_best",
    "geomean",
    "BoundSummary",
    "HeuristicSummary",
    "Summary",
    "summarize",
]

#: Pseudo-method: the per-instance best of every bound method at the same k.
BEST = "best-of"
COMBINATORIAL = "combinatorial"
#: A bound "meets" UB* (column ``exact``) when LB >= (1 - EXACT_RTOL) UB*: UB* is then proved
#: optimal up to this relative tolerance (solver bounds are shaved by
#: :data:`pipecert.DUAL_BOUND_MARGIN` = 1e-6 relative, so an exact MIP lands just inside).
EXACT_RTOL = 1e-6


def geomean(values: Iterable[float]) -> float:
    """Geometric mean of positive values (nan for an empty input)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan
    if any(v <= 0 for v in vals):
        return 0.0
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def combinatorial(inst: Mapping[str, Any], k: int) -> float | None:
    """``max(W/k, max w)`` from an instance row (``total_work``, ``max_work``)."""
    if inst is None or inst.get("total_work") is None:
        return None
    return max(float(inst["total_work"]) / k, float(inst["max_work"]))


def _ok_bound(r: Mapping[str, Any]) -> bool:
    return r.get("bound") is not None and r.get("status") != "error"


def proven_bound(r: Mapping[str, Any]) -> float | None:
    """The lower bound a row proves: a bound run's ``bound`` (whatever its status: ``bound``,
    ``solved`` or ``optimal`` all carry a valid bound, only the last also claims OPT), or the
    value of a heuristic that finished with status ``optimal`` (an exact method such as
    ``downset_dp``: its value is OPT, hence also a lower bound). None otherwise; a heuristic
    with any other status proves nothing."""
    if _ok_bound(r):
        return float(r["bound"])
    if (r.get("role") == Role.HEURISTIC and r.get("status") == "optimal"
            and r.get("incumbent") is not None):
        return float(r["incumbent"])
    return None


def derive_best(
    runs: Sequence[Mapping[str, Any]], instances: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Best incumbent and best bound per (instance, k), with values carried across k.

    Returns one dict per (instance, k) that has a run, with ``best_incumbent``,
    ``incumbent_method``, ``incumbent_k`` (the k it was found for), ``best_bound``,
    ``bound_method``, ``bound_k``, ``combinatorial`` and ``gap`` (None where undefined).
    The combinatorial bound is always included as a candidate bound. ``infeasible`` is the
    proof (the run's message, or ``"proven infeasible"``) when a run at this k ended
    ``infeasible`` and no partition is known for k (else None); such a cell has no bound
    and no gap (there is no optimum to bound).
    """
    by_inst: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in runs:
        by_inst[r["instance"]].append(r)
    out: list[dict[str, Any]] = []
    for name in sorted(by_inst):
        rows = by_inst[name]
        ks = sorted({int(r["k"]) for r in rows})
        for k in ks:
            inc = [(float(r["incumbent"]), int(r["k"]), r["method_id"]) for r in rows
                   if r.get("incumbent") is not None and int(r["k"]) <= k]
            bnd = [(b, -int(r["k"]), r["method_id"]) for r in rows
                   if int(r["k"]) >= k and (b := proven_bound(r)) is not None]
            comb = combinatorial(instances.get(name, {}), k)
            ub = min(inc) if inc else None
            lb = max(bnd) if bnd else None
            if comb is not None and (lb is None or comb > lb[0]):
                lb = (comb, -k, COMBINATORIAL + "*")
            d: dict[str, Any] = {
                "instance": name, "k": k,
                "best_incumbent": ub[0] if ub else None,
                "incumbent_method": ub[2] if ub else None,
                "incumbent_k": ub[1] if ub else None,
                "best_bound": lb[0] if lb else None,
                "bound_method": lb[2] if lb else None,
                "bound_k": -lb[1] if lb else None,
                "combinatorial": comb,
                "gap": None,
            }
            if ub is not None and lb is not None and ub[0] > 0:
                d["gap"] = max(0.0, (ub[0] - lb[0]) / ub[0])
            proofs = [r for r in rows if int(r["k"]) == k and proves_infeasible(r)]
            d["infeasible"] = None
            if proofs and ub is None:
                d["infeasible"] = _infeasible_text(proofs[0].get("error"))
                d.update(best_bound=None, bound_method=None, bound_k=None)
            out.append(d)
    return out


#: Heuristics whose ``infeasible`` answer is a proof (they decide feasibility exactly).
EXACT_HEURISTICS = frozenset({"downset_dp"})
#: How the framework words its proof (``Formulation.run``/``Heuristic.run`` on
#: :meth:`pipecert.Instance.infeasible_reason`).
PROOF_PREFIX = "no feasible partition into "


def proves_infeasible(r: Mapping[str, Any]) -> bool:
    """Whether an ``infeasible`` row proves that no partition into k stages exists: the
    framework's proof (:meth:`pipecert.Instance.infeasible_reason`), a lower bound's (a
    relaxation: its feasible set contains every partition) or an exact search's. Another
    heuristic that found nothing proves nothing."""
    if r.get("status") != "infeasible":
        return False
    if str(r.get("error") or "").startswith(PROOF_PREFIX) or r.get("role") == Role.BOUND:
        return True
    return str(r.get("method_id") or "").split("[")[0] in EXACT_HEURISTICS


def _infeasible_text(error: Any) -> str:
    """The proof of an ``infeasible`` run, one line (its message without the prefix)."""
    line = next((ln.strip() for ln in str(error or "").splitlines() if ln.strip()), "")
    _, sep, rest = line.partition(" stages: ")
    return (rest if sep else line) or "proven infeasible"


@dataclass(frozen=True, slots=True)
class BoundSummary:
    """Aggregate of one lower-bound method at one k."""

    k: int
    method: str
    n: int  #: instances aggregated
    n_fallback: int  #: instances where the method proved nothing (combinatorial used)
    gm_ratio: float  #: GM(LB / UB*)
    approx_ratio: float  #: GM(UB* / LB) = 1 / gm_ratio
    gap_closing: float  #: (1 - GM(r_comb)) / (1 - GM(r_M))
    median_time_s: float
    n_exact: int  #: instances where LB reaches UB* (within EXACT_RTOL relative)


@dataclass(frozen=True, slots=True)
class HeuristicSummary:
    """Aggregate of one heuristic at one k."""

    k: int
    method: str
    n: int
    n_failed: int  #: instances without a feasible partition from this method
    gm_ratio: float  #: GM(UB_M / UB*) >= 1
    n_best: int  #: instances where it found UB*
    median_time_s: float


@dataclass(frozen=True, slots=True)
class Summary:
    """Everything the report and the figures need."""

    ks: list[int]
    bound_methods: list[str]
    heuristic_methods: list[str]
    bounds: list[BoundSummary]
    heuristics: list[HeuristicSummary]
    #: per (instance, k): UB*, best bound, gap, method attaining each, and per-method ratios
    per_instance: list[dict[str, Any]]
    #: per (dataset, instance, k, method): LB/UB* ratio (for distributions, figure B)
    ratios: list[dict[str, Any]] = field(default_factory=list)
    #: per (dataset, instance, k, method): UB_M/UB* (figure C)
    ub_ratios: list[dict[str, Any]] = field(default_factory=list)
    n_errors: int = 0
    dropped: list[str] = field(default_factory=list)


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(xs) if xs else math.nan


def summarize(
    runs: Sequence[Mapping[str, Any]],
    instances: Mapping[str, Mapping[str, Any]],
    *,
    dataset_of: Mapping[str, str] | None = None,
) -> Summary:
    """Compute every metric of docs/theory/paper.md#metrics from stored runs (module docstring)."""
    derived = {(d["instance"], d["k"]): d for d in derive_best(runs, instances)}
    ks = sorted({int(r["k"]) for r in runs})
    bmeth = sorted({r["method_id"] for r in runs if r["role"] == Role.BOUND},
                   key=lambda m: (m != COMBINATORIAL, m))
    hmeth = sorted({r["method_id"] for r in runs if r["role"] == Role.HEURISTIC})
    cell: dict[tuple[str, int, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in runs:
        cell[(r["instance"], int(r["k"]), r["method_id"])].append(r)
    insts = sorted({r["instance"] for r in runs})
    dataset_of = dataset_of or {}
    per_instance: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    ub_ratios: list[dict[str, Any]] = []
    dropped: list[str] = []
    lb_r: dict[tuple[int, str], list[float]] = defaultdict(list)
    lb_fb: dict[tuple[int, str], int] = defaultdict(int)
    lb_exact: dict[tuple[int, str], int] = defaultdict(int)
    lb_t: dict[tuple[int, str], list[float]] = defaultdict(list)
    ub_r: dict[tuple[int, str], list[float]] = defaultdict(list)
    ub_fail: dict[tuple[int, str], int] = defaultdict(int)
    ub_best: dict[tuple[int, str], int] = defaultdict(int)
    ub_t: dict[tuple[int, str], list[float]] = defaultdict(list)
    for name in insts:
        ds = dataset_of.get(name) or (instances.get(name, {}).get("source") or "all")
        for k in ks:
            d = derived.get((name, k))
            if d is None:
                continue
            ustar = d["best_incumbent"]
            if d.get("infeasible"):
                dropped.append(f"{name} k={k}: proven infeasible ({d['infeasible']})")
                continue
            if ustar is None or ustar <= 0:
                dropped.append(f"{name} k={k}: " + ("no partition found" if ustar is None
                                                    else "best partition value is 0"))
                continue
            comb = d["combinatorial"] or 0.0
            ub_by = d["incumbent_method"]
            if d["incumbent_k"] != k:
                ub_by = f"{ub_by} (k={d['incumbent_k']})"
            lb_by = d["bound_method"]
            if d["bound_k"] != k:
                lb_by = f"{lb_by} (k={d['bound_k']})"
            row: dict[str, Any] = {"dataset": ds, "instance": name, "k": k, "ub_star": ustar,
                                   "ub_method": ub_by, "best_bound": d["best_bound"],
                                   "bound_method": lb_by, "gap": d["gap"]}
            best_same_k = comb
            for m in hmeth:  # exact heuristics that proved optimality count for best-of
                for r in cell.get((name, k, m), []):
                    pb = proven_bound(r)
                    if pb is not None:
                        best_same_k = max(best_same_k, min(pb, ustar))
            for m in bmeth:
                rows = cell.get((name, k, m))
                if not rows:
                    continue
                vals = [float(r["bound"]) for r in rows if _ok_bound(r)]
                lb_t[(k, m)].extend(float(r["wall_time_s"] or 0.0) for r in rows)
                if vals:
                    lb = max(max(vals), comb) if m != COMBINATORIAL else max(vals)
                else:
                    lb = comb
                    lb_fb[(k, m)] += 1
                lb = min(lb, ustar)
                best_same_k = max(best_same_k, lb)
                r_m = lb / ustar
                lb_r[(k, m)].append(r_m)
                if r_m >= 1 - EXACT_RTOL:
                    lb_exact[(k, m)] += 1
                row[f"lb:{m}"] = r_m
                ratios.append({"dataset": ds, "instance": name, "k": k, "method": m,
                               "ratio": r_m})
            if bmeth:
                r_best = min(best_same_k, ustar) / ustar
                lb_r[(k, BEST)].append(r_best)
                if r_best >= 1 - EXACT_RTOL:
                    lb_exact[(k, BEST)] += 1
                row[f"lb:{BEST}"] = r_best
                ratios.append({"dataset": ds, "instance": name, "k": k, "method": BEST,
                               "ratio": r_best})
            for m in hmeth:
                rows = cell.get((name, k, m))
                if not rows:
                    continue
                ub_t[(k, m)].extend(float(r["wall_time_s"] or 0.0) for r in rows)
                vals = [float(r["incumbent"]) for r in rows if r.get("incumbent") is not None]
                if not vals:
                    ub_fail[(k, m)] += len(rows)
                    continue
                for v in vals:
                    q = v / ustar
                    ub_r[(k, m)].append(q)
                    ub_ratios.append({"dataset": ds, "instance": name, "k": k, "method": m,
                                      "ratio": q})
                    if q <= 1 + 1e-9:
                        ub_best[(k, m)] += 1
                row[f"ub:{m}"] = min(vals) / ustar
            per_instance.append(row)
    bsum: list[BoundSummary] = []
    all_b = bmeth + ([BEST] if bmeth else [])
    for k in ks:
        gm_comb = geomean(lb_r.get((k, COMBINATORIAL), []))
        for m in all_b:
            rs = lb_r.get((k, m))
            if not rs:
                continue
            gm = geomean(rs)
            closing = math.nan
            if math.isfinite(gm_comb) and math.isfinite(gm):
                # a gap below the exact tolerance is closed: dividing by it would print
                # factors like 1e14 that measure rounding, not the method
                closing = (1 - gm_comb) / (1 - gm) if gm < 1 - EXACT_RTOL else math.inf
                if gm_comb >= 1 - EXACT_RTOL:
                    closing = 1.0
            bsum.append(BoundSummary(
                k, m, len(rs), lb_fb.get((k, m), 0), gm, 1 / gm if gm > 0 else math.inf,
                closing, _median(lb_t.get((k, m), [])), lb_exact.get((k, m), 0)))
    hsum: list[HeuristicSummary] = []
    for k in ks:
        for m in hmeth:
            rs = ub_r.get((k, m), [])
            fails = ub_fail.get((k, m), 0)
            if not rs and not fails:
                continue
            hsum.append(HeuristicSummary(k, m, len(rs), fails, geomean(rs),
                                         ub_best.get((k, m), 0), _median(ub_t.get((k, m), []))))
    n_err = sum(1 for r in runs if r.get("status") == "error")
    return Summary(ks, all_b, hmeth, bsum, hsum, per_instance, ratios, ub_ratios, n_err, dropped)
