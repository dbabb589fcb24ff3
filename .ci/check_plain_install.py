"""CI: a plain ``pip install .`` (no extras) runs every default ``pipecert solve`` step.

Run with the plain install's Python after ``pipecert solve ... --json`` wrote its output to
the file given as the first argument. Exits 1 (one line per problem) if a portfolio step
ended in ``error``, was skipped, was ``unsupported`` without a reason or for a missing
package, or a min-cut bound gave no value. A step that is ``unsupported`` for a reason of
the instance (the exact down-set DP on a graph too wide for it: the same on a full install)
is listed, not failed.
"""

from __future__ import annotations

import json
import sys

#: Words of a reason that points at the installation rather than the instance.
INSTALL_WORDS = ("not installed", "no module", "missing", "install", "import", "extra")


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        out = json.load(fh)
    problems: list[str] = []
    runs = out.get("runs") or []
    if not runs:
        problems.append("solve ran no step")
    for r in runs:
        status = str(r.get("status"))
        why = str(r.get("reason") or r.get("error") or "")
        install = any(w in why.lower() for w in INSTALL_WORDS)
        if status in ("error", "skipped") or r.get("skipped") or (
                status == "unsupported" and (install or not why)):
            problems.append(f"step {r.get('method')} ended {status}: {why[:200]}")
        elif status == "unsupported":
            print(f"plain install: note: {r.get('method')} does not apply here: {why[:200]}")
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
