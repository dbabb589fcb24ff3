"""The generic plug-in registry used by formulations, heuristics and instance sources.

A plug-in is a class with a ``name`` class attribute, registered with a decorator::

    @HEURISTICS.register
    class MyHeuristic(Heuristic):
        name = "my_heuristic"

Packages import all their modules with :func:`discover`, so adding a file is enough.
Methods are parametrised by keyword-only constructor arguments; ``method_id`` renders them as
``name[key=value,...]`` and :func:`parse_method_spec` parses that syntax back.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from pipecert.errors import InputError

__all__ = ["Registry", "Method", "Role", "parse_method_spec", "discover"]

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")


class Role(StrEnum):
    """What a method run is for: a heuristic finds partitions, a bound proves lower bounds.

    The values are the strings stored in results files (the ``role`` column), so a
    :class:`Role` compares equal to its string (``Role.BOUND == "bound"``).
    """

    HEURISTIC = "heuristic"  #: a :class:`heuristics.Heuristic` (returns a partition)
    BOUND = "bound"  #: a :class:`formulations.Formulation` (returns a lower bound)

    @classmethod
    def parse(cls, value: str) -> Role:
        """The role named ``value``; :class:`InputError` names the valid roles otherwise."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(r.value for r in cls)
            raise InputError(f"unknown method role {value!r} (expected one of {valid})") \
                from None

    def registry(self) -> Registry[Any]:
        """The registry of the methods of this role (``HEURISTICS`` or ``FORMULATIONS``).

        The package is imported by name when first asked for (as :func:`discover` does),
        so the core does not depend on the method packages at import time.
        """
        module, attr = _ROLE_REGISTRIES[self]
        reg: Registry[Any] = getattr(importlib.import_module(module), attr)
        return reg


#: Role -> (package, registry attribute) of the methods of that role.
_ROLE_REGISTRIES: dict[Role, tuple[str, str]] = {
    Role.HEURISTIC: ("heuristics", "HEURISTICS"),
    Role.BOUND: ("formulations", "FORMULATIONS"),
}


class Method:
    """Common behaviour of formulations and heuristics.

    Subclasses declare their parameters as keyword-only ``__init__`` arguments with
    defaults and store each one as an attribute of the same name (scikit-learn style).
    The constructor does nothing else.

    Attributes
    ----------
    name : str
        Registry name (stable forever: it appears in results files).
    citation : str or None
        Where the method is defined (paper, section).
    requires : tuple of str
        Optional modules the method needs; checked without importing them.
    handles : frozenset of str
        The constraints of :data:`pipecert.instance.CONSTRAINTS` the method models exactly
        (``groups``, ``memory``, ``data_only_edges``). On an instance with an active
        constraint it neither handles nor relaxes, :meth:`supports` says no and the run is
        ``unsupported``: a method never answers a different problem.
    relaxes : frozenset of str
        Lower bounds only: constraints the bound ignores and stays valid for, because
        dropping a constraint only enlarges the feasible set (``groups`` and ``memory``;
        never ``data_only_edges``, whose relaxation is not "ordering", a restriction).
        Such a bound is never marked optimal by itself.
    """

    name: ClassVar[str] = ""
    citation: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()
    handles: ClassVar[frozenset[str]] = frozenset()
    relaxes: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def capabilities(cls) -> dict[str, str]:
        """``{constraint: "yes" | "relaxed" | "no"}`` for every constraint."""
        from pipecert.instance import CONSTRAINTS

        return {c: "yes" if c in cls.handles else "relaxed" if c in cls.relaxes else "no"
                for c in CONSTRAINTS}

    def supports_variant(self, instance: Any) -> tuple[bool, str | None]:
        """Whether the method handles (or soundly relaxes) every active constraint."""
        from pipecert.instance import CONSTRAINT_NAMES

        active: frozenset[str] = getattr(instance, "constraints", frozenset())
        missing = sorted(set(active) - set(self.handles) - set(self.relaxes))
        if missing:
            what = ", ".join(CONSTRAINT_NAMES.get(m, m) for m in missing)
            return False, (f"{self.method_id()} does not handle {what} (instance "
                           f"{getattr(instance, 'name', '?')!r}); see `pipecert list`")
        return True, None

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the keyword-only constructor parameters, sorted."""
        sig = inspect.signature(cls.__init__)
        return sorted(
            p.name
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        )

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Default value of every constructor parameter."""
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def params(self) -> dict[str, Any]:
        """Current parameter values."""
        return {k: getattr(self, k) for k in self.param_names()}

    def method_id(self) -> str:
        """``name`` plus every non-default parameter, e.g. ``brkga[population=50]``."""
        defaults = self.param_defaults()
        changed = {k: v for k, v in self.params().items() if defaults.get(k) != v}
        if not changed:
            return self.name
        inner = ",".join(f"{k}={v}" for k, v in sorted(changed.items()))
        return f"{self.name}[{inner}]"

    @classmethod
    def is_available(cls) -> tuple[bool, str | None]:
        """Whether the optional modules in ``requires`` are installed (without importing)."""
        import importlib.util

        missing = [m for m in cls.requires if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"needs the missing module(s) {', '.join(missing)}"
        return True, None

    def supports(self, instance: Any, k: int) -> tuple[bool, str | None]:
        """Whether the method applies to ``(instance, k)``; a reason if not."""
        return self.is_available()

    @classmethod
    def summary(cls) -> str:
        """First line of the class docstring."""
        doc = inspect.getdoc(cls) or ""
        return doc.splitlines()[0] if doc else ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method_id()}>"


