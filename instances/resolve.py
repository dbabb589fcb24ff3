"""Turning an instance spec (file, folder, glob, suite, bundled id) into instance refs."""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from instances.bundled import is_bundled_id, list_suites, load_bundled, suite_ids
from instances.io import is_graph_file, read_instance
from pipecert.errors import InputError
from pipecert.instance import Instance

__all__ = ["InstanceRef", "resolve", "stable_id"]

_SKIP_NAMES = {"manifest.json", "readme.md", "license.txt", "license"}


@dataclass(frozen=True)
class InstanceRef:
    """A lazily loaded instance.

    Attributes
    ----------
    id : str
        Stable id stored in results: a bundled id ``SUITE/NAME`` or the file path as given
        (relative to the working directory when it was absolute and lies below it).
    path : str or None
        The file, if the instance comes from one (``None`` for bundled ids).
    load : callable
        Reads and returns the :class:`Instance` (each call reads the file again).
    """

    id: str
    path: str | None
    load: Callable[[], Instance] = field(compare=False, repr=False)


def stable_id(path: str) -> str:
    """A results id for a file path: relative paths as given, absolute ones made relative."""
    p = os.path.normpath(path)
    if os.path.isabs(p):
        try:
            p = os.path.relpath(p)
        except ValueError:  # other drive on Windows
            pass
    return Path(p).as_posix()


def _load_file(path: str, options: dict[str, Any]) -> Instance:
    return read_instance(path, **options)


def _file_ref(path: str, options: dict[str, Any]) -> InstanceRef:
    return InstanceRef(stable_id(path), path, partial(_load_file, path, dict(options)))


def _is_graph_file(p: Path) -> bool:
    if not p.is_file() or p.name.startswith(".") or p.name.lower() in _SKIP_NAMES:
        return False
    return is_graph_file(p)


def resolve(spec: str, **options: Any) -> list[InstanceRef]:
    """Expand an instance spec into a list of :class:`InstanceRef`.

    Parameters
    ----------
    spec : str
        One of: a file path; a directory (every readable graph file below it, recursively,
        sorted by path); a glob pattern (``*``, ``?``, ``[``; ``**`` recurses);
        ``suite:NAME`` (all bundled instances of a suite, in suite order); a bundled id
        ``SUITE/NAME``.
    **options
        Reader options (``bandwidth=``, ``zero_input_work=``, ``format=``) applied when a
        ref is loaded; bundled instances (native JSON) take the options that apply to
        native JSON (``zero_input_work``) and ignore ``format``.

    Raises
    ------
    InputError
        When the spec matches nothing.
    """
    spec = str(spec)
    bundled_opts = {k: v for k, v in options.items() if k != "format"}
    if spec.startswith("suite:"):
        return [InstanceRef(i, None, partial(load_bundled, i, **bundled_opts))
                for i in suite_ids(spec[6:])]
    p = Path(spec)
    if p.is_file():
        return [_file_ref(spec, options)]
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if _is_graph_file(q))
        if not files:
            raise InputError("directory contains no readable graph file", source=spec)
        return [_file_ref(str(q), options) for q in files]
    if any(ch in spec for ch in "*?["):
        matches = sorted(m for m in _glob.glob(spec, recursive=True) if _is_graph_file(Path(m)))
        if not matches:
            raise InputError("glob pattern matches no readable graph file", source=spec)
        return [_file_ref(m, options) for m in matches]
    if is_bundled_id(spec):
        return [InstanceRef(spec, None, partial(load_bundled, spec, **bundled_opts))]
    suites = list_suites()
    head = spec.split("/", 1)[0]
    if head in suites and "/" in spec:
        raise InputError(f"unknown bundled instance (see `pipecert instances {head}`)",
                         source=spec)
    raise InputError(
        "No such file or directory (nor a bundled instance: use suite:NAME or SUITE/NAME; "
        f"suites: {', '.join(suites) or 'none'})",
        source=spec,
    )
