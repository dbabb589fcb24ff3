"""Problem variants of an instance: its constraints, a memory cap override, relaxations.

An instance carries its constraints (:attr:`pipecert.Instance.constraints`, docs/
constraints.md): co-location groups, data-only (non-ordering) edges and a memory cap per
stage. The command line and the harness may change two of them:

* ``memory_limit=SIZE`` (``--memory-limit SIZE``): replace the instance's cap. ``SIZE`` is
  ``80GB`` (decimal, 1e9 bytes), ``16GiB`` (binary, 2**30 bytes), a plain number (in the
  instance's memory unit) or ``none`` (no cap);
* ``relax=groups``, ``relax=memory``, ``relax=groups+memory`` (``--relax``): drop those
  constraints (:meth:`pipecert.Instance.relaxed`). The relaxed problem has more feasible
  partitions, so its optimum is a lower bound of the constrained one, never its answer.
  Data-only edges cannot be relaxed (making them ordering edges restricts the problem).

A *variant spec* is ``as_given`` (the instance as its file gives it) or ``;``-separated
``key=value`` options, e.g. ``memory_limit=none`` or ``memory_limit=16GB;relax=groups``. Its
canonical name (:attr:`Variant.name`) is stored with every harness row (column ``variant``)
and appended to the instance id (``ID@memory_limit=none``), so the variants of one graph
are different instances of a grid, with their own fingerprints, and reports name them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from instances.units import NO_LIMIT_WORDS as _NO_LIMIT
from instances.units import parse_memory_size
from pipecert.errors import InputError
from pipecert.instance import CONSTRAINT_NAMES, CONSTRAINTS, UNSPECIFIED, Instance

__all__ = ["AS_GIVEN", "Variant", "parse_variant", "parse_memory_size", "memory_limit_value",
           "variant_json", "variant_lines", "min_stages", "RELAXABLE"]

#: The canonical name of the unchanged instance.
AS_GIVEN = "as_given"
#: Constraints a variant may relax (a lower bound of the relaxed problem stays valid).
RELAXABLE = ("groups", "memory")

_SIZE_RE = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.)\s*([a-zA-Z]*)$")
#: memory units of instances (Instance.memory_unit) that suffixed sizes convert to
_BYTE_UNITS = {"bytes": 1.0, "byte": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9,
               "kib": float(2**10), "mib": float(2**20), "gib": float(2**30)}


def memory_limit_value(inst: Instance, text: str) -> float | None:
    """The cap ``text`` means for ``inst``, in the instance's memory unit (None: no cap).

    A plain number is taken in the instance's memory unit; a size with a unit (``80GB``)
    is converted to it, which needs the instance to state a byte-based memory unit
    (``bytes``, ``MB``, ``GiB`` ...); otherwise a one-line :class:`InputError`.
    """
    raw = str(text).strip()
    value = parse_memory_size(raw)
    if value is None:
        return None
    m = _SIZE_RE.match(raw)
    suffix = m.group(2).lower() if m else ""
    if not suffix:
        return float(m.group(1)) if m else value
    mu = inst.memory_unit
    factor = _BYTE_UNITS.get(mu.lower()) if mu else None
    if factor is None:
        what = "states no memory unit" if mu in (None, "", UNSPECIFIED) else \
            f"measures memory in {mu!r}"
        raise InputError(f"--memory-limit {raw!r}: instance {inst.name!r} {what}; give a plain "
                         "number in its memory unit")
    return value / factor


@dataclass(frozen=True)
class Variant:
    """A change to an instance's constraints (see the module docstring)."""

    memory_limit: str | None = None  #: the cap text (``none``, ``16GB``, ``1e9``), None = as given
    relax: tuple[str, ...] = ()  #: constraints dropped, sorted

    @property
    def name(self) -> str:
        """Canonical spec: ``as_given`` or ``memory_limit=...;relax=a+b``."""
        parts = []
        if self.memory_limit is not None:
            parts.append(f"memory_limit={self.memory_limit}")
        if self.relax:
            parts.append(f"relax={'+'.join(self.relax)}")
        return ";".join(parts) or AS_GIVEN

    @property
    def is_as_given(self) -> bool:
        """True if the variant changes nothing."""
        return self.memory_limit is None and not self.relax

    def apply(self, inst: Instance) -> Instance:
        """``inst`` with this variant's cap and relaxations; metadata records the variant."""
        if self.is_as_given:
            return inst
        out = inst
        if self.memory_limit is not None:
            out = out.replace(memory_limit=memory_limit_value(inst, self.memory_limit))
        if self.relax:
            out = out.relaxed(*self.relax)
        meta = dict(out.metadata)
        meta["variant"] = self.name
        return out.replace(metadata=meta)


