"""Training graphs: add a backward node per forward node, co-located with it.

One rule, shared by the PipeDream reader (``training=True``) and the PyTorch importer
(``import-torch --training``); the callers say how the backward costs are obtained.

For every forward node ``v`` with ``needs_grad[v]`` the training graph has a backward node
``v<suffix>`` (``vgrad``) with

* work ``backward_work[v]``, comm ``c(v)`` (the gradient of ``v``'s output has the shape of
  the output), memory ``backward_memory[v]``;
* the co-location group of ``v``: ``v`` and ``vgrad`` share a stage (a layer's backward pass
  runs where its weights and stashed activations are). Group ids are the forward node's
  index; forward nodes without a backward node get no group (-1);
* a *data-only* edge ``v -> vgrad`` (the activation stashed for the backward pass; the two
  share a stage, so no feasible partition pays for it, and a relaxation without groups
  only pays more, so bounds stay valid);
* for every forward data edge ``u -> v`` with both ends needing gradients, a *data-only*
  edge ``ugrad -> vgrad``: the gradient of ``u``'s output flowing between the two layers'
  stages, charged ``c(ugrad) = c(u)`` by the usual In/Out rule. It points from ``ugrad`` to
  ``vgrad`` as in the dnn-partitioning training graphs (the tensor physically flows from
  ``vgrad`` to ``ugrad``): with per-producer charges that is the orientation whose charge is
  the gradient of ``u``'s output, and the rule charges the same two stages once each in
  either orientation.

The forward edges (and precedence edges) keep ordering the stages; no edge touching a
backward node orders anything, which is what the exact DP of the dnn-partitioning peer
assumes (its DAG check and its ideals cover the forward part only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from pipecert.errors import InputError
from pipecert.instance import Instance

__all__ = ["add_backward_nodes", "BACKWARD_SUFFIX"]

#: suffix of a backward node's id (the dnn-partitioning naming: ``node4grad``)
BACKWARD_SUFFIX = "grad"


def add_backward_nodes(
    instance: Instance,
    *,
    backward_work: ArrayLike,
    backward_memory: ArrayLike | None = None,
    needs_grad: ArrayLike | None = None,
    suffix: str = BACKWARD_SUFFIX,
    label_prefix: str = "backward of ",
    op_type_suffix: str = "Backward",
    metadata: Mapping[str, Any] | None = None,
    memory_limit: float | None | str = "keep",
) -> Instance:
    """The training graph of a forward graph (the rule is in the module docstring).

    Parameters
    ----------
    instance : Instance
        The forward graph (no data-only edges, no groups).
    backward_work, backward_memory : array_like of float
        Per forward node; entries of nodes without a backward node are ignored.
        ``backward_memory`` defaults to 0 (requires the forward graph to have memory
        only if given).
    needs_grad : array_like of bool, optional
        Which forward nodes get a backward node (default all).
    suffix : str
        Backward node id = forward id + ``suffix``; a clash with an existing id is an
        :class:`InputError`.
    metadata : mapping, optional
        Merged into the instance metadata.
    memory_limit : float, None or "keep"
        The cap of the training instance (default: the forward instance's).

    Returns
    -------
    Instance
        Forward nodes first (input order kept), then the backward nodes in the same order.
    """
    n = instance.n_nodes
    if instance.n_data_only_edges or "groups" in instance.constraints:
        raise InputError("the forward graph already has data-only edges or groups: it looks "
                         "like a training graph already", source=instance.source)
    need = (np.ones(n, dtype=bool) if needs_grad is None
            else np.asarray(needs_grad, dtype=bool).ravel())
    bw = np.asarray(backward_work, dtype=np.float64).ravel()
    bm = (np.zeros(n) if backward_memory is None
          else np.asarray(backward_memory, dtype=np.float64).ravel())
    for what, arr in (("needs_grad", need), ("backward_work", bw), ("backward_memory", bm)):
        if arr.size != n:
            raise InputError(f"{what} has {arr.size} entries for {n} nodes",
                             source=instance.source)
    fwd_idx = np.flatnonzero(need)
    nb = fwd_idx.size
    back_of = np.full(n, -1, dtype=np.int64)
    back_of[fwd_idx] = n + np.arange(nb)
    ids = list(instance.ids)
    back_ids = [ids[i] + suffix for i in fwd_idx.tolist()]
    clash = set(back_ids) & set(ids)
    if clash:
        raise InputError(f"node id {sorted(clash)[0]!r} is also the name of a backward node "
                         f"(<id>{suffix}): cannot build the training graph",
                         source=instance.source)
    s, d = instance.src, instance.dst
    both = need[s] & need[d]
    gsrc = back_of[s[both]]
    gdst = back_of[d[both]]
    src = np.concatenate([s, gsrc, fwd_idx])
    dst = np.concatenate([d, gdst, back_of[fwd_idx]])
    orders = np.concatenate([np.ones(s.size, dtype=bool),
                             np.zeros(gsrc.size + nb, dtype=bool)])
    groups = np.full(n + nb, -1, dtype=np.int64)
    groups[fwd_idx] = fwd_idx
    groups[n:] = fwd_idx
    memory = None
    if instance.memory is not None or backward_memory is not None:
        fm = instance.memory if instance.memory is not None else np.zeros(n)
        memory = np.concatenate([fm, bm[fwd_idx]])
    labels = None
    if instance.labels is not None:
        labels = list(instance.labels) + [label_prefix + instance.labels[i]
                                          for i in fwd_idx.tolist()]
    op_types: Sequence[str] | None = None
    if instance.op_types is not None:
        op_types = list(instance.op_types) + [instance.op_types[i] + op_type_suffix
                                              for i in fwd_idx.tolist()]
    meta = dict(instance.metadata)
    meta.update(metadata or {})
    meta["training"] = True
    return Instance.from_arrays(
        ids + back_ids,
        np.concatenate([instance.work, bw[fwd_idx]]),
        np.concatenate([instance.comm, instance.comm[fwd_idx]]),
        src, dst, instance.prec_src, instance.prec_dst, orders,
        memory=memory,
        name=instance.name,
        labels=labels,
        op_types=op_types,
        groups=groups,
        suggested_k=instance.suggested_k,
        memory_limit=instance.memory_limit if memory_limit == "keep" else memory_limit,
        metadata=meta,
        source=instance.source,
    )
