"""The plug-in base class of graph file formats and the ``FORMATS`` registry.

A format is one file in ``instances/formats/`` defining a :class:`Format` subclass
registered with ``@FORMATS.register``; ``instances/formats/__init__.py`` imports every
module of the folder, so adding a format is adding a file.

Detection (:func:`instances.read_instance`) asks every format's :meth:`Format.sniff` about
the first bytes of the file (decompressed when the file is gzipped), in decreasing
``sniff_priority``; when none claims it, the file extension decides.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance
from pipecert.registry import Registry

__all__ = [
    "Format",
    "FORMATS",
    "HEAD_BYTES",
    "GZIP_MAGIC",
    "open_text",
    "read_head",
    "instance_name",
    "INPUT_WORK_OPTIONS",
    "wants_zero_input_work",
    "zero_input_work",
    "load_json",
    "source_nodes",
    "dump_json",
]

#: the reader options every format accepts: ``zero_input_work`` (the one explicit option
#: that sets the work of input nodes to 0) and its legacy inverse alias ``keep_input_work``
INPUT_WORK_OPTIONS = ("zero_input_work", "keep_input_work")

#: number of leading bytes handed to :meth:`Format.sniff`
HEAD_BYTES = 4096
GZIP_MAGIC = b"\x1f\x8b"


class Format(ABC):
    """A graph file format: content sniffing, a reader and (optionally) a writer.

    Attributes
    ----------
    name : str
        Registry name (``--format`` on the command line).
    extensions : tuple of str
        File name endings (with the dot, lowercase, e.g. ``".graph.txt"``), longest first
        wins when guessing from the name.
    options : tuple of str
        Keyword options :meth:`read` accepts (e.g. ``"bandwidth"``).
    sniff_priority : int
        Formats with a higher priority are asked first.
    writable : bool
        Whether :meth:`write` is implemented.
    """

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[str, ...]] = ()
    sniff_priority: ClassVar[int] = 0
    writable: ClassVar[bool] = False
    description: ClassVar[str] = ""

    @abstractmethod
    def sniff(self, path: Path, head: bytes) -> bool:
        """Whether ``head`` (the first ~4 KB of the file, decompressed) is in this format."""

    @abstractmethod
    def read(self, path: Path, **options: Any) -> Instance:
        """Read the file into an :class:`Instance`.

        Raises
        ------
        FormatError
            Naming the file and the line or node of the problem.
        """

    def write(self, instance: Instance, path: Path) -> None:
        """Write ``instance`` to ``path``; read-only formats raise :class:`InputError`."""
        raise InputError(f"format {self.name!r} is read-only", source=str(path))

    def matches_extension(self, path: Path) -> bool:
        """Whether the file name ends with one of :attr:`extensions` (``.gz`` ignored)."""
        low = path.name.lower()
        if low.endswith(".gz"):
            low = low[:-3]
        return any(low.endswith(ext) for ext in self.extensions)


FORMATS: Registry[Format] = Registry("format", Format)


def read_head(path: Path, n: int = HEAD_BYTES) -> bytes:
    """The first ``n`` bytes of ``path``, decompressed if the file is gzipped."""
    with open(path, "rb") as fh:
        raw = fh.read(n)
        if raw[:2] != GZIP_MAGIC:
            return raw
        fh.seek(0)
        try:
            with gzip.GzipFile(fileobj=fh) as gz:
                return gz.read(n)
        except (OSError, EOFError) as exc:
            raise FormatError(f"corrupt gzip data ({exc})", source=str(path)) from None


def open_text(path: Path) -> IO[str]:
    """Open ``path`` for reading text (UTF-8), transparently decompressing gzip."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == GZIP_MAGIC:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def read_text(path: Path) -> str:
    """The whole file as text (gzip and encoding errors become :class:`FormatError`)."""
    try:
        with open_text(path) as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise FormatError(f"not a UTF-8 text file ({exc.reason})", source=str(path)) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise FormatError(f"corrupt gzip data ({exc})", source=str(path)) from None


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without newline)`` pairs, 1-based."""
    yield from enumerate(read_text(path).splitlines(), start=1)


_STRIP = (".json.gz", ".json", ".graph.txt", ".txt", ".pbtxt", ".gz", ".onnx")


def instance_name(path: Path) -> str:
    """A default instance name from a file name: the name without its format extensions."""
    name = path.name
    low = name.lower()
    for ext in _STRIP:
        if low.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return path.stem or name


def load_json(text: str, source: str) -> Any:
    """Parse JSON text; every parse failure becomes a one-line :class:`FormatError`.

    Syntax errors name the line and column. Nesting deeper than the interpreter's
    recursion limit (``json`` is recursive) is a :class:`RecursionError` inside the
    parser; it is reported as "nested too deeply" instead of a traceback.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=source,
                          line=exc.lineno) from None
    except RecursionError:
        raise FormatError("invalid JSON: nested too deeply (arrays or objects inside one "
                          "another beyond the parser's recursion limit)",
                          source=source) from None


