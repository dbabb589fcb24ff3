"""``pipecert run``: run an experiment grid into a results store, then report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

COMMAND = "run"
HELP = "run an experiment grid (instances x k x methods) into a SQLite results store"


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") \
            from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags override the config file, which overrides the defaults."""
    p.add_argument("config", nargs="?", help="experiment TOML (experiments/configs/*.toml)")
    p.add_argument("-i", "--instances", action="append", metavar="SPEC",
                   help="instance spec (file, dir, glob, suite:NAME, SUITE/ID); repeatable")
    p.add_argument("-k", type=_ints, metavar="K[,K...]", help="numbers of stages, e.g. 2,4,8")
    p.add_argument("--variant", action="append", metavar="VARIANT",
                   help="problem variant (replaces grid.variants; repeatable): as_given, "
                        "memory_limit=SIZE|none, relax=groups+memory, or ';'-joined")
    p.add_argument("--heuristic", action="append", metavar="SPEC",
                   help="heuristic method spec; repeatable")
    p.add_argument("--bound", action="append", metavar="SPEC",
                   help="lower-bound method spec; repeatable")
    p.add_argument("--seed", type=_ints, metavar="S[,S...]", help="base seeds")
    p.add_argument("--time-limit", type=float, metavar="S", help="seconds per run")
    p.add_argument("--grace", type=float, metavar="S", help="seconds past the limit before kill")
    p.add_argument("--memory-mb", type=float, metavar="MB", help="memory limit per worker")
    p.add_argument("--threads", type=int, help="threads per run")
    p.add_argument("-j", "--jobs", type=int, metavar="N", help="local worker processes")
    p.add_argument("--scheduler", metavar="ADDR",
                   help="run on a Dask cluster (tcp://HOST:PORT) instead of locally")
    p.add_argument("--plugin", action="append", metavar="MODULE",
                   help="module every worker imports (out-of-tree methods); repeatable")
    p.add_argument("--name", help="experiment name (output directory results/NAME)")
    p.add_argument("-o", "--out", metavar="DIR", help="output directory")
    p.add_argument("--resume", action="store_true",
                   help="skip runs already in the store (otherwise they run again)")
    p.add_argument("--rerun-changed", action="store_true",
                   help="when an instance's data changed since its runs were stored (another "
                        "fingerprint), delete those runs and run them again (default: refuse "
                        "with an error naming the instances)")
    p.add_argument("--inline", action="store_true",
                   help="run in this process, without isolation (debugging)")
    p.add_argument("--raise", dest="raise_errors", action="store_true",
                   help="re-raise a method's exception (implies --inline)")
    p.add_argument("--no-report", action="store_true", help="do not print the report")
    p.add_argument("--no-figures", action="store_true", help="do not write figures")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve the config and the instances, print the plan, run nothing")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, dict[str, Any]] = {"experiment": {}, "grid": {}, "budget": {}, "run": {}}
    if args.name:
        o["experiment"]["name"] = args.name
    if args.out:
        o["experiment"]["out"] = args.out
    for key, val in (("instances", args.instances), ("k", args.k),
                     ("heuristics", args.heuristic), ("bounds", args.bound),
                     ("seeds", args.seed), ("variants", args.variant)):
        if val is not None:
            o["grid"][key] = val
    if args.heuristic is not None and args.bound is None:
        o["grid"].setdefault("bounds", [])
    if args.bound is not None and args.heuristic is None:
        o["grid"].setdefault("heuristics", [])
    for key, val in (("time_limit_s", args.time_limit), ("grace_s", args.grace),
                     ("memory_limit_mb", args.memory_mb), ("threads", args.threads)):
        if val is not None:
            o["budget"][key] = val
    if args.jobs is not None:
        o["run"]["jobs"] = args.jobs
    if args.scheduler:
        o["run"]["scheduler"] = args.scheduler
    if args.plugin:
        o["run"]["plugins"] = args.plugin
    if args.no_report:
        o["run"]["report"] = False
    if args.no_figures:
        o["run"]["figures"] = False
    return {k: v for k, v in o.items() if v}


