"""Graph file formats: one plug-in module per format, registered in :data:`FORMATS`.

Every public module of this package is imported (:func:`pipecert.registry.discover`), so
adding a format is adding one file with one ``@FORMATS.register`` class (see
:mod:`instances.formats.base`).
"""

from instances.formats.base import FORMATS, Format
from pipecert.registry import discover

__all__ = ["FORMATS", "Format"]

discover(__name__, skip=("base",))
