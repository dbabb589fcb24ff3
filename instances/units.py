"""Parsing quantities written by people: memory sizes (``--memory-limit 80GB``).

Decimal and binary prefixes are both accepted and never mixed up:

=========  ===========  =========  ===========
suffix     bytes        suffix     bytes
=========  ===========  =========  ===========
``B``      1            (none)     bytes
``KB``     ``1e3``      ``KiB``    ``2**10``
``MB``     ``1e6``      ``MiB``    ``2**20``
``GB``     ``1e9``      ``GiB``    ``2**30``
``TB``     ``1e12``     ``TiB``    ``2**40``
``PB``     ``1e15``     ``PiB``    ``2**50``
=========  ===========  =========  ===========

So ``80GB`` is 80e9 bytes (an 80 GB A100/H100 as its datasheet counts) and ``16GiB`` is
17179869184 bytes. Suffixes are case-insensitive (``gb``, ``Gib``), a space may separate the
number and the suffix, and a bare number is bytes (``1.5e9``, ``17179869184``). ``none``
(also ``off``, ``inf``, ``unlimited``) means no cap (``None``).
"""

from __future__ import annotations

import math
import re

from pipecert.errors import InputError

__all__ = ["parse_memory_size", "MEMORY_SUFFIXES", "NO_LIMIT_WORDS"]

#: bytes per unit, by lowercase suffix
MEMORY_SUFFIXES: dict[str, float] = {
    "": 1.0, "b": 1.0,
    "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
    "kib": float(2**10), "mib": float(2**20), "gib": float(2**30), "tib": float(2**40),
    "pib": float(2**50),
}
#: words that mean "no memory cap"
NO_LIMIT_WORDS = ("none", "off", "inf", "unlimited")

_SIZE_RE = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[0-9]+\.)\s*([a-zA-Z]*)$")


def parse_memory_size(text: str) -> float | None:
    """A memory size in bytes from text like ``80GB``, ``80 GiB``, ``1.5e9`` or ``none``.

    Parameters
    ----------
    text : str
        A non-negative number, optionally followed by a unit (see the module docstring:
        ``GB`` = 1e9 bytes, ``GiB`` = 2**30 bytes, ``B``/no unit = bytes), or one of
        ``none``, ``off``, ``inf``, ``unlimited`` (no cap).

    Returns
    -------
    float or None
        The size in bytes, or ``None`` for no cap.

    Raises
    ------
    InputError
        One line naming the text and the accepted forms, on anything else (a negative or
        non-finite number, an unknown unit, an empty string).

    Examples
    --------
    >>> parse_memory_size("80GB"), parse_memory_size("16 GiB"), parse_memory_size("none")
    (80000000000.0, 17179869184.0, None)
    """
    raw = str(text).strip()
    if raw.lower() in NO_LIMIT_WORDS:
        return None
    m = _SIZE_RE.match(raw)
    accepted = ("expected a number of bytes with an optional unit B, KB, MB, GB, TB, PB "
                "(powers of 1000) or KiB, MiB, GiB, TiB, PiB (powers of 1024), e.g. 80GB, "
                "80 GiB, 1.5e9, or 'none'")
    if m is None and raw.startswith("-"):
        raise InputError(f"memory size {raw!r} is negative; it must be >= 0 bytes")
    if m is None:
        raise InputError(f"cannot read memory size {raw!r}: {accepted}")
    number, unit = m.group(1), m.group(2).lower()
    if unit not in MEMORY_SUFFIXES:
        raise InputError(f"cannot read memory size {raw!r}: unknown unit {m.group(2)!r}; "
                         f"{accepted}")
    value = float(number) * MEMORY_SUFFIXES[unit]
    if not math.isfinite(value):
        raise InputError(f"memory size {raw!r} is too large (not a finite number of bytes)")
    return value
