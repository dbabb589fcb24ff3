"""Bounded, thread-safe memo tables: the one cache helper of the package.

Work derived from a graph (kernel arrays, reductions, max-flow networks, node bounds ...) is
kept in a :class:`Memo`: a least-recently-used table holding at most ``maxsize`` values,
safe to share between threads. A value derived from an instance is keyed by
:func:`instance_key`, i.e. by the instance's :attr:`~pipecert.Instance.fingerprint` (plus
any parameters the value depends on), never by the object's ``id()`` and never stored on the
(immutable) instance itself. Two instances with one fingerprint have the same nodes, edges,
costs, memory, groups and memory limit, so whatever is computed from those is shared.

Every memo is registered (weakly: a memo nothing refers to is gone); :func:`clear_all`
forgets every value (for benchmarks that time a cold start) and :func:`memos` lists them.

Examples
--------
>>> from pipecert.testing import worked_example
>>> squares = Memo("example-squares", maxsize=2)
>>> inst = worked_example()
>>> squares.get_or_compute(instance_key(inst, 3), lambda: 3 * 3)
9
>>> instance_key(inst, 3) in squares
True
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from pipecert.instance import Instance

__all__ = ["Memo", "InstanceKey", "instance_key", "clear_all", "memos"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: The key of a value derived from an instance: its fingerprint, then any parameters.
InstanceKey = tuple[Hashable, ...]

_REGISTRY: weakref.WeakSet[Memo[object, object]] = weakref.WeakSet()
_REGISTRY_LOCK = threading.Lock()


def instance_key(instance: Instance, *parts: Hashable) -> InstanceKey:
    """The memo key of a value derived from ``instance`` (and from ``parts``).

    Parameters
    ----------
    instance : Instance
        The graph; only its :attr:`~pipecert.Instance.fingerprint` enters the key.
    *parts : hashable
        Whatever else the value depends on (a memory cap, an engine name ...).

    Returns
    -------
    tuple
        ``(instance.fingerprint, *parts)``.
    """
    return (instance.fingerprint, *parts)


class Memo(Generic[K, V]):
    """A least-recently-used table of at most ``maxsize`` values, safe across threads.

    Parameters
    ----------
    name : str
        What it holds (shown by :func:`memos` and ``repr``), e.g. the producing function.
    maxsize : int
        The most values kept; storing one more evicts the least recently used.

    Notes
    -----
    ``None`` means "absent" to :meth:`get` and :meth:`pop`: store no ``None`` values.
    A value is computed outside the lock, so a slow computation never blocks readers of
    other keys; when two threads compute one key at once, the first value stored wins and
    both callers get it.
    """

    def __init__(self, name: str, maxsize: int) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"memo {name!r}: maxsize must be an integer >= 1, got {maxsize!r}")
        self.name = name
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()
        with _REGISTRY_LOCK:
            _REGISTRY.add(self)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Memo({self.name!r}, maxsize={self.maxsize}, size={len(self)})"

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._data

    def get(self, key: K) -> V | None:
        """The value stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def put(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` (replacing any), evicting beyond ``maxsize``."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def get_or_compute(self, key: K, compute: Callable[[], V]) -> V:
        """The value under ``key``, computed by ``compute()`` and stored when absent.

        An exception from ``compute`` propagates and nothing is stored.
        """
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        value = compute()
        with self._lock:
            if key in self._data:  # another thread stored it meanwhile: share that one
                self._data.move_to_end(key)
                return self._data[key]
            self._data[key] = value
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)
        return value

    def pop(self, key: K) -> V | None:
        """Remove and return the value under ``key`` (None if absent)."""
        with self._lock:
            return self._data.pop(key, None)

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._data.clear()


def memos() -> list[Memo[object, object]]:
    """Every live memo, sorted by name."""
    with _REGISTRY_LOCK:
        return sorted(_REGISTRY, key=lambda m: m.name)


def clear_all() -> None:
    """Forget every value of every memo (e.g. before timing a cold start)."""
    for memo in memos():
        memo.clear()