def run(args: argparse.Namespace) -> int:
    """Run the grid, then check the store, print the report and write figures."""
    from experiments.config import load_config, to_toml
    from experiments.harness import load_entries, run_grid
    from experiments.progress import format_duration
    from experiments.store import ResultsStore

    cfg = load_config(args.config, _overrides(args))
    if args.dry_run:
        return _dry_run(cfg)
    out = Path(cfg["experiment"]["out"])
    out.mkdir(parents=True, exist_ok=True)
    resolved = to_toml(cfg)
    (out / "config.resolved.toml").write_text(resolved)
    err = sys.stderr
    entries = load_entries(cfg)
    store = ResultsStore(out / "results.sqlite")
    store.set_meta("experiment", cfg["experiment"]["name"])
    store.set_meta("config", resolved)
    executor = "local"
    if args.inline or args.raise_errors:
        executor = "inline"
    elif cfg["run"]["scheduler"]:
        executor = "dask"
    g = cfg["grid"]

    def on_plan(todo: int, skipped: int) -> None:
        what = (f"{cfg['experiment']['name']}: {len(entries)} instances x {len(set(g['k']))} k"
                f" x {len(g['heuristics'])} heuristics + {len(g['bounds'])} bounds")
        if len(g["seeds"]) > 1:
            what += f" x {len(g['seeds'])} seeds"
        done = f", {skipped} already done" if skipped else ""
        where = (f"{cfg['run']['jobs']} worker(s)" if executor == "local" else
                 f"Dask at {cfg['run']['scheduler']}" if executor == "dask" else "in-process")
        print(f"{what}: {todo} runs to do{done} ({where}); store {out / 'results.sqlite'}",
              file=err)
        if not args.resume and len(store) and todo:
            print("note: runs already in the store are run again and replaced "
                  "(use --resume to skip them)", file=err)

    res = run_grid(cfg, store, entries, resume=args.resume, executor=executor,
                   progress=not args.no_progress, raise_errors=args.raise_errors,
                   log_dir=out / "logs", on_plan=on_plan,
                   on_change="rerun" if args.rerun_changed else "refuse")
    for name, n_old in res.rerun_changed.items():
        print(f"note: {name} changed since its runs were stored: {n_old} old run(s) deleted, "
              "its cells run again", file=err)
    print(f"done: {res.n_run} runs in {format_duration(res.elapsed_s)}, "
          f"{res.n_errors} errors, {res.n_skipped} skipped", file=err)
    for line in res.errors[:10]:
        print(f"  error: {line}", file=err)
    if len(res.errors) > 10:
        print(f"  ... and {len(res.errors) - 10} more (see the store)", file=err)
    check = store.check()
    status = 0
    if not check.ok:
        status = 1
        print(f"results check FAILED ({len(check.problems)} finding(s)):", file=err)
        for line in check.problems[:20]:
            print(f"  {line}", file=err)
    if cfg["run"]["report"] or cfg["run"]["figures"]:
        from experiments.report import build_report, to_markdown, write_all

        rep = build_report(store)
        paths = write_all(rep, out)
        if cfg["run"]["report"]:
            sys.stdout.write(to_markdown(rep))
            sys.stdout.flush()
        print(f"report: {', '.join(str(p) for p in paths)}", file=err)
    if cfg["run"]["figures"]:
        from paper_figures import make_all

        figs = make_all(store, out / "figures")
        print(f"figures: {len(figs)} files in {out / 'figures'}", file=err)
    store.close()
    return status


def _dry_run(cfg: dict[str, Any]) -> int:
    """Print the resolved config and the grid's size; validate every method spec."""
    import importlib

    from experiments.config import to_toml
    from experiments.harness import build_cells, load_entries
    from pipecert.errors import InputError

    for mod in cfg["run"]["plugins"]:
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise InputError(f"cannot import plug-in module {mod!r}: {exc}") from None
    entries = load_entries(cfg)
    cells = build_cells(cfg, entries)
    sys.stdout.write(to_toml(cfg))
    worst = sum(c.kill_after_s for c in cells) / max(1, cfg["run"]["jobs"])
    sizes = sorted(e.instance.n_nodes for e in entries)
    print(f"# {len(entries)} instances ({sizes[0]} to {sizes[-1]} nodes), {len(cells)} runs; "
          f"worst case {worst / 3600:.1f} h with {cfg['run']['jobs']} worker(s)")
    return 0
