"""The research tables (docs/results/heuristics.md, docs/results/lower-bounds.md), run
through the harness and regenerated from a results store.

The scripts under ``experiments/scripts`` build a grid config with :func:`script_config`,
run it with :func:`run_script_grid` (the ordinary harness: isolated workers, the typed run
path, one row per run in an SQLite store, resumable) and print a table with
:data:`TABLES`; ``pipecert report STORE --table NAME`` prints the same table from any store.

Tables
------
``bounds``
    Every bound as a fraction of the best partition known for (graph, k) (the store's
    ``derived`` best incumbent: every partition found at k' <= k): the geometric mean over
    graphs per method and k, the pairs each bound closes, and the mean time per run with
    the share of MIP time spent building the model.
``spine``
    Per graph and k: *paper / min-cut / best*, each as a fraction of the best partition
    (paper = max of combinatorial, bottleneck, guess; min-cut = max of node_bound and
    path_bound; best = every bound, ``guess+lb`` included, monotone in k), the geometric
    means per group of graphs, median times, and where ``guess+lb`` lifts the bound.
``heuristics``
    brkga-10000 against the down-set DP optimum per graph and k, the geometric mean of
    value / best value per heuristic and k, and what local search (``[refine=True]``) adds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.analysis import geomean
from experiments.store import ResultsStore

__all__ = ["TABLES", "bounds_table", "heuristics_table", "run_script_grid", "script_config",
           "spine_table"]

#: Bounds listed first (in this order) in the bounds table; others follow sorted.
BOUND_ORDER = ["combinatorial", "node_bound", "path_bound", "bottleneck", "guess", "exact_mip"]
#: Heuristics listed first (in this order) in the heuristics table; others follow sorted.
HEURISTIC_ORDER = [
    "downset_dp", "input_order", "dfs_order", "bfs_order", "equal_work", "random_orders",
    "brkga-100", "brkga-10000", "input_order[refine=True]", "dfs_order[refine=True]",
    "equal_work[refine=True]", "brkga-100[refine=True]",
]


#: The paper's bounds and the min-cut bounds compared by the spine table.
PAPER = ["combinatorial", "bottleneck", "guess"]
SPINE = ["node_bound", "path_bound"]


def script_config(name: str, out: str | Path, instances: Sequence[str], ks: Sequence[int], *,
                  heuristics: Sequence[str], bounds: Sequence[str], time_limit_s: float,
                  heuristic_time_limit_s: float = 0.0, seed: int = 0, jobs: int = 1,
                  grace_s: float = 10.0) -> dict[str, Any]:
    """A resolved grid config (:func:`experiments.config.load_config`) for a table script.

    Bounds run per k on their own (``share_bounds = false``): each receives the best
    heuristic partition for k' <= k as warm start and cutoff, never a bound of another k.
    """
    from experiments.config import load_config

    return load_config(None, {
        "experiment": {"name": name, "out": str(out)},
        "grid": {"instances": list(instances), "k": [int(k) for k in ks],
                 "heuristics": list(heuristics), "bounds": list(bounds), "seeds": [int(seed)]},
        "budget": {"time_limit_s": float(time_limit_s),
                   "heuristic_time_limit_s": float(heuristic_time_limit_s),
                   "grace_s": float(grace_s), "threads": 1},
        "run": {"jobs": int(jobs), "share_bounds": False, "report": False, "figures": False},
    })


def run_script_grid(cfg: Mapping[str, Any], store_path: str | Path, *,
                    progress: bool = True) -> Any:
    """Run the grid of ``cfg`` into the store at ``store_path`` (resuming: runs already
    stored are skipped) and return the :class:`experiments.harness.GridResult`."""
    from experiments.config import to_toml
    from experiments.harness import load_entries, run_grid

    entries = load_entries(cfg)
    with ResultsStore(store_path) as store:
        store.set_meta("experiment", str(cfg["experiment"]["name"]))
        store.set_meta("config", to_toml(cfg))
        return run_grid(cfg, store, entries, resume=True, progress=progress,
                        log_dir=Path(store_path).parent / "logs")


# ---------------------------------------------------------------------------- helpers
def _runs(store: ResultsStore, role: str) -> dict[tuple[str, int], dict[str, dict[str, Any]]]:
    """(instance, k) -> method_id -> run, for the runs of ``role``."""
    by: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in store.runs():
        if r["role"] == role:
            by[(str(r["instance"]), int(r["k"]))][str(r["method_id"])] = r
    return by


def _ordered(present: set[str], order: Sequence[str]) -> list[str]:
    return [m for m in order if m in present] + sorted(present - set(order))


def _header(first: str, ks: Sequence[int], extra: Sequence[str] = ()) -> list[str]:
    cols = [first, *(f"k={k}" for k in ks), *extra]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def _best_incumbent(store: ResultsStore) -> dict[tuple[str, int], float]:
    """(instance, k) -> best partition value at k' <= k (the ``derived`` table)."""
    rows = store.derived() or store.update_derived()
    return {(str(d["instance"]), int(d["k"])): float(d["best_incumbent"]) for d in rows
            if d.get("best_incumbent") is not None and float(d["best_incumbent"]) > 0}


