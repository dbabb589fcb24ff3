"""Exceptions raised by pipecert for bad input and invalid results.

Every error that is caused by the user's input derives from :class:`InputError`, so the
command-line interface can turn it into one line on stderr and exit code 2 with no
traceback.
"""

from __future__ import annotations

__all__ = ["PipecertError", "InputError", "InstanceError", "FormatError", "InvalidBoundError"]


class PipecertError(Exception):
    """Base class of all pipecert exceptions."""


class InputError(PipecertError, ValueError):
    """Bad user input: a malformed file, an invalid graph, an invalid parameter.

    Parameters
    ----------
    message : str
        What is wrong, in one line.
    source : str or None
        The file (or other origin) the input came from; prefixed to the message.
    line : int or None
        1-based line number within ``source``, when known.
    """

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        self.problem = message
        self.source = source
        self.line = line
        prefix = ""
        if source is not None:
            prefix = f"{source}: "
            if line is not None:
                prefix = f"{source}:{line}: "
        elif line is not None:
            prefix = f"line {line}: "
        super().__init__(prefix + message)


class InstanceError(InputError):
    """The graph itself is invalid (cycle, negative cost, unknown node, ...)."""


class FormatError(InputError):
    """A file could not be parsed in the format it claims (or is detected) to be in."""


class InvalidBoundError(PipecertError):
    """A lower bound exceeded a known feasible value: a bug, never a result."""
