"""The partition file: a partition with the provenance that makes it checkable.

A partition file is a JSON object (schema version :data:`PARTITION_VERSION`)::

    {
     "format": "pipecert-partition", "version": 2,
     "k": 4,
     "value": 15.0,                 # the reference cost (pipecert.evaluate) of the stages
     "lower_bound": 15.0, "gap": 0.0,
     "units": {"work": "ms", "comm": "ms", "memory": "bytes", "time": "ms"},
     "cost_model": null,            # or the cost model / hardware that priced the graph
     "variant": {"constraints": ["groups", "memory"], "memory_limit": 1.7e10,
                 "stage_memory": [...], "feasible": true},   # the problem the value is for
     "graph": {"name": ..., "path": ..., "path_resolved": ..., "n_nodes": ...,
               "n_edges": ..., "structure_fingerprint": ..., "fingerprint": ...},
     "found_by": "brkga-100", "proved_by": "path_bound",
     "solvers": {"highspy": "1.7.2", ...},
     "pipecert_version": "0.1.0", "seed": 0, "time_s": 8.1,
     "created": "2026-11-28T13:30:00+00:00",
     "stages": [["node id", ...], ...]
    }

Only ``stages`` is required to read a file: the schema-1 files of earlier versions,
``{"k": K, "stages": [...]}``, still read (``k`` defaults to the number of lists). Stages are
in pipeline order; a file may list fewer than ``k`` stages (the others are empty). When
``k`` exceeds the node count the file lists at most ``n`` stages, so its size never
depends on ``k``.

``variant`` says which problem the partition solves: the active constraints of
:attr:`pipecert.Instance.constraints` (co-location ``groups``, the ``memory`` cap,
``data_only_edges``), the cap (``null`` without one), each listed stage's memory (``null``
without node memory) and whether the stages are feasible for that problem
(:func:`pipecert.check_feasible`).

``structure_fingerprint`` (:attr:`pipecert.Instance.structure_fingerprint`: node ids and
edges) tells which graph the stages refer to; ``fingerprint`` also covers the costs, so a
``value`` is the partition's value exactly when the graph's ``fingerprint`` is unchanged.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance, validate_k
from pipecert.partition import Partition, evaluate

__all__ = [
    "PARTITION_FORMAT",
    "PARTITION_VERSION",
    "PartitionFile",
    "partition_json",
    "write_partition",
    "write_partition_json",
    "json_safe",
]

#: The ``format`` field of a partition file.
PARTITION_FORMAT = "pipecert-partition"
#: The schema version this pipecert writes (1 = the old ``{k, stages}`` files).
PARTITION_VERSION = 2


def _num(x: float | None) -> float | None:
    """A finite float or None (JSON has no inf/NaN; an unknown number is null)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def json_safe(x: Any) -> Any:
    """``x`` with every non-JSON value turned into a string and non-finite floats into null
    (so ``json.dumps(..., allow_nan=False)`` never writes ``Infinity``)."""
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, int | str):
        return x
    if isinstance(x, float):
        return _num(x)
    try:
        return _num(float(x))
    except (TypeError, ValueError):
        return str(x)


