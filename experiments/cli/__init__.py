"""The ``pipecert`` command line.

Each sub-command is one module ``experiments/cli/cmd_<name>.py`` defining::

    COMMAND = "name"          # the sub-command
    HELP = "one line"         # shown by pipecert --help
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...   # the exit code

Modules are discovered in sorted order, so adding a command is adding a file. Any
:class:`pipecert.InputError` (or an unreadable file) becomes one line on stderr and exit code
2, with no traceback; ``--traceback`` shows it for debugging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

from pipecert.errors import PipecertError

__all__ = ["main", "build_parser"]


def _commands() -> list[ModuleType]:
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return mods


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The argument parser and the map from sub-command to its module."""
    from pipecert import __version__

    parser = argparse.ArgumentParser(
        prog="pipecert",
        description="Split a DNN graph into k pipeline stages and prove how good the split is.",
    )
    parser.add_argument("--version", action="version", version=f"pipecert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    table: dict[str, ModuleType] = {}
    for mod in _commands():
        p = sub.add_parser(mod.COMMAND, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        table[mod.COMMAND] = mod
    return parser, table


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipecert`` console script; returns the exit code."""
    from pipecert import cancel

    cancel.sigterm_as_interrupt()  # a signal before a command handles it: exit 130
    try:
        parser, table = build_parser()  # imports every command module (about a second)
    except BaseException:
        if not cancel.requested():
            raise
        print("pipecert: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(table[args.command].run(args) or 0)
    except KeyboardInterrupt:
        print("pipecert: interrupted", file=sys.stderr)
        return 130
    except (PipecertError, OSError, KeyError) as exc:
        if args.traceback:
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        if isinstance(exc, OSError) and exc.filename:
            msg = f"{exc.filename}: {exc.strerror}"
        print(f"pipecert: error: {msg}", file=sys.stderr)
        return 2