def wants_zero_input_work(zero_input_work: bool | None, keep_input_work: bool | None,
                          source: str | None = None) -> bool:
    """Whether a reader should zero the work of input nodes.

    The default (both ``None``) is ``False``: readers keep the file's values.
    ``zero_input_work=True`` asks for zeroing; ``keep_input_work`` is the older inverse
    spelling kept for compatibility (``keep_input_work=False`` means zeroing,
    ``keep_input_work=True`` is the default). Contradictory values are an
    :class:`InputError`.
    """
    zero = None if zero_input_work is None else bool(zero_input_work)
    legacy = None if keep_input_work is None else not bool(keep_input_work)
    if zero is not None and legacy is not None and zero != legacy:
        raise InputError(f"zero_input_work={zero_input_work!r} contradicts "
                         f"keep_input_work={keep_input_work!r}", source=source)
    if zero is not None:
        return zero
    return bool(legacy)


def zero_input_work(instance: Instance, inputs: NDArray[np.bool_], rule: str) -> Instance:
    """The instance with the work of its input nodes set to 0, recorded in the metadata.

    Input nodes carry data-loading time that some upstream tools drop before partitioning;
    readers apply this only when asked (``zero_input_work=True``). ``inputs`` marks the
    nodes the format calls inputs (``rule`` says which, in words). The metadata records
    ``input_work = "zeroed"``, ``input_work_option = "zero_input_work"``,
    ``input_work_rule = rule`` and ``input_work_zeroed`` = {node id: original work} of
    every node whose work changed (merged with earlier zeroings recorded in the file).
    """
    work = np.asarray(instance.work, dtype=np.float64)
    mask = np.asarray(inputs, dtype=bool) & (work > 0)
    meta = dict(instance.metadata)
    previous = meta.get("input_work_zeroed")
    zeroed: dict[str, float] = dict(previous) if isinstance(previous, dict) else {}
    zeroed.update({instance.ids[i]: float(work[i]) for i in np.flatnonzero(mask)})
    meta["input_work"] = "zeroed"
    meta["input_work_option"] = "zero_input_work"
    meta["input_work_rule"] = rule
    meta["input_work_zeroed"] = zeroed
    new = work.copy()
    new[mask] = 0.0
    return instance.replace(work=new, metadata=meta)


def source_nodes(instance: Instance) -> NDArray[np.bool_]:
    """Nodes without an incoming data or precedence edge."""
    indeg = np.bincount(instance.dst, minlength=instance.n_nodes)
    indeg = indeg + np.bincount(instance.prec_dst, minlength=instance.n_nodes)
    return np.asarray(indeg == 0)


def dump_json(data: Any, path: Path, **kwargs: Any) -> str:
    """``json.dumps(data, allow_nan=False, **kwargs)``; what JSON cannot hold (NaN,
    infinities, sets, objects; nesting beyond the recursion limit) is an
    :class:`InputError` naming ``path``, raised before anything is written."""
    try:
        return json.dumps(data, allow_nan=False, **kwargs)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InputError(f"cannot write this instance as JSON: the metadata or a value is "
                         f"not JSON ({type(exc).__name__}: {exc})", source=str(path)) from None
