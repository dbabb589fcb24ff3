"""Reading and writing instance files with automatic format detection."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from instances.formats import FORMATS, Format
from instances.formats.base import read_head
from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = [
    "read_instance",
    "write_instance",
    "detect_format",
    "sniff_format",
    "is_graph_file",
    "format_names",
    "get_format",
]

log = logging.getLogger(__name__)


def format_names() -> list[str]:
    """Names of all registered formats, sorted."""
    return FORMATS.names()


def get_format(name: str, *, source: str | None = None) -> Format:
    """An instance of the format registered as ``name`` (:class:`InputError` if unknown)."""
    try:
        return FORMATS.get(name)()
    except KeyError as exc:
        raise InputError(str(exc.args[0]), source=source) from None


def _by_priority() -> list[Format]:
    fmts = [cls() for _, cls in FORMATS.items()]
    return sorted(fmts, key=lambda f: (-f.sniff_priority, f.name))


def _by_extension(path: Path, *, writable: bool = False) -> Format | None:
    low = path.name.lower()
    best: tuple[int, int, Format] | None = None
    for fmt in _by_priority():
        if writable and not fmt.writable:
            continue
        for ext in fmt.extensions:
            if low.endswith(ext):
                key = (len(ext), fmt.sniff_priority)
                if best is None or key > best[:2]:
                    best = (key[0], key[1], fmt)
    return None if best is None else best[2]


def sniff_format(path: str | os.PathLike[str]) -> Format | None:
    """The format that recognises the content of the file at ``path``, or ``None``."""
    p = Path(path)
    head = read_head(p)
    for fmt in _by_priority():
        try:
            if fmt.sniff(p, head):
                return fmt
        except Exception:  # a sniffer must never break detection
            log.debug("format %s failed to sniff %s", fmt.name, p, exc_info=True)
    return None


def detect_format(path: str | os.PathLike[str]) -> Format | None:
    """The format of the file at ``path``, by content first, then by extension.

    Returns ``None`` when no format recognises the file. Raises :class:`OSError` if the
    file cannot be opened.
    """
    return sniff_format(path) or _by_extension(Path(path))


def is_graph_file(path: str | os.PathLike[str]) -> bool:
    """Whether a folder scan should take ``path``: its content is recognised, or its
    extension belongs to a format other than generic JSON (``.json`` files that no
    format recognises, such as partition files and manifests, are skipped)."""
    p = Path(path)
    try:
        if sniff_format(p) is not None:
            return True
    except OSError:
        return False
    low = p.name.lower().removesuffix(".gz")
    if low.endswith(".json"):
        return False
    return _by_extension(p) is not None


def _known_options() -> set[str]:
    return {o for _, cls in FORMATS.items() for o in cls.options}


def read_instance(
    path: str | os.PathLike[str], *, format: str | None = None, **options: Any
) -> Instance:
    """Read a graph file into an :class:`Instance`.

    Parameters
    ----------
    path : path-like
        The file. Gzipped files are decompressed transparently.
    format : str, optional
        A registered format name; by default the format is detected from the content,
        falling back to the file extension.
    **options
        Format-specific options, e.g. ``bandwidth=`` (PipeDream), or
        ``zero_input_work=True`` (every format: set the work of the format's input nodes
        to 0, recorded in the metadata; by default every value of the file is kept;
        ``keep_input_work`` is the older inverse spelling). Options that are ``None`` or
        that another format accepts but this one does not are ignored (so one set of
        options can serve a directory of mixed files); an option no format knows is an
        :class:`InputError`.

    Raises
    ------
    FormatError
        Unknown or undetectable format, or a malformed file (naming the file and line or
        node).
    OSError
        The file does not exist or cannot be read.
    """
    p = Path(path)
    source = str(path)
    if not p.exists():
        raise FileNotFoundError(2, "No such file or directory", source)
    if p.is_dir():
        raise InputError("is a directory, not a graph file", source=source)
    if p.is_file() and p.stat().st_size == 0:
        raise FormatError("empty file (0 bytes)", source=source)
    fmt = get_format(format, source=source) if format else detect_format(p)
    if fmt is None:
        raise FormatError(
            "unknown graph format (not recognised by content or extension; known formats: "
            f"{', '.join(format_names())})",
            source=source,
        )
    opts = {k: v for k, v in options.items() if v is not None}
    unknown = set(opts) - _known_options()
    if unknown:
        raise InputError(f"unknown reader option(s) {', '.join(sorted(unknown))}",
                         source=source)
    ignored = set(opts) - set(fmt.options)
    for key in ignored:
        log.debug("option %s does not apply to format %s; ignored", key, fmt.name)
        opts.pop(key)
    log.debug("reading %s as %s", source, fmt.name)
    return fmt.read(p, **opts)


def write_instance(
    instance: Instance, path: str | os.PathLike[str], *, format: str | None = None
) -> None:
    """Write ``instance`` to ``path``.

    The format comes from ``format`` or the extension: ``.json`` is native JSON,
    ``.json.gz`` gzipped native JSON (the default for unknown extensions is an error).
    """
    p = Path(path)
    fmt: Format | None
    if format:
        fmt = get_format(format, source=str(path))
    else:
        fmt = _by_extension(p, writable=True)
        if fmt is None:
            raise InputError(
                "cannot tell the output format from the file name; use a .json or .json.gz "
                "name or give a format",
                source=str(path),
            )
    if not fmt.writable:
        raise InputError(f"format {fmt.name!r} is read-only", source=str(path))
    fmt.write(instance, p)
