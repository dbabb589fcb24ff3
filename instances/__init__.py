"""Instances: graph file formats, generators, bundled suites and instance specs.

Main entry points
-----------------
* :func:`read_instance` / :func:`write_instance`: any supported file format, detected by
  content (see :mod:`instances.formats`).
* :func:`resolve`: an instance spec (file, folder, glob, ``suite:NAME``, ``SUITE/NAME``)
  to a list of lazily loaded :class:`InstanceRef`.
* :func:`list_suites`, :func:`suite_ids`, :func:`suite_manifest`, :func:`load_bundled`:
  the suites shipped in ``instances/data/``.
* :func:`to_networkx` / :func:`from_networkx`.
"""

from instances.bundled import list_suites, load_bundled, suite_ids, suite_manifest
from instances.convert_nx import from_networkx, to_networkx
from instances.formats import FORMATS, Format
from instances.io import detect_format, format_names, read_instance, write_instance
from instances.resolve import InstanceRef, resolve

__all__ = [
    "FORMATS",
    "Format",
    "InstanceRef",
    "detect_format",
    "format_names",
    "from_networkx",
    "list_suites",
    "load_bundled",
    "read_instance",
    "resolve",
    "suite_ids",
    "suite_manifest",
    "to_networkx",
    "write_instance",
]
