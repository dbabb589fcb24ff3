"""Stable seed derivation (never Python's salted ``hash``)."""

from __future__ import annotations

import hashlib

__all__ = ["derive_seed"]


def derive_seed(base_seed: int, *parts: object) -> int:
    """A 63-bit seed from a base seed and any parts, identical in every process.

    Examples
    --------
    >>> derive_seed(0, "resnet", 4, "brkga-100") == derive_seed(0, "resnet", 4, "brkga-100")
    True
    """
    text = "|".join(str(p) for p in (base_seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