# ---------------------------------------------------------------------------- bounds
def bounds_table(store: ResultsStore) -> str:
    """The Markdown tables of docs/results/lower-bounds.md#every-bound (see the module
    docstring)."""
    by = _runs(store, "bound")
    ub = _best_incumbent(store)
    ks = sorted({k for _, k in by})
    graphs = sorted({g for g, _ in by})
    methods = _ordered({m for d in by.values() for m in d}, BOUND_ORDER)
    limits = sorted({float(r["time_limit_s"]) for d in by.values() for r in d.values()
                     if r.get("time_limit_s") is not None})
    out = [f"Time limit {', '.join(f'{x:g}' for x in limits)} s per bound and (graph, k), "
           f"one thread; {len(graphs)} graphs.", ""]
    out += _header("bound", ks)
    for m in [*methods, "best of all"]:
        cells = []
        for k in ks:
            ratios = []
            for g in graphs:
                d, u = by.get((g, k), {}), ub.get((g, k))
                if u is None:
                    continue
                if m == "best of all":
                    vals = [r["bound"] for r in d.values() if r.get("bound") is not None]
                    if vals:
                        ratios.append(max(vals) / u)
                elif m in d and d[m].get("bound") is not None:
                    ratios.append(d[m]["bound"] / u)
            cells.append(f"{geomean(ratios):.4f}" if ratios else "")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += ["", "Pairs where the bound meets the best partition (within 1e-5), of the pairs "
            "run:", ""]
    out += _header("bound", ks)
    for m in methods:
        cells = []
        for k in ks:
            hit = tot = 0
            for g in graphs:
                d, u = by.get((g, k), {}), ub.get((g, k))
                if u is None or m not in d:
                    continue
                tot += 1
                b = d[m].get("bound")
                hit += b is not None and b >= u * (1 - 1e-5)
            cells.append(f"{hit}/{tot}")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += ["", "Mean time per run (s), and the share of MIP time spent building the model:",
            ""]
    out += _header("bound", ks, ["build share"])
    for m in methods:
        cells = []
        build = solve = 0.0
        for k in ks:
            runs = [by[(g, k)][m] for g in graphs if m in by.get((g, k), {})]
            ts = [float(r["wall_time_s"]) for r in runs if r.get("wall_time_s") is not None]
            cells.append(f"{sum(ts) / len(ts):.2f}" if ts else "")
            for r in runs:
                build += float(r.get("build_time_s") or 0.0)
                solve += float(r.get("solve_time_s") or 0.0)
        share = f"{build / (build + solve):.1%}" if build + solve > 0 else ""
        out.append(f"| {m} | " + " | ".join(cells) + f" | {share} |")
    errors = [r for d in by.values() for r in d.values() if r.get("status") == "error"]
    out += ["", f"{len(errors)} errored runs."]
    for r in errors[:10]:
        first = (r.get("error") or "error").splitlines()
        out.append(f"- {r['instance']} k={r['k']} {r['method_id']}: {first[0] if first else ''}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- heuristics
def heuristics_table(store: ResultsStore) -> str:
    """The Markdown tables of docs/results/heuristics.md (see the module docstring)."""
    by = _runs(store, "heuristic")
    ks = sorted({k for _, k in by})
    graphs = sorted({g for g, _ in by})
    n_of = {str(r["instance"]): r.get("n_nodes") for d in by.values() for r in d.values()}
    out = ["### brkga-10000 vs the down-set DP optimum (ratio = brkga / OPT; - = DP did not "
           "finish)", ""]
    out += ["| graph | n | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|---|" + "---|" * len(ks)]
    n_in, n_tot, worst = 0, 0, 1.0
    for g in graphs:
        cells = []
        for k in ks:
            d = by.get((g, k), {})
            dp, br = d.get("downset_dp"), d.get("brkga-10000")
            if dp and br and dp["status"] == "optimal" and br["incumbent"] is not None:
                ratio = br["incumbent"] / dp["incumbent"] if dp["incumbent"] > 0 else 1.0
                n_tot += 1
                n_in += ratio <= 1.01 + 1e-12
                worst = max(worst, ratio)
                cells.append(f"{ratio:.4f}")
            elif dp and dp["status"] != "optimal":
                ideals = (dp.get("stats") or {}).get("n_ideals", "?")
                cells.append(f"- ({ideals} ideals)" if dp["status"] == "unsupported"
                             else f"- ({dp['status']})")
            else:
                cells.append("")
        out.append(f"| {g} | {n_of.get(g)} | " + " | ".join(cells) + " |")
    out += ["", f"brkga-10000 within 1% of OPT on {n_in} of {n_tot} (graph, k) pairs where the "
            f"DP finished; worst ratio {worst:.4f}.", ""]
    methods = _ordered({m for d in by.values() for m in d}, HEURISTIC_ORDER)
    out += ["### Geometric mean of value / best value found (all methods), per k", ""]
    out += _header("method", ks, ["mean time (s)"])
    for m in methods:
        if m == "downset_dp":
            continue
        cells, times = [], []
        for k in ks:
            ratios = []
            for g in graphs:
                d = by.get((g, k), {})
                vals = [r["incumbent"] for r in d.values() if r["incumbent"] is not None]
                if m in d and d[m]["incumbent"] is not None and vals and min(vals) > 0:
                    ratios.append(d[m]["incumbent"] / min(vals))
                    times.append(float(d[m].get("wall_time_s") or 0.0))
            cells.append(f"{geomean(ratios):.4f}" if ratios else "")
        mean_t = sum(times) / len(times) if times else 0.0
        out.append(f"| {m} | " + " | ".join(cells) + f" | {mean_t:.3f} |")
    out += ["", "### What local search adds (geometric mean of refined / unrefined value; "
            "share of (graph, k) pairs it improves)", "",
            "| method | GM refined/base | improved | pairs |", "|---|---|---|---|"]
    for m in methods:
        if m.endswith("[refine=True]"):
            continue
        ref = f"{m}[refine=True]"
        pairs = [(d[m]["incumbent"], d[ref]["incumbent"]) for d in by.values()
                 if m in d and ref in d and d[m]["incumbent"] and d[ref]["incumbent"]]
        if pairs:
            better = sum(b < a * (1 - 1e-9) for a, b in pairs)
            gm = geomean([b / a for a, b in pairs])
            out.append(f"| {m} | {gm:.4f} | {better} | {len(pairs)} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- spine
def _group(instance_id: str) -> str:
    """The spine table's group of an instance: generated (bundled ``default/``), training,
    or the directory the file lies in."""
    if instance_id.startswith("default/"):
        return "generated"
    if "_training" in instance_id:
        return "training"
    parent = Path(instance_id).parent.name
    return parent or instance_id.split("/", 1)[0]


def _label(instance_id: str) -> str:
    """A short name: a bundled generated graph without ``default/``, a file by its name."""
    if instance_id.startswith("default/"):
        return instance_id.split("/", 1)[1]
    return Path(instance_id).name if "/" in instance_id else instance_id


def spine_table(store: ResultsStore, *, with_exact: bool = False) -> str:
    """The Markdown tables of docs/results/lower-bounds.md#min-cut.

    ``with_exact`` counts an exact heuristic's proven optimum (``downset_dp`` ending
    ``optimal``) as a bound.
    """
    runs = store.runs()
    ub = _best_incumbent(store)
    bounds: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    times: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    exact: dict[tuple[str, int], float] = {}
    for r in runs:
        key = (str(r["instance"]), int(r["k"]))
        if r["role"] == "bound" and r.get("bound") is not None:
            bounds[key][str(r["method_id"])] = float(r["bound"])
        if r["role"] == "bound" and r.get("wall_time_s") is not None:
            times[key][str(r["method_id"])] = float(r["wall_time_s"])
        if r["role"] == "heuristic" and r.get("status") == "optimal" \
                and r.get("incumbent") is not None:
            exact[key] = float(r["incumbent"])
    pairs = sorted(k for k in bounds if k in ub)
    ks = sorted({k for _, k in pairs})
    graphs = sorted({g for g, _ in pairs}, key=lambda g: (_group(g), g))

    def top(key: tuple[str, int], names: Sequence[str]) -> float:
        vals = [v for m, v in bounds[key].items() if m in names]
        return max(vals) if vals else 0.0

    def best(key: tuple[str, int]) -> float:
        vals = list(bounds[key].values())
        if with_exact and key in exact:
            vals.append(exact[key])
        return max(vals) if vals else 0.0

    mono: dict[tuple[str, int], float] = {}  # a bound for k' >= k holds for k
    for g in graphs:
        run_max = 0.0
        for k in sorted((k for gg, k in pairs if gg == g), reverse=True):
            run_max = max(run_max, best((g, k)))
            mono[(g, k)] = run_max
    sizes = {str(d["instance"]): d for d in store.instance_rows()}
    out = ["| graph | n | c/w | " + " | ".join(f"k={k}" for k in ks) + " |",
           "|---|---|---|" + "---|" * len(ks)]
    for g in graphs:
        cells = []
        for k in ks:
            key = (g, k)
            if key not in mono:
                cells.append("")
                continue
            u = ub[key]
            cells.append(f"{top(key, PAPER) / u:.3f} / {top(key, SPINE) / u:.3f} / "
                         f"**{mono[key] / u:.3f}**")
        d = sizes.get(g, {})
        tw, tc = d.get("total_work"), d.get("total_comm")
        cw = f"{tc / tw:.2f}" if tw and tc is not None else ""
        out.append(f"| {_label(g)} | {d.get('n_nodes', '')} | {cw} | " + " | ".join(cells)
                   + " |")
    out += ["", "| geometric mean | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|" + "---|" * len(ks)]
    groups = sorted({_group(g) for g in graphs})
    for label, sel in [("all graphs", None)] + [(gname, gname) for gname in groups]:
        for what in ("paper", "min-cut", "best", "guess + T>=LB"):
            cells = []
            for k in ks:
                keys = [(g, k) for g in graphs if (g, k) in mono
                        and (sel is None or _group(g) == sel)]
                if not keys:
                    cells.append("")
                    continue
                if what == "paper":
                    vals = [top(x, PAPER) / ub[x] for x in keys]
                elif what == "min-cut":
                    vals = [top(x, SPINE) / ub[x] for x in keys]
                elif what == "best":
                    vals = [mono[x] / ub[x] for x in keys]
                else:
                    vals = [max(bounds[x].get("guess+lb", 0.0), top(x, PAPER), top(x, SPINE))
                            / ub[x] for x in keys]
                cells.append(f"{geomean([max(v, 1e-12) for v in vals]):.3f}")
            out.append(f"| {label}: {what} | " + " | ".join(cells) + " |")
    out += ["", "| median time (s) | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---|" + "---|" * len(ks)]
    for spec in [*SPINE, "bottleneck", "guess"]:
        cells = []
        for k in ks:
            ts = sorted(times[(g, k)][spec] for g in graphs if spec in times[(g, k)])
            med = (ts[len(ts) // 2] if len(ts) % 2 else
                   (ts[len(ts) // 2 - 1] + ts[len(ts) // 2]) / 2) if ts else None
            cells.append("" if med is None else f"{med:.2f}")
        out.append(f"| {spec} | " + " | ".join(cells) + " |")
    lifted = sum(1 for x in mono if bounds[x].get("guess+lb", 0.0)
                 > max(top(x, PAPER), top(x, SPINE)) * (1 + 1e-6))
    out += ["", f"guess with T >= LB_min-cut beat max(paper, min-cut) on {lifted} of "
            f"{len(mono)} (graph, k) pairs"]
    low = [(g, k, mono[(g, k)] / ub[(g, k)]) for g, k in sorted(mono)
           if mono[(g, k)] / ub[(g, k)] < 0.99]
    out += ["", f"below 0.99: {len(low)} of {len(mono)}: " + ", ".join(
        f"{_label(g)} k={k} ({v:.3f})" for g, k, v in low)]
    return "\n".join(out) + "\n"


#: Table name -> function printing it from a store (``pipecert report STORE --table NAME``).
TABLES: dict[str, Callable[[ResultsStore], str]] = {
    "bounds": bounds_table,
    "heuristics": heuristics_table,
    "spine": spine_table,
}

