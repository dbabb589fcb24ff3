"""The ``pipecert`` command line.

Each sub-command is one module ``cli/cmd_<name>.py`` defining::

    COMMAND = "name"          # the sub-command
    HELP = "one line"         # shown by pipecert --help
    EPILOG = "..."            # optional: shown at the end of pipecert NAME --help
    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...   # the exit code

Modules are discovered in sorted order, so adding a command is adding a file. Any
:class:`pipecert.InputError` (or an unreadable file, a bad option) becomes one line on stderr
and exit code 2, with no traceback; ``--traceback`` (before or after the sub-command) shows
it for debugging. Output cut short by a closed pipe (``pipecert instances | head``) ends
quietly with exit code 141 (128 + SIGPIPE, as other Unix tools do).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from pipecert.errors import PipecertError

__all__ = ["main", "build_parser", "EXIT_BROKEN_PIPE"]

#: Exit code when stdout was closed early by its reader (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _commands() -> list[ModuleType]:
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return mods


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, ModuleType]]:
    """The argument parser and the map from sub-command to its module."""
    from pipecert import __version__

    parser = _Parser(
        prog="pipecert",
        description="Split a DNN graph into k pipeline stages and prove how good the split is.",
    )
    parser.add_argument("--version", action="version", version=f"pipecert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--traceback", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    table: dict[str, ModuleType] = {}
    for mod in _commands():
        p = sub.add_parser(mod.COMMAND, help=mod.HELP, description=mod.HELP,
                           epilog=getattr(mod, "EPILOG", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        # accepted after the sub-command too; SUPPRESS keeps a --traceback given before it
        p.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        table[mod.COMMAND] = mod
    return parser, table


def _error_message(exc: BaseException) -> str:
    """One line describing ``exc`` for the user."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    if isinstance(exc, RecursionError):
        return "input nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "out of memory"
    msg = " ".join(str(exc).split())
    return msg or type(exc).__name__


def _quiet_broken_pipe() -> int:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipecert`` console script; returns the exit code."""
    from pipecert import cancel

    cancel.sigterm_as_interrupt()  # a signal before a command handles it: exit 130
    try:
        return _main(argv)
    except BrokenPipeError:  # e.g. pipecert --help | head -1
        return _quiet_broken_pipe()


def _main(argv: Sequence[str] | None) -> int:
    from pipecert import cancel

    try:
        parser, table = build_parser()  # imports every command module (about a second)
    except BaseException:
        if not cancel.requested():
            raise
        print("pipecert: interrupted", file=sys.stderr)
        return 130
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, a usage error: flush inside the guard
        sys.stdout.flush()
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help()
        return 2
    try:
        code = int(table[args.command].run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        print("pipecert: interrupted", file=sys.stderr)
        return 130
    except (PipecertError, OSError, KeyError, RecursionError, MemoryError) as exc:
        if args.traceback:
            raise
        print(f"pipecert: error: {_error_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, the traceback on request
        if args.traceback:
            raise
        print(f"pipecert: internal error: {type(exc).__name__}: {_error_message(exc)} "
              "(run with --traceback for details)", file=sys.stderr)
        return 2
