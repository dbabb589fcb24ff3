"""The native pipecert JSON format (schema version 1), plain or gzipped.

Schema (one JSON object)::

    {
      "format": "pipecert-instance",       # required, identifies the format
      "version": 1,                         # required, schema version
      "name": "default/layered-s-001",      # instance name
      "nodes": [                            # input order is kept
        {"id": "a", "work": 1.5, "comm": 0.25,
         "memory": 10.0,                    # optional: all nodes or none
         "label": "conv1", "op_type": "Conv",  # optional: all nodes or none (each)
         "group": 3},                       # optional: all nodes or none (-1 = no group)
        ...
      ],
      "edges": [["a", "b"], ...],           # data edges (producer, consumer) that order
      "data_only_edges": [["c", "a"], ...],    # optional: data edges that do not order
      "precedence_edges": [["b", "c"], ...],   # optional: ordering only, no data
      "suggested_k": 4,                     # optional
      "memory_limit": 1e9,                  # optional
      "metadata": {...}                     # optional, free-form JSON
    }

Edges. ``edges`` are the data edges that order the stages (``stage(u) <= stage(v)``) and
are charged by the In/Out rule; ``data_only_edges`` are data edges that are charged the
same way but impose no order (:attr:`Instance.edge_orders` False: the gradient and
stashed-activation edges of a training graph); ``precedence_edges`` order but carry no data.
``data_only_edges`` is written only when the instance has some, so files without them are
byte-identical to those of earlier versions, and files without the key read as before
(every data edge orders). A pair listed both in ``edges`` and in ``data_only_edges`` orders
(the two are merged, as :class:`Instance` merges duplicate edges); the writer never lists a
pair twice. ``group`` (co-location: nodes of one group share a stage) and ``memory_limit``
(the memory cap per stage, enforced) complete the constrained variant; all three read back
exactly.

Units: whatever ``metadata["units"]`` says (kept as written; ``Instance.units`` reports
``"unspecified"`` for a missing one). Reader option ``zero_input_work=True`` (the one
option every reader shares) sets the work of the source nodes (no incoming data or
precedence edge) to 0 and records it in the metadata; by default the values are kept.

Floats are written with ``repr`` (Python's ``json``), so a write/read round trip reproduces
every value bit for bit. Files ending in ``.gz`` are gzip-compressed with ``mtime=0``, so
the same instance always gives the same bytes.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from instances.formats.base import (
    FORMATS,
    INPUT_WORK_OPTIONS,
    Format,
    instance_name,
    load_json,
    read_text,
    source_nodes,
    wants_zero_input_work,
)
from instances.formats.base import zero_input_work as zero_input_work_of
from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = ["NativeJSON", "SCHEMA_VERSION", "to_native_dict", "from_native_dict", "dumps"]

SCHEMA_VERSION = 1
INPUT_RULE = "source nodes (no incoming data or precedence edge)"
FORMAT_TAG = "pipecert-instance"


def to_native_dict(instance: Instance) -> dict[str, Any]:
    """The schema-1 JSON object of ``instance``."""
    ids = instance.ids
    work = instance.work.tolist()
    comm = instance.comm.tolist()
    mem = None if instance.memory is None else instance.memory.tolist()
    groups = None if instance.groups is None else instance.groups.tolist()
    nodes = []
    for i, v in enumerate(ids):
        node: dict[str, Any] = {"id": v, "work": work[i], "comm": comm[i]}
        if mem is not None:
            node["memory"] = mem[i]
        if instance.labels is not None:
            node["label"] = instance.labels[i]
        if instance.op_types is not None:
            node["op_type"] = instance.op_types[i]
        if groups is not None:
            node["group"] = groups[i]
        nodes.append(node)
    out: dict[str, Any] = {
        "format": FORMAT_TAG,
        "version": SCHEMA_VERSION,
        "name": instance.name,
        "nodes": nodes,
        "edges": [[ids[u], ids[v]] for u, v, o in zip(instance.src.tolist(),
                                                      instance.dst.tolist(),
                                                      instance.edge_orders.tolist()) if o],
    }
    if instance.n_data_only_edges:
        out["data_only_edges"] = [
            [ids[u], ids[v]]
            for u, v, o in zip(instance.src.tolist(), instance.dst.tolist(),
                               instance.edge_orders.tolist()) if not o
        ]
    if instance.n_precedence_edges:
        out["precedence_edges"] = [
            [ids[u], ids[v]]
            for u, v in zip(instance.prec_src.tolist(), instance.prec_dst.tolist())
        ]
    if instance.suggested_k is not None:
        out["suggested_k"] = instance.suggested_k
    if instance.memory_limit is not None:
        out["memory_limit"] = instance.memory_limit
    if instance.metadata:
        out["metadata"] = dict(instance.metadata)
    return out


def dumps(instance: Instance) -> str:
    """Serialise ``instance`` as native JSON text (compact, one node per line)."""
    d = to_native_dict(instance)
    nodes = d.pop("nodes")
    edges = d.pop("edges")
    data_only = d.pop("data_only_edges", None)
    prec = d.pop("precedence_edges", None)
    meta = d.pop("metadata", None)
    parts = [f"{json.dumps(k)}: {json.dumps(v, allow_nan=False)}" for k, v in d.items()]
    if meta is not None:
        parts.append(f'"metadata": {json.dumps(meta, allow_nan=False, sort_keys=True)}')
    parts.append('"nodes": [\n' + ",\n".join(json.dumps(x, allow_nan=False) for x in nodes)
                 + "\n]")
    parts.append('"edges": ' + json.dumps(edges, separators=(",", ":")))
    if data_only is not None:
        parts.append('"data_only_edges": ' + json.dumps(data_only, separators=(",", ":")))
    if prec is not None:
        parts.append('"precedence_edges": ' + json.dumps(prec, separators=(",", ":")))
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _fail(msg: str, source: str | None) -> FormatError:
    return FormatError(msg, source=source)


def _pairs(raw: Any, what: str, source: str | None) -> list[tuple[str, str]]:
    if not isinstance(raw, list):
        raise _fail(f"{what!r} must be a list of [producer, consumer] pairs", source)
    out = []
    for j, e in enumerate(raw):
        if not (isinstance(e, list | tuple) and len(e) == 2):
            raise _fail(f"{what}[{j}] is not a [producer, consumer] pair: {e!r}", source)
        out.append((str(e[0]), str(e[1])))
    return out


def _number(node: dict[str, Any], key: str, j: int, source: str | None) -> float:
    x = node.get(key)
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise _fail(f"node {node.get('id', j)!r} (nodes[{j}]): {key!r} must be a number, "
                    f"got {x!r}", source)
    return float(x)


_NUM = (int, float)
_OPTIONAL = ("memory", "label", "op_type", "group")


def _fast(d: dict[str, Any], source: str | None, name: str | None) -> Instance | None:
    """Vectorised reading of a well-formed file; ``None`` sends any irregularity to the
    validating path, which produces the precise error message."""
    nodes = d.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        return None
    try:
        ids = [nd["id"] for nd in nodes]
        work = [nd["work"] for nd in nodes]
        comm = [nd["comm"] for nd in nodes]
    except (KeyError, TypeError):
        return None
    if not all(type(x) is str for x in ids):
        return None
    if not all(type(x) in _NUM for x in work) or not all(type(x) in _NUM for x in comm):
        return None
    n = len(nodes)
    opt: dict[str, list[Any] | None] = {}
    for key in _OPTIONAL:
        count = sum(key in nd for nd in nodes)
        if count == 0:
            opt[key] = None
        elif count == n:
            opt[key] = [nd[key] for nd in nodes]
        else:
            return None
    if opt["memory"] is not None and not all(type(x) in _NUM for x in opt["memory"]):
        return None
    if opt["group"] is not None and not all(type(x) is int for x in opt["group"]):
        return None
    index = {v: i for i, v in enumerate(ids)}
    if len(index) != n:
        return None
    arrays = []
    for key in ("edges", "precedence_edges", "data_only_edges"):
        raw = d.get(key, [])
        if not isinstance(raw, list):
            return None
        try:
            if not all(len(e) == 2 and type(e) is list for e in raw):
                return None
            arrays.append([index[e[0]] for e in raw])
            arrays.append([index[e[1]] for e in raw])
        except (KeyError, TypeError):
            return None
    sk, ml, meta = d.get("suggested_k"), d.get("memory_limit"), d.get("metadata", {})
    if (sk is not None and type(sk) is not int) or (ml is not None and type(ml) not in _NUM) \
            or not isinstance(meta, dict):
        return None
    src, dst, psrc, pdst, osrc, odst = arrays
    orders = np.concatenate([np.ones(len(src), dtype=bool), np.zeros(len(osrc), dtype=bool)])
    return Instance.from_arrays(
        ids, np.array(work, dtype=np.float64), np.array(comm, dtype=np.float64),
        src + osrc, dst + odst, psrc, pdst, orders,
        memory=opt["memory"], name=str(d.get("name") or name or "instance"),
        labels=opt["label"], op_types=opt["op_type"], groups=opt["group"],
        suggested_k=sk, memory_limit=ml, metadata=meta, source=source,
    )


def from_native_dict(d: Any, *, source: str | None = None, name: str | None = None) -> Instance:
    """Build an :class:`Instance` from a schema-1 JSON object (validated).

    Well-formed files take a vectorised path; anything irregular goes through a
    node-by-node check that names the offending node or edge.
    """
    if not isinstance(d, dict):
        raise _fail("top level must be a JSON object", source)
    if d.get("format") != FORMAT_TAG:
        raise _fail(f"not a pipecert instance (\"format\" is {d.get('format')!r}, expected "
                    f"{FORMAT_TAG!r})", source)
    version = d.get("version")
    if version != SCHEMA_VERSION:
        raise _fail(f"unsupported schema version {version!r} (this pipecert reads version "
                    f"{SCHEMA_VERSION})", source)
    fast = _fast(d, source, name)
    if fast is not None:
        return fast
    nodes = d.get("nodes")
    if not isinstance(nodes, list):
        raise _fail("'nodes' must be a list", source)
    n = len(nodes)
    ids: list[str] = []
    work = np.empty(n)
    comm = np.empty(n)
    optional: dict[str, list[Any] | None] = {"memory": None, "label": None, "op_type": None,
                                             "group": None}
    if n:
        first = nodes[0] if isinstance(nodes[0], dict) else {}
        for key in optional:
            if key in first:
                optional[key] = []
    for j, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise _fail(f"nodes[{j}] is not an object", source)
        if "id" not in node:
            raise _fail(f"nodes[{j}] has no 'id'", source)
        ids.append(str(node["id"]))
        work[j] = _number(node, "work", j, source)
        comm[j] = _number(node, "comm", j, source)
        for key, acc in optional.items():
            present = key in node
            if present != (acc is not None):
                raise _fail(f"node {ids[-1]!r} (nodes[{j}]): {key!r} must be given for all "
                            "nodes or none", source)
            if acc is not None:
                val = node[key]
                if key == "memory":
                    val = _number(node, key, j, source)
                elif key == "group":
                    if isinstance(val, bool) or not isinstance(val, int):
                        raise _fail(f"node {ids[-1]!r}: 'group' must be an integer", source)
                acc.append(val)
    edges = _pairs(d.get("edges", []), "edges", source)
    prec = _pairs(d.get("precedence_edges", []), "precedence_edges", source)
    data_only = _pairs(d.get("data_only_edges", []), "data_only_edges", source)
    sk = d.get("suggested_k")
    if sk is not None and (isinstance(sk, bool) or not isinstance(sk, int)):
        raise _fail(f"'suggested_k' must be an integer, got {sk!r}", source)
    ml = d.get("memory_limit")
    if ml is not None and (isinstance(ml, bool) or not isinstance(ml, int | float)):
        raise _fail(f"'memory_limit' must be a number, got {ml!r}", source)
    meta = d.get("metadata", {})
    if not isinstance(meta, dict):
        raise _fail("'metadata' must be an object", source)
    inst_name = d.get("name") or name or "instance"
    return Instance(
        ids,
        work,
        comm,
        edges,
        prec,
        data_only_edges=data_only,
        memory=optional["memory"],
        name=str(inst_name),
        labels=optional["label"],
        op_types=optional["op_type"],
        groups=optional["group"],
        suggested_k=sk,
        memory_limit=ml,
        metadata=meta,
        source=source,
    )


@FORMATS.register
class NativeJSON(Format):
    """pipecert's own JSON schema (version 1), optionally gzipped; exact round trip."""

    name = "native"
    extensions = (".json", ".json.gz")
    options = INPUT_WORK_OPTIONS
    sniff_priority = 100
    writable = True
    description = "pipecert native JSON (schema 1), .json or .json.gz"

    def sniff(self, path: Path, head: bytes) -> bool:
        text = head.lstrip()
        return text.startswith(b"{") and FORMAT_TAG.encode() in text[:512]

    def read(self, path: Path, *, zero_input_work: bool | None = None,
             keep_input_work: bool | None = None, **options: Any) -> Instance:
        source = str(path)
        if options:
            raise InputError(f"unknown option(s) {', '.join(options)}", source=source)
        zero = wants_zero_input_work(zero_input_work, keep_input_work, source)
        d = load_json(read_text(path), source)
        inst = from_native_dict(d, source=source, name=instance_name(path))
        if zero:
            inst = zero_input_work_of(inst, source_nodes(inst), INPUT_RULE)
        return inst

    def write(self, instance: Instance, path: Path) -> None:
        try:
            data = dumps(instance).encode("utf-8")
        except (TypeError, ValueError, RecursionError) as exc:
            raise InputError("cannot write this instance as JSON: the metadata or a value is "
                             f"not JSON ({type(exc).__name__}: {exc})",
                             source=str(path)) from None
        if str(path).lower().endswith(".gz"):
            with open(path, "wb") as fh:
                with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0,
                                   compresslevel=6) as gz:
                    gz.write(data)
        else:
            with open(path, "wb") as fh:
                fh.write(data)

