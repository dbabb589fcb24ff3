"""Measure the default ``pipecert solve`` portfolio: what each step contributes.

``python -m experiments.measure_portfolio [--time-limit S] [-k 4,16] [SPEC ...]`` runs the
portfolio on each instance (default: a mix of the bundled default suite's regimes) and
prints, per step: how often it improved the best partition or the best bound, the median
time it took, and the final certified gap per instance. The README's justification of the
default plan comes from this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict

DEFAULT_SPECS = ["default/compute-1000", "default/comm-1000", "default/operator-1000",
                 "default/balanced-0500", "default/wide-compute-0500",
                 "default/chain-compute-1000", "default/regal-04", "default/comm-0300"]


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the tables (markdown)."""
    import os

    from experiments.portfolio import solve
    from instances import resolve

    ap = argparse.ArgumentParser(prog="python -m experiments.measure_portfolio")
    ap.add_argument("specs", nargs="*", default=DEFAULT_SPECS)
    ap.add_argument("--time-limit", type=float, default=20.0)
    ap.add_argument("-k", default="4,16")
    args = ap.parse_args(argv)
    ks = [int(x) for x in args.k.split(",")]
    improved_ub: dict[str, int] = defaultdict(int)
    improved_lb: dict[str, int] = defaultdict(int)
    times: dict[str, list[float]] = defaultdict(list)
    finals = []
    order: list[str] = []
    saved = os.dup(1)
    for spec in args.specs:
        (ref,) = resolve(spec)  # one graph per spec: a file or a bundled id
        inst = ref.load()
        for k in ks:
            state = {"ub": None, "lb": None}

            def on_event(kind, info, res, state=state):  # type: ignore[no-untyped-def]
                if kind != "run":
                    return
                m = info.method
                if m not in order:
                    order.append(m)
                times[m].append(info.time_s)
                if res.upper_bound is not None and (state["ub"] is None
                                                    or res.upper_bound < state["ub"] - 1e-12):
                    if state["ub"] is not None or m != order[0]:
                        improved_ub[m] += 1
                    state["ub"] = res.upper_bound
                if res.lower_bound is not None and (state["lb"] is None
                                                    or res.lower_bound > state["lb"] + 1e-12):
                    if state["lb"] is not None:
                        improved_lb[m] += 1
                    state["lb"] = res.lower_bound

            state["lb"] = None
            os.dup2(2, 1)  # solver banners away from the tables
            try:
                res = solve(inst, k, time_limit_s=args.time_limit, on_event=on_event)
            finally:
                sys.stdout.flush()
                os.dup2(saved, 1)
            finals.append((spec, k, res.upper_bound, res.lower_bound, res.gap,
                           res.upper_method, res.lower_method, res.elapsed_s))
            print(f"{spec} k={k}: gap {100 * (res.gap or 0):.2f}% "
                  f"(UB {res.upper_method}, LB {res.lower_method})", file=sys.stderr)
    n = len(finals)
    print(f"| step | improved UB | improved LB | median s | runs (of {n}) |")
    print("|---|---|---|---|---|")
    for m in order:
        print(f"| {m} | {improved_ub[m]} | {improved_lb[m]} | "
              f"{statistics.median(times[m]):.3g} | {len(times[m])} |")
    print()
    print("| instance | k | UB | LB | gap % | UB by | LB by | s |")
    print("|---|---|---|---|---|---|---|---|")
    for spec, k, ub, lb, gap, um, lm, t in finals:
        print(f"| {spec} | {k} | {ub:.6g} | {lb:.6g} | {100 * (gap or 0):.2f} | {um} | {lm} "
              f"| {t:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
