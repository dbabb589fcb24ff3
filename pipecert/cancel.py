"""Process-wide cancellation: how SIGINT / SIGTERM stop a solve cleanly.

A signal must not tear a run down mid-way: a ``KeyboardInterrupt`` raised inside a compiled
(numba) kernel becomes a swallowed ``SystemError``, and one raised while a MIP solver runs
in a C++ thread leaves that thread running while the interpreter exits (HiGHS then aborts
the process: ``terminate called without an active exception``, exit -6). Instead,
``pipecert solve`` installs :func:`handle_signals`, whose handlers only *set a flag*:

* :meth:`pipecert.results.Budget.expired` returns True and
  :meth:`~pipecert.results.Budget.remaining` returns 0 once the flag is set, so every
  method stops at its next budget check and returns its best result so far (a partition,
  a bound proven so far);
* the MIP backends (:mod:`formulations.mip.backends`) watch :func:`event`: HiGHS is
  stopped through its interrupt callbacks and its global dual bound is read after it
  returns; CP-SAT through ``StopSearch``. ``scipy.optimize.milp`` has no callback: a
  running scipy solve goes on until its own time limit (at most its step's share of the
  budget); a new one gets no time;
* the portfolio starts no new step (:mod:`portfolio`).

Python runs a signal handler only between bytecodes of the main thread, so the flag is set
when the running compiled kernel returns; every long kernel therefore works in chunks and
returns to Python at least every ~0.1 to 0.5 s (see the kernels' docstrings).

A second signal while stopping raises :class:`KeyboardInterrupt` (the escape hatch if a
step does not stop), which the portfolio also turns into "keep what finished".

A SIGINT that was ignored when the process started (``nohup``, a background job of a
non-interactive shell) stays ignored, as is the Unix convention.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["event", "request", "requested", "reason", "reset", "handle_signals",
           "register_worker_stopper", "stop_workers", "sigterm_as_interrupt",
           "EXIT_INTERRUPTED"]

#: Exit code of a command stopped by a signal (128 + SIGINT, the shell convention).
EXIT_INTERRUPTED = 130

_EVENT = threading.Event()
_REASON: list[str] = []
_ESCALATE = [True]  # a second signal raises KeyboardInterrupt (False while writing output)
_STOPPERS: list[Callable[[float], bool]] = []


def event() -> threading.Event:
    """The process-wide cancel event (solver threads and watchers poll it)."""
    return _EVENT


def request(why: str = "cancelled") -> None:
    """Ask every running method to stop at its next budget check."""
    if not _EVENT.is_set():
        _REASON[:] = [why]
    _EVENT.set()


def requested() -> bool:
    """True once a stop was requested (cheap: one ``Event.is_set``)."""
    return _EVENT.is_set()


def reason() -> str | None:
    """What requested the stop (for example ``"SIGINT"``), None if nothing did."""
    return _REASON[0] if _EVENT.is_set() and _REASON else None


def reset() -> None:
    """Clear the flag (tests, or a long-lived process starting a new solve)."""
    _REASON.clear()
    _EVENT.clear()


def register_worker_stopper(stop: Callable[[float], bool]) -> None:
    """Register ``stop(timeout) -> bool``: stop background solver threads, True if all did.

    Solver backends that leave threads behind (HiGHS abandoned at a deadline) register one,
    so that a command can wait for them before the interpreter exits (:func:`stop_workers`).
    """
    if stop not in _STOPPERS:
        _STOPPERS.append(stop)


def stop_workers(timeout: float) -> bool:
    """Ask every registered backend to stop its threads; True if all stopped in time.

    A C++ solver thread still running when the interpreter exits aborts the process
    (``terminate called without an active exception``); a command that gets False here
    flushes its output and leaves with :func:`os._exit`, which skips the C++ static
    destructors.
    """
    ok = True
    for stop in list(_STOPPERS):
        ok = stop(timeout) and ok
    return ok


def _handler(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _EVENT.is_set():
        if _ESCALATE[-1]:  # a second signal: the user insists; unwind
            raise KeyboardInterrupt(name)
        return
    request(name)
    try:
        sys.stderr.write(f"\npipecert: {name} received, stopping (the best result so far "
                         "is kept; signal again to stop at once)\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed: the flag is what matters
        pass


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    request(name)  # recorded: an import may wrap the exception into another one
    raise KeyboardInterrupt(name)


def sigterm_as_interrupt() -> None:
    """Make SIGTERM (and SIGINT) raise :class:`KeyboardInterrupt` and record the request.

    The command line installs it first thing, so that a signal that arrives before a
    command installs :func:`handle_signals` (while modules load) ends with "interrupted"
    and exit 130 rather than a kill; the request is recorded (:func:`requested`) because
    Python wraps an exception raised during class creation into a ``RuntimeError``.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_interrupt)


@contextmanager
def handle_signals(signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM), *,
                   escalate: bool = True) -> Iterator[None]:
    """Within the block, SIGINT / SIGTERM set the cancel flag instead of raising.

    With ``escalate`` (the default) a second signal raises :class:`KeyboardInterrupt`;
    without it (while the result is being written) further signals are ignored, so the
    output is never cut half-way. Only the main thread can install handlers; elsewhere
    this is a no-op. The previous handlers are restored on exit. The flag itself is not
    reset on exit: the caller reads :func:`requested` to choose its exit code
    (:data:`EXIT_INTERRUPTED`).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _ESCALATE.append(escalate)
    previous: dict[int, Any] = {}
    for s in signals:
        old = signal.getsignal(s)
        if s == signal.SIGINT and old == signal.SIG_IGN:
            continue  # ignored at startup (nohup, background job): keep ignoring it
        previous[s] = old
        signal.signal(s, _handler)
    try:
        yield
    finally:
        _ESCALATE.pop()
        for s, old in previous.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)
