"""Bundled instance suites shipped in ``instances/data/<suite>/``.

Each suite folder holds gzipped native JSON files and a ``MANIFEST.json`` (schema in
``instances/data/README.md``). Bundled ids look like ``<suite>/<name>``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = [
    "DATA_DIR",
    "MANIFEST_NAME",
    "list_suites",
    "suite_manifest",
    "suite_ids",
    "load_bundled",
    "bundled_path",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
MANIFEST_NAME = "MANIFEST.json"


def list_suites() -> list[str]:
    """Names of the bundled suites (folders of ``instances/data`` with a manifest), sorted."""
    if not DATA_DIR.is_dir():
        return []
    return sorted(p.name for p in DATA_DIR.iterdir() if (p / MANIFEST_NAME).is_file())


@cache
def _manifest(suite: str) -> tuple[dict[str, Any], ...]:
    path = DATA_DIR / suite / MANIFEST_NAME
    if not path.is_file():
        known = ", ".join(list_suites()) or "none"
        raise InputError(f"unknown bundled suite {suite!r} (known: {known})")
    from instances.formats.base import load_json, read_text

    data = load_json(read_text(path), str(path))
    entries = data.get("instances") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FormatError("manifest has no 'instances' list", source=str(path))
    for j, e in enumerate(entries):
        if not isinstance(e, dict) or "id" not in e or "file" not in e:
            raise FormatError(f"instances[{j}] lacks 'id' or 'file'", source=str(path))
    return tuple(entries)


def suite_manifest(suite: str) -> list[dict[str, Any]]:
    """The manifest entries of ``suite`` (one dict per instance, in suite order)."""
    return [dict(e) for e in _manifest(suite)]


def suite_ids(suite: str = "default") -> list[str]:
    """Ids (``<suite>/<name>``) of the instances of a bundled suite, in suite order."""
    return [e["id"] for e in _manifest(suite)]


def _split(instance_id: str) -> tuple[str, str]:
    suite, sep, name = instance_id.partition("/")
    if not sep or not suite or not name:
        raise InputError(f"bundled instance id {instance_id!r} is not of the form SUITE/NAME")
    return suite, name


def bundled_path(instance_id: str) -> Path:
    """The file of bundled instance ``instance_id``."""
    suite, _ = _split(instance_id)
    for e in _manifest(suite):
        if e["id"] == instance_id:
            return DATA_DIR / suite / str(e["file"])
    raise InputError(f"unknown bundled instance {instance_id!r} (see `pipecert instances "
                     f"{suite}`)")


def is_bundled_id(spec: str) -> bool:
    """Whether ``spec`` names a bundled instance."""
    suite, sep, _ = spec.partition("/")
    if not sep or suite not in list_suites():
        return False
    return any(e["id"] == spec for e in _manifest(suite))


def load_bundled(instance_id: str, **options: Any) -> Instance:
    """Load the bundled instance ``instance_id`` (e.g. ``"default/layered-s-001"``).

    ``options`` are reader options (:func:`instances.read_instance`); those that do not
    apply to native JSON are ignored, ``zero_input_work=True`` applies.
    """
    from instances.io import read_instance

    path = bundled_path(instance_id)
    return read_instance(path, **options)