def partition_json(
    partition: Partition,
    instance: Instance,
    *,
    graph_path: str | None = None,
    lower_bound: float | None = None,
    found_by: str | None = None,
    proved_by: str | None = None,
    solvers: Mapping[str, str] | None = None,
    seed: int | None = None,
    time_s: float | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """The partition file object of ``partition`` on ``instance`` (module docstring).

    ``value`` is always computed here by the reference cost function, never taken from a
    method; ``gap`` is ``(value - lower_bound) / value`` (0 when ``value`` is 0).
    ``graph_path`` is the graph as the user gave it (its resolved path is added when it
    names a file). ``created`` defaults to now (UTC, ISO 8601).

    Stage lists: all ``k`` when ``k <= n``; when ``k > n``, :meth:`Partition.stages`
    (at most ``n`` lists) without its trailing empty stages. Reading the file back gives
    the same stages up to empty ones, hence the same costs and the same feasibility.
    """
    from pipecert import __version__
    from pipecert.partition import check_feasible, stage_costs

    value = evaluate(instance, partition)
    costs = stage_costs(instance, partition)
    variant = {
        "constraints": sorted(instance.constraints),
        "memory_limit": _num(instance.memory_limit),
        "stage_memory": None if costs.memory is None else [_num(x) for x in costs.memory],
        "feasible": not check_feasible(instance, partition, max_reports=1),
    }
    stages = partition.stages(instance)
    if partition.k > instance.n_nodes:
        while stages and not stages[-1]:
            stages.pop()
    lb = _num(lower_bound)
    gap = None if lb is None else (0.0 if value <= 0 else max(0.0, (value - lb) / value))
    resolved = None
    if graph_path is not None and Path(graph_path).is_file():
        resolved = str(Path(graph_path).resolve())
    elif instance.source is not None and Path(instance.source).is_file():
        resolved = str(Path(instance.source).resolve())
    units = dict(instance.units)
    units["time"] = instance.time_unit
    return {
        "format": PARTITION_FORMAT,
        "version": PARTITION_VERSION,
        "k": partition.k,
        "value": _num(value),
        "lower_bound": lb,
        "gap": gap,
        "units": units,
        "cost_model": json_safe(instance.cost_model),
        "variant": variant,
        "graph": {
            "name": instance.name,
            "path": graph_path if graph_path is not None else instance.source,
            "path_resolved": resolved,
            "n_nodes": instance.n_nodes,
            "n_edges": instance.n_edges,
            "structure_fingerprint": instance.structure_fingerprint,
            "fingerprint": instance.fingerprint,
        },
        "found_by": found_by,
        "proved_by": proved_by,
        "solvers": dict(solvers) if solvers else {},
        "pipecert_version": __version__,
        "seed": seed,
        "time_s": _num(time_s),
        "created": created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "stages": stages,
    }


def write_partition(path: str | Path, partition: Partition, instance: Instance,
                    **provenance: Any) -> None:
    """Write the partition file atomically (a temporary file renamed over ``path``).

    ``provenance`` are the keyword arguments of :func:`partition_json`. A failed write
    leaves any previous file at ``path`` untouched.
    """
    write_partition_json(path, partition_json(partition, instance, **provenance))


def write_partition_json(path: str | Path, obj: Mapping[str, Any]) -> None:
    """Write a partition file object made by :func:`partition_json`, atomically."""
    p = Path(path)
    text = json.dumps(json_safe(obj), indent=1, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        # mkstemp creates the file 0600: give it the permissions of a plain open() (umask)
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class PartitionFile:
    """A parsed partition file: its stage lists and its header (every other field).

    Parsing checks the file's shape only; :meth:`partition` checks the stages against a
    graph. ``k`` is None for an old file that gives none.
    """

    stages: list[list[str | int]]
    k: int | None = None
    header: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    source: str | None = None

    @classmethod
    def from_json(cls, data: Any, *, source: str | None = None) -> PartitionFile:
        """Check and split a decoded partition file object; errors name ``source``."""
        if not isinstance(data, dict) or "stages" not in data:
            raise FormatError('a partition file must be {"k": K, "stages": [[...], ...]}',
                              source=source)
        fmt = data.get("format", PARTITION_FORMAT)
        if fmt != PARTITION_FORMAT:
            raise FormatError(f"not a partition file (format {fmt!r})", source=source)
        version = data.get("version", 1) if "format" in data else 1
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise FormatError(f"bad partition file version {version!r}", source=source)
        if version > PARTITION_VERSION:
            raise FormatError(f"partition file version {version} is newer than this "
                              f"pipecert reads ({PARTITION_VERSION}); upgrade pipecert",
                              source=source)
        stages = data["stages"]
        if not isinstance(stages, list) or not all(isinstance(s, list) for s in stages):
            raise FormatError('"stages" must be a list of lists of node ids', source=source)
        for s in stages:
            for v in s:
                if isinstance(v, bool) or not isinstance(v, str | int):
                    raise FormatError(f"a node id must be a string, got {v!r}", source=source)
        k = data.get("k")
        if k is not None:
            try:
                k = validate_k(k)
            except InputError as exc:
                raise FormatError(f'"k": {exc.problem}', source=source) from None
            if len(stages) > k:
                raise FormatError(f"{len(stages)} stage lists for k = {k}", source=source)
        header = {key: val for key, val in data.items() if key != "stages"}
        return cls(stages, k, header, version, source)

    @classmethod
    def read(cls, path: str | Path) -> PartitionFile:
        """Read and check a partition file (the shape only, no graph needed)."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise InputError(f"cannot read partition file ({exc.strerror})", source=str(p)) \
                from None
        except UnicodeDecodeError:
            raise FormatError("not a text (UTF-8) file", source=str(p)) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON: {exc.msg}", source=str(p), line=exc.lineno) \
                from None
        except RecursionError:
            raise FormatError("JSON nested too deeply", source=str(p)) from None
        return cls.from_json(data, source=str(p))

    @property
    def graph(self) -> Mapping[str, Any]:
        """The ``graph`` section (empty for old files)."""
        g = self.header.get("graph")
        return g if isinstance(g, Mapping) else {}

    @property
    def structure_fingerprint(self) -> str | None:
        """The structure fingerprint of the graph the file was written for, if recorded."""
        fp = self.graph.get("structure_fingerprint")
        return fp if isinstance(fp, str) else None

    def structure_mismatch(self, instance: Instance) -> str | None:
        """A one-line warning when the file was written for a graph of another structure
        (None when it matches or the file records no fingerprint)."""
        fp = self.structure_fingerprint
        if fp is None or fp == instance.structure_fingerprint:
            return None
        name = self.graph.get("name")
        path = self.graph.get("path")
        origin = f"graph {name!r}" if name else "another graph"
        if path and path != name:
            origin += f" ({path})"
        return (f"{self.source or 'partition'}: written for {origin} whose structure differs "
                f"from {instance.name!r} (fingerprint {fp[:12]} vs "
                f"{instance.structure_fingerprint[:12]})")

    def partition(self, instance: Instance, k: int | None = None) -> Partition:
        """The partition on ``instance`` with ``k`` stages (default: the file's ``k``, else
        the number of stage lists).

        Raises
        ------
        FormatError
            On an unknown node, a node in two stages or in none, or more lists than ``k``;
            the message names the file.
        """
        kk = k if k is not None else self.k
        try:
            return Partition.from_stages(instance, self.stages, kk)
        except InputError as exc:
            raise FormatError(exc.problem, source=self.source) from None