def parse_method_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Parse ``name`` or ``name[key=value,...]`` into a name and a parameter dict.

    Values are Python literals when they parse as one, strings otherwise.

    Examples
    --------
    >>> parse_method_spec("brkga[population=50,seed_orders=true]")
    ('brkga', {'population': 50, 'seed_orders': True})
    """
    spec = spec.strip()
    m = re.fullmatch(r"([A-Za-z0-9_\-]+)(?:\[(.*)\])?", spec)
    if not m:
        raise InputError(f"invalid method spec {spec!r} (expected name or name[key=value,...])")
    name, inner = m.group(1), m.group(2)
    params: dict[str, Any] = {}
    if inner:
        for part in _split_top(inner):
            if "=" not in part:
                raise InputError(f"invalid parameter {part!r} in method spec {spec!r}")
            key, raw = (x.strip() for x in part.split("=", 1))
            low = raw.lower()
            if low in ("true", "false"):
                params[key] = low == "true"
            elif low in ("none", "null"):
                params[key] = None
            else:
                try:
                    params[key] = ast.literal_eval(raw)
                except (ValueError, SyntaxError):
                    params[key] = raw
    return name, params


def _split_top(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return out


class Registry(Generic[T]):
    """A name -> class registry with validation.

    Parameters
    ----------
    kind : str
        What is registered ("formulation", "heuristic", ...), used in messages.
    base : type
        Every registered class must be a concrete subclass of it. Usually abstract, so it
        is typed ``type`` (mypy accepts only concrete classes for ``type[T]``); annotate
        the registry, e.g. ``FORMULATIONS: Registry[Formulation] = Registry(...)``.
    """

    def __init__(self, kind: str, base: type) -> None:
        self.kind = kind
        self.base = base
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: validate ``cls`` and add it under ``cls.name``."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{cls!r} is not a subclass of {self.base.__name__}")
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            raise TypeError(f"{cls.__name__} is abstract (missing: {missing})")
        name = getattr(cls, "name", "")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(
                f"{cls.__name__}.name = {name!r} is not a lowercase name "
                "(letters, digits, '_' and '-', starting with a letter)"
            )
        old = self._classes.get(name)
        if old is not None and old is not cls and not _same_class(old, cls):
            raise ValueError(
                f"{self.kind} name {name!r} is already registered by "
                f"{old.__module__}.{old.__qualname__}; cannot register "
                f"{cls.__module__}.{cls.__qualname__}"
            )
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests and interactive experiments)."""
        self._classes.pop(name, None)

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``; :class:`KeyError` lists the valid names."""
        try:
            return self._classes[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise KeyError(
                f"unknown {self.kind} {name!r}{hint}; known: {', '.join(self.names())}"
            ) from None

    def make(self, spec: str) -> T:
        """Instantiate from a spec ``name[key=value,...]``; errors are :class:`InputError`."""
        name, params = parse_method_spec(spec)
        return self.create(name, params)

    def create(self, name: str, params: Mapping[str, Any] | None = None, *,
               settings: Mapping[str, Any] | None = None) -> T:
        """Instantiate ``name`` with the parameters ``params`` (no spec string involved).

        ``settings`` are parameters the caller passes to every method that takes them
        (e.g. ``{"solver": "highs"}``): each is used when the class has a parameter of
        that name and ``params`` does not set it, and ignored otherwise. Errors (an
        unknown name, bad parameters) are :class:`InputError`.
        """
        try:
            cls = self.get(name)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from None
        kwargs = dict(params or {})
        if settings:
            takes = set(getattr(cls, "param_names", lambda: [])())
            kwargs.update({k: v for k, v in settings.items()
                           if k in takes and k not in kwargs})
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise InputError(f"bad parameters for {self.kind} {name!r}: {exc}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes)

    def items(self) -> list[tuple[str, type[T]]]:
        """``(name, class)`` pairs, sorted by name."""
        return sorted(self._classes.items())

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __len__(self) -> int:
        return len(self._classes)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


def _same_class(a: type, b: type) -> bool:
    # the same class re-imported (e.g. a module executed twice) is not a conflict
    return a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__


def discover(package: str, *, skip: tuple[str, ...] = ("base",)) -> list[str]:
    """Import every public submodule of ``package`` (sorted), so their classes register.

    Modules named in ``skip``, private modules (``_*``) and templates (``template_*``) are
    not imported. An import error propagates: a broken plug-in fails loudly.
    """
    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__))
    loaded = []
    for name in names:
        if name in skip or name.startswith("_") or name.startswith("template_"):
            continue
        importlib.import_module(f"{package}.{name}")
        loaded.append(name)
    return loaded
