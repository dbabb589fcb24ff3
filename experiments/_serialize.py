"""Compact, self-contained serialisation of an :class:`~pipecert.Instance`.

The harness ships instances to worker processes (and Dask workers) and stores them in the
results database, so that ``pipecert results check`` can re-score every stored partition
without the original files. The format is zlib-compressed JSON of the instance arrays; it
round-trips exactly (``float`` values are written with ``repr`` precision by :mod:`json`).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from pipecert.instance import Instance

__all__ = ["instance_to_bytes", "instance_from_bytes", "instance_fingerprint"]

_VERSION = 1


def _opt_list(a: Any) -> Any:
    if a is None:
        return None
    return np.asarray(a).tolist()


def instance_to_bytes(instance: Instance) -> bytes:
    """Serialise ``instance`` (arrays, names and metadata) to compressed JSON bytes."""
    data = {
        "v": _VERSION,
        "name": instance.name,
        "ids": list(instance.ids),
        "work": instance.work.tolist(),
        "comm": instance.comm.tolist(),
        "src": instance.src.tolist(),
        "dst": instance.dst.tolist(),
        "prec_src": instance.prec_src.tolist(),
        "prec_dst": instance.prec_dst.tolist(),
        "memory": _opt_list(instance.memory),
        "labels": None if instance.labels is None else list(instance.labels),
        "op_types": None if instance.op_types is None else list(instance.op_types),
        "groups": _opt_list(instance.groups),
        "suggested_k": instance.suggested_k,
        "memory_limit": instance.memory_limit,
        "metadata": dict(instance.metadata),
    }
    if not instance.edge_orders.all():  # data-only edges (absent: every data edge orders)
        data["orders"] = instance.edge_orders.tolist()
    text = json.dumps(data, separators=(",", ":"), default=str)
    return zlib.compress(text.encode(), 6)


def instance_from_bytes(blob: bytes) -> Instance:
    """Rebuild the instance written by :func:`instance_to_bytes`."""
    data = json.loads(zlib.decompress(blob).decode())
    if data.get("v") != _VERSION:
        raise ValueError(f"unknown serialised instance version {data.get('v')!r}")
    return Instance.from_arrays(
        data["ids"], data["work"], data["comm"], data["src"], data["dst"],
        data["prec_src"], data["prec_dst"],
        memory=data["memory"], name=data["name"], labels=data["labels"],
        op_types=data["op_types"], groups=data["groups"], suggested_k=data["suggested_k"],
        memory_limit=data["memory_limit"], metadata=data["metadata"],
        orders=data.get("orders"),
    )


def instance_fingerprint(instance: Instance) -> str:
    """The instance's cost fingerprint (:attr:`pipecert.Instance.fingerprint`)."""
    return instance.fingerprint
