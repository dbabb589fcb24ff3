"""k larger than the node count: solve with ``k_eff = min(k, n_units)`` stages.

``n_units`` is the number of units (:attr:`pipecert.instance.Instance.unit_of`: nodes that
must share a stage), ``n`` without co-location groups. The argument below holds with ``n``
replaced by ``n_units``: a feasible partition has at most ``n_units`` non-empty stages, since
each unit lies in one stage (and dropping empty stages changes no stage's memory either).

OPT(k) = OPT(n) for every k >= n. A partition into k stages uses at most n non-empty
stages, and empty stages cost nothing (f of the empty set is 0), so deleting them (keeping
the order of the others) gives a partition into at most n stages of the same bottleneck,
feasible because the order of the non-empty stages is unchanged: OPT(n) <= OPT(k).
Conversely, a partition into n stages padded with k - n empty stages at the end is a
feasible k-stage partition of the same value: OPT(k) <= OPT(n). So every method may solve
the instance with ``k_eff`` stages (a lower bound on OPT(k_eff) is one on OPT(k), and a
k_eff-stage partition is a k-stage one), which keeps the cost of ``-k 1000000000`` that of
``-k n``. The graded gates (:meth:`formulations.base.Formulation.run`,
:meth:`heuristics.base.Heuristic.run`) and the portfolio call methods with ``k_eff``.
"""

from __future__ import annotations

import numpy as np

from pipecert.instance import Instance
from pipecert.partition import Partition

__all__ = ["effective_k", "restrict_partition", "pad_partition"]


def effective_k(instance: Instance, k: int) -> int:
    """``min(k, n_units)`` (at least 1): the stage count every method is called with."""
    return max(1, min(int(k), instance.n_units))


def restrict_partition(partition: Partition, k_eff: int) -> Partition:
    """``partition`` declared for ``k_eff`` stages, empty stages squeezed out if needed.

    Used stage indices are renumbered 0, 1, ... in their order (O(n log n), never O(k)),
    which keeps the pipeline order and every stage's cost.
    """
    s = partition.stage_of
    if s.size == 0 or int(s.max()) < k_eff:
        return partition if partition.k == k_eff else Partition(s, k_eff)
    used = np.unique(s)
    return Partition(np.searchsorted(used, s), max(k_eff, int(used.size)))


def pad_partition(partition: Partition, k: int) -> Partition:
    """The same stages declared for ``k >= partition.k`` stages (empty stages at the end).

    O(n) memory: a partition stores one stage index per node, not one list per stage.
    """
    return partition if partition.k == k else Partition(partition.stage_of, k)
