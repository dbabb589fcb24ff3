"""Experiment configuration: documented defaults < TOML file < command-line flags.

A config file (``experiments/configs/<slug>.toml``) has up to four tables; every key is
optional and falls back to :data:`DEFAULTS`::

    [experiment]
    name = "quick"                    # slug; the store goes to results/<name>/
    [grid]
    instances = ["suite:default"]     # specs for instances.resolve()
    variants = ["as_given", "memory_limit=none"]   # problem variants (experiments/variants.py)
    k = [2, 4, 8]
    heuristics = ["brkga-100", "dfs_order"]
    bounds = ["combinatorial", "bottleneck"]
    [budget]
    time_limit_s = 10
    [run]
    jobs = 2

The resolved configuration (after CLI flags) is written as ``config.resolved.toml`` next to
the SQLite store, and stored in the database's ``meta`` table.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipecert.errors import InputError

__all__ = ["DEFAULTS", "DOCS", "load_config", "merge", "to_toml", "validate"]

#: The documented defaults, one table per section. One line of documentation per key in DOCS.
DEFAULTS: dict[str, dict[str, Any]] = {
    "experiment": {
        "name": "experiment",
        "description": "",
        "out": "",
    },
    "grid": {
        "instances": ["suite:default"],
        "variants": ["as_given"],
        "k": [2, 4, 8, 16, 32, 64],
        "heuristics": ["brkga-100"],
        "bounds": ["combinatorial"],
        "seeds": [0],
        "max_nodes": 0,
        "min_nodes": 0,
    },
    "budget": {
        "time_limit_s": 60.0,
        "heuristic_time_limit_s": 0.0,
        "per_method": {},
        "grace_s": 10.0,
        "threads": 1,
        "memory_limit_mb": 4096,
    },
    "run": {
        "jobs": 1,
        "scheduler": "",
        "share_bounds": True,
        "plugins": [],
        "report": True,
        "figures": True,
    },
}

DOCS: dict[str, str] = {
    "experiment.name": "slug of the experiment; names the output directory results/<name>",
    "experiment.description": "free text, kept in the resolved config",
    "experiment.out": "output directory (store, resolved config, report, figures); "
                      "default results/<name>",
    "grid.instances": "instance specs: files, directories, globs, suite:NAME or NAME/ID; or "
                      "tables {spec = ..., options = {training = true}} with reader options "
                      "(the instance id gets ?key=value)",
    "grid.variants": "problem variants of every instance: as_given (the constraints the file "
                     "gives) or key=value;... with memory_limit=SIZE|none and "
                     "relax=groups+memory (experiments/variants.py); each variant is its own "
                     "instance ID@VARIANT in the store",
    "grid.k": "numbers of stages",
    "grid.heuristics": "heuristic method specs (name or name[key=value,...])",
    "grid.bounds": "lower-bound (formulation) method specs",
    "grid.seeds": "base seeds; each run's seed is derive_seed(base, instance, k, method_id)",
    "grid.max_nodes": "skip instances with more nodes (0: no limit)",
    "grid.min_nodes": "skip instances with fewer nodes",
    "budget.time_limit_s": "time limit of one run in seconds",
    "budget.heuristic_time_limit_s": "time limit of one heuristic run (0: time_limit_s)",
    "budget.per_method": "table method name -> time limit, overriding the two above",
    "budget.grace_s": "seconds past the limit before the worker is killed "
                      "(plus 10% of the limit)",
    "budget.threads": "threads per run (solvers, numba)",
    "budget.memory_limit_mb": "address-space limit per worker process (0: none)",
    "run.jobs": "worker processes of the local pool",
    "run.scheduler": "Dask scheduler address (tcp://HOST:PORT) to run on a cluster instead",
    "run.share_bounds": "run bounds from the largest k down and pass each instance's bounds "
                        "for larger k to smaller k (valid since OPT is non-increasing in k)",
    "run.plugins": "extra modules imported by every worker (out-of-tree methods)",
    "run.report": "print the report when the grid is done",
    "run.figures": "write the figures to <out>/figures when the grid is done",
}


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base`` (tables merge, other values replace)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if (isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
                and key != "per_method"):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | Path | None, overrides: Mapping[str, Any] | None = None
                ) -> dict[str, Any]:
    """Defaults, then the TOML file (if any), then ``overrides``; validated.

    Raises :class:`InputError` naming the file on a syntax error, an unknown table or key,
    or a value of the wrong type.
    """
    cfg = copy.deepcopy(DEFAULTS)
    source = None
    if path is not None:
        p = Path(path)
        source = str(p)
        try:
            data = tomllib.loads(p.read_text())
        except OSError as exc:
            raise InputError(f"cannot read config ({exc.strerror})", source=source) from None
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML: {exc}", source=source) from None
        _check_keys(data, source)
        cfg = merge(cfg, data)
        if "name" not in data.get("experiment", {}):
            cfg["experiment"]["name"] = p.stem
    if overrides:
        _check_keys(overrides, "command line")
        cfg = merge(cfg, overrides)
    validate(cfg, source)
    if not cfg["experiment"]["out"]:
        cfg["experiment"]["out"] = f"results/{cfg['experiment']['name']}"
    return cfg


def _check_keys(data: Mapping[str, Any], source: str | None) -> None:
    for table, values in data.items():
        if table not in DEFAULTS:
            raise InputError(f"unknown table [{table}] (known: {', '.join(DEFAULTS)})",
                             source=source)
        if not isinstance(values, Mapping):
            raise InputError(f"[{table}] must be a table", source=source)
        for key in values:
            if key not in DEFAULTS[table]:
                raise InputError(
                    f"unknown key {table}.{key} (known: {', '.join(DEFAULTS[table])})",
                    source=source)


def validate(cfg: Mapping[str, Any], source: str | None = None) -> None:
    """Type-check the merged config; :class:`InputError` on the first problem."""
    def fail(msg: str) -> None:
        raise InputError(msg, source=source)

    g, b, r = cfg["grid"], cfg["budget"], cfg["run"]
    for key in ("heuristics", "bounds", "variants"):
        if not isinstance(g[key], list) or not all(isinstance(x, str) for x in g[key]):
            fail(f"grid.{key} must be a list of strings")
    if not isinstance(g["instances"], list):
        fail("grid.instances must be a list")
    for x in g["instances"]:
        if isinstance(x, str):
            continue
        if not isinstance(x, Mapping) or not isinstance(x.get("spec"), str) or \
                set(x) - {"spec", "options"} or not isinstance(x.get("options", {}), Mapping):
            fail("grid.instances entries are instance specs (strings) or tables "
                 "{spec = \"...\", options = {reader option = value}}")
    if not g["instances"]:
        fail("grid.instances is empty")
    if not g["variants"]:
        fail("grid.variants is empty (as_given is the instance as its file gives it)")
    from experiments.variants import parse_variant

    names = []
    for v in g["variants"]:
        try:
            names.append(parse_variant(v).name)
        except InputError as exc:
            fail(f"grid.variants: {exc.problem}")
    if len(set(names)) != len(names):
        fail("grid.variants lists the same variant twice")
    if not g["heuristics"] and not g["bounds"]:
        fail("the grid has no method (grid.heuristics and grid.bounds are empty)")
    for key in ("k", "seeds"):
        if not isinstance(g[key], list) or not g[key] or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in g[key]):
            fail(f"grid.{key} must be a non-empty list of integers")
    if any(x < 1 for x in g["k"]):
        fail("grid.k values must be >= 1")
    for key in ("time_limit_s", "heuristic_time_limit_s", "grace_s", "memory_limit_mb"):
        v = b[key]
        if not isinstance(v, int | float) or isinstance(v, bool) or v < 0 or math.isnan(v):
            fail(f"budget.{key} must be a number >= 0")
    if b["time_limit_s"] <= 0:
        fail("budget.time_limit_s must be > 0")
    if not isinstance(b["per_method"], Mapping) or not all(
            isinstance(v, int | float) and v > 0 for v in b["per_method"].values()):
        fail("budget.per_method must map method names to positive time limits")
    if not isinstance(b["threads"], int) or b["threads"] < 1:
        fail("budget.threads must be an integer >= 1")
    if not isinstance(r["jobs"], int) or r["jobs"] < 1:
        fail("run.jobs must be an integer >= 1")
    if not isinstance(r["scheduler"], str):
        fail("run.scheduler must be a string")
    if not isinstance(r["plugins"], list):
        fail("run.plugins must be a list of module names")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} as TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def to_toml(cfg: Mapping[str, Any]) -> str:
    """The config as TOML text (readable back by :func:`load_config`)."""
    lines = []
    for table, values in cfg.items():
        lines.append(f"[{table}]")
        for key, v in values.items():
            doc = DOCS.get(f"{table}.{key}")
            if doc:
                lines.append(f"# {doc}")
            lines.append(f"{_toml_key(key)} = {_toml_value(v)}")
        lines.append("")
    return "\n".join(lines)
