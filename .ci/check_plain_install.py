"""CI: a plain ``pip install .`` (no extras) runs every default ``pipecert solve`` step.

Run with the plain install's Python after ``pipecert solve ... --json`` wrote its output to
the file given as the first argument. Exits 1 (one line per problem) if a portfolio step
ended in ``error`` or ``unsupported``, was skipped, or a min-cut bound gave no value.
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        out = json.load(fh)
    problems: list[str] = []
    runs = out.get("runs") or []
    if not runs:
        problems.append("solve ran no step")
    for r in runs:
        status = str(r.get("status"))
        if status in ("error", "unsupported") or r.get("skipped"):
            why = r.get("reason") or r.get("error") or ""
            problems.append(f"step {r.get('method')} ended {status}: {str(why)[:200]}")
    for name in ("node_bound", "path_bound"):
        vals = [r.get("value") for r in runs if str(r.get("method", "")).startswith(name)]
        if not vals:
            problems.append(f"{name} did not run")
        elif all(v is None for v in vals):
            problems.append(f"{name} gave no value")
    if out.get("lower_bound") is None or out.get("upper_bound") is None:
        problems.append("no lower or upper bound")
    for p in problems:
        print(f"plain install: {p}", file=sys.stderr)
    if not problems:
        print(f"plain install: {len(runs)} steps, none in error or skipped; "
              f"UB {out['upper_bound']}, LB {out['lower_bound']}, gap {out['gap']}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
