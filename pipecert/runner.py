"""One service that runs a method on an instance: :func:`run_method`.

Every caller that runs a registered method (the experiment worker, the portfolio of
``pipecert solve``, ``formulations.best``, the research scripts) goes through
:func:`run_method`, so a run is always made the same way: the spec is parsed by the
registry of its :class:`~pipecert.registry.Role`, the method is run through its graded
``run`` (re-scoring, feasibility and bound checks) and the answer is a
:class:`~pipecert.results.RunOutcome`.

The method packages (``heuristics``, ``formulations``) are imported by name when first
needed (:meth:`Role.registry`), so this core module does not import them at import time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipecert.errors import InputError
from pipecert.registry import Method, Role, parse_method_spec
from pipecert.results import Budget, RunOutcome, SolveContext

__all__ = ["make_method", "role_of", "run_method"]


def role_of(method: Method) -> Role:
    """The role of a method object (a ``Heuristic`` or a ``Formulation``).

    Raises
    ------
    TypeError
        If ``method`` is neither.
    """
    for role in Role:
        if isinstance(method, role.registry().base):
            return role
    raise TypeError(f"{method!r} is neither a heuristic nor a formulation")


def make_method(spec: str, role: Role | str | None = None) -> tuple[Role, Method]:
    """``(role, method)`` for a spec ``name[key=value,...]``.

    Parameters
    ----------
    spec : str
        A method spec.
    role : Role or str, optional
        Where to look the name up. Without it the name must be registered in exactly one
        of the registries.

    Raises
    ------
    InputError
        On an unknown role or name, bad parameters, or a name both registries hold when
        ``role`` is not given.
    """
    if role is not None:
        r = role if isinstance(role, Role) else Role.parse(str(role))
        m: Method = r.registry().make(spec)
        return r, m
    name, _ = parse_method_spec(spec)
    found = [r for r in Role if name in r.registry()]
    if len(found) > 1:
        raise InputError(f"method {name!r} is both a heuristic and a bound; say which role")
    if not found:
        known = sorted(n for r in Role for n in r.registry().names())
        raise InputError(f"unknown method {name!r}; known: {', '.join(known)}")
    return found[0], found[0].registry().make(spec)


def run_method(
    method: str | Method,
    instance: Any,
    k: int,
    *,
    role: Role | str | None = None,
    context: SolveContext | None = None,
    budget: Budget | None = None,
    seed: int | np.random.Generator | None = 0,
    raise_errors: bool = False,
) -> RunOutcome:
    """Run ``method`` on ``(instance, k)`` through its graded ``run``.

    Parameters
    ----------
    method : str or Method
        A spec ``name[key=value,...]`` (looked up in the registry of ``role``) or a method
        object (a ``Heuristic`` or a ``Formulation``).
    instance : Instance
    k : int
        Number of stages.
    role : Role or str, optional
        The registry of a spec (see :func:`make_method`); checked against a method object.
    context : SolveContext, optional
        What is known already (warm start, cutoff, proven bound, per-instance cache).
    budget : Budget, optional
        Time and threads (no limit by default).
    seed : int or numpy.random.Generator or None
        Random state of a heuristic (ignored by bounds).
    raise_errors : bool
        Let a method's exception propagate instead of recording it (debugging).

    Returns
    -------
    RunOutcome
        The graded outcome (a method error is an ``error`` outcome unless
        ``raise_errors``).

    Raises
    ------
    InputError
        If the spec names no method of ``role`` or has bad parameters.
    """
    if isinstance(method, str):
        r, m = make_method(method, role)
    else:
        m = method
        r = role_of(m)
        if role is not None and Role.parse(str(role)) != r:
            raise InputError(f"{m.method_id()} is a {r.value} method, not a {role}")
    budget = budget if budget is not None else Budget()
    if r is Role.HEURISTIC:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        out: RunOutcome = m.run(instance, k, budget, rng, context,  # type: ignore[attr-defined]
                                raise_errors=raise_errors)
    else:
        out = m.run(instance, k, budget, context,  # type: ignore[attr-defined]
                    raise_errors=raise_errors)
    return out