def parse_variant(text: str | None = None, *, memory_limit: str | None = None,
                  relax: str | None = None) -> Variant:
    """A :class:`Variant` from a spec (``as_given``, ``memory_limit=none;relax=groups``) or
    from the command-line values ``--memory-limit`` / ``--relax`` (``groups,memory``).

    Raises a one-line :class:`InputError` on an unknown key, a bad size or a constraint that
    cannot be relaxed.
    """
    mem = memory_limit
    rel_text = relax
    spec = (text or "").strip()
    if spec and spec != AS_GIVEN:
        for part in spec.split(";"):
            part = part.strip()
            if not part:
                continue
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise InputError(f"variant {spec!r}: expected key=value, got {part!r} (keys: "
                                 "memory_limit, relax)")
            if key == "memory_limit":
                mem = value
            elif key == "relax":
                rel_text = value
            else:
                raise InputError(f"variant {spec!r}: unknown key {key!r} (keys: memory_limit, "
                                 "relax)")
    if mem is not None:
        mem = mem.strip()
        parse_memory_size(mem)  # one-line error now, not at load time
        if mem.lower() in _NO_LIMIT:
            mem = "none"
    rel: tuple[str, ...] = ()
    if rel_text:
        names = [x.strip() for x in re.split(r"[+,]", rel_text) if x.strip()]
        for c in names:
            if c not in RELAXABLE:
                hint = (" (data-only edges cannot be relaxed: treating them as ordering edges "
                        "restricts the problem)" if c == "data_only_edges" else "")
                raise InputError(f"cannot relax {c!r}: only {', '.join(RELAXABLE)}{hint}")
        rel = tuple(sorted(set(names)))
    return Variant(mem, rel)


def min_stages(inst: Instance) -> int | None:
    """The fewest stages the memory cap allows (None without an active cap; 0 if no k does).

    ``k`` is proven infeasible for every ``k < min_stages`` by
    :meth:`pipecert.Instance.infeasible_reason` (total memory > k x cap, or a unit larger
    than the cap: then no ``k`` is feasible and the result is 0). Not proven feasible from
    there on: the exact DP decides.
    """
    if "memory" not in inst.constraints:
        return None
    assert inst.memory is not None and inst.memory_limit is not None
    if inst.infeasible_reason(inst.n_nodes) is not None:
        return 0
    lo = max(1, math.ceil(float(inst.memory.sum()) / inst.memory_limit * (1 - 1e-9)) - 1)
    k = lo
    while inst.infeasible_reason(k) is not None:
        k += 1
    return k


def _groups_info(inst: Instance) -> dict[str, int]:
    g = inst.groups
    if g is None or "groups" not in inst.constraints:
        return {"n_groups": 0, "n_grouped_nodes": 0, "n_units": inst.n_units}
    gg = g[g >= 0]
    import numpy as np

    _, counts = np.unique(gg, return_counts=True)
    multi = counts[counts >= 2]
    return {"n_groups": int(multi.size), "n_grouped_nodes": int(multi.sum()),
            "n_units": int(inst.n_units)}


def variant_json(inst: Instance, k: int | None = None) -> dict[str, Any]:
    """The constraints of ``inst`` as a JSON-ready dict (``pipecert solve/info --json``).

    Keys: ``name`` (the variant applied, ``as_given`` by default), ``constraints`` (active
    ones, in :data:`CONSTRAINTS` order), ``groups`` (multi-node groups, their nodes, units),
    ``ordering_edges`` / ``data_only_edges`` (data edges that order stages / that do not;
    precedence edges order too and are counted apart), ``memory_limit`` and
    ``memory_unit``, ``total_memory``, ``min_stages`` (see :func:`min_stages`) and, with
    ``k``, ``infeasible_reason`` (the proof, or None).
    """
    n_do = int(inst.n_data_only_edges)
    out: dict[str, Any] = {
        "name": str(inst.metadata.get("variant", AS_GIVEN)),
        "constraints": [c for c in CONSTRAINTS if c in inst.constraints],
        "groups": _groups_info(inst),
        "ordering_edges": int(inst.n_edges - n_do),
        "data_only_edges": n_do,
        "precedence_edges": int(inst.n_precedence_edges),
        "memory_limit": inst.memory_limit,
        "memory_unit": inst.memory_unit,
        "total_memory": None if inst.memory is None else float(inst.memory.sum()),
        "min_stages": min_stages(inst),
    }
    if k is not None:
        out["infeasible_reason"] = inst.infeasible_reason(k)
    return out


def _num(x: float) -> str:
    return f"{x:.6g}"


def variant_lines(inst: Instance) -> list[str]:
    """Human-readable lines: the active constraints (one line each) or the unconstrained
    problem. Used by the headers of ``pipecert solve``, ``evaluate`` and ``info``."""
    v = variant_json(inst)
    unit = "" if inst.memory_unit in (None, "", UNSPECIFIED) else f" {inst.memory_unit}"
    head = "problem: " + (", ".join(CONSTRAINT_NAMES[c] for c in v["constraints"])
                          if v["constraints"] else "unconstrained (every edge orders, no "
                          "groups, no binding memory cap)")
    if v["name"] != AS_GIVEN:
        head += f"  [variant {v['name']}]"
    lines = [head]
    g = v["groups"]
    if "groups" in v["constraints"]:
        lines.append(f"  groups: {g['n_groups']} co-location groups over "
                     f"{g['n_grouped_nodes']} nodes; {g['n_units']} units (nodes that must "
                     "share a stage)")
    if "data_only_edges" in v["constraints"]:
        lines.append(f"  edges: {v['ordering_edges']} ordering, {v['data_only_edges']} "
                     "data-only (charged comm, impose no stage order)")
    if inst.memory_limit is not None:
        total = v["total_memory"]
        if "memory" in v["constraints"]:
            ms = v["min_stages"]
            need = ("no k: a unit exceeds the cap" if ms == 0
                    else f"memory needs >= {ms} stages")
            lines.append(f"  memory cap: {_num(inst.memory_limit)}{unit} per stage (total "
                         f"{_num(total)}{unit}; {need})")
        else:
            what = "no node memory" if total is None else f"total {_num(total)}{unit} fits"
            lines.append(f"  memory cap: {_num(inst.memory_limit)}{unit} per stage, not "
                         f"binding ({what})")
    return lines
